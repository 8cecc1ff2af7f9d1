//! The audit service's error contract: one table from domain errors to gRPC
//! statuses (DESIGN.md section 5).

use cairn_log::LogError;
use cairn_log::witness::WitnessError;
use tonic::{Code, Status};

/// Metadata key carrying the size a witness holds, on FAILED_PRECONDITION.
pub const WITNESS_SIZE_METADATA: &str = "cairn-witness-size";

/// Maps a log error to a status.
pub fn log_status(e: LogError) -> Status {
    let code = match &e {
        LogError::InvalidArgument(_) => Code::InvalidArgument,
        LogError::NotFound(_) => Code::NotFound,
        LogError::Fenced | LogError::Unavailable(_) | LogError::Stopped | LogError::Store(_) => {
            Code::Unavailable
        }
        LogError::Tlog(_) => Code::InvalidArgument,
        LogError::Corrupt(_) => Code::Internal,
        _ => Code::Internal,
    };
    if code == Code::Internal {
        tracing::error!(error = %e, "internal error");
    }
    Status::new(code, e.to_string())
}

/// Maps a witness refusal to a status.
pub fn witness_status(e: WitnessError) -> Status {
    match e {
        WitnessError::UnknownLog(_) => Status::not_found(e.to_string()),
        WitnessError::BadCheckpoint(_) | WitnessError::BadProof(_) => {
            Status::invalid_argument(e.to_string())
        }
        WitnessError::OldSizeMismatch { held, .. } => {
            let mut s = Status::failed_precondition(e.to_string());
            if let Ok(v) = held.to_string().parse() {
                s.metadata_mut().insert(WITNESS_SIZE_METADATA, v);
            }
            s
        }
        WitnessError::Fork(_) => Status::failed_precondition(e.to_string()),
        WitnessError::Store(_) => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}
