//! How the log is laid out in the store.
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `log_state` | `state` | tree size (u64 BE), root (32), checkpoint note |
//! | `log_tiles` | tile level (u8), tile index (u64 BE), first offset (u16 BE) | hashes from that offset |
//! | `log_entries` | bundle index (u64 BE), first offset (u16 BE) | C2SP bundle of entries from that offset |
//! | `log_leaf_index` | epoch (leaf index / 2^16, u32 BE), the leaf hash's first 8 bytes, leaf index (u64 BE) | empty |
//! | `log_cosigned` | `latest` | the latest checkpoint note with witness cosignatures |
//!
//! A tile (or bundle) that fills up is, with tile files
//! ([`crate::files`]), written as a file and its segments deleted; without,
//! rewritten as one value at offset 0 and its other segments deleted, in
//! the same batch.
//!
//! The leaf index names candidates only: a lookup probes each epoch and
//! confirms each candidate against the leaf hashes of level 0 (8 bytes of
//! hash keep the index at 20 bytes a leaf; two leaves sharing a prefix
//! are both listed).
//! Logs written before held `leaf hash (32) → index (u64 BE)`; those rows
//! are read the same way.

use cairn_tlog::Hash;

use crate::error::LogError;

pub const NS_STATE: &str = "log_state";
pub const NS_TILES: &str = "log_tiles";
pub const NS_ENTRIES: &str = "log_entries";
pub const NS_LEAF_INDEX: &str = "log_leaf_index";
pub const NS_COSIGNED: &str = "log_cosigned";
pub const STATE_KEY: &[u8] = b"state";
pub const COSIGNED_KEY: &[u8] = b"latest";

pub fn tile_prefix(level: u8, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(11);
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn tile_key(level: u8, index: u64, offset: u16) -> Vec<u8> {
    let mut k = tile_prefix(level, index);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// Bytes of a leaf hash that key the leaf index.
pub const LEAF_KEY_PREFIX: usize = 8;

/// Leaves per epoch of the leaf index: a batch's index rows all fall in
/// the newest epoch's part of the store's tree, so the pages one batch
/// rewrites stay as few as an epoch holds, however large the log grows.
pub const LEAF_EPOCH_BITS: u32 = 16;

/// Length of a leaf-index key: epoch (u32 BE), hash prefix, index.
pub const LEAF_KEY_LEN: usize = 4 + LEAF_KEY_PREFIX + 8;

/// The leaf index's key prefix for a leaf with `hash` in `epoch`.
pub fn leaf_index_prefix(epoch: u32, hash: &Hash) -> Vec<u8> {
    let mut k = Vec::with_capacity(LEAF_KEY_LEN);
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(&hash[..LEAF_KEY_PREFIX]);
    k
}

/// The epoch of leaf `index`.
pub fn leaf_epoch(index: u64) -> u32 {
    u32::try_from(index >> LEAF_EPOCH_BITS).unwrap_or(u32::MAX)
}

/// The leaf index's key for the leaf with `hash` at `index`.
pub fn leaf_index_key(hash: &Hash, index: u64) -> Vec<u8> {
    let mut k = leaf_index_prefix(leaf_epoch(index), hash);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn bundle_prefix(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

pub fn bundle_key(index: u64, offset: u16) -> Vec<u8> {
    let mut k = bundle_prefix(index);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The persisted head of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredState {
    pub size: u64,
    pub root: Hash,
    pub checkpoint: String,
}

impl StoredState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.checkpoint.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(self.checkpoint.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.len() < 40 {
            return Err(LogError::corrupt("state record too short"));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[..8]);
        let mut root = [0u8; 32];
        root.copy_from_slice(&bytes[8..40]);
        let checkpoint = String::from_utf8(bytes[40..].to_vec())
            .map_err(|_| LogError::corrupt("checkpoint is not UTF-8"))?;
        Ok(Self {
            size: u64::from_be_bytes(size),
            root,
            checkpoint,
        })
    }
}

/// Prefix successor, for scanning one tile's or bundle's segments.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}
