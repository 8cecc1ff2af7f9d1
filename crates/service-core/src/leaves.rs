//! Building log leaves (DESIGN.md section 4): the one place that decides
//! what the audit log learns of an accepted record or erasure. A leaf names
//! the kind, the subject (record id and author, salted digests of both for
//! TLP:RED), the receive time, the digest of the exact envelope (or order)
//! bytes, and the accepting service.

use cairn_record::header::CheckedHeader;
use cairn_record::leaf::{clear_subject, encode};
use cairn_record::pb::{self, RecordKind, SharingLabel};
use time::OffsetDateTime;

use crate::error::ServiceError;

/// A leaf and, for a salted subject, the salt its readers need.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    /// The encoded `LogLeaf`.
    pub bytes: Vec<u8>,
    /// The salt of a salted subject (empty: clear subject).
    pub salt: Vec<u8>,
}

/// `SHA-256(salt || text)`: a salted subject field.
pub fn salted(salt: &[u8], text: &str) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(text.as_bytes());
    ctx.finish().as_ref().to_vec()
}

/// 32 bytes from the operating system's generator.
pub fn random32() -> Result<[u8; 32], ServiceError> {
    let mut out = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .map_err(|_| ServiceError::Random)?;
    Ok(out)
}

/// The leaf of a record accepted by `service` at `received_at`: a TLP:RED
/// record's subject is salted with a fresh salt.
pub fn record_leaf(
    h: &CheckedHeader,
    envelope: &[u8],
    received_at: OffsetDateTime,
    service: &str,
) -> Result<Leaf, ServiceError> {
    let id = h.record_id.hyphenated().to_string();
    let (subject, salt) = if h.label == SharingLabel::TlpRed {
        let salt = random32()?.to_vec();
        let subject = pb::log_leaf::Subject::Salted(pb::SaltedLeafSubject {
            record_id_digest: salted(&salt, &id),
            author_digest: salted(&salt, h.author.as_str()),
        });
        (subject, salt)
    } else {
        (clear_subject(&id, h.author.as_str()), Vec::new())
    };
    Ok(Leaf {
        bytes: encode(h.kind, subject, received_at, envelope, service),
        salt,
    })
}

/// The leaf of an erasure of a `kind` record `record_id`, ordered by
/// `orderer` with the signed `order` bytes. The erasure of a TLP:RED record
/// is salted with that record's own leaf salt (`red_salt`), so the log
/// shows outsiders neither which record was erased nor by whom, and the
/// record's recipients, who hold the salt, can check it.
pub fn erasure_leaf(
    kind: RecordKind,
    record_id: &str,
    orderer: &str,
    order: &[u8],
    received_at: OffsetDateTime,
    service: &str,
    red_salt: Option<&[u8]>,
) -> Vec<u8> {
    let subject = match red_salt {
        Some(salt) => pb::log_leaf::Subject::Salted(pb::SaltedLeafSubject {
            record_id_digest: salted(salt, record_id),
            author_digest: salted(salt, orderer),
        }),
        None => clear_subject(record_id, orderer),
    };
    encode(kind, subject, received_at, order, service)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_identity::MemberId;
    use cairn_record::header::time_to_timestamp;
    use cairn_record::record::sha256;
    use time::macros::datetime;

    fn header(label: SharingLabel) -> CheckedHeader {
        CheckedHeader {
            record_id: uuid::Uuid::now_v7(),
            kind: RecordKind::Incident,
            author: MemberId::parse("uk-aisi").unwrap(),
            signing_key_id: "k1".into(),
            created_at: datetime!(2026-06-01 12:00 UTC),
            label,
            recipients: vec![],
            supersedes: None,
            retracts: None,
            thread: None,
            acknowledges: None,
            about: None,
        }
    }

    /// A record id (UUIDv7) for the erasure leaves.
    const R1: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

    // Every leaf is checked with the audit log's own parser: what a service
    // builds, the log accepts.
    use cairn_record::leaf::check_leaf;

    #[test]
    fn a_clear_leaf_names_the_record_and_digests_the_envelope() {
        let h = header(SharingLabel::TlpGreen);
        let at = datetime!(2026-06-01 12:00:01 UTC);
        let leaf = record_leaf(&h, b"envelope", at, "intake").unwrap();
        assert!(leaf.salt.is_empty());
        let l = check_leaf(&leaf.bytes).unwrap();
        assert_eq!(l.kind, RecordKind::Incident as i32);
        assert_eq!(l.service, "intake");
        assert_eq!(l.envelope_digest, sha256(b"envelope").to_vec());
        assert_eq!(l.received_at, Some(time_to_timestamp(at)));
        let Some(pb::log_leaf::Subject::Clear(s)) = l.subject else {
            panic!("clear subject expected")
        };
        assert_eq!(
            s.record_id.unwrap().uuid,
            h.record_id.hyphenated().to_string()
        );
        assert_eq!(s.author.unwrap().id, "uk-aisi");
    }

    #[test]
    fn a_red_leaf_reveals_neither_id_nor_author() {
        let h = header(SharingLabel::TlpRed);
        let at = datetime!(2026-06-01 12:00:01 UTC);
        let a = record_leaf(&h, b"envelope", at, "intake").unwrap();
        let b = record_leaf(&h, b"envelope", at, "intake").unwrap();
        assert_eq!(a.salt.len(), 32);
        assert_ne!(a.salt, b.salt, "a fresh salt for every leaf");
        let id = h.record_id.hyphenated().to_string();
        let l = check_leaf(&a.bytes).unwrap();
        let Some(pb::log_leaf::Subject::Salted(s)) = l.subject else {
            panic!("salted subject expected")
        };
        assert_eq!(s.record_id_digest, salted(&a.salt, &id));
        assert_eq!(s.author_digest, salted(&a.salt, "uk-aisi"));
        let text = String::from_utf8_lossy(&a.bytes);
        assert!(!text.contains(&id) && !text.contains("uk-aisi"));
    }

    #[test]
    fn an_erasure_leaf_names_the_orderer_and_digests_the_order() {
        let at = datetime!(2026-06-02 0:00 UTC);
        let bytes = erasure_leaf(
            RecordKind::EvaluationResult,
            R1,
            "eu-ai-office",
            b"order",
            at,
            "evals",
            None,
        );
        let l = check_leaf(&bytes).unwrap();
        assert_eq!(l.envelope_digest, sha256(b"order").to_vec());
        let Some(pb::log_leaf::Subject::Clear(s)) = l.subject else {
            panic!("clear subject expected")
        };
        assert_eq!(s.author.unwrap().id, "eu-ai-office");
        assert_eq!(s.record_id.unwrap().uuid, R1);
    }

    #[test]
    fn a_red_erasure_leaf_is_salted_with_the_records_salt() {
        let at = datetime!(2026-06-02 0:00 UTC);
        let salt = [3u8; 32];
        let bytes = erasure_leaf(
            RecordKind::Incident,
            R1,
            "uk-aisi",
            b"o",
            at,
            "intake",
            Some(&salt),
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(R1) && !text.contains("uk-aisi"));
        let l = check_leaf(&bytes).unwrap();
        let Some(pb::log_leaf::Subject::Salted(s)) = l.subject else {
            panic!("salted subject expected")
        };
        assert_eq!(s.record_id_digest, salted(&salt, R1));
        assert_eq!(s.author_digest, salted(&salt, "uk-aisi"));
    }
}
