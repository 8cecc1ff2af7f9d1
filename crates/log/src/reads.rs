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
use crate::layout::*;
use crate::nodes::{NodeHasher, TileHashes, needed_tiles};
use crate::stages::hashes_bytes;

impl Log {
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

    /// The index of the leaf with `leaf_hash`.
    pub async fn index_of(&self, leaf_hash: &[u8]) -> Result<u64, LogError> {
        if leaf_hash.len() != 32 {
            return Err(LogError::LeafHashLength {
                len: leaf_hash.len(),
            });
        }
        let snap = self.snapshot();
        let found = self.inner.store.get(NS_LEAF_INDEX, leaf_hash).await?;
        match found.as_deref().map(<[u8; 8]>::try_from) {
            Some(Ok(b)) if u64::from_be_bytes(b) < snap.size => Ok(u64::from_be_bytes(b)),
            Some(Err(_)) => Err(LogError::corrupt("leaf index entry")),
            _ => Err(LogError::UnknownLeaf),
        }
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
                let entries = self.inner.bundle_entries(&snap, index).await?;
                Ok(tiles::encode_bundle(
                    entries.iter().take(usize::from(width)).map(|e| &e[..]),
                )?)
            }
        }
    }
}

impl Inner {
    pub(crate) async fn bundle_entries(
        &self,
        snap: &Snapshot,
        index: u64,
    ) -> Result<Vec<Arc<[u8]>>, LogError> {
        if index == snap.bundle.index {
            return Ok(snap.bundle.entries.clone());
        }
        let bytes = self
            .store
            .get(NS_ENTRIES, &bundle_key(index, 0))
            .await?
            .ok_or_else(|| LogError::corrupt(format!("entry bundle {index} is missing")))?;
        Ok(tiles::decode_bundle(&bytes)?
            .into_iter()
            .map(Arc::from)
            .collect())
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
                let bytes = self
                    .store
                    .get(NS_TILES, &tile_key(level, index, 0))
                    .await?
                    .ok_or_else(|| {
                        LogError::corrupt(format!("full tile {level}/{index} is missing"))
                    })?;
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
