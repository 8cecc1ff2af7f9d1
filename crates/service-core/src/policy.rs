//! What a service is: the kinds it accepts, the roles each needs, and the
//! few things only the service's own schema can say ([`ServiceSchema`]).
//! The core knows no service's protobuf messages beyond the shared record.

use std::collections::BTreeSet;
use std::sync::Arc;

use cairn_identity::{Member, Role};
use cairn_record::pb::RecordKind;
use time::OffsetDateTime;

use crate::error::ServiceError;

/// What a service accepts.
#[derive(Clone, Debug)]
pub struct ServicePolicy {
    /// The service name written into log leaves (`intake`, `evals`).
    pub service: &'static str,
    /// Accepted record kinds, each with the roles allowed to submit it
    /// (any one suffices).
    pub kinds: Vec<(RecordKind, Vec<Role>)>,
    /// What only the service's schema knows.
    pub schema: Arc<dyn ServiceSchema>,
}

/// The parts of a service's own schema the core needs, decoded by the
/// service: the core never decodes an incident or an evaluation result
/// itself (only the shared messages of `cairn.common.v1`).
pub trait ServiceSchema: Send + Sync + std::fmt::Debug {
    /// For an accepted TLP:CLEAR record of `kind` with `content` (already
    /// validated): the reporting deadline it implies, if any.
    fn reporting_deadline(&self, _kind: RecordKind, _content: &[u8]) -> Option<OffsetDateTime> {
        None
    }
}

impl ServicePolicy {
    /// The roles that may submit `kind`, if the service accepts it.
    pub fn roles_for(&self, kind: RecordKind) -> Option<&[Role]> {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r.as_slice())
    }

    /// Every role that may submit something here.
    pub fn any_role(&self) -> BTreeSet<Role> {
        self.kinds
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect()
    }

    /// Checked before anything is decoded: the member holds a role this
    /// service serves.
    pub fn admits(&self, member: &Member) -> Result<(), ServiceError> {
        let needed = self.any_role();
        if needed.iter().any(|r| member.has_role(*r)) {
            Ok(())
        } else {
            Err(ServiceError::NoServiceRole {
                member: member.id.to_string(),
                roles: needed.into_iter().collect(),
            })
        }
    }

    /// The service accepts `kind` and the member holds a role for it.
    pub fn may_submit(&self, member: &Member, kind: RecordKind) -> Result<(), ServiceError> {
        let roles = self.roles_for(kind).ok_or(ServiceError::KindNotAccepted {
            kind,
            service: self.service,
        })?;
        if roles.iter().any(|r| member.has_role(*r)) {
            Ok(())
        } else {
            Err(ServiceError::MissingRole {
                member: member.id.to_string(),
                kind,
                roles: roles.to_vec(),
            })
        }
    }
}

/// Which submission call this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitKind {
    /// A new record or (intake) a correction that supersedes one; not a
    /// retraction.
    SubmitOrCorrect,
    /// A new record: neither `supersedes` nor `retracts`.
    Publish,
    /// `supersedes` must be set.
    Supersede,
    /// `retracts` must be set.
    Retract,
}

/// How a header does not fit the call it arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallMismatch {
    /// A publication that supersedes or retracts.
    #[error(
        "header: a new publication neither supersedes nor retracts; use SupersedeResult or RetractResult"
    )]
    PublishChanges,
    /// A retraction sent as a submission (intake's SubmitIncident).
    #[error("header.retracts: a retraction is sent with RetractIncident, not SubmitIncident")]
    RetractNotAllowed,
    /// A supersede without `supersedes`.
    #[error("header.supersedes: is required")]
    SupersedesMissing,
    /// A retraction without `retracts`.
    #[error("header.retracts: is required")]
    RetractsMissing,
}

impl SubmitKind {
    /// Whether a header with these links fits this call.
    pub fn check(self, supersedes: bool, retracts: bool) -> Result<(), CallMismatch> {
        match self {
            SubmitKind::Publish if supersedes || retracts => Err(CallMismatch::PublishChanges),
            SubmitKind::SubmitOrCorrect if retracts => Err(CallMismatch::RetractNotAllowed),
            SubmitKind::Supersede if !supersedes => Err(CallMismatch::SupersedesMissing),
            SubmitKind::Retract if !retracts => Err(CallMismatch::RetractsMissing),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug)]
    struct NoSchema;
    impl ServiceSchema for NoSchema {}

    fn evals_like() -> ServicePolicy {
        ServicePolicy {
            service: "evals",
            kinds: vec![
                (RecordKind::EvaluationResult, vec![Role::Evaluator]),
                (
                    RecordKind::Assessment,
                    vec![Role::Evaluator, Role::Governance],
                ),
            ],
            schema: Arc::new(NoSchema),
        }
    }

    #[test]
    fn roles_are_looked_up_per_kind() {
        let p = evals_like();
        assert_eq!(
            p.roles_for(RecordKind::EvaluationResult),
            Some(&[Role::Evaluator][..])
        );
        assert_eq!(p.roles_for(RecordKind::Incident), None);
        assert_eq!(
            p.any_role().into_iter().collect::<Vec<_>>(),
            vec![Role::Evaluator, Role::Governance]
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_schema_has_no_deadline_unless_it_says_so() {
        assert_eq!(
            evals_like()
                .schema
                .reporting_deadline(RecordKind::Incident, b""),
            None
        );
    }

    #[test]
    fn every_call_and_header_shape() {
        use CallMismatch::*;
        use SubmitKind::*;
        // (call, supersedes, retracts) → outcome
        let table = [
            (Publish, false, false, Ok(())),
            (Publish, true, false, Err(PublishChanges)),
            (Publish, false, true, Err(PublishChanges)),
            (SubmitOrCorrect, false, false, Ok(())),
            (SubmitOrCorrect, true, false, Ok(())),
            (SubmitOrCorrect, false, true, Err(RetractNotAllowed)),
            (Supersede, true, false, Ok(())),
            (Supersede, false, false, Err(SupersedesMissing)),
            (Retract, false, true, Ok(())),
            (Retract, false, false, Err(RetractsMissing)),
        ];
        for (call, sup, ret, want) in table {
            assert_eq!(
                call.check(sup, ret),
                want,
                "{call:?} supersedes={sup} retracts={ret}"
            );
        }
    }
}
