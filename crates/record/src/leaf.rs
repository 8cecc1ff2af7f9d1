//! The audit log's leaf (DESIGN.md section 4) checked from its bytes: the
//! one parser the audit service runs on every appended leaf and an auditor
//! runs on every entry it reads. A leaf that passes has one encoding (the
//! canonical protobuf one), a known kind, a subject (clear: a record id and
//! a member id; salted: two SHA-256 digests), a receive time, a SHA-256
//! envelope digest and a service name. [`encode`] builds one.

use cairn_identity::spiffe::{MemberId, is_valid_name};
use prost::Message as _;

use crate::error::RecordError;
use time::OffsetDateTime;

use crate::header::{parse_record_id, time_to_timestamp, timestamp_to_time};
use crate::pb;
use crate::pb::RecordKind;
use crate::record::sha256;

/// A leaf subject in the clear: the record id and its author.
pub fn clear_subject(record_id: &str, author: &str) -> pb::log_leaf::Subject {
    pb::log_leaf::Subject::Clear(pb::LeafSubject {
        record_id: Some(pb::RecordId {
            uuid: record_id.to_owned(),
        }),
        author: Some(pb::MemberId {
            id: author.to_owned(),
        }),
    })
}

/// The encoded leaf of a `kind` record (or erasure order) accepted by
/// `service` at `received_at`, `signed_bytes` being the envelope (or order)
/// bytes exactly as received.
pub fn encode(
    kind: RecordKind,
    subject: pb::log_leaf::Subject,
    received_at: OffsetDateTime,
    signed_bytes: &[u8],
    service: &str,
) -> Vec<u8> {
    pb::LogLeaf {
        kind: kind as i32,
        subject: Some(subject),
        received_at: Some(time_to_timestamp(received_at)),
        envelope_digest: sha256(signed_bytes).to_vec(),
        service: service.to_owned(),
    }
    .encode_to_vec()
}

/// What is wrong with a log leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafProblem {
    /// The bytes are not a `cairn.common.v1.LogLeaf`.
    #[error("not a cairn.common.v1.LogLeaf encoding")]
    Undecodable,
    /// The bytes decode, but are not the message's canonical encoding
    /// (unknown or repeated fields, non-minimal varints): one leaf, one
    /// byte string.
    #[error("not the canonical encoding of its fields")]
    NotCanonical,
    /// `kind` is unspecified or unknown.
    #[error("kind is unspecified or unknown")]
    Kind,
    /// Neither a clear nor a salted subject.
    #[error("has no subject")]
    NoSubject,
    /// `clear.record_id` is not a canonical UUIDv7.
    #[error("subject.record_id is not a canonical UUIDv7")]
    RecordId,
    /// `clear.author` is not a member id.
    #[error("subject.author is not a member id")]
    Author,
    /// A salted digest is not 32 bytes.
    #[error("a salted subject digest is not 32 bytes")]
    SaltedDigest,
    /// `received_at` is missing or out of range.
    #[error("received_at is missing or out of range")]
    ReceivedAt,
    /// `envelope_digest` is not 32 bytes.
    #[error("envelope_digest is not 32 bytes")]
    EnvelopeDigest,
    /// `service` is not a service name.
    #[error("service is not a service name")]
    Service,
}

/// Parses and checks a log leaf.
pub fn check_leaf(bytes: &[u8]) -> Result<pb::LogLeaf, RecordError> {
    check(bytes).map_err(RecordError::Leaf)
}

fn check(bytes: &[u8]) -> Result<pb::LogLeaf, LeafProblem> {
    let leaf = pb::LogLeaf::decode(bytes).map_err(|_| LeafProblem::Undecodable)?;
    if leaf.encode_to_vec() != bytes {
        return Err(LeafProblem::NotCanonical);
    }
    match pb::RecordKind::try_from(leaf.kind) {
        Ok(pb::RecordKind::Unspecified) | Err(_) => return Err(LeafProblem::Kind),
        Ok(_) => {}
    }
    match &leaf.subject {
        None => return Err(LeafProblem::NoSubject),
        Some(pb::log_leaf::Subject::Clear(s)) => {
            let id = s.record_id.as_ref().ok_or(LeafProblem::RecordId)?;
            parse_record_id(&id.uuid).map_err(|_| LeafProblem::RecordId)?;
            let author = s.author.as_ref().ok_or(LeafProblem::Author)?;
            MemberId::parse(&author.id).map_err(|_| LeafProblem::Author)?;
        }
        Some(pb::log_leaf::Subject::Salted(s)) => {
            if s.record_id_digest.len() != 32 || s.author_digest.len() != 32 {
                return Err(LeafProblem::SaltedDigest);
            }
        }
    }
    let at = leaf.received_at.as_ref().ok_or(LeafProblem::ReceivedAt)?;
    timestamp_to_time(at).map_err(|_| LeafProblem::ReceivedAt)?;
    if leaf.envelope_digest.len() != 32 {
        return Err(LeafProblem::EnvelopeDigest);
    }
    if !is_valid_name(&leaf.service) {
        return Err(LeafProblem::Service);
    }
    Ok(leaf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn good() -> pb::LogLeaf {
        pb::LogLeaf {
            kind: pb::RecordKind::Incident as i32,
            subject: Some(pb::log_leaf::Subject::Clear(pb::LeafSubject {
                record_id: Some(pb::RecordId {
                    uuid: "01890a5d-ac96-774b-bcce-b302099a8057".into(),
                }),
                author: Some(pb::MemberId {
                    id: "de-bsi".into(),
                }),
            })),
            received_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            envelope_digest: vec![7; 32],
            service: "intake".into(),
        }
    }

    fn problem(leaf: &pb::LogLeaf) -> Option<LeafProblem> {
        check(&leaf.encode_to_vec()).err()
    }

    #[test]
    fn a_well_formed_leaf_passes_both_subjects() {
        assert_eq!(check(&good().encode_to_vec()).unwrap(), good());
        let mut salted = good();
        salted.subject = Some(pb::log_leaf::Subject::Salted(pb::SaltedLeafSubject {
            record_id_digest: vec![1; 32],
            author_digest: vec![2; 32],
        }));
        assert_eq!(problem(&salted), None);
    }

    #[test]
    fn each_malformed_field_is_named() {
        type Edit = fn(&mut pb::LogLeaf);
        let cases: [(Edit, LeafProblem); 10] = [
            (|l| l.kind = 0, LeafProblem::Kind),
            (|l| l.kind = 99, LeafProblem::Kind),
            (|l| l.subject = None, LeafProblem::NoSubject),
            (
                |l| {
                    if let Some(pb::log_leaf::Subject::Clear(s)) = &mut l.subject {
                        s.record_id = Some(pb::RecordId { uuid: "x".into() });
                    }
                },
                LeafProblem::RecordId,
            ),
            (
                |l| {
                    if let Some(pb::log_leaf::Subject::Clear(s)) = &mut l.subject {
                        s.author = Some(pb::MemberId { id: "A B".into() });
                    }
                },
                LeafProblem::Author,
            ),
            (
                |l| {
                    l.subject = Some(pb::log_leaf::Subject::Salted(pb::SaltedLeafSubject {
                        record_id_digest: vec![1; 31],
                        author_digest: vec![2; 32],
                    }))
                },
                LeafProblem::SaltedDigest,
            ),
            (|l| l.received_at = None, LeafProblem::ReceivedAt),
            (
                |l| {
                    l.received_at = Some(prost_types::Timestamp {
                        seconds: 1,
                        nanos: -1,
                    })
                },
                LeafProblem::ReceivedAt,
            ),
            (
                |l| l.envelope_digest = vec![7; 33],
                LeafProblem::EnvelopeDigest,
            ),
            (|l| l.service = "Intake!".into(), LeafProblem::Service),
        ];
        for (edit, want) in cases {
            let mut l = good();
            edit(&mut l);
            assert_eq!(problem(&l), Some(want), "{l:?}");
        }
    }

    #[test]
    fn other_bytes_are_undecodable_or_not_canonical() {
        assert_eq!(check(b"leaf 7").err(), Some(LeafProblem::Undecodable));
        assert_eq!(check(&[]).err(), Some(LeafProblem::Kind));
        // An unknown field appended: decodes, but is not the leaf's encoding.
        let mut extra = good().encode_to_vec();
        extra.extend_from_slice(&[0x78, 0x01]);
        assert_eq!(check(&extra).err(), Some(LeafProblem::NotCanonical));
        // The same field twice: prost keeps the last, the bytes differ.
        let mut twice = good().encode_to_vec();
        twice.extend_from_slice(
            &pb::LogLeaf {
                service: "evals".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert_eq!(check(&twice).err(), Some(LeafProblem::NotCanonical));
    }
}
