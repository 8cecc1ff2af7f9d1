//! The directory governed through the log, as a member sees it: the
//! history fetched from the audit service and replayed from the genesis
//! (trusting the service for nothing), and proposals and approvals signed
//! with the member's key.

use cairn_proto::audit::v1 as audit;
use cairn_record::RecordDraft;
use cairn_record::governance::{Governed, Version};
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::record::sha256;
use prost::Message as _;

use super::Client;
use crate::error::ClientError;

/// The directory's history, replayed.
#[derive(Clone, Debug)]
pub struct DirectoryHistory {
    /// The state it builds: every version, every proposal.
    pub governed: Governed,
    /// The change records with their leaves, in log order.
    pub entries: Vec<audit::DirectoryChangeEntry>,
}

impl DirectoryHistory {
    /// The version in force at `when`: the newest whose change's leaf the
    /// audit service received at or before it (the genesis before any).
    /// Leaves carry the audit service's receive time, checked against
    /// their records when the history was replayed.
    pub fn at_time(&self, when: time::OffsetDateTime) -> Result<&Version, ClientError> {
        let mut tree_size = 0;
        for (i, entry) in self.entries.iter().enumerate() {
            let leaf =
                pb::LogLeaf::decode(entry.leaf.as_slice()).map_err(|e| ClientError::History {
                    at: i,
                    problem: format!("leaf: {e}"),
                })?;
            let received = leaf
                .received_at
                .as_ref()
                .ok_or("no receive time")
                .and_then(cairn_record::header::timestamp_to_time)
                .map_err(|problem| ClientError::History {
                    at: i,
                    problem: format!("leaf received_at: {problem}"),
                })?;
            if received > when {
                break;
            }
            tree_size = entry.leaf_index + 1;
        }
        Ok(self.governed.at_tree_size(tree_size))
    }
}

/// What a directory change submission answered.
#[derive(Clone, Debug)]
pub struct ChangeSubmitted {
    /// The record's id.
    pub record_id: String,
    /// The proposal it made or approved.
    pub proposal: String,
    /// Whether the proposal is in force.
    pub effective: bool,
    /// Its distinct approvers so far.
    pub approvals: u32,
    /// The quorum they are counted against.
    pub quorum: u32,
    /// The directory version in force after it.
    pub version: u64,
    /// The tree size of the verified receipt's checkpoint (log key known).
    pub verified_in_tree_of: Option<u64>,
}

/// Checks that `entry`'s leaf is the leaf of a directory change accepted
/// by the audit service, naming its record.
fn check_entry(entry: &audit::DirectoryChangeEntry, i: usize) -> Result<(), ClientError> {
    let record = entry
        .record
        .as_ref()
        .ok_or(ClientError::NoRecord("a directory history entry"))?;
    cairn_record::governance::check_entry_leaf(&entry.leaf, record).map_err(|e| {
        ClientError::History {
            at: i,
            problem: e.to_string(),
        }
    })
}

impl Client {
    /// The directory's history from the audit service, replayed from its
    /// genesis: every record's signature checked against the directory in
    /// force at its place, every leaf checked to name its record. The
    /// directory this client was given must be one of the history's
    /// versions (so a service cannot substitute another network's genesis).
    pub async fn directory_history(&self) -> Result<DirectoryHistory, ClientError> {
        let mut entries = Vec::new();
        let genesis = loop {
            let page = self
                .governance
                .clone()
                .get_directory_history(audit::GetDirectoryHistoryRequest {
                    from: entries.len() as u64,
                    page_size: 0,
                })
                .await?
                .into_inner();
            let done = page.changes.is_empty() || page.next >= page.total;
            entries.extend(page.changes);
            if done {
                break page.genesis;
            }
        };
        for (i, e) in entries.iter().enumerate() {
            check_entry(e, i)?;
        }
        let genesis = String::from_utf8(genesis).map_err(|_| ClientError::History {
            at: 0,
            problem: "the genesis is not UTF-8".into(),
        })?;
        let governed = Governed::replay(
            &genesis,
            entries
                .iter()
                .filter_map(|e| e.record.as_ref().map(|r| (r, e.leaf_index))),
        )
        .map_err(|(at, e)| ClientError::History {
            at,
            problem: e.to_string(),
        })?;
        let mine = self.directory.digest();
        if !governed
            .versions()
            .iter()
            .any(|v| v.directory.digest() == mine)
        {
            return Err(ClientError::History {
                at: 0,
                problem: "the directory this client holds is no version of this history: another network, or a forged genesis".into(),
            });
        }
        Ok(DirectoryHistory { governed, entries })
    }

    fn sign_change(&self, content: &pb::DirectoryChange) -> Result<pb::SignedRecord, ClientError> {
        let draft = RecordDraft::new(
            RecordKind::DirectoryChange,
            SharingLabel::TlpClear,
            content.encode_to_vec(),
        );
        Ok(cairn_record::build(
            &draft,
            &self.creds.member,
            &self.creds.signing,
        )?)
    }

    /// Proposes `document` (a bare directory) under `quorum` against the
    /// version in force in `history`; the proposal is its proposer's
    /// approval.
    pub async fn propose_directory_change(
        &self,
        history: &Governed,
        document: &str,
        quorum: u32,
        summary: &str,
    ) -> Result<ChangeSubmitted, ClientError> {
        let content = pb::DirectoryChange {
            directory: document.as_bytes().to_vec(),
            previous_digest: history.current().directory.digest().to_vec(),
            summary: summary.to_owned(),
            quorum,
            ..Default::default()
        };
        self.submit_change(self.sign_change(&content)?).await
    }

    /// Approves the proposal `proposal` (a record id) of `history`.
    pub async fn approve_directory_change(
        &self,
        history: &Governed,
        proposal: &str,
    ) -> Result<ChangeSubmitted, ClientError> {
        let p = history
            .proposals()
            .find(|p| p.id.hyphenated().to_string() == proposal)
            .ok_or_else(|| ClientError::History {
                at: history.len(),
                problem: format!("no proposal {proposal} in the directory's history"),
            })?;
        let content = pb::DirectoryChange {
            previous_digest: history.current().directory.digest().to_vec(),
            approves: Some(pb::RecordId {
                uuid: proposal.to_owned(),
            }),
            proposed_digest: sha256(p.document.as_bytes()).to_vec(),
            ..Default::default()
        };
        self.submit_change(self.sign_change(&content)?).await
    }

    async fn submit_change(
        &self,
        record: pb::SignedRecord,
    ) -> Result<ChangeSubmitted, ClientError> {
        let envelope = record.envelope.clone();
        let record_id = crate::verify::stored_id(&pb::StoredRecord {
            record: Some(record.clone()),
            ..Default::default()
        });
        let out = self
            .governance
            .clone()
            .submit_directory_change(audit::SubmitDirectoryChangeRequest {
                record: Some(record),
            })
            .await?
            .into_inner();
        let verified_in_tree_of = match (&out.receipt, &self.log_key) {
            (Some(r), Some(k)) => Some(crate::verify::verify_receipt(r, &envelope, k, None)?.size),
            _ => None,
        };
        let effective = out.standing() == audit::ChangeStanding::Effective;
        Ok(ChangeSubmitted {
            record_id,
            proposal: out.proposal.map(|p| p.uuid).unwrap_or_default(),
            effective,
            approvals: out.approvals,
            quorum: out.quorum,
            version: out.version,
            verified_in_tree_of,
        })
    }
}

impl Client {
    /// This client with the directory in force in the log, replayed from
    /// the directory it was given: for a member admitted after the
    /// genesis it holds, and to seal to members added since.
    pub async fn follow_directory(self) -> Result<Self, ClientError> {
        let history = self.directory_history().await?;
        Ok(self.with_history(&history))
    }

    /// This client with the directory in force at the end of `history`
    /// (from [`Client::directory_history`]).
    pub fn with_history(mut self, history: &DirectoryHistory) -> Self {
        self.directory = (*history.governed.current().directory).clone();
        self
    }
}
