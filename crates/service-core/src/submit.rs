//! Submitting a record: the chain of checks in the documented order, each
//! refusing with its error and storing nothing, then one atomic commit
//! (record, sequence entry, outbox item and the superseded or retracted
//! record's new state) and the audit receipt.
//!
//! 1. [`RecordCore::submitter`]: the connection's member, within its rate,
//!    holding a role this service serves; sizes within limits;
//! 2. [`RecordCore::check_signer`]: the header's author is that member and
//!    may submit this kind; then the DSSE signature with its key valid at
//!    created-at (`cairn_record::record::verify_envelope`) and at the
//!    receive time;
//! 3. [`RecordCore::check_header`]: created-at bounds, the call fits the
//!    header, the body matches its digest and label form;
//! 4. [`crate::labels::check_recipients`]: the label rules against the
//!    directory in force;
//! 5. [`RecordCore::check_clear_content`]: TLP:CLEAR content validates and
//!    the disclosed index matches it;
//! 6. [`NewRecord`] through [`RecordCore::commit_retrying`]: idempotency by
//!    record id, the durable commit, the receipt.

use cairn_identity::{Directory, Member, PeerIdentity};
use cairn_record::clock::Skew;
use cairn_record::header::{CheckedHeader, time_to_timestamp};
use cairn_record::pb::{self, RecordKind, RecordState, SharingLabel};
use cairn_record::record;
use cairn_store::WriteBatch;
use prost::Message as _;
use time::OffsetDateTime;

use crate::core::{Attempt, Change, Committed, RecordCore};
use crate::error::ServiceError;
use crate::labels::{self, Decision, Operation, Reader};
use crate::leaves;
use crate::policy::SubmitKind;
use crate::stored::*;

/// The answer to a submission.
#[derive(Clone, Debug)]
pub struct SubmitOutcome {
    /// The record id.
    pub record_id: String,
    /// Its audit receipt, unless pending.
    pub receipt: Option<pb::Receipt>,
    /// The record had already been accepted with the same bytes.
    pub duplicate: bool,
    /// The record is durable but the audit log has not integrated it yet.
    pub receipt_pending: bool,
    /// For TLP:CLEAR serious incidents: the Art. 73 deadline.
    pub reporting_deadline: Option<OffsetDateTime>,
}

/// A record that passed every check, to be stored.
struct NewRecord<'a> {
    id: String,
    h: CheckedHeader,
    signed: &'a pb::SignedRecord,
    submitter: &'a Member,
    received_at: OffsetDateTime,
}

impl RecordCore {
    /// Accepts a signed record from `peer`, in the order of checks the API
    /// documents; a refusal stores nothing.
    pub async fn submit(
        &self,
        peer: &PeerIdentity,
        signed: pb::SignedRecord,
        call: SubmitKind,
    ) -> Result<SubmitOutcome, ServiceError> {
        let directory = self.directory.current();
        let member = self.submitter(peer, &directory, &signed)?;
        let kind = self.check_signer(member, &signed)?;
        let (raw, h) = record::verify_envelope(&signed.envelope, &directory)?;
        let now = OffsetDateTime::now_utc();
        // Valid at the claimed created-at (checked above) and now.
        member
            .signing_key_at(&h.signing_key_id, now)
            .map_err(ServiceError::KeyNotCurrent)?;
        let body = self.check_header(&raw, &h, &signed, call, now)?;
        labels::check_recipients(&h, &body, &directory)?;
        let reporting_deadline = self.check_clear_content(kind, &raw, &h, &body, now)?;

        let id = h.record_id.hyphenated().to_string();
        let span = tracing::info_span!("submit", record_id = %id, member = %member.id, service = self.policy.service);
        let _enter = span.enter();
        let new = NewRecord {
            id: id.clone(),
            h,
            signed: &signed,
            submitter: member,
            received_at: now,
        };
        let outcome = |receipt: Option<pb::Receipt>, duplicate| SubmitOutcome {
            record_id: id.clone(),
            receipt_pending: receipt.is_none(),
            receipt,
            duplicate,
            reporting_deadline,
        };
        match self.commit_retrying(&new).await? {
            Committed::Receipt(receipt) => {
                tracing::info!("record accepted");
                Ok(outcome(receipt, false))
            }
            Committed::Answered(existing) => {
                Ok(outcome(self.receipt_of(&id, existing).await?, true))
            }
        }
    }

    /// Step 1: the connection's member, within its rate, holding a role
    /// this service serves; the envelope and body within their limits.
    fn submitter<'d>(
        &self,
        peer: &PeerIdentity,
        directory: &'d Directory,
        signed: &pb::SignedRecord,
    ) -> Result<&'d Member, ServiceError> {
        let id = crate::core::member_of(peer)?;
        let member = directory
            .member(id)
            .ok_or_else(|| ServiceError::UnknownMember {
                member: id.to_owned(),
            })?;
        self.within_rate(id)?;
        self.policy.admits(member)?;
        let too_large = |field, size, limit| {
            (size > limit).then_some(ServiceError::TooLarge { field, size, limit })
        };
        if let Some(e) = too_large(
            "record.envelope",
            signed.envelope.len(),
            self.config.max_envelope,
        )
        .or_else(|| too_large("record.body", signed.body.len(), self.config.max_body))
        {
            return Err(e);
        }
        Ok(member)
    }

    /// Step 2, before the signature is checked: the header names the
    /// connection's member as its author, and the member may submit its
    /// kind here.
    fn check_signer(
        &self,
        member: &Member,
        signed: &pb::SignedRecord,
    ) -> Result<RecordKind, ServiceError> {
        let env = record::decode_envelope(&signed.envelope)?;
        let raw = record::decode_header(&env.payload)?;
        let author = raw
            .author
            .as_ref()
            .map(|a| a.id.as_str())
            .unwrap_or_default();
        if author != member.id.as_str() {
            return Err(ServiceError::SignerNotPeer {
                signer: author.to_owned(),
                member: member.id.to_string(),
            });
        }
        let kind = RecordKind::try_from(raw.kind).unwrap_or(RecordKind::Unspecified);
        self.policy.may_submit(member, kind)?;
        Ok(kind)
    }

    /// Step 3: created-at within bounds of `now`, the call fits what the
    /// header links to, and the body matches the header.
    fn check_header(
        &self,
        raw: &pb::RecordHeader,
        h: &CheckedHeader,
        signed: &pb::SignedRecord,
        call: SubmitKind,
        now: OffsetDateTime,
    ) -> Result<pb::RecordBody, ServiceError> {
        self.config
            .clock()
            .check(h.created_at, now)
            .map_err(|s| match s {
                Skew::InFuture => ServiceError::CreatedInFuture,
                Skew::TooOld { max_days } => ServiceError::CreatedTooOld { max_days },
            })?;
        call.check(h.supersedes.is_some(), h.retracts.is_some())
            .map_err(ServiceError::WrongCall)?;
        Ok(record::check_body(raw, h, &signed.body)?)
    }

    /// Step 5: a TLP:CLEAR body's content validates and the header's index
    /// discloses exactly what it implies; returns the reporting deadline
    /// the service's schema derives from it.
    fn check_clear_content(
        &self,
        kind: RecordKind,
        raw: &pb::RecordHeader,
        h: &CheckedHeader,
        body: &pb::RecordBody,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, ServiceError> {
        let Some(pb::record_body::Body::Clear(clear)) = &body.body else {
            return Ok(None);
        };
        let retraction = h.retracts.is_some();
        let implied = cairn_record::content::validate_content(
            kind,
            retraction,
            h.author.as_str(),
            &clear.content,
            now,
        )?;
        if !cairn_record::content::index_matches(raw.index.as_ref(), implied.as_ref()) {
            return Err(ServiceError::IndexMismatch);
        }
        Ok((!retraction)
            .then(|| self.policy.schema.reporting_deadline(kind, &clear.content))
            .flatten())
    }

    /// The receipt of an already stored record: stored, or awaited like the
    /// first submission awaited it (`None`: still pending).
    async fn receipt_of(&self, id: &str, e: Entry) -> Result<Option<pb::Receipt>, ServiceError> {
        self.until_durable(|| format!("record {id}")).await?;
        if e.receipt.is_some() {
            return Ok(e.receipt);
        }
        self.outbox.wake();
        let waiter = self.outbox.wait(e.seq);
        // It may have been stored between our read and the wait.
        if let Some(r) = self.stored_receipt(id.as_bytes(), false).await? {
            return Ok(Some(r));
        }
        Ok(self.receipt_within(waiter).await)
    }

    /// Marks the record a new one supersedes or retracts, in `batch`.
    async fn lifecycle(
        &self,
        new: &NewRecord<'_>,
        target: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), ServiceError> {
        let (old, mut e) =
            self.entry(target)
                .await?
                .ok_or_else(|| ServiceError::TargetNotFound {
                    record: target.to_owned(),
                })?;
        let (_, th) = header_of(&e.envelope)?;
        let retracts = new.h.retracts.is_some();
        let op = if retracts {
            Operation::Retract
        } else {
            Operation::Supersede
        };
        match labels::decide(op, th.label, Reader::of(&th, new.submitter)) {
            Decision::Whole => {}
            Decision::Hidden => {
                return Err(ServiceError::TargetNotFound {
                    record: target.to_owned(),
                });
            }
            Decision::HeaderOnly | Decision::Denied => {
                return Err(ServiceError::NotAuthor {
                    record: target.to_owned(),
                    author: th.author.to_string(),
                });
            }
        }
        if th.kind != new.h.kind {
            return Err(ServiceError::TargetKind {
                record: target.to_owned(),
                kind: th.kind,
            });
        }
        if !retracts {
            crate::thread::same_thread(new.h.thread, &th)?;
        }
        // Its header names the record: a RED one's correction or
        // retraction is RED too, so no one outside sees that id.
        if th.label == SharingLabel::TlpRed && new.h.label != SharingLabel::TlpRed {
            return Err(ServiceError::RedChangeNotRed {
                what: if retracts {
                    "a retraction"
                } else {
                    "a correction"
                },
                record: target.to_owned(),
            });
        }
        if e.state != RecordState::Active as i32 {
            return Err(ServiceError::Inactive {
                record: target.to_owned(),
            });
        }
        e.state = if retracts {
            RecordState::Retracted
        } else {
            RecordState::Superseded
        } as i32;
        e.superseded_by = new.id.clone();
        batch
            .expect(NS_RECORDS, target.as_bytes().to_vec(), Some(old))
            .put(NS_RECORDS, target.as_bytes().to_vec(), e.encode_to_vec());
        Ok(())
    }
}

impl Change for NewRecord<'_> {
    /// The stored entry of an identical earlier submission.
    type Answer = Entry;

    async fn attempt(&self, core: &RecordCore) -> Result<Attempt<Entry>, ServiceError> {
        let (id, signed) = (&self.id, self.signed);
        if let Some((_, existing)) = core.entry(id).await? {
            let e = core.with_receipts(id.as_bytes(), existing).await?;
            let erased = e.state == RecordState::Erased as i32;
            if e.envelope != signed.envelope || (e.body != signed.body && !erased) {
                return Err(ServiceError::IdTaken { record: id.clone() });
            }
            return Ok(Attempt::Answer(e));
        }
        let leaf = leaves::record_leaf(
            &self.h,
            &signed.envelope,
            self.received_at,
            core.policy.service,
        )?;
        core.check_thread(&self.h, self.submitter).await?;
        core.check_acknowledged(&self.h, self.submitter).await?;
        core.check_about(&self.h, self.submitter).await?;
        let mut life = WriteBatch::new();
        if let Some(target) = self.h.supersedes.or(self.h.retracts) {
            core.lifecycle(self, &target.hyphenated().to_string(), &mut life)
                .await?;
        }
        let item = OutboxItem {
            record_id: id.clone(),
            leaf: leaf.bytes.clone(),
            erasure: false,
            queued_at_ms: now_ms(),
            owner: core.outbox.owner().to_owned(),
        }
        .encode_to_vec();
        let mut entry = Entry {
            envelope: signed.envelope.clone(),
            body: signed.body.clone(),
            seq: 0,
            receipt: None,
            leaf: leaf.bytes,
            state: RecordState::Active as i32,
            superseded_by: String::new(),
            leaf_salt: leaf.salt,
            received_at: Some(time_to_timestamp(self.received_at)),
            erasure_order: Vec::new(),
            erasure_leaf: Vec::new(),
            erasure_receipt: None,
        };
        let key = id.as_bytes().to_vec();
        // Record, sequence entry, outbox item (and the superseded or
        // retracted record's new state) under the number it gets.
        Ok(Attempt::Commit(Box::new(move |n: u64| {
            entry.seq = n;
            let mut batch = WriteBatch::new();
            batch
                .expect_absent(NS_RECORDS, key.clone())
                .put(NS_RECORDS, key.clone(), entry.encode_to_vec())
                .put(NS_SEQ, n.to_be_bytes().to_vec(), key.clone())
                .put(NS_OUTBOX, n.to_be_bytes().to_vec(), item.clone())
                .append(life.clone());
            batch
        })))
    }
}
