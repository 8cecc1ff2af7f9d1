//! Incident threads through the network: follow-up reports, and a thread's
//! timeline as the caller can see it (see [`crate::thread`]).

use cairn_proto::intake::v1 as intake;
use cairn_record::pb;
use time::OffsetDateTime;

use super::Client;
use crate::error::ClientError;
use crate::prepare::{self, Prepared, Share};
use crate::thread::{self, Timeline};
use crate::verify;

impl Client {
    /// Validates, seals and signs a follow-up report (status `update` or
    /// `final`) in the thread whose first report is `thread` (this
    /// member's). Submit it with [`Client::submit_incident`].
    pub fn prepare_follow_up(
        &self,
        incident: &intake::Incident,
        share: &Share,
        thread: &str,
    ) -> Result<Prepared, ClientError> {
        prepare::follow_up(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            incident,
            share,
            thread,
        )
    }

    /// The thread `record_id` belongs to (it may name any of its reports),
    /// with every report the caller may see, opened where it may, and the
    /// thread's Art. 73 clock as of now.
    pub async fn timeline(&self, record_id: &str) -> Result<Timeline, ClientError> {
        let stored = self.get_incident(record_id, false).await?;
        let header = verify::stored_header(&stored)?;
        let first = header
            .thread
            .map(|t| t.uuid)
            .unwrap_or_else(|| record_id.to_owned());
        let filter = pb::RecordFilter {
            thread: Some(pb::RecordId {
                uuid: first.clone(),
            }),
            kinds: vec![pb::RecordKind::Incident as i32],
            include_inactive: true,
            ..Default::default()
        };
        let mut records = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.list_incidents(filter.clone(), 500, token).await?;
            for s in page {
                let content = self.open(&s).ok().and_then(|o| o.incident().cloned());
                records.push((s, content));
            }
            if next.is_empty() {
                break;
            }
            token = next;
        }
        // Corrections of the first report name no thread (they supersede
        // it): follow its chain of corrections.
        let mut next = records
            .iter()
            .find(|(s, _)| {
                verify::stored_id(s) == first && s.state == pb::RecordState::Superseded as i32
            })
            .and_then(|(s, _)| s.superseded_by.clone());
        for _ in 0..MAX_CORRECTIONS {
            let Some(id) = next.take().filter(|r| !r.uuid.is_empty()) else {
                break;
            };
            let Ok(s) = self.get_incident(&id.uuid, false).await else {
                break;
            };
            let content = self.open(&s).ok().and_then(|o| o.incident().cloned());
            if s.state == pb::RecordState::Superseded as i32 {
                next = s.superseded_by.clone();
            }
            records.push((s, content));
        }
        Ok(thread::timeline(
            &first,
            &records,
            OffsetDateTime::now_utc(),
        ))
    }
}

/// How many corrections of a first report a timeline follows.
const MAX_CORRECTIONS: usize = 100;
