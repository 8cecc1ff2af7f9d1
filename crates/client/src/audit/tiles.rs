//! Verifying any C2SP tlog-tiles log from its tiles alone, cairn's or not:
//! the checkpoint's signature (and witness quorum), every entry bundle
//! against its level-0 hash tile, every hash tile of every level against
//! the tiles below it, the root recomputed from all leaf hashes, and
//! consistency with a checkpoint trusted before — recomputed from the same
//! leaves, so no proof from the log's operator is needed.
//!
//! The tiles come from a directory (a mirror, an archive) or over HTTPS.

use std::path::PathBuf;
use std::time::Duration;

use cairn_mtls::https::HttpsTarget;
use cairn_tlog::checkpoint;
use cairn_tlog::hash::{Hash, leaf_hash, node_hash, perfect_root};
use cairn_tlog::tiles::{
    TILE_WIDTH, TileId, TilePath, decode_bundle, stored_at_level, tile_hashes,
};

use super::{Head, LogFailure, LogVerifier, failed};
use crate::error::ClientError;

/// The largest tile or bundle read (a full bundle of 256 entries of
/// 64 KiB each is 16 MiB).
const MAX_TILE: usize = 256 * (65_535 + 2);
const FETCH_DEADLINE: Duration = Duration::from_secs(60);
/// How long a checkpoint's cosignatures are waited for.
const COSIGNATURE_WAIT: Duration = Duration::from_secs(10);

/// Where a log's tiles are.
#[derive(Debug, Clone)]
pub enum TileSource {
    /// A directory holding `checkpoint` and `tile/…`.
    Dir(PathBuf),
    /// A tlog-tiles prefix over HTTPS.
    Https(HttpsTarget),
}

impl TileSource {
    fn name(&self, path: &str) -> String {
        match self {
            TileSource::Dir(d) => d.join(path).display().to_string(),
            TileSource::Https(t) => format!("{}/{path}", t.url.trim_end_matches('/')),
        }
    }

    /// The bytes at `path`, or `None` where there is nothing (no file,
    /// HTTP 404).
    async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, ClientError> {
        let unreadable = |detail: String| ClientError::TileSource {
            at: self.name(path),
            detail,
        };
        match self {
            TileSource::Dir(d) => match tokio::fs::read(d.join(path)).await {
                Ok(b) if b.len() <= MAX_TILE => Ok(Some(b)),
                Ok(b) => Err(unreadable(format!("{} bytes is too large", b.len()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(unreadable(e.to_string())),
            },
            TileSource::Https(t) => {
                let (status, body) = t
                    .request(path, None, MAX_TILE, FETCH_DEADLINE)
                    .await
                    .map_err(|e| unreadable(e.detail))?;
                match status.as_u16() {
                    200 => Ok(Some(body.to_vec())),
                    404 => Ok(None),
                    other => Err(unreadable(format!("HTTP {other}"))),
                }
            }
        }
    }

    /// A tile of `width`: the partial path, or (as C2SP tlog-tiles lets
    /// clients do) the prefix of the full tile once the log has grown.
    async fn tile(&self, p: TilePath, width: usize, unit: usize) -> Result<Vec<u8>, ClientError> {
        let full = match p {
            TilePath::Hashes(t) => TilePath::Hashes(TileId { width: 256, ..t }),
            TilePath::Entries { index, .. } => TilePath::Entries { index, width: 256 },
            TilePath::Checkpoint => TilePath::Checkpoint,
        };
        if let Some(b) = self.get(&p.to_path()).await? {
            return Ok(b);
        }
        if full != p
            && let Some(b) = self.get(&full.to_path()).await?
        {
            return Ok(match unit {
                0 => b,
                u => b[..b.len().min(width * u)].to_vec(),
            });
        }
        Err(failed(LogFailure::TileMissing { path: p.to_path() }))
    }
}

/// What a tiles verification covered.
#[derive(Debug, Clone)]
pub struct TilesVerified {
    /// The checkpoint that verified.
    pub head: Head,
    /// Entry bundles checked.
    pub bundles: u64,
    /// Hash tiles checked, every level.
    pub hash_tiles: u64,
    /// The trusted size the log was found consistent with, if one was given.
    pub consistent_with: Option<u64>,
}

/// A Merkle tree root computed as leaf hashes stream in (RFC 9162).
#[derive(Default)]
struct Streaming {
    stack: Vec<(u64, Hash)>,
    count: u64,
}

impl Streaming {
    fn push(&mut self, h: Hash) {
        let mut node = (1u64, h);
        while let Some(&(size, left)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            self.stack.pop();
            node = (size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut h)) = it.next() else {
            return cairn_tlog::hash::empty_root();
        };
        for (_, left) in it {
            h = node_hash(left, &h);
        }
        h
    }
}

impl LogVerifier {
    /// The source's checkpoint once it verifies with the quorum (fetched
    /// again while the log's signature verifies but the cosignatures have
    /// not arrived yet, as [`LogVerifier::latest_witnessed`] does).
    async fn tiles_head(&self, source: &TileSource) -> Result<Head, ClientError> {
        let deadline = tokio::time::Instant::now() + COSIGNATURE_WAIT;
        loop {
            let text = source.get("checkpoint").await?.ok_or_else(|| {
                failed(LogFailure::TileMissing {
                    path: "checkpoint".into(),
                })
            })?;
            let text = String::from_utf8_lossy(&text);
            match self.head(&text) {
                Err(_)
                    if self.quorum > 0
                        && checkpoint::open(&text, &self.key).is_ok()
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Verifies the log in `source` from its tiles alone (see the module
    /// doc); `trusted` is a checkpoint note of this log trusted before.
    /// `progress` is told how many entries have been checked.
    pub async fn verify_tiles(
        &self,
        source: &TileSource,
        trusted: Option<&str>,
        mut progress: impl FnMut(u64),
    ) -> Result<TilesVerified, ClientError> {
        let head = self.tiles_head(source).await?;
        let size = head.checkpoint.size;
        let trusted = match trusted {
            Some(t) => Some(
                checkpoint::open(t, &self.key)
                    .map_err(|e| failed(LogFailure::Trusted(e)))?
                    .checkpoint,
            ),
            None => None,
        };
        if let Some(t) = &trusted
            && t.size > size
        {
            return Err(failed(LogFailure::Rewound {
                trusted: t.size,
                size,
            }));
        }
        let mut stream = Streaming::default();
        let mut prefix_root = None;
        let mut above = Vec::new();
        let mut bundles = 0;
        for index in 0..size.div_ceil(TILE_WIDTH) {
            let hashes = leaf_tile(source, index, size).await?;
            for h in &hashes {
                stream.push(*h);
                if trusted.as_ref().is_some_and(|t| t.size == stream.count) {
                    prefix_root = Some(stream.root());
                }
            }
            if hashes.len() as u64 == TILE_WIDTH {
                above.push(perfect_root(&hashes));
            }
            bundles += 1;
            progress(stream.count);
        }
        let hash_tiles = bundles + upper_tiles(source, size, above).await?;
        if stream.root() != head.checkpoint.root {
            return Err(failed(LogFailure::RootMismatch { size }));
        }
        let consistent_with = match trusted {
            Some(t) if t.size == 0 || prefix_root == Some(t.root) => Some(t.size),
            Some(t) => {
                return Err(failed(LogFailure::TilesInconsistent { trusted: t.size }));
            }
            None => None,
        };
        Ok(TilesVerified {
            head,
            bundles,
            hash_tiles,
            consistent_with,
        })
    }
}

/// Level-0 tile `index` and its entry bundle: each entry's leaf hash must
/// be the tile's hash. Returns the tile's hashes.
async fn leaf_tile(source: &TileSource, index: u64, size: u64) -> Result<Vec<Hash>, ClientError> {
    let width = (size - index * TILE_WIDTH).min(TILE_WIDTH) as u16;
    let tile = TilePath::Hashes(TileId {
        level: 0,
        index,
        width,
    });
    let bytes = source.tile(tile, width.into(), 32).await?;
    let hashes = checked_hashes(&tile, &bytes, width)?;
    let bundle = TilePath::Entries { index, width };
    let raw = source.tile(bundle, width.into(), 0).await?;
    let entries = decode_bundle(&raw).map_err(|e| bad_tile(&bundle, e.to_string()))?;
    // A full bundle fetched for a partial one holds more entries.
    if entries.len() < usize::from(width) {
        return Err(bad_tile(
            &bundle,
            format!("{} entries, expected {width}", entries.len()),
        ));
    }
    for (i, (e, h)) in entries.iter().zip(&hashes).enumerate() {
        if leaf_hash(e) != *h {
            return Err(failed(LogFailure::EntryMismatch {
                index: index * TILE_WIDTH + i as u64,
            }));
        }
    }
    Ok(hashes)
}

/// Every hash tile above level 0: each hash must be the root of the full
/// tile below it. `below` holds the roots of level 0's full tiles.
async fn upper_tiles(
    source: &TileSource,
    size: u64,
    mut below: Vec<Hash>,
) -> Result<u64, ClientError> {
    let mut checked = 0;
    for level in 1u8.. {
        let stored = stored_at_level(level, size);
        if stored == 0 {
            break;
        }
        let mut next = Vec::new();
        for (index, expected) in (0u64..).zip(below.chunks(TILE_WIDTH as usize)) {
            let width = expected.len() as u16;
            let tile = TilePath::Hashes(TileId {
                level,
                index,
                width,
            });
            let bytes = source.tile(tile, width.into(), 32).await?;
            let hashes = checked_hashes(&tile, &bytes, width)?;
            if hashes != expected {
                return Err(failed(LogFailure::TileMismatch {
                    path: tile.to_path(),
                }));
            }
            if hashes.len() as u64 == TILE_WIDTH {
                next.push(perfect_root(&hashes));
            }
            checked += 1;
        }
        below = next;
    }
    Ok(checked)
}

fn checked_hashes(tile: &TilePath, bytes: &[u8], width: u16) -> Result<Vec<Hash>, ClientError> {
    let hashes = tile_hashes(bytes).map_err(|e| bad_tile(tile, e.to_string()))?;
    if hashes.len() != usize::from(width) {
        return Err(bad_tile(
            tile,
            format!("{} hashes, expected {width}", hashes.len()),
        ));
    }
    Ok(hashes)
}

fn bad_tile(tile: &TilePath, problem: String) -> ClientError {
    failed(LogFailure::BadTile {
        path: tile.to_path(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_tlog::hash::naive_root;

    #[test]
    fn the_streaming_root_is_the_rfc_9162_root_at_every_size() {
        let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut s = Streaming::default();
        assert_eq!(s.root(), cairn_tlog::hash::empty_root());
        for (n, h) in leaves.iter().enumerate() {
            s.push(*h);
            assert_eq!(s.root(), naive_root(&leaves[..=n]), "size {}", n + 1);
        }
    }
}
