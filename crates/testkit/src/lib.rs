//! The test kit: what cairn's tests and benchmarks share and that needs no
//! running service — the example members, a dev PKI written to a temporary
//! directory, receipt verification, incident fixtures. The in-process
//! network harness that starts the services on top of it is `cairn-tests`
//! (`tests/`), which every service's own tests can use too.
//!
//! Test code only: it panics on what a test should not meet.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use cairn_devpki::{DevPki, DevPkiSpec, MemberFiles, layout};
use cairn_identity::{Directory, DirectoryHandle, MemberId, PeerIdentity, SigningKey};
use cairn_proto::intake::v1 as intake;
use cairn_record::pb;
use cairn_record::{Recipient, RecordDraft};
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::note::VerifierKey;
use prost::Message as _;
use time::OffsetDateTime;

/// The members of the example dev PKI, in directory order.
pub const MEMBERS: [&str; 3] = ["eu-aio", "jp-aisi", "uk-aisi"];

/// A dev PKI written to a temporary directory, with its directory loaded.
pub struct Pki {
    /// The temporary directory (removed when dropped); services' data can
    /// live here too.
    pub tmp: tempfile::TempDir,
    /// Where the PKI is written (`<tmp>/pki`).
    pub dir: PathBuf,
    /// The PKI itself.
    pub pki: DevPki,
    /// Its directory.
    pub directory: Directory,
    /// The same, as the handle services and verifiers take.
    pub handle: DirectoryHandle,
}

impl Pki {
    /// Generates the PKI of `spec` and writes it.
    pub fn new(spec: &DevPkiSpec) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let pki = DevPki::generate(spec).unwrap();
        pki.write_to(&dir).unwrap();
        let directory = Directory::load(&dir.join(layout::DIRECTORY)).unwrap();
        let handle = DirectoryHandle::new(directory.clone());
        Self {
            tmp,
            dir,
            pki,
            directory,
            handle,
        }
    }

    /// The example PKI (three members, every service).
    pub fn example() -> Self {
        Self::new(&DevPkiSpec::example())
    }

    /// Member `id`'s signing key.
    pub fn signing_key(&self, id: &str) -> SigningKey {
        MemberFiles::new(&self.dir, id).signing_key().unwrap()
    }

    /// Member `id` as the peer of an authenticated connection.
    pub fn peer(&self, id: &str) -> PeerIdentity {
        member_peer(id)
    }

    /// An incident titled `title` by `author`, labelled and sealed to
    /// `recipients`.
    pub fn incident(
        &self,
        author: &str,
        label: pb::SharingLabel,
        recipients: &[&str],
        title: &str,
    ) -> (RecordDraft, pb::SignedRecord) {
        signed_incident(
            &self.directory,
            &self.signing_key(author),
            author,
            label,
            recipients,
            title,
        )
    }

    /// A file of service `name` (e.g. `layout::TLS_CERT`).
    pub fn service_file(&self, name: &str, file: &str) -> PathBuf {
        self.dir.join(layout::SERVICES).join(name).join(file)
    }
}

/// Member `id` as the peer of an authenticated connection.
pub fn member_peer(id: &str) -> PeerIdentity {
    PeerIdentity::Member {
        id: MemberId::parse(id).unwrap(),
        subpath: String::new(),
    }
}

/// A draft of `kind` with `label`, sealed to `recipients` as the directory
/// lists them.
pub fn draft(
    directory: &Directory,
    kind: pb::RecordKind,
    label: pb::SharingLabel,
    recipients: &[&str],
    content: Vec<u8>,
    index: Option<pb::IndexFields>,
) -> RecordDraft {
    let mut d = RecordDraft::new(kind, label, content);
    d.recipients = recipients
        .iter()
        .map(|m| Recipient::from_directory(directory, m).unwrap())
        .collect();
    d.index = index;
    d
}

/// The [`incident`] fixture titled `title`, signed by `author` with `key`.
pub fn signed_incident(
    directory: &Directory,
    key: &SigningKey,
    author: &str,
    label: pb::SharingLabel,
    recipients: &[&str],
    title: &str,
) -> (RecordDraft, pb::SignedRecord) {
    let inc = incident(title);
    let index = cairn_record::content::incident_index(&inc);
    let d = draft(
        directory,
        pb::RecordKind::Incident,
        label,
        recipients,
        inc.encode_to_vec(),
        Some(index),
    );
    let s = cairn_record::build(&d, author, key).unwrap();
    (d, s)
}

/// A signed erasure order for `record`, ordered by `by` with `key` at `at`.
pub fn erasure_order(key: &SigningKey, by: &str, record: &str, at: OffsetDateTime) -> Vec<u8> {
    let order = cairn_proto::common::v1::ErasureOrder {
        record_id: Some(pb::RecordId {
            uuid: record.into(),
        }),
        reason: "court order 2026/17".into(),
        ordered_by: Some(pb::MemberId { id: by.into() }),
        signing_key_id: key.key_id().into(),
        ordered_at: Some(cairn_record::header::time_to_timestamp(at)),
    };
    cairn_record::dsse::sign(
        cairn_record::dsse::ERASURE_ORDER_TYPE,
        order.encode_to_vec(),
        key,
    )
    .encode_to_vec()
}

/// Checks a receipt offline as any recipient would: the log's signature on
/// its checkpoint and the leaf's inclusion proof. Returns the checkpoint.
pub fn verify_receipt(r: &pb::Receipt, log_key: &VerifierKey) -> Checkpoint {
    let cp = checkpoint::open(&r.checkpoint, log_key).unwrap().checkpoint;
    cairn_tlog::proof::verify_inclusion(
        r.leaf_index,
        cp.size,
        &cairn_tlog::hash::leaf_hash(&r.leaf),
        &r.inclusion_proof,
        &cp.root,
    )
    .unwrap();
    cp
}

/// [`verify_receipt`], and the leaf names exactly `envelope`.
pub fn verify_receipt_of(r: &pb::Receipt, envelope: &[u8], log_key: &VerifierKey) -> Checkpoint {
    let cp = verify_receipt(r, log_key);
    let leaf = pb::LogLeaf::decode(r.leaf.as_slice()).unwrap();
    assert_eq!(
        leaf.envelope_digest,
        cairn_record::record::sha256(envelope).to_vec(),
        "the leaf names the exact envelope"
    );
    cp
}

/// A well-formed log leaf as `service` would append it, one per `label`
/// (the same label gives the same bytes): an incident by `eu-aio` whose
/// record id and envelope digest are derived from the label.
pub fn log_leaf(service: &str, label: &str) -> Vec<u8> {
    let digest = cairn_record::record::sha256(label.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[6] = (id[6] & 0x0f) | 0x70;
    id[8] = (id[8] & 0x3f) | 0x80;
    pb::LogLeaf {
        kind: pb::RecordKind::Incident as i32,
        subject: Some(pb::log_leaf::Subject::Clear(pb::LeafSubject {
            record_id: Some(pb::RecordId {
                uuid: uuid::Uuid::from_bytes(id).hyphenated().to_string(),
            }),
            author: Some(pb::MemberId {
                id: MEMBERS[0].into(),
            }),
        })),
        received_at: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        envelope_digest: digest.to_vec(),
        service: service.to_owned(),
    }
    .encode_to_vec()
}

/// [`log_leaf`] of `intake`, for each label.
pub fn log_leaves<S: AsRef<str>>(labels: impl IntoIterator<Item = S>) -> Vec<Vec<u8>> {
    labels
        .into_iter()
        .map(|l| log_leaf("intake", l.as_ref()))
        .collect()
}

/// A valid incident titled `title`: a serious one, detected two days ago.
pub fn incident(title: &str) -> intake::Incident {
    let now = OffsetDateTime::now_utc();
    let ts = |days: i64| {
        Some(cairn_record::header::time_to_timestamp(
            now - time::Duration::days(days),
        ))
    };
    intake::Incident {
        title: title.into(),
        summary: "An evaluation-aware model sandbagged a safety test.".into(),
        occurred_at: ts(3),
        detected_at: ts(2),
        reported_at: ts(0),
        status: pb::IncidentStatus::Initial as i32,
        ai_system: Some(intake::AiSystem {
            name: "Frontier-1".into(),
            provider: "Example Labs".into(),
            ..Default::default()
        }),
        sectors: vec!["research".into()],
        jurisdictions: vec!["GB".into()],
        harm_types: vec![intake::HarmType::SecurityMisuse as i32],
        severity: pb::Severity::Moderate as i32,
        serious_incident: Some(intake::SeriousIncident {
            is_serious: true,
            category: intake::Art73Category::General as i32,
            aware_at: ts(2),
            reporting_deadline: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_pki_lists_the_members_in_order() {
        let p = Pki::example();
        let ids: Vec<String> = p.directory.members().map(|m| m.id.to_string()).collect();
        assert_eq!(ids, MEMBERS);
        assert!(p.service_file("audit", layout::TLS_CERT).exists());
    }

    #[test]
    fn the_incident_fixture_is_valid_content() {
        let bytes = incident("t").encode_to_vec();
        let implied = cairn_record::content::validate_content(
            pb::RecordKind::Incident,
            false,
            "uk-aisi",
            &bytes,
            OffsetDateTime::now_utc(),
        );
        assert!(implied.is_ok(), "{implied:?}");
    }
}
