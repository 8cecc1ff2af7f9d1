//! Sightings and mitigations about an incident (`header.about`): the
//! submitter must be able to see the incident; one about a TLP:RED
//! incident is RED to that incident's recipients only; and a reader sees
//! such a record only where it may see the incident too — so it does not
//! exist for anyone the incident is hidden from.

use cairn_identity::Member;
use cairn_record::header::CheckedHeader;
use cairn_record::pb::RecordKind;

use crate::core::RecordCore;
use crate::error::ServiceError;
use crate::labels::{self, Decision, Operation, Reader};
use crate::stored::header_of;

impl RecordCore {
    /// The incident `h` is about, if any, exists for `submitter`.
    pub(crate) async fn check_about(
        &self,
        h: &CheckedHeader,
        submitter: &Member,
    ) -> Result<(), ServiceError> {
        let Some(about) = h.about else {
            return Ok(());
        };
        let id = about.hyphenated().to_string();
        let (_, target, _) = self.named(&id, submitter, Operation::List).await?;
        if target.kind != RecordKind::Incident || target.retracts.is_some() {
            return Err(ServiceError::TargetKind {
                record: id,
                kind: target.kind,
            });
        }
        crate::ack::within_red(h, &target, "a sighting or mitigation")
    }

    /// Whether `h` is about an incident `member` may not see (or that no
    /// longer exists): then `h`'s record is hidden from it as well.
    pub(crate) async fn about_hidden(
        &self,
        h: &CheckedHeader,
        member: &str,
    ) -> Result<bool, ServiceError> {
        let Some(about) = h.about else {
            return Ok(false);
        };
        match self.entry(&about.hyphenated().to_string()).await? {
            Some((_, e)) => {
                let (_, target) = header_of(&e.envelope)?;
                Ok(labels::decide(
                    Operation::List,
                    target.label,
                    Reader::reading(&target, member),
                ) == Decision::Hidden)
            }
            None => Ok(true),
        }
    }
}
