//! The log's settings.

use std::sync::Arc;

use cairn_tlog::note::NoteSigner;

/// Settings of a [`crate::Log`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Signs checkpoints; its name is the log's origin.
    pub signer: Arc<NoteSigner>,
    /// Largest leaf accepted (bytes).
    pub max_leaf_len: usize,
    /// Most leaves integrated in one batch (a single request may exceed it).
    pub max_batch: usize,
    /// Full tiles kept in memory for proofs.
    pub tile_cache: usize,
    /// Told the number of leaves of every integrated batch (for metrics).
    pub on_batch: Option<BatchObserver>,
    /// A precondition every commit of the log carries besides its own
    /// state: (namespace, key, value), e.g. a sequencer lease's epoch
    /// ([`crate::lease::Lease::fence`]). A commit that finds it changed is
    /// [`crate::LogError::Fenced`].
    pub fence: Option<(&'static str, Vec<u8>, Vec<u8>)>,
    /// Where full tiles and entry bundles are kept as immutable files (the
    /// C2SP tlog-tiles layout); `None` keeps them as rows of the store (a
    /// database shared by replicas). Only one log may use a directory.
    pub tile_dir: Option<std::path::PathBuf>,
}

/// A callback given the size of each integrated batch.
#[derive(Clone)]
pub struct BatchObserver(pub Arc<dyn Fn(usize) + Send + Sync>);

impl std::fmt::Debug for BatchObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchObserver")
    }
}

impl LogConfig {
    /// Defaults: leaves up to 4 KiB, batches up to 1024 leaves, 4096 cached
    /// tiles, full tiles in the store.
    pub fn new(signer: Arc<NoteSigner>) -> Self {
        Self {
            signer,
            max_leaf_len: 4096,
            max_batch: 1024,
            tile_cache: 4096,
            on_batch: None,
            fence: None,
            tile_dir: None,
        }
    }
}
