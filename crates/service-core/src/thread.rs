//! Incident threads: a follow-up report (an update or the final report,
//! EU AI Act Art. 73) names its thread's first report in its header, and
//! the service checks that the thread exists for the submitter, is the
//! submitter's own, and is a first report; a correction stays in the thread
//! of the report it corrects. Deadline clocks are the SDK's: the content
//! they read is sealed.

use cairn_identity::Member;
use cairn_record::header::CheckedHeader;
use cairn_record::pb::{RecordKind, RecordState};
use uuid::Uuid;

use crate::core::RecordCore;
use crate::error::ServiceError;
use crate::labels::Operation;

impl RecordCore {
    /// The thread `h` names, if any, takes a report from `submitter`.
    pub(crate) async fn check_thread(
        &self,
        h: &CheckedHeader,
        submitter: &Member,
    ) -> Result<(), ServiceError> {
        let Some(thread) = h.thread else {
            return Ok(());
        };
        let id = thread.hyphenated().to_string();
        // A thread the submitter may not see does not exist for it; one it
        // sees but did not start is refused by name.
        let (e, first, _) = self.named(&id, submitter, Operation::Get).await?;
        if first.author != submitter.id {
            return Err(ServiceError::NotThreadAuthor {
                thread: id,
                author: first.author.to_string(),
            });
        }
        if first.kind != RecordKind::Incident {
            return Err(ServiceError::TargetKind {
                record: id,
                kind: first.kind,
            });
        }
        if let Some(root) = first.thread {
            return Err(ServiceError::ThreadNotFirst {
                thread: id,
                first: root.hyphenated().to_string(),
            });
        }
        if e.state == RecordState::Retracted as i32 {
            return Err(ServiceError::ThreadRetracted { thread: id });
        }
        Ok(())
    }
}

/// A correction names the thread of the report it corrects (or none).
pub(crate) fn same_thread(
    new: Option<Uuid>,
    corrected: &CheckedHeader,
) -> Result<(), ServiceError> {
    if new == corrected.thread {
        return Ok(());
    }
    Err(ServiceError::ThreadChanged {
        record: corrected.record_id.hyphenated().to_string(),
        thread: corrected
            .thread
            .map_or_else(|| "none".to_owned(), |t| t.hyphenated().to_string()),
    })
}
