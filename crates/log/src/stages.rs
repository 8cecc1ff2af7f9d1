//! The stages of one batch, each a function: **sequence** (the batch takes
//! the next indexes), **integrate** (extend the right edge of the tree,
//! complete tiles and entry bundles, compute the root), **publish** (sign
//! the C2SP checkpoint), **commit** (one atomic, durable store commit with
//! the fencing precondition), **receipts** (inclusion proofs in the new
//! checkpoint, hashes shared across the batch). [`run_batch`] chains them;
//! between integrate and publish, the batch's completed tiles and bundles
//! are placed ([`crate::full::FullUnits::place`]: as files, synced before
//! the checkpoint that covers them is signed).

use std::collections::HashMap;
use std::sync::Arc;

use cairn_store::{StoreError, WriteBatch};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::hash::{Hash, leaf_hash, perfect_root};
use cairn_tlog::note::NoteSigner;
use cairn_tlog::proof;
use cairn_tlog::tiles::{self, TILE_WIDTH};

use crate::engine::{EdgeBundle, EdgeTile, Inner, Receipt, Snapshot};
use crate::error::LogError;
use crate::files::Unit;
use crate::full::Completed;
use crate::layout::*;
use crate::nodes::TileHashes;
use crate::recovery::root_from_edge;

/// Hashes as the bytes of a tile.
pub(crate) fn hashes_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.iter().copied()).collect()
}

/// The pipeline for one batch: sequence, integrate, publish, commit,
/// receipts.
pub(crate) async fn run_batch(inner: &Inner, leaves: &[&[u8]]) -> Result<Vec<Receipt>, LogError> {
    let snap = inner.snapshot.borrow().clone();
    let indexes = sequence(&snap, leaves.len());
    let mut batch = WriteBatch::new();
    let Integrated {
        mut next,
        fresh,
        completed,
    } = integrate(&snap, indexes.clone(), leaves, &mut batch)?;
    inner.full.place(&mut batch, completed).await?;
    let checkpoint = publish(&inner.config.signer, inner.origin(), &next)?;
    next.checkpoint = Arc::from(checkpoint.as_str());
    commit(inner, batch, &next, checkpoint, &fresh).await?;
    receipts(inner, &next, indexes, &fresh).await
}

/// Stage 4, commit: the batch's tiles, entries, leaf index and new state in
/// one atomic store commit that expects the state this sequencer last
/// committed (and the lease's epoch, if fenced); then the new head becomes
/// what readers see.
pub(crate) async fn commit(
    inner: &Inner,
    mut batch: WriteBatch,
    next: &Snapshot,
    checkpoint: String,
    fresh: &HashMap<(u8, u64), TileHashes>,
) -> Result<(), LogError> {
    let state = StoredState {
        size: next.size,
        root: next.root,
        checkpoint,
    }
    .encode();
    let previous = inner
        .committed
        .lock()
        .map_err(|_| LogError::Stopped)?
        .clone();
    batch
        .expect(NS_STATE, STATE_KEY.to_vec(), Some(previous))
        .put(NS_STATE, STATE_KEY.to_vec(), state.clone());
    if let Some((ns, key, value)) = &inner.config.fence {
        batch.expect(ns, key.clone(), Some(value.clone()));
    }
    match inner.store.commit(batch).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => return Err(LogError::Fenced),
        Err(e) => return Err(e.into()),
    }
    *inner.committed.lock().map_err(|_| LogError::Stopped)? = state;
    {
        let mut cache = inner.cache.lock().map_err(|_| LogError::Stopped)?;
        for (k, t) in fresh {
            cache.put(*k, t.clone());
        }
    }
    inner.snapshot.send_replace(next.clone());
    Ok(())
}

/// Stage 5, receipts: each leaf's inclusion proof in the new checkpoint.
pub(crate) async fn receipts(
    inner: &Inner,
    next: &Snapshot,
    indexes: std::ops::Range<u64>,
    fresh: &HashMap<(u8, u64), TileHashes>,
) -> Result<Vec<Receipt>, LogError> {
    let first = indexes.start;
    let plans = indexes
        .map(|i| proof::inclusion_plan(i, next.size))
        .collect::<Result<Vec<_>, _>>()?;
    let proofs = inner.assemble(next, &plans, fresh).await?;
    Ok(proofs
        .into_iter()
        .zip(first..)
        .map(|(inclusion_proof, leaf_index)| Receipt {
            leaf_index,
            checkpoint: next.checkpoint.clone(),
            inclusion_proof,
        })
        .collect())
}

/// Stage 1, sequence: the batch takes the next indexes.
pub(crate) fn sequence(snap: &Snapshot, count: usize) -> std::ops::Range<u64> {
    snap.size..snap.size + count as u64
}

/// What integrating a batch produced.
pub(crate) struct Integrated {
    /// The new head, without its checkpoint yet.
    pub(crate) next: Snapshot,
    /// Tiles completed by this batch.
    pub(crate) fresh: HashMap<(u8, u64), TileHashes>,
    /// Tiles and bundles completed by this batch, to be placed
    /// ([`crate::full::FullUnits::place`]).
    pub(crate) completed: Vec<Completed>,
}

/// Stage 2, integrate: extend the right edge of the tree with the batch's
/// leaf hashes level by level, complete tiles and entry bundles, compute the
/// new root, and add every write of the right edge and the leaf index to
/// `batch`; the completed units are returned.
pub(crate) fn integrate(
    snap: &Snapshot,
    indexes: std::ops::Range<u64>,
    leaves: &[&[u8]],
    batch: &mut WriteBatch,
) -> Result<Integrated, LogError> {
    let mut completed = Vec::new();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    for (i, h) in indexes.clone().zip(&hashes) {
        batch.put(NS_LEAF_INDEX, leaf_index_key(h, i), Vec::new());
    }
    let (edge, fresh) = grow_tiles(snap, hashes, batch, &mut completed);
    let bundle = grow_bundle(&snap.bundle, leaves, batch, &mut completed)?;
    let mut next = Snapshot {
        size: indexes.end,
        root: [0; 32],
        checkpoint: snap.checkpoint.clone(),
        edge: Arc::new(edge),
        bundle: Arc::new(bundle),
    };
    next.root = root_from_edge(&next)?;
    Ok(Integrated {
        next,
        fresh,
        completed,
    })
}

/// The hash tiles: each level's partial tile grows by the level below's
/// completed tiles' roots (level 0 by the leaf hashes). Returns the new
/// right edge and the tiles completed.
fn grow_tiles(
    snap: &Snapshot,
    leaf_hashes: Vec<Hash>,
    batch: &mut WriteBatch,
    completed: &mut Vec<Completed>,
) -> (Vec<EdgeTile>, HashMap<(u8, u64), TileHashes>) {
    let mut edge: Vec<EdgeTile> = (*snap.edge).clone();
    let mut fresh: HashMap<(u8, u64), TileHashes> = HashMap::new();
    let mut incoming = leaf_hashes;
    let mut level: u8 = 0;
    while !incoming.is_empty() {
        if edge.len() <= usize::from(level) {
            edge.push(EdgeTile {
                index: 0,
                hashes: Arc::new(Vec::new()),
                segments: Vec::new(),
            });
        }
        let tile = &mut edge[usize::from(level)];
        let growth = grow(tile.index, &tile.hashes, &tile.segments, incoming);
        for (index, hashes) in growth.completed {
            let edge_unit = index == tile.index;
            if edge_unit {
                for seg in tile.segments.iter().filter(|s| **s != 0) {
                    batch.delete(NS_TILES, tile_key(level, index, *seg));
                }
            }
            completed.push(Completed {
                unit: Unit::Tile { level, index },
                bytes: hashes_bytes(&hashes),
                stored_at_zero: edge_unit && tile.segments.contains(&0),
            });
            fresh.insert((level, index), Arc::new(hashes));
        }
        if let Some((offset, part)) = growth.write {
            batch.put(
                NS_TILES,
                tile_key(level, growth.index, offset),
                hashes_bytes(&part),
            );
        }
        // Roots of the tiles completed at this level feed the next level.
        incoming = fresh
            .iter()
            .filter(|((l, _), _)| *l == level)
            .map(|((_, i), h)| (*i, perfect_root(h)))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        *tile = EdgeTile {
            index: growth.index,
            hashes: Arc::new(growth.unit),
            segments: growth.segments,
        };
        level += 1;
    }
    (edge, fresh)
}

/// The entry bundles grow the same way as level 0, by the leaves.
fn grow_bundle(
    bundle: &EdgeBundle,
    leaves: &[&[u8]],
    batch: &mut WriteBatch,
    completed: &mut Vec<Completed>,
) -> Result<EdgeBundle, LogError> {
    let entries: Vec<Arc<[u8]>> = leaves.iter().map(|l| Arc::<[u8]>::from(*l)).collect();
    let growth = grow(bundle.index, &bundle.entries, &bundle.segments, entries);
    for (index, content) in growth.completed {
        let edge_unit = index == bundle.index;
        if edge_unit {
            for seg in bundle.segments.iter().filter(|s| **s != 0) {
                batch.delete(NS_ENTRIES, bundle_key(index, *seg));
            }
        }
        completed.push(Completed {
            unit: Unit::Bundle { index },
            bytes: tiles::encode_bundle(content.iter().map(|e| &e[..]))?,
            stored_at_zero: edge_unit && bundle.segments.contains(&0),
        });
    }
    if let Some((offset, part)) = growth.write {
        let bytes = tiles::encode_bundle(part.iter().map(|e| &e[..]))?;
        batch.put(NS_ENTRIES, bundle_key(growth.index, offset), bytes);
    }
    Ok(EdgeBundle {
        index: growth.index,
        entries: growth.unit,
        segments: growth.segments,
    })
}

/// Stage 3, publish: sign the checkpoint of the new head (one signature per
/// batch).
pub(crate) fn publish(
    signer: &NoteSigner,
    origin: &str,
    next: &Snapshot,
) -> Result<String, LogError> {
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size: next.size,
        root: next.root,
        extensions: vec![],
    }
    .sign(signer)?)
}

/// A run of tiles (or bundles) extended by one batch.
struct Growth<T> {
    /// Completed (now full) units: index → content.
    completed: Vec<(u64, Vec<T>)>,
    /// The index of the new partial unit.
    index: u64,
    /// Its content.
    unit: Vec<T>,
    /// The offsets of its stored segments.
    segments: Vec<u16>,
    /// The segment to write for it: (offset, content).
    write: Option<(u16, Vec<T>)>,
}

/// The new state of one partial unit after appending `items`: which units
/// completed, and the new partial unit with the segment to write for it.
fn grow<T: Clone>(index: u64, current: &[T], segments: &[u16], items: Vec<T>) -> Growth<T> {
    let width = TILE_WIDTH as usize;
    let mut completed = Vec::new();
    let mut unit_index = index;
    let mut unit: Vec<T> = current.to_vec();
    let mut start = unit.len();
    let mut segs = segments.to_vec();
    for item in items {
        unit.push(item);
        if unit.len() == width {
            completed.push((unit_index, std::mem::take(&mut unit)));
            unit_index += 1;
            start = 0;
            segs.clear();
        }
    }
    let write = if unit.len() > start {
        segs.push(start as u16);
        Some((start as u16, unit[start..].to_vec()))
    } else {
        None
    };
    Growth {
        completed,
        index: unit_index,
        unit,
        segments: segs,
        write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_a_partial_unit_completes_it_and_starts_the_next() {
        // 250 items in segments at offsets 0 and 200; 10 more: unit 3 is
        // full, unit 4 starts with 4 items at offset 0.
        let current: Vec<u32> = (0..250).collect();
        let g = grow(3, &current, &[0, 200], (250..260).collect());
        assert_eq!(g.completed.len(), 1);
        assert_eq!(g.completed[0].0, 3);
        assert_eq!(g.completed[0].1, (0..256).collect::<Vec<u32>>());
        assert_eq!((g.index, g.unit.clone()), (4, (256..260).collect()));
        assert_eq!(g.segments, [0]);
        assert_eq!(g.write, Some((0, (256..260).collect())));
    }

    #[test]
    fn growing_within_a_unit_writes_one_new_segment() {
        let g = grow(0, &[1u8, 2], &[0], vec![3, 4]);
        assert!(g.completed.is_empty());
        assert_eq!(g.segments, [0, 2]);
        assert_eq!(g.write, Some((2, vec![3, 4])));
        let g = grow(0, &[1u8], &[0], vec![]);
        assert_eq!(g.write, None);
    }
}
