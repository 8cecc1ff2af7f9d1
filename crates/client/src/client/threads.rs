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

    /// Signs an acknowledgement of `report` (as fetched; not this
    /// member's own) in `state`, with an optional `note`, shared with the
    /// report's author and `also`. Send it with [`Client::submit_incident`].
    pub fn prepare_acknowledgement(
        &self,
        report: &pb::StoredRecord,
        state: pb::AcknowledgementState,
        note: &str,
        also: &[String],
    ) -> Result<Prepared, ClientError> {
        let header = verify::stored_header(report)?;
        prepare::acknowledgement(
            &self.directory,
            &self.creds.member,
            &self.creds.signing,
            &header,
            state,
            note,
            also,
        )
    }

    /// Every acknowledgement of `report_id` the caller may read, opened
    /// where it may (`None`: sealed to others).
    pub async fn acknowledgements(
        &self,
        report_id: &str,
    ) -> Result<Vec<(pb::StoredRecord, Option<pb::Acknowledgement>)>, ClientError> {
        let filter = pb::RecordFilter {
            acknowledges: Some(pb::RecordId {
                uuid: report_id.to_owned(),
            }),
            kinds: vec![pb::RecordKind::Acknowledgement as i32],
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let (page, next) = self.list_incidents(filter.clone(), 500, token).await?;
            for s in page {
                let ack = self.open(&s).ok().and_then(|o| match o.content {
                    crate::verify::Content::Acknowledgement(a) => Some(a),
                    _ => None,
                });
                out.push((s, ack));
            }
            if next.is_empty() {
                return Ok(out);
            }
            token = next;
        }
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
        let mut t = thread::timeline(&first, &records, OffsetDateTime::now_utc());
        for report in &mut t.reports {
            let Some((stored, _)) = records
                .iter()
                .find(|(s, _)| verify::stored_id(s) == report.record_id)
            else {
                continue;
            };
            let acks = self.acknowledgements(&report.record_id).await?;
            thread::acknowledge(report, stored, &acks, self.directory());
        }
        Ok(t)
    }
}

/// How many corrections of a first report a timeline follows.
const MAX_CORRECTIONS: usize = 100;
