//! The audit service's error contract: the one table from [`AuditError`]
//! to gRPC statuses (DESIGN.md section 5). Handlers return `AuditError`;
//! nothing else builds a `Status`.

use cairn_log::LogError;
use cairn_log::witness::WitnessError;
use cairn_record::RecordError;
use cairn_record::governance::ChangeProblem;
use tonic::{Code, Status};

use crate::error::AuditError;

/// Metadata key carrying the size a witness holds, on FAILED_PRECONDITION.
pub const WITNESS_SIZE_METADATA: &str = "cairn-witness-size";

/// The gRPC code of each error.
pub fn code(e: &AuditError) -> Code {
    use AuditError as E;
    match e {
        E::NoPeer => Code::Unauthenticated,
        E::NotAService { .. } | E::NoAppendRight { .. } | E::OtherService { .. } => {
            Code::PermissionDenied
        }
        E::BadLeaf { .. } | E::BatchSize { .. } | E::NoLeaf | E::PageSize { .. } | E::Tlog(_) => {
            Code::InvalidArgument
        }
        E::CosignerSpec { .. } => Code::InvalidArgument,
        E::NoRecord => Code::InvalidArgument,
        E::SignerNotPeer { .. } | E::ChangeKeyNotCurrent(_) => Code::PermissionDenied,
        E::ChangeClock { .. } => Code::InvalidArgument,
        E::Change(r) => change_code(r),
        E::Log(l) => log_code(l),
        E::Witness(w) => witness_code(w),
        E::Store(_)
        | E::WitnessRefused { .. }
        | E::WitnessHttp { .. }
        | E::WitnessUnreachable { .. }
        | E::NoCosignature
        | E::WitnessSizeChanging
        | E::WitnessesUnconfirmed { .. } => Code::Unavailable,
        E::BehindWitness { .. } => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

fn change_code(e: &RecordError) -> Code {
    use ChangeProblem as P;
    match e {
        RecordError::UnknownAuthor(_) | RecordError::SigningKey(_) | RecordError::BadSignature => {
            Code::PermissionDenied
        }
        RecordError::Change(p) => match p {
            P::NotGovernance { .. } => Code::PermissionDenied,
            P::Stale { .. } | P::AlreadyEffective { .. } | P::NoGenesis => Code::FailedPrecondition,
            P::UnknownProposal { .. } => Code::NotFound,
            P::AlreadyApproved { .. } | P::Conflict { .. } => Code::AlreadyExists,
            _ => Code::InvalidArgument,
        },
        _ => Code::InvalidArgument,
    }
}

fn log_code(e: &LogError) -> Code {
    match e {
        e if e.is_invalid_argument() => Code::InvalidArgument,
        e if e.is_not_found() => Code::NotFound,
        LogError::Fenced
        | LogError::NotStored { .. }
        | LogError::Stopped
        | LogError::Store(_)
        | LogError::TileFile { .. } => Code::Unavailable,
        _ => Code::Internal,
    }
}

fn witness_code(e: &WitnessError) -> Code {
    match e {
        WitnessError::UnknownLog(_) => Code::NotFound,
        WitnessError::BadCheckpoint(_)
        | WitnessError::BadProof(_)
        | WitnessError::OldSizeAboveCheckpoint { .. }
        | WitnessError::NotEmptyTree => Code::InvalidArgument,
        WitnessError::OldSizeMismatch { .. } | WitnessError::Fork(_) => Code::FailedPrecondition,
        WitnessError::Store(_) => Code::Unavailable,
        _ => Code::Internal,
    }
}

impl From<AuditError> for Status {
    fn from(e: AuditError) -> Self {
        let code = code(&e);
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        let mut status = Status::new(code, e.to_string());
        // A witness that holds another size says which (C2SP tlog-witness
        // answers 409 with the size; this is the gRPC form).
        if let AuditError::Witness(WitnessError::OldSizeMismatch { held, .. }) = &e
            && let Ok(v) = held.to_string().parse()
        {
            status.metadata_mut().insert(WITNESS_SIZE_METADATA, v);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_their_codes() {
        let s = Status::from(AuditError::NotAService {
            peer: "member uk-aisi".into(),
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("uk-aisi"));
        assert_eq!(
            code(&AuditError::BatchSize {
                count: 0,
                max: 1000
            }),
            Code::InvalidArgument
        );
        assert_eq!(code(&AuditError::Log(LogError::Fenced)), Code::Unavailable);
        assert_eq!(
            code(&AuditError::Log(LogError::UnknownLeaf)),
            Code::NotFound
        );
        let e = LogError::LeafSize {
            index: 0,
            len: 0,
            max: 4096,
        };
        assert_eq!(code(&AuditError::Log(e)), Code::InvalidArgument);
        let e = LogError::Corrupt { what: "x".into() };
        assert_eq!(code(&AuditError::Log(e)), Code::Internal);
    }

    #[test]
    fn a_size_mismatch_carries_the_held_size() {
        let e = AuditError::Witness(WitnessError::OldSizeMismatch { held: 7, given: 3 });
        let s = Status::from(e);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(
            s.metadata()
                .get(WITNESS_SIZE_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
}
