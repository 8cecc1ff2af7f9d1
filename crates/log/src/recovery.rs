//! Recovery at open: the log's head is read back from the store and the
//! right edge of the tree (the partial tile of each level and the partial
//! entry bundle) is rebuilt from its segments. Anything inconsistent — a
//! gap, a short key, a root the tiles do not reproduce — is
//! [`LogError::Corrupt`], never a panic and never a silently repaired log.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_store::{Store, WriteBatch};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::hash::{Hash, empty_root, leaf_hash, perfect_root};
use cairn_tlog::proof::{self, fold_range};
use cairn_tlog::tiles::{self, TILE_WIDTH};

use crate::config::LogConfig;
use crate::engine::{EdgeBundle, EdgeTile, Snapshot};
use crate::error::LogError;
use crate::files::Unit;
use crate::full::{FullUnits, missing};
use crate::layout::*;
use crate::nodes::{NodeHasher, TileHashes};

/// The offset of a segment key: the unit's prefix, then a u16 BE offset.
fn segment_offset(key: &[u8], prefix_len: usize, what: &str) -> Result<u16, LogError> {
    match key.get(prefix_len..) {
        Some(&[hi, lo]) => Ok(u16::from_be_bytes([hi, lo])),
        _ => Err(LogError::corrupt(format!(
            "{what} segment key is {} bytes, expected {}",
            key.len(),
            prefix_len + 2
        ))),
    }
}

/// Recovery at open: the stored head, the partial tiles and bundle of the
/// right edge, checked to reproduce the stored root; an empty log gets its
/// signed checkpoint of size 0. Returns the snapshot and the state bytes
/// (the fencing precondition of the next commit).
pub(crate) async fn load(
    store: &dyn Store,
    config: &LogConfig,
) -> Result<(Snapshot, Vec<u8>), LogError> {
    let state = head(store, config).await?;
    let size = state.size;
    let mut edge = Vec::new();
    for level in 0u8..8 {
        let stored = tiles::stored_at_level(level, size);
        if stored == 0 && level > 0 {
            break;
        }
        let index = stored / TILE_WIDTH;
        let what = format!("tile {level}/{index}");
        let prefix = tile_prefix(level, index);
        let len = (stored % TILE_WIDTH) as usize;
        let (hashes, segments) = read_segments(store, NS_TILES, &prefix, &what, len, |v| {
            Ok(tiles::tile_hashes(v)?)
        })
        .await?;
        edge.push(EdgeTile {
            index,
            hashes: Arc::new(hashes),
            segments,
        });
    }
    let bundle_index = size / TILE_WIDTH;
    let what = format!("bundle {bundle_index}");
    let prefix = bundle_prefix(bundle_index);
    let len = (size % TILE_WIDTH) as usize;
    let (entries, segments) = read_segments(store, NS_ENTRIES, &prefix, &what, len, |v| {
        Ok(tiles::decode_bundle(v)?
            .into_iter()
            .map(Arc::<[u8]>::from)
            .collect())
    })
    .await?;
    let snapshot = Snapshot {
        size,
        root: state.root,
        checkpoint: Arc::from(state.checkpoint.as_str()),
        edge: Arc::new(edge),
        bundle: Arc::new(EdgeBundle {
            index: bundle_index,
            entries,
            segments,
        }),
    };
    // The stored edge must reproduce the stored root.
    if root_from_edge(&snapshot)? != state.root {
        return Err(LogError::corrupt(
            "tiles do not reproduce the checkpoint's root",
        ));
    }
    Ok((snapshot, state.encode()))
}

/// The last full tile of each level and the last full bundle must be there
/// and agree with the tree: each tile's root with the level above's right
/// edge, the bundle's leaf hashes with the last full tile of level 0. (The
/// right edge alone reproduces the root; this catches full units lost
/// behind it, e.g. tile files not carried over with the store.)
pub(crate) async fn check_last_units(
    store: &dyn Store,
    full: &FullUnits,
    snap: &Snapshot,
) -> Result<(), LogError> {
    let mut last_tile0 = None;
    for (level, edge) in snap.edge.iter().enumerate() {
        let Some(last) = edge.index.checked_sub(1) else {
            continue;
        };
        let unit = Unit::Tile {
            level: level as u8,
            index: last,
        };
        let hashes =
            tiles::tile_hashes(&full.read(store, unit).await?.ok_or_else(|| missing(unit))?)?;
        if hashes.len() as u64 != TILE_WIDTH {
            return Err(LogError::corrupt(format!(
                "{} is not full",
                unit.path().to_path()
            )));
        }
        let root = perfect_root(&hashes);
        let above = snap
            .edge
            .get(level + 1)
            .filter(|up| up.index == last / TILE_WIDTH);
        if above.is_some_and(|up| up.hashes.get((last % TILE_WIDTH) as usize) != Some(&root)) {
            return Err(LogError::corrupt(format!(
                "{} does not match the tree",
                unit.path().to_path()
            )));
        }
        if level == 0 {
            last_tile0 = Some(hashes);
        }
    }
    let (Some(last), Some(hashes)) = (snap.bundle.index.checked_sub(1), last_tile0) else {
        return Ok(());
    };
    let unit = Unit::Bundle { index: last };
    let entries =
        tiles::decode_bundle(&full.read(store, unit).await?.ok_or_else(|| missing(unit))?)?;
    if !entries.iter().map(|e| leaf_hash(e)).eq(hashes) {
        return Err(LogError::corrupt(format!(
            "{} does not match the tree",
            unit.path().to_path()
        )));
    }
    Ok(())
}

/// The stored head; an empty store gets the signed checkpoint of size 0.
async fn head(store: &dyn Store, config: &LogConfig) -> Result<StoredState, LogError> {
    if let Some(bytes) = store.get(NS_STATE, STATE_KEY).await? {
        return StoredState::decode(&bytes);
    }
    let root = empty_root();
    let checkpoint = Checkpoint {
        origin: config.signer.verifier().name().to_owned(),
        size: 0,
        root,
        extensions: vec![],
    }
    .sign(&config.signer)?;
    let state = StoredState {
        size: 0,
        root,
        checkpoint,
    };
    let mut b = WriteBatch::new();
    b.expect_absent(NS_STATE, STATE_KEY.to_vec())
        .put(NS_STATE, STATE_KEY.to_vec(), state.encode());
    store.commit(b).await?;
    Ok(state)
}

/// The first `len` items of the partial unit (tile or bundle) stored as
/// segments under `prefix`, and the segments' offsets: the segments must
/// follow each other without a gap and hold at least `len` items.
async fn read_segments<T>(
    store: &dyn Store,
    ns: &'static str,
    prefix: &[u8],
    what: &str,
    len: usize,
    decode: impl Fn(&[u8]) -> Result<Vec<T>, LogError>,
) -> Result<(Vec<T>, Vec<u16>), LogError> {
    let mut items = Vec::with_capacity(len);
    let mut segments = Vec::new();
    if len == 0 {
        return Ok((items, segments));
    }
    for (key, value) in store
        .scan(ns, prefix, Some(&prefix_end(prefix)), 1024)
        .await?
    {
        let offset = segment_offset(&key, prefix.len(), what)?;
        if usize::from(offset) != items.len() {
            return Err(LogError::corrupt(format!("{what} has a gap at {offset}")));
        }
        items.extend(decode(&value)?);
        segments.push(offset);
    }
    items.truncate(len);
    if items.len() != len {
        return Err(LogError::corrupt(format!(
            "{what} holds {} items, expected {len}",
            items.len()
        )));
    }
    Ok((items, segments))
}

/// The root of the tree the snapshot's right edge describes.
pub(crate) fn root_from_edge(snap: &Snapshot) -> Result<Hash, LogError> {
    if snap.size == 0 {
        return Ok(empty_root());
    }
    let tiles: HashMap<(u8, u64), TileHashes> = snap
        .edge
        .iter()
        .enumerate()
        .map(|(l, e)| ((l as u8, e.index), e.hashes.clone()))
        .collect();
    let mut hasher = NodeHasher::new(&tiles);
    let hashes = proof::root_nodes(snap.size)
        .iter()
        .map(|n| hasher.hash(*n))
        .collect::<Result<Vec<_>, _>>()?;
    fold_range(&hashes).ok_or_else(|| LogError::corrupt("empty root plan"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};
    use cairn_tlog::note::{ALG_ED25519, NoteSigner};

    fn config() -> LogConfig {
        LogConfig::new(Arc::new(
            NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap(),
        ))
    }

    #[test]
    fn segment_keys_of_the_wrong_length_are_corrupt_not_a_panic() {
        assert_eq!(segment_offset(&[7, 0, 1], 1, "tile").unwrap(), 1);
        for bad in [&[][..], &[7][..], &[7, 0][..], &[7, 0, 1, 2][..]] {
            assert!(matches!(
                segment_offset(bad, 1, "tile"),
                Err(LogError::Corrupt { .. })
            ));
        }
    }

    #[tokio::test]
    async fn an_empty_store_opens_at_size_zero_with_a_signed_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap();
        let (snap, state) = load(&store, &config()).await.unwrap();
        assert_eq!((snap.size, snap.root), (0, empty_root()));
        assert!(snap.checkpoint.starts_with("test.example/log\n0\n"));
        // Opening again reads the same state back.
        let (again, state2) = load(&store, &config()).await.unwrap();
        assert_eq!((again.size, state2), (0, state));
    }

    /// A stored head over tiles that do not reproduce its root, and a short
    /// segment key, are both refused at open.
    #[tokio::test]
    async fn inconsistent_stores_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap();
        let state = StoredState {
            size: 1,
            root: [9; 32],
            checkpoint: "x".into(),
        };
        let mut b = WriteBatch::new();
        b.put(NS_STATE, STATE_KEY.to_vec(), state.encode())
            .put(NS_TILES, tile_key(0, 0, 0), vec![1; 32])
            .put(
                NS_ENTRIES,
                bundle_key(0, 0),
                tiles::encode_bundle([&b"leaf"[..]]).unwrap(),
            );
        store.commit(b).await.unwrap();
        let e = load(&store, &config()).await.unwrap_err();
        assert!(
            matches!(e, LogError::Corrupt { what: ref m } if m.contains("root")),
            "{e}"
        );

        let mut b = WriteBatch::new();
        b.put(NS_TILES, tile_prefix(0, 0), vec![1; 32]);
        store.commit(b).await.unwrap();
        let e = load(&store, &config()).await.unwrap_err();
        assert!(
            matches!(e, LogError::Corrupt { what: ref m } if m.contains("segment key")),
            "{e}"
        );
    }
}
