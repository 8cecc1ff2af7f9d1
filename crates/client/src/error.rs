/// What the SDK reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Identity, keys, directory or TLS.
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
    /// The record is malformed, does not verify or does not open.
    #[error(transparent)]
    Record(#[from] cairn_record::RecordError),
    /// The service refused or failed.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A receipt, checkpoint or proof does not verify.
    #[error("receipt: {0}")]
    Receipt(#[from] ReceiptProblem),
    /// Content JSON does not fit the schema.
    #[error("{0}")]
    Json(String),
    /// A log verification ran and said no.
    #[error("{0}")]
    LogFailed(#[from] crate::audit::LogFailure),
    /// A precondition of the SDK itself.
    #[error("{0}")]
    Usage(String),
}

/// How a receipt fails to prove a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptProblem {
    /// Its checkpoint is not signed by the log.
    #[error("checkpoint: {0}")]
    Checkpoint(cairn_tlog::TlogError),
    /// Its inclusion proof does not verify against that checkpoint.
    #[error("inclusion: {0}")]
    Inclusion(cairn_tlog::TlogError),
    /// Its leaf is not a log leaf.
    #[error("leaf: {0}")]
    Leaf(prost::DecodeError),
    /// The leaf's digest is of another envelope.
    #[error("the leaf names another envelope")]
    OtherEnvelope,
    /// The leaf's clear subject names another record or author.
    #[error("the leaf names another record or author")]
    OtherRecord,
    /// The leaf's salted subject does not match this record with its salt.
    #[error("the salted leaf does not name this record")]
    SaltedMismatch,
    /// The leaf has no subject.
    #[error("the leaf names no record")]
    NoSubject,
}
