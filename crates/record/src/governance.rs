//! A network's directory governed through the log (DESIGN.md section 2):
//! the state that a genesis and the `directory_change` records after it
//! build, one record at a time, in log order.
//!
//! A record is a **proposal** (a complete new directory document, the
//! digest of the directory it changes, and the quorum rule after it) or an
//! **approval** of one (the proposal's id and the digest of its document).
//! Both are TLP:CLEAR and signed by a governance member of the directory in
//! force; a proposal counts as its proposer's approval. The change takes
//! effect at the place of the record that brings the distinct approvers
//! to the quorum in force; from then on, every proposal made against the
//! older directory is stale and can only be proposed again.
//!
//! [`Governed::check`] decides whether a record may be accepted, without
//! changing anything; [`Governed::apply`] applies a checked record at its
//! leaf index. The audit service runs both on every submission, and
//! auditors run both on every entry of the history ([`Governed::replay`]),
//! trusting nothing but the genesis.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_identity::Directory;
use cairn_identity::directory::Role;
use cairn_identity::genesis::Genesis;
use prost::Message as _;
use uuid::Uuid;

use crate::error::RecordError;
use crate::header::parse_record_id;
use crate::pb::{self, RecordKind, SharingLabel};
use crate::record::sha256;

mod keys;
mod problem;
pub use problem::{ChangeProblem, MAX_SUMMARY_CHARS};

/// A proposal in the history.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// Its record id.
    pub id: Uuid,
    /// Who proposed it.
    pub proposer: String,
    /// The proposed document, exactly as signed.
    pub document: Arc<str>,
    /// The directory it makes (with its quorum rule).
    pub directory: Arc<Directory>,
    /// The directory version it was proposed against.
    pub base_version: u64,
    /// The summary.
    pub summary: String,
    /// Who has signed it, proposer first, in log order.
    pub approvers: Vec<String>,
    /// Where the proposal lies in the log.
    pub leaf_index: u64,
    /// The version it made, once in force.
    pub made: Option<u64>,
}

/// A version of the directory: the genesis (0) or a change in force.
#[derive(Clone, Debug)]
pub struct Version {
    /// 0 for the genesis, then 1, 2, …
    pub version: u64,
    /// The directory (with its quorum rule).
    pub directory: Arc<Directory>,
    /// Its document.
    pub document: Arc<str>,
    /// The leaf index at which it took effect (`None`: the genesis).
    pub effective_at: Option<u64>,
    /// The proposal that made it (`None`: the genesis).
    pub proposal: Option<Uuid>,
}

/// A checked directory change record, ready to apply.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The record id.
    pub record_id: Uuid,
    /// The signer.
    pub author: String,
    /// SHA-256 of the envelope.
    pub envelope_digest: [u8; 32],
    /// The created-at it claims (checked against the signing key's
    /// window; a service bounds it by its receive time).
    pub created_at: time::OffsetDateTime,
    /// The key that signed it.
    pub signing_key_id: String,
    step: Step,
}

#[derive(Clone, Debug)]
enum Step {
    Propose {
        document: Arc<str>,
        directory: Arc<Directory>,
        summary: String,
    },
    Approve {
        proposal: Uuid,
    },
}

/// Where a change stands after a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The proposal the record made or approved.
    pub proposal: Uuid,
    /// Its distinct approvers so far.
    pub approvals: u32,
    /// The quorum it was counted against.
    pub quorum: u32,
    /// The version it made, if it is in force.
    pub effective: Option<u64>,
}

/// The directory's history from a genesis: versions in force, proposals,
/// and every accepted record.
#[derive(Clone, Debug)]
pub struct Governed {
    genesis: Arc<str>,
    versions: Vec<Version>,
    proposals: BTreeMap<Uuid, Proposal>,
    accepted: BTreeMap<Uuid, [u8; 32]>,
    approvals: BTreeMap<Uuid, Uuid>,
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn change(p: ChangeProblem) -> RecordError {
    RecordError::Change(p)
}

impl Governed {
    /// The history of a network founded by `genesis` (the signed genesis
    /// document), before any change.
    pub fn from_genesis(genesis: &str, source: &str) -> Result<Self, RecordError> {
        let g = Genesis::parse(genesis, source).map_err(bad_directory)?;
        let directory = g.directory_in_force(source).map_err(bad_directory)?;
        Ok(Self {
            genesis: genesis.into(),
            versions: vec![Version {
                version: 0,
                directory: Arc::new(directory),
                document: g.directory.as_str().into(),
                effective_at: None,
                proposal: None,
            }],
            proposals: BTreeMap::new(),
            accepted: BTreeMap::new(),
            approvals: BTreeMap::new(),
        })
    }

    /// Rebuilds the history from the genesis and the change records in log
    /// order, each with its leaf index; the first record that does not
    /// check is an error naming its position.
    pub fn replay<'a>(
        genesis: &str,
        changes: impl IntoIterator<Item = (&'a pb::SignedRecord, u64)>,
    ) -> Result<Self, (usize, RecordError)> {
        let mut g = Self::from_genesis(genesis, "genesis").map_err(|e| (0, e))?;
        for (i, (record, leaf_index)) in changes.into_iter().enumerate() {
            let checked = g.check(record).map_err(|e| (i, e))?;
            g.apply(checked, leaf_index);
        }
        Ok(g)
    }

    /// The genesis document.
    pub fn genesis(&self) -> &str {
        &self.genesis
    }

    /// The version in force.
    pub fn current(&self) -> &Version {
        // `versions` always holds the genesis.
        &self.versions[self.versions.len() - 1]
    }

    /// Every version, the genesis first.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The version in force in a tree of `tree_size` leaves.
    pub fn at_tree_size(&self, tree_size: u64) -> &Version {
        self.versions
            .iter()
            .rev()
            .find(|v| v.effective_at.is_none_or(|at| at < tree_size))
            .unwrap_or(&self.versions[0])
    }

    /// Every proposal, by record id.
    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values()
    }

    /// Proposals that may still take effect (made against the version in
    /// force and not yet in force).
    pub fn pending(&self) -> impl Iterator<Item = &Proposal> {
        let version = self.current().version;
        self.proposals
            .values()
            .filter(move |p| p.made.is_none() && p.base_version == version)
    }

    /// The record id of `record` if it is a record accepted before, byte
    /// for byte (a resubmission, answered as the first time).
    pub fn resubmitted(&self, record: &pb::SignedRecord) -> Option<Uuid> {
        let envelope = crate::record::decode_envelope(&record.envelope).ok()?;
        let header = crate::record::decode_header(&envelope.payload).ok()?;
        let id = parse_record_id(&header.record_id?.uuid).ok()?;
        (self.accepted.get(&id)? == &sha256(&record.envelope)).then_some(id)
    }

    /// The proposal an accepted record made or approved.
    pub fn proposal_of(&self, record_id: &Uuid) -> Option<Uuid> {
        if self.proposals.contains_key(record_id) {
            return Some(*record_id);
        }
        self.approvals.get(record_id).copied()
    }

    /// The envelope digest of an accepted record, by id.
    pub fn accepted(&self, record_id: &Uuid) -> Option<&[u8; 32]> {
        self.accepted.get(record_id)
    }

    /// The number of records accepted.
    pub fn len(&self) -> usize {
        self.accepted.len()
    }

    /// Whether no record was accepted since the genesis.
    pub fn is_empty(&self) -> bool {
        self.accepted.is_empty()
    }

    /// Where `proposal` stands now.
    pub fn standing(&self, proposal: &Uuid) -> Option<Standing> {
        let p = self.proposals.get(proposal)?;
        let quorum = self.versions[p.base_version as usize]
            .directory
            .quorum()
            .unwrap_or(1);
        Some(Standing {
            proposal: p.id,
            approvals: p.approvers.len() as u32,
            quorum,
            effective: p.made,
        })
    }

    /// Whether `record` may be accepted now. Changes nothing.
    pub fn check(&self, record: &pb::SignedRecord) -> Result<Checked, RecordError> {
        let now = self.current();
        let in_force = &now.directory;
        if in_force.quorum().is_none() {
            return Err(change(ChangeProblem::NoGenesis));
        }
        let verified = crate::verify(record, in_force)?;
        let h = &verified.header;
        if h.kind != RecordKind::DirectoryChange {
            return Err(change(ChangeProblem::Kind));
        }
        if h.label != SharingLabel::TlpClear {
            return Err(change(ChangeProblem::NotClear));
        }
        header_carries_nothing_else(&verified.raw_header)?;
        let author = h.author.to_string();
        if !in_force
            .member(&author)
            .is_some_and(|m| m.has_role(Role::Governance))
        {
            return Err(change(ChangeProblem::NotGovernance {
                member: author,
                version: now.version,
            }));
        }
        if let Some(earlier) = self.accepted.get(&h.record_id)
            && *earlier != verified.envelope_digest
        {
            return Err(change(ChangeProblem::Conflict {
                record_id: verified.record_id_text(),
            }));
        }
        let content = verified.open(&author, None)?;
        let body = pb::DirectoryChange::decode(content.content.as_slice()).map_err(|e| {
            RecordError::Decode {
                what: "content (DirectoryChange)",
                detail: e.to_string(),
            }
        })?;
        let step = self.step(&body, &author, h.created_at)?;
        Ok(Checked {
            record_id: h.record_id,
            author,
            envelope_digest: verified.envelope_digest,
            created_at: h.created_at,
            signing_key_id: h.signing_key_id.clone(),
            step,
        })
    }

    fn stale_unless_current(&self, digest: &[u8]) -> Result<(), RecordError> {
        let now = self.current();
        if digest != now.directory.digest() {
            return Err(change(ChangeProblem::Stale {
                against: hex(digest),
                version: now.version,
                current: hex(now.directory.digest()),
            }));
        }
        Ok(())
    }

    fn step(
        &self,
        body: &pb::DirectoryChange,
        author: &str,
        created_at: time::OffsetDateTime,
    ) -> Result<Step, RecordError> {
        let chars = body.summary.chars().count();
        if chars > MAX_SUMMARY_CHARS {
            return Err(change(ChangeProblem::Summary { chars }));
        }
        match (&body.approves, body.directory.is_empty()) {
            (Some(approves), true) if body.quorum == 0 => {
                let proposal = self.approvable(approves, &body.proposed_digest, author)?;
                self.stale_unless_current(&body.previous_digest)?;
                Ok(Step::Approve { proposal })
            }
            (None, false) if body.approves.is_none() && body.proposed_digest.is_empty() => {
                self.stale_unless_current(&body.previous_digest)?;
                let (document, directory) = self.proposed(body, created_at)?;
                Ok(Step::Propose {
                    document,
                    directory,
                    summary: body.summary.clone(),
                })
            }
            _ => Err(change(ChangeProblem::Shape)),
        }
    }

    fn approvable(
        &self,
        approves: &pb::RecordId,
        digest: &[u8],
        author: &str,
    ) -> Result<Uuid, RecordError> {
        let id = parse_record_id(&approves.uuid)
            .map_err(|detail| RecordError::field("content.approves", detail))?;
        let p = self.proposals.get(&id).ok_or_else(|| {
            change(ChangeProblem::UnknownProposal {
                proposal: approves.uuid.clone(),
            })
        })?;
        if let Some(version) = p.made {
            return Err(change(ChangeProblem::AlreadyEffective {
                proposal: approves.uuid.clone(),
                version,
            }));
        }
        let now = self.current();
        if p.base_version != now.version {
            // Whatever digest the approval claims: the proposal changes an
            // older directory, and only a new proposal can change this one.
            return Err(change(ChangeProblem::Stale {
                against: hex(self.versions[p.base_version as usize].directory.digest()),
                version: now.version,
                current: hex(now.directory.digest()),
            }));
        }
        if digest != sha256(p.document.as_bytes()) {
            return Err(change(ChangeProblem::DigestMismatch {
                proposal: approves.uuid.clone(),
            }));
        }
        if p.approvers.iter().any(|a| a == author) {
            return Err(change(ChangeProblem::AlreadyApproved {
                member: author.to_owned(),
                proposal: approves.uuid.clone(),
            }));
        }
        Ok(id)
    }

    fn proposed(
        &self,
        body: &pb::DirectoryChange,
        created_at: time::OffsetDateTime,
    ) -> Result<(Arc<str>, Arc<Directory>), RecordError> {
        let now = self.current();
        let text = std::str::from_utf8(&body.directory).map_err(|_| {
            change(ChangeProblem::BadDirectory {
                detail: "not UTF-8".into(),
            })
        })?;
        if cairn_identity::genesis::is_genesis(text) {
            return Err(change(ChangeProblem::BadDirectory {
                detail: "a genesis; propose the bare directory document".into(),
            }));
        }
        let directory =
            Directory::parse_plain(text.as_bytes(), "proposed directory").map_err(bad_directory)?;
        if directory.trust_domain() != now.directory.trust_domain() {
            return Err(change(ChangeProblem::BadDirectory {
                detail: format!(
                    "trust_domain {:?}: the network's is {:?} and cannot change",
                    directory.trust_domain(),
                    now.directory.trust_domain()
                ),
            }));
        }
        if directory.digest() == now.directory.digest()
            && Some(body.quorum) == now.directory.quorum()
        {
            return Err(change(ChangeProblem::NoChange {
                version: now.version,
            }));
        }
        keys::check_continuity(&now.directory, &directory, created_at).map_err(change)?;
        let governance = directory.governance_count();
        if body.quorum == 0 || body.quorum as usize > governance {
            return Err(change(ChangeProblem::Quorum {
                quorum: body.quorum,
                governance,
            }));
        }
        Ok((text.into(), Arc::new(directory.with_quorum(body.quorum))))
    }

    /// Applies a record checked by [`Governed::check`] against this same
    /// state, at `leaf_index`; answers where its proposal stands.
    pub fn apply(&mut self, checked: Checked, leaf_index: u64) -> Standing {
        let version = self.current().version;
        let quorum = self.current().directory.quorum().unwrap_or(1);
        self.accepted
            .insert(checked.record_id, checked.envelope_digest);
        let id = match checked.step {
            Step::Propose {
                document,
                directory,
                summary,
            } => {
                self.proposals.insert(
                    checked.record_id,
                    Proposal {
                        id: checked.record_id,
                        proposer: checked.author.clone(),
                        document,
                        directory,
                        base_version: version,
                        summary,
                        approvers: vec![checked.author],
                        leaf_index,
                        made: None,
                    },
                );
                checked.record_id
            }
            Step::Approve { proposal } => {
                self.approvals.insert(checked.record_id, proposal);
                self.sign(proposal, &checked.author);
                proposal
            }
        };
        let approvals = self.proposals.get(&id).map_or(0, |p| p.approvers.len());
        if approvals >= quorum as usize {
            self.take_effect(id, leaf_index);
        }
        Standing {
            proposal: id,
            approvals: approvals as u32,
            quorum,
            effective: self.proposals.get(&id).and_then(|p| p.made),
        }
    }

    fn sign(&mut self, proposal: Uuid, member: &str) {
        if let Some(p) = self.proposals.get_mut(&proposal) {
            p.approvers.push(member.to_owned());
        }
    }

    fn take_effect(&mut self, id: Uuid, leaf_index: u64) {
        let version = self.current().version + 1;
        let Some(p) = self.proposals.get_mut(&id) else {
            return;
        };
        p.made = Some(version);
        let v = Version {
            version,
            directory: p.directory.clone(),
            document: p.document.clone(),
            effective_at: Some(leaf_index),
            proposal: Some(id),
        };
        self.versions.push(v);
    }
}

/// That `leaf` (as the history gives it) is the leaf of `record` accepted
/// by the audit service as a directory change: kind, service, envelope
/// digest, record id and author in the clear.
pub fn check_entry_leaf(leaf: &[u8], record: &pb::SignedRecord) -> Result<(), RecordError> {
    let l = crate::leaf::check_leaf(leaf)?;
    let named = |what: &str| {
        RecordError::field(
            "leaf",
            format!("names another {what} than its directory change record"),
        )
    };
    if l.kind != RecordKind::DirectoryChange as i32 || l.service != "audit" {
        return Err(named("kind or service"));
    }
    if l.envelope_digest != sha256(&record.envelope) {
        return Err(named("envelope"));
    }
    let envelope = crate::record::decode_envelope(&record.envelope)?;
    let header = crate::record::decode_header(&envelope.payload)?;
    match l.subject {
        Some(pb::log_leaf::Subject::Clear(s))
            if s.record_id == header.record_id && s.author == header.author =>
        {
            Ok(())
        }
        _ => Err(named("record")),
    }
}

fn bad_directory(e: cairn_identity::Error) -> RecordError {
    change(ChangeProblem::BadDirectory {
        detail: e.to_string(),
    })
}

fn header_carries_nothing_else(h: &pb::RecordHeader) -> Result<(), RecordError> {
    let extra = [
        ("supersedes", h.supersedes.is_some()),
        ("retracts", h.retracts.is_some()),
        ("thread", h.thread.is_some()),
        ("acknowledges", h.acknowledges.is_some()),
        ("about", h.about.is_some()),
        ("recipients", !h.recipients.is_empty()),
        ("index", h.index.is_some()),
    ];
    match extra.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(change(ChangeProblem::Field { field })),
        None => Ok(()),
    }
}
