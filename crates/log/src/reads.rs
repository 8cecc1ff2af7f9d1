//! Reads: proofs, roots, entries and tiles, all from one snapshot. A proof
//! reads O(log n) tiles: the right edge from the snapshot, full tiles from
//! the cache or the store.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cairn_tlog::hash::{Hash, empty_root};
use cairn_tlog::proof::{self, NodeId, fold_range};
use cairn_tlog::tiles::{self, TILE_WIDTH, TilePath, tile_width};

use crate::engine::{Inner, Log, Snapshot};
use crate::error::LogError;
use crate::files::Unit;
use crate::full::missing;
use crate::layout::*;
use crate::nodes::{NodeHasher, TileHashes, needed_tiles};
use crate::stages::hashes_bytes;

impl Log {
    /// A full tile asked for whole, as it is stored (a file, served as it
    /// lies); `None` for anything else.
    async fn full_as_stored(
        &self,
        snap: &Snapshot,
        level: u8,
        index: u64,
        width: u16,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let behind_edge = snap
            .edge
            .get(usize::from(level))
            .is_some_and(|e| index < e.index);
        if !behind_edge || u64::from(width) != TILE_WIDTH {
            return Ok(None);
        }
        let unit = Unit::Tile { level, index };
        let bytes = self.inner.full_unit(unit).await?;
        if bytes.len() as u64 != TILE_WIDTH * 32 {
            return Err(LogError::corrupt(format!(
                "{} is {} bytes",
                unit.path().to_path(),
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    fn check_size(snap: &Snapshot, size: u64) -> Result<u64, LogError> {
        let size = if size == 0 { snap.size } else { size };
        if size > snap.size {
            return Err(LogError::BeyondHead {
                what: "tree size",
                size,
                latest: snap.size,
            });
        }
        Ok(size)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` (0: latest).
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(u64, Vec<Hash>), LogError> {
        let snap = self.snapshot();
        let size = Self::check_size(&snap, size)?;
        if index >= size {
            return Err(LogError::IndexOutOfRange { index, size });
        }
        let plan = proof::inclusion_plan(index, size)?;
        let proof = self.inner.assemble_one(&snap, plan, "inclusion").await?;
        Ok((size, proof))
    }

    /// The index of the leaf with `leaf_hash` (the first, if it was
    /// appended more than once).
    pub async fn index_of(&self, leaf_hash: &[u8]) -> Result<u64, LogError> {
        let hash: Hash = leaf_hash.try_into().map_err(|_| LogError::LeafHashLength {
            len: leaf_hash.len(),
        })?;
        let snap = self.snapshot();
        // Written before epochs: the whole hash, its index as the value.
        if let Some(v) = self.inner.store.get(NS_LEAF_INDEX, &hash).await? {
            let index = candidate(&hash, &v, &hash)?;
            if let Some(i) = index.filter(|i| *i < snap.size) {
                return Ok(i);
            }
        }
        let epochs = snap.size.div_ceil(1 << LEAF_EPOCH_BITS);
        for epoch in 0..u32::try_from(epochs).unwrap_or(u32::MAX) {
            let prefix = leaf_index_prefix(epoch, &hash);
            let rows = self
                .inner
                .store
                .scan(NS_LEAF_INDEX, &prefix, Some(&prefix_end(&prefix)), 64)
                .await?;
            let mut candidates = rows
                .iter()
                .map(|(k, v)| candidate(k, v, &hash))
                .collect::<Result<Vec<_>, _>>()?;
            candidates.sort_unstable();
            for index in candidates.into_iter().flatten() {
                if index < snap.size && self.inner.leaf_hash_at(&snap, index).await? == hash {
                    return Ok(index);
                }
            }
        }
        Err(LogError::UnknownLeaf)
    }

    /// The consistency proof between `old` and `new` (0: latest).
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(u64, Vec<Hash>), LogError> {
        let snap = self.snapshot();
        let new = Self::check_size(&snap, new)?;
        if old > new {
            return Err(LogError::Backwards {
                from_name: "from size",
                from: old,
                to_name: "to size",
                to: new,
            });
        }
        let plan = proof::consistency_plan(old, new)?;
        let proof = self.inner.assemble_one(&snap, plan, "consistency").await?;
        Ok((new, proof))
    }

    /// The root hash of the tree of `size` (from stored tiles).
    pub async fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        let snap = self.snapshot();
        let size = Self::check_size(&snap, size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        let nodes = proof::root_nodes(size);
        let tiles = self
            .inner
            .load_tiles(&snap, &needed_tiles(&nodes), &HashMap::new())
            .await?;
        let mut hasher = NodeHasher::new(&tiles);
        let hashes = nodes
            .iter()
            .map(|n| hasher.hash(*n))
            .collect::<Result<Vec<_>, _>>()?;
        fold_range(&hashes).ok_or_else(|| LogError::corrupt("empty root plan"))
    }

    /// Leaves `[start, end)` (end 0: latest size), at most `limit`.
    pub async fn entries(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, Vec<u8>)>, u64), LogError> {
        let snap = self.snapshot();
        let end = if end == 0 { snap.size } else { end };
        if end > snap.size {
            return Err(LogError::BeyondHead {
                what: "end",
                size: end,
                latest: snap.size,
            });
        }
        if start > end {
            return Err(LogError::Backwards {
                from_name: "start",
                from: start,
                to_name: "end",
                to: end,
            });
        }
        let stop = end.min(start.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((stop - start) as usize);
        let mut i = start;
        while i < stop {
            let bundle_index = i / TILE_WIDTH;
            let entries = self.inner.bundle_entries(&snap, bundle_index).await?;
            let from = (i % TILE_WIDTH) as usize;
            let upto = ((stop - bundle_index * TILE_WIDTH).min(TILE_WIDTH)) as usize;
            for (k, e) in entries.iter().enumerate().take(upto).skip(from) {
                out.push((bundle_index * TILE_WIDTH + k as u64, e.to_vec()));
            }
            i = bundle_index * TILE_WIDTH + upto as u64;
        }
        Ok((out, stop))
    }

    /// The bytes of a C2SP tile path, if the log has it.
    pub async fn tile(&self, path: &TilePath) -> Result<Vec<u8>, LogError> {
        let snap = self.snapshot();
        match *path {
            TilePath::Checkpoint => Ok(self.checkpoint_note().await?.into_bytes()),
            TilePath::Hashes(t) => {
                if tile_width(t.level, t.index, snap.size) < t.width {
                    return Err(LogError::NoSuchTile {
                        path: path.to_path(),
                        size: snap.size,
                    });
                }
                if let Some(bytes) = self
                    .full_as_stored(&snap, t.level, t.index, t.width)
                    .await?
                {
                    return Ok(bytes);
                }
                let mut wanted = BTreeSet::new();
                wanted.insert((t.level, t.index));
                let tiles = self
                    .inner
                    .load_tiles(&snap, &wanted, &HashMap::new())
                    .await?;
                let hashes = tiles
                    .get(&(t.level, t.index))
                    .ok_or_else(|| LogError::corrupt("tile vanished"))?;
                Ok(hashes_bytes(&hashes[..usize::from(t.width)]))
            }
            TilePath::Entries { index, width } => {
                let available = snap
                    .size
                    .saturating_sub(index.saturating_mul(TILE_WIDTH))
                    .min(TILE_WIDTH);
                if available < u64::from(width) {
                    return Err(LogError::NoSuchTile {
                        path: path.to_path(),
                        size: snap.size,
                    });
                }
                let full = index < snap.bundle.index && u64::from(width) == TILE_WIDTH;
                if full {
                    return self.inner.full_unit(Unit::Bundle { index }).await;
                }
                let entries = self.inner.bundle_entries(&snap, index).await?;
                Ok(tiles::encode_bundle(
                    entries.iter().take(usize::from(width)).map(|e| &e[..]),
                )?)
            }
        }
    }
}

/// The index a leaf-index row names for `hash`, if any: `epoch || prefix
/// || index` (or, written before epochs, `hash → index`).
fn candidate(key: &[u8], value: &[u8], hash: &Hash) -> Result<Option<u64>, LogError> {
    let be = |b: &[u8]| {
        <[u8; 8]>::try_from(b)
            .map(u64::from_be_bytes)
            .map_err(|_| LogError::corrupt("leaf index entry"))
    };
    match key.len() {
        LEAF_KEY_LEN => be(&key[LEAF_KEY_LEN - 8..]).map(Some),
        32 if key == hash => be(value).map(Some),
        32 => Ok(None),
        _ => Err(LogError::corrupt("leaf index key")),
    }
}

impl Inner {
    /// The hash of leaf `index` (below the snapshot's size), from level 0.
    async fn leaf_hash_at(&self, snap: &Snapshot, index: u64) -> Result<Hash, LogError> {
        let key = (0u8, index / TILE_WIDTH);
        let tiles = self
            .load_tiles(snap, &BTreeSet::from([key]), &HashMap::new())
            .await?;
        tiles
            .get(&key)
            .and_then(|t| t.get((index % TILE_WIDTH) as usize))
            .copied()
            .ok_or_else(|| LogError::corrupt(format!("leaf {index} is not in its tile")))
    }

    pub(crate) async fn bundle_entries(
        &self,
        snap: &Snapshot,
        index: u64,
    ) -> Result<Vec<Arc<[u8]>>, LogError> {
        if index == snap.bundle.index {
            return Ok(snap.bundle.entries.clone());
        }
        let unit = Unit::Bundle { index };
        let bytes = self.full_unit(unit).await?;
        Ok(tiles::decode_bundle(&bytes)?
            .into_iter()
            .map(Arc::from)
            .collect())
    }

    /// The bytes of a full unit of the committed tree.
    pub(crate) async fn full_unit(&self, unit: Unit) -> Result<Vec<u8>, LogError> {
        self.full
            .read(&*self.store, unit)
            .await?
            .ok_or_else(|| missing(unit))
    }

    pub(crate) async fn load_tiles(
        &self,
        snap: &Snapshot,
        wanted: &BTreeSet<(u8, u64)>,
        fresh: &HashMap<(u8, u64), TileHashes>,
    ) -> Result<HashMap<(u8, u64), TileHashes>, LogError> {
        let mut out = HashMap::with_capacity(wanted.len());
        for &(level, index) in wanted {
            let tile = if let Some(edge) = snap
                .edge
                .get(usize::from(level))
                .filter(|e| e.index == index)
            {
                edge.hashes.clone()
            } else if let Some(t) = fresh.get(&(level, index)) {
                t.clone()
            } else if let Some(t) = self
                .cache
                .lock()
                .map_err(|_| LogError::Stopped)?
                .get(&(level, index))
            {
                t
            } else {
                let bytes = self.full_unit(Unit::Tile { level, index }).await?;
                let hashes = tiles::tile_hashes(&bytes)?;
                if hashes.len() as u64 != TILE_WIDTH {
                    return Err(LogError::corrupt(format!(
                        "tile {level}/{index} behind the edge is not full"
                    )));
                }
                let t = Arc::new(hashes);
                self.cache
                    .lock()
                    .map_err(|_| LogError::Stopped)?
                    .put((level, index), t.clone());
                t
            };
            out.insert((level, index), tile);
        }
        Ok(out)
    }

    /// The one proof of `plan` (`what` names it in a corruption error: a
    /// plan always yields a proof, an empty one included).
    async fn assemble_one(
        &self,
        snap: &Snapshot,
        plan: proof::ProofPlan,
        what: &str,
    ) -> Result<Vec<Hash>, LogError> {
        self.assemble(snap, &[plan], &HashMap::new())
            .await?
            .pop()
            .ok_or_else(|| LogError::corrupt(format!("no {what} proof was assembled")))
    }

    pub(crate) async fn assemble(
        &self,
        snap: &Snapshot,
        plans: &[proof::ProofPlan],
        fresh: &HashMap<(u8, u64), TileHashes>,
    ) -> Result<Vec<Vec<Hash>>, LogError> {
        let nodes: Vec<NodeId> = plans.iter().flat_map(|p| p.nodes()).collect();
        let tiles = self.load_tiles(snap, &needed_tiles(&nodes), fresh).await?;
        let mut hasher = NodeHasher::new(&tiles);
        plans
            .iter()
            .map(|p| p.assemble(|n| hasher.hash(n)))
            .collect()
    }
}
