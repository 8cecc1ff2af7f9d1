//! The tile cache: full tiles behind the right edge, kept in memory for
//! proofs (they never change), evicted oldest first.

use std::collections::{HashMap, VecDeque};

use crate::nodes::TileHashes;

/// Full tiles by (level, index), at most `cap`.
pub(crate) struct TileCache {
    cap: usize,
    map: HashMap<(u8, u64), TileHashes>,
    order: VecDeque<(u8, u64)>,
}

impl TileCache {
    /// An empty cache of at most `cap` tiles (0: none kept).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn get(&self, key: &(u8, u64)) -> Option<TileHashes> {
        self.map.get(key).cloned()
    }

    pub(crate) fn put(&mut self, key: (u8, u64), tile: TileHashes) {
        if self.cap == 0 || self.map.contains_key(&key) {
            return;
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(key);
        self.map.insert(key, tile);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn tile(n: u8) -> TileHashes {
        Arc::new(vec![[n; 32]])
    }

    #[test]
    fn it_keeps_at_most_cap_and_evicts_the_oldest() {
        let mut c = TileCache::new(2);
        c.put((0, 1), tile(1));
        c.put((0, 2), tile(2));
        c.put((0, 1), tile(9)); // already there: unchanged, not refreshed
        c.put((0, 3), tile(3));
        assert!(c.get(&(0, 1)).is_none());
        assert_eq!(c.get(&(0, 2)), Some(tile(2)));
        assert_eq!(c.get(&(0, 3)), Some(tile(3)));
    }

    #[test]
    fn a_zero_cap_keeps_nothing() {
        let mut c = TileCache::new(0);
        c.put((1, 0), tile(1));
        assert!(c.get(&(1, 0)).is_none());
    }
}
