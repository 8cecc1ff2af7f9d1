//! The log engine's one error type.

use cairn_store::StoreError;
use cairn_tlog::TlogError;

/// What the log engine refuses or fails at; each variant carries what it
/// is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A leaf outside the accepted sizes.
    #[error("leaves[{index}] is {len} bytes; a leaf is 1 to {max} bytes")]
    LeafSize {
        /// Its position in the request.
        index: usize,
        /// Its length.
        len: usize,
        /// The largest leaf.
        max: usize,
    },
    /// A size beyond the latest checkpoint.
    #[error("{what} {size} is beyond the latest checkpoint ({latest})")]
    BeyondHead {
        /// `tree size` or `end`.
        what: &'static str,
        /// The size asked for.
        size: u64,
        /// The latest checkpoint's size.
        latest: u64,
    },
    /// A leaf index not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A range given backwards.
    #[error("{from_name} {from} is larger than {to_name} {to}")]
    Backwards {
        /// `from size` or `start`.
        from_name: &'static str,
        /// Its value.
        from: u64,
        /// `to size` or `end`.
        to_name: &'static str,
        /// Its value.
        to: u64,
    },
    /// A leaf hash that is not 32 bytes.
    #[error("leaf hash is {len} bytes, expected 32")]
    LeafHashLength {
        /// Its length.
        len: usize,
    },
    /// No leaf with that hash.
    #[error("no leaf with that hash in the log")]
    UnknownLeaf,
    /// A tile or entry bundle the tree of the latest checkpoint does not
    /// have.
    #[error("{path} does not exist at size {size}")]
    NoSuchTile {
        /// The C2SP path.
        path: String,
        /// The latest checkpoint's size.
        size: u64,
    },
    /// A cosigned note that is not the latest checkpoint.
    #[error("cosigned note is not the latest checkpoint")]
    NotLatest,
    /// Another writer changed the log's state (fencing): nothing was written.
    #[error("the log state changed underneath this sequencer; nothing was written")]
    Fenced,
    /// The stored log is inconsistent.
    #[error("stored log is corrupt: {what}")]
    Corrupt {
        /// What was found wrong.
        what: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of full tiles or entries could not be read or written.
    #[error("tile file {}: {source}", path.display())]
    TileFile {
        /// The file (or directory).
        path: std::path::PathBuf,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// A proof, note or checkpoint problem.
    #[error(transparent)]
    Tlog(#[from] TlogError),
    /// A batch could not be stored (safe to retry); the store's error
    /// went to the log, this to each caller of the batch.
    #[error("the batch was not stored: {detail}")]
    NotStored {
        /// The store's complaint.
        detail: String,
    },
    /// A backup or restore into a store that already holds a log.
    #[error("the target store already holds a log: back up into, or restore to, an empty store")]
    TargetHoldsLog,
    /// A restore from a store that holds no complete log.
    #[error("the backup holds no log state: it is not a complete backup (cut short?)")]
    NotABackup,
    /// The sequencer has stopped.
    #[error("the log sequencer has stopped")]
    Stopped,
}

impl LogError {
    /// A corruption found while reading what the store holds.
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        LogError::Corrupt { what: what.into() }
    }

    /// Whether the request was malformed (the caller's mistake).
    pub fn is_invalid_argument(&self) -> bool {
        matches!(
            self,
            LogError::LeafSize { .. }
                | LogError::IndexOutOfRange { .. }
                | LogError::Backwards { .. }
                | LogError::LeafHashLength { .. }
                | LogError::NotLatest
                | LogError::Tlog(_)
        )
    }

    /// Whether what was asked for does not exist (yet).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            LogError::BeyondHead { .. } | LogError::UnknownLeaf | LogError::NoSuchTile { .. }
        )
    }
}
