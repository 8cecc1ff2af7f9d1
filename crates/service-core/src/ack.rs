//! Acknowledgements: a recipient's signed answer to an incident report
//! (received, triaged, action taken, closed), whose header names the
//! report. The service checks the acknowledger may read the report and is
//! not its author, that the report's author is among those the
//! acknowledgement is shared with, and that an acknowledgement of a
//! TLP:RED report stays among that report's recipients (its header names
//! the report, so it must not reach anyone the report is hidden from).

use cairn_identity::Member;
use cairn_record::header::CheckedHeader;
use cairn_record::pb::{RecordKind, SharingLabel};

use crate::core::RecordCore;
use crate::error::ServiceError;
use crate::labels::{Decision, Operation};

impl RecordCore {
    /// The report `h` acknowledges, if it is an acknowledgement, takes one
    /// from `submitter` shared as `h` is.
    pub(crate) async fn check_acknowledged(
        &self,
        h: &CheckedHeader,
        submitter: &Member,
    ) -> Result<(), ServiceError> {
        let Some(report) = h.acknowledges else {
            return Ok(());
        };
        let id = report.hyphenated().to_string();
        let (_, r, decision) = self.named(&id, submitter, Operation::Get).await?;
        if decision != Decision::Whole {
            return Err(ServiceError::NotRecipient {
                record: id,
                label: r.label,
                member: submitter.id.to_string(),
            });
        }
        if r.kind != RecordKind::Incident || r.retracts.is_some() {
            return Err(ServiceError::TargetKind {
                record: id,
                kind: r.kind,
            });
        }
        if r.author == submitter.id {
            return Err(ServiceError::AckOwnReport { record: id });
        }
        let shared_with_author = matches!(h.label, SharingLabel::TlpClear)
            || h.recipients.iter().any(|m| m.as_str() == r.author.as_str());
        if !shared_with_author {
            return Err(ServiceError::AckNotToAuthor {
                author: r.author.to_string(),
            });
        }
        within_red(h, &r, "an acknowledgement")
    }
}

/// A record `h` whose header names the RED record `r` is RED to `r`'s
/// recipients only (`what` says what `h` is).
pub(crate) fn within_red(
    h: &CheckedHeader,
    r: &CheckedHeader,
    what: &'static str,
) -> Result<(), ServiceError> {
    if r.label == SharingLabel::TlpRed
        && (h.label != SharingLabel::TlpRed
            || h.recipients.iter().any(|m| !r.recipients.contains(m)))
    {
        return Err(ServiceError::BeyondRed {
            what,
            record: r.record_id.hyphenated().to_string(),
        });
    }
    Ok(())
}
