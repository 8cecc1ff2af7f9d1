//! The record services' error contract (DESIGN.md section 5) in one table:
//! every refusal is a [`ServiceError`] with a message a person can act on,
//! and [`ServiceError::status`] maps it to its gRPC code.

use cairn_record::RecordError;
use cairn_store::StoreError;
use tonic::{Code, Status};

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No usable identity on the connection.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signer, role or label does not allow it.
    #[error("{0}")]
    PermissionDenied(String),
    /// Malformed record or request; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// No such record (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The record id is taken by another record.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well formed but the state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A size or rate limit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Safe to retry.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corruption.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The gRPC status for this error.
    pub fn status(&self) -> Status {
        let code = match self {
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied(_) => Code::PermissionDenied,
            ServiceError::InvalidArgument(_) => Code::InvalidArgument,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::AlreadyExists(_) => Code::AlreadyExists,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        };
        if code == Code::Internal {
            tracing::error!(error = %self, "internal error");
        }
        Status::new(code, self.to_string())
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        e.status()
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::ValueTooLarge { .. } => {
                ServiceError::ResourceExhausted(format!("record too large to store: {e}"))
            }
            other => ServiceError::Unavailable(format!("storage: {other}")),
        }
    }
}

/// Maps a record-format error: authenticity problems are PERMISSION_DENIED,
/// everything else INVALID_ARGUMENT naming the field.
impl From<RecordError> for ServiceError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::UnknownAuthor(_)
            | RecordError::SigningKey(_)
            | RecordError::BadSignature => ServiceError::PermissionDenied(e.to_string()),
            other => ServiceError::InvalidArgument(other.to_string()),
        }
    }
}
