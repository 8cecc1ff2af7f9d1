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
    Receipt(String),
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
