//! Subtree hashes from tiles, with memoisation: a node at a Merkle level
//! that is a multiple of 8 is read from its tile; any other node is hashed
//! from its two children. Hashing a batch's receipts shares the work.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cairn_tlog::hash::{Hash, node_hash};
use cairn_tlog::proof::NodeId;
use cairn_tlog::tiles::{TILE_HEIGHT, TILE_WIDTH, locate};

use crate::error::LogError;

/// A tile's hashes, shared.
pub type TileHashes = Arc<Vec<Hash>>;

/// The tiles (level, index) holding what `nodes` need.
pub fn needed_tiles(nodes: &[NodeId]) -> BTreeSet<(u8, u64)> {
    nodes
        .iter()
        .map(|n| {
            let loc = locate(*n);
            (loc.tile_level, loc.tile_index)
        })
        .collect()
}

/// Computes node hashes from a set of tiles.
pub struct NodeHasher<'a> {
    tiles: &'a HashMap<(u8, u64), TileHashes>,
    memo: HashMap<NodeId, Hash>,
}

impl<'a> NodeHasher<'a> {
    pub fn new(tiles: &'a HashMap<(u8, u64), TileHashes>) -> Self {
        Self {
            tiles,
            memo: HashMap::new(),
        }
    }

    pub fn hash(&mut self, node: NodeId) -> Result<Hash, LogError> {
        if let Some(h) = self.memo.get(&node) {
            return Ok(*h);
        }
        let h = if node.level.is_multiple_of(TILE_HEIGHT) {
            let tile_level = node.level / TILE_HEIGHT;
            let tile = self
                .tiles
                .get(&(tile_level, node.index / TILE_WIDTH))
                .ok_or_else(|| {
                    LogError::corrupt(format!(
                        "tile {tile_level}/{} was not loaded",
                        node.index / TILE_WIDTH
                    ))
                })?;
            *tile
                .get((node.index % TILE_WIDTH) as usize)
                .ok_or_else(|| {
                    LogError::corrupt(format!(
                        "tile {tile_level}/{} is too short for node {node:?}",
                        node.index / TILE_WIDTH
                    ))
                })?
        } else {
            let left = self.hash(NodeId {
                level: node.level - 1,
                index: node.index * 2,
            })?;
            let right = self.hash(NodeId {
                level: node.level - 1,
                index: node.index * 2 + 1,
            })?;
            node_hash(&left, &right)
        };
        self.memo.insert(node, h);
        Ok(h)
    }
}
