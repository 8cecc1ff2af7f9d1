//! Verifying and opening what the services return.

use cairn_identity::{Directory, SealingKey};
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::header::CheckedHeader;
use cairn_record::pb::{self, RecordKind};
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::note::VerifierKey;
use prost::Message as _;
use time::OffsetDateTime;

use crate::error::{ClientError, ReceiptProblem};

/// Opened content, decoded by kind.
#[derive(Clone, Debug)]
pub enum Content {
    /// An incident.
    Incident(intake::Incident),
    /// An evaluation result.
    Result(evals::EvaluationResult),
    /// A baseline.
    Baseline(evals::Baseline),
    /// An assessment.
    Assessment(evals::Assessment),
    /// A retraction.
    Retraction(pb::Retraction),
    /// An acknowledgement of a report.
    Acknowledgement(pb::Acknowledgement),
    /// A sighting.
    Sighting(intake::Sighting),
    /// A mitigation or advisory.
    Mitigation(intake::Mitigation),
    /// Anything else, as bytes.
    Other(Vec<u8>),
}

/// A verified, opened record.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The checked header.
    pub header: CheckedHeader,
    /// The content.
    pub content: Content,
}

impl Opened {
    /// The incident, if it is one.
    pub fn incident(&self) -> Option<&intake::Incident> {
        match &self.content {
            Content::Incident(i) => Some(i),
            _ => None,
        }
    }

    /// The evaluation result, if it is one.
    pub fn result(&self) -> Option<&evals::EvaluationResult> {
        match &self.content {
            Content::Result(r) => Some(r),
            _ => None,
        }
    }
}

/// Verifies a record against the directory (signature by its author with a
/// key valid at created-at, header, body digest and form), opens it as
/// `member` (no key needed for TLP:CLEAR), checks the commitment, validates
/// the content and checks the disclosed index fields against it.
pub fn open_record(
    directory: &Directory,
    signed: &pb::SignedRecord,
    member: &str,
    key: Option<&SealingKey>,
) -> Result<Opened, ClientError> {
    let verified = cairn_record::verify(signed, directory)?;
    let opened = verified.open(member, key)?;
    verified.check_content(
        &opened.content,
        OffsetDateTime::now_utc() + time::Duration::days(1),
    )?;
    let bytes = opened.content.as_slice();
    let decode = ClientError::Content;
    let content = if verified.header.retracts.is_some() {
        Content::Retraction(pb::Retraction::decode(bytes).map_err(decode)?)
    } else {
        match verified.header.kind {
            RecordKind::Incident => {
                Content::Incident(intake::Incident::decode(bytes).map_err(decode)?)
            }
            RecordKind::EvaluationResult => {
                Content::Result(evals::EvaluationResult::decode(bytes).map_err(decode)?)
            }
            RecordKind::Baseline => {
                Content::Baseline(evals::Baseline::decode(bytes).map_err(decode)?)
            }
            RecordKind::Assessment => {
                Content::Assessment(evals::Assessment::decode(bytes).map_err(decode)?)
            }
            RecordKind::Acknowledgement => {
                Content::Acknowledgement(pb::Acknowledgement::decode(bytes).map_err(decode)?)
            }
            RecordKind::Sighting => {
                Content::Sighting(intake::Sighting::decode(bytes).map_err(decode)?)
            }
            RecordKind::Mitigation => {
                Content::Mitigation(intake::Mitigation::decode(bytes).map_err(decode)?)
            }
            _ => Content::Other(bytes.to_vec()),
        }
    };
    Ok(Opened {
        header: verified.header,
        content,
    })
}

fn salted(salt: &[u8], text: &str) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(text.as_bytes());
    ctx.finish().as_ref().to_vec()
}

/// The header of a stored record as the service sent it (decoded, not
/// verified: [`crate::Client::open`] verifies), or why it is unreadable.
pub fn stored_header(stored: &pb::StoredRecord) -> Result<pb::RecordHeader, ClientError> {
    let record = stored
        .record
        .as_ref()
        .ok_or(ClientError::NoRecord("the stored record"))?;
    let env = cairn_record::record::decode_envelope(&record.envelope)?;
    Ok(cairn_record::record::decode_header(&env.payload)?)
}

/// The record id of a stored record (empty when its header is unreadable).
pub fn stored_id(stored: &pb::StoredRecord) -> String {
    stored_header(stored)
        .ok()
        .and_then(|h| h.record_id)
        .map(|r| r.uuid)
        .unwrap_or_default()
}

/// Verifies a receipt offline for any signed bytes a leaf names (a
/// record's envelope, an erasure order): the checkpoint's log signature,
/// the leaf's inclusion proof in it, and that the leaf names these exact
/// bytes. Returns the checkpoint and the leaf.
pub fn verify_receipt_of_bytes(
    receipt: &pb::Receipt,
    signed: &[u8],
    log_key: &VerifierKey,
) -> Result<(Checkpoint, pb::LogLeaf), ClientError> {
    let cp = checkpoint::open(&receipt.checkpoint, log_key)
        .map_err(ReceiptProblem::Checkpoint)?
        .checkpoint;
    cairn_tlog::proof::verify_inclusion(
        receipt.leaf_index,
        cp.size,
        &cairn_tlog::hash::leaf_hash(&receipt.leaf),
        &receipt.inclusion_proof,
        &cp.root,
    )
    .map_err(ReceiptProblem::Inclusion)?;
    let leaf = pb::LogLeaf::decode(receipt.leaf.as_slice()).map_err(ReceiptProblem::Leaf)?;
    if leaf.envelope_digest != cairn_record::record::sha256(signed).to_vec() {
        return Err(ReceiptProblem::OtherEnvelope.into());
    }
    Ok((cp, leaf))
}

/// Verifies a receipt offline: the checkpoint's log signature, the leaf's
/// inclusion proof in it, and that the leaf names this exact envelope (and,
/// for TLP:RED, with `leaf_salt`, this record id and author).
pub fn verify_receipt(
    receipt: &pb::Receipt,
    envelope: &[u8],
    log_key: &VerifierKey,
    leaf_salt: Option<&[u8]>,
) -> Result<Checkpoint, ClientError> {
    let (cp, leaf) = verify_receipt_of_bytes(receipt, envelope, log_key)?;
    leaf_names_record(&leaf, envelope, leaf_salt)?;
    Ok(cp)
}

/// That `leaf` names the record of `envelope`: its digest, and its record
/// id and author (in the clear, or salted with `leaf_salt` when known).
pub fn leaf_names_record(
    leaf: &pb::LogLeaf,
    envelope: &[u8],
    leaf_salt: Option<&[u8]>,
) -> Result<(), ClientError> {
    if leaf.envelope_digest != cairn_record::record::sha256(envelope).to_vec() {
        return Err(ReceiptProblem::OtherEnvelope.into());
    }
    let env = cairn_record::record::decode_envelope(envelope)?;
    let header = cairn_record::record::decode_header(&env.payload)?;
    let id = header.record_id.map(|r| r.uuid).unwrap_or_default();
    let author = header.author.map(|a| a.id).unwrap_or_default();
    match &leaf.subject {
        Some(pb::log_leaf::Subject::Clear(s)) => {
            if s.record_id.as_ref().map(|r| &r.uuid) != Some(&id)
                || s.author.as_ref().map(|a| &a.id) != Some(&author)
            {
                return Err(ReceiptProblem::OtherRecord.into());
            }
        }
        Some(pb::log_leaf::Subject::Salted(s)) => {
            if let Some(salt) = leaf_salt
                && (s.record_id_digest != salted(salt, &id)
                    || s.author_digest != salted(salt, &author))
            {
                return Err(ReceiptProblem::SaltedMismatch.into());
            }
        }
        None => return Err(ReceiptProblem::NoSubject.into()),
    }
    Ok(())
}
