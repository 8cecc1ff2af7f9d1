use cairn_store::StoreError;
use cairn_tlog::TlogError;

/// What the log engine refuses or fails at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The request is malformed (leaf too large, size or index out of range).
    #[error("{0}")]
    InvalidArgument(String),
    /// Something asked for does not exist (yet).
    #[error("{0}")]
    NotFound(String),
    /// Another writer changed the log's state (fencing): nothing was written.
    #[error("the log state changed underneath this sequencer; nothing was written")]
    Fenced,
    /// The stored log is inconsistent.
    #[error("stored log is corrupt: {0}")]
    Corrupt(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A proof, note or checkpoint problem.
    #[error(transparent)]
    Tlog(#[from] TlogError),
    /// The batch could not be stored (safe to retry).
    #[error("{0}")]
    Unavailable(String),
    /// The sequencer has stopped.
    #[error("the log sequencer has stopped")]
    Stopped,
}
