//! Whole records: build (seal, commit, sign), verify (signature, header,
//! body) and open (decrypt, check the commitment).

use cairn_identity::{Directory, SealingKey, SigningKey};
use prost::Message as _;
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::commitment::{self, SALT_LEN};
use crate::dsse;
use crate::error::RecordError;
use crate::header::{self, CheckedHeader, time_to_timestamp};
use crate::pb::{self, RecordKind, SharingLabel};
pub use crate::seal::Recipient;
use crate::seal::{self, Binding, NONCE_LEN, TAG_LEN};

/// What an author wants to publish, before sealing and signing.
#[derive(Clone, Debug)]
pub struct RecordDraft {
    /// Record id (UUIDv7).
    pub record_id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Sharing label.
    pub label: SharingLabel,
    /// Who may open it; empty for TLP:CLEAR.
    pub recipients: Vec<Recipient>,
    /// The record this one corrects.
    pub supersedes: Option<Uuid>,
    /// The record this one retracts.
    pub retracts: Option<Uuid>,
    /// For a follow-up incident report: its thread's first report.
    pub thread: Option<Uuid>,
    /// For an acknowledgement: the report it acknowledges.
    pub acknowledges: Option<Uuid>,
    /// For a sighting or a mitigation: the incident it concerns.
    pub about: Option<Uuid>,
    /// The encoded content message.
    pub content: Vec<u8>,
    /// Cleartext index fields to disclose (see `content::incident_index`).
    pub index: Option<pb::IndexFields>,
}

impl RecordDraft {
    /// A draft with a fresh UUIDv7, created now, no recipients.
    pub fn new(kind: RecordKind, label: SharingLabel, content: Vec<u8>) -> Self {
        Self {
            record_id: Uuid::now_v7(),
            kind,
            created_at: OffsetDateTime::now_utc(),
            label,
            recipients: Vec::new(),
            supersedes: None,
            retracts: None,
            thread: None,
            acknowledges: None,
            about: None,
            content,
            index: None,
        }
    }
}

fn record_id(id: Uuid) -> pb::RecordId {
    pb::RecordId {
        uuid: id.hyphenated().to_string(),
    }
}

/// Seals (unless TLP:CLEAR), commits and signs a draft as `author`.
pub fn build(
    draft: &RecordDraft,
    author: &str,
    key: &SigningKey,
) -> Result<pb::SignedRecord, RecordError> {
    let mut recipients = draft.recipients.clone();
    recipients.sort_by(|a, b| a.member.cmp(&b.member));
    let names: Vec<String> = recipients.iter().map(|r| r.member.clone()).collect();
    let id_text = draft.record_id.hyphenated().to_string();
    let salt = commitment::fresh_salt();
    let body = if draft.label == SharingLabel::TlpClear {
        pb::record_body::Body::Clear(pb::ClearBody {
            salt: salt.to_vec(),
            content: draft.content.clone(),
        })
    } else {
        let binding = Binding {
            record_id: &id_text,
            kind: draft.kind as i32,
            author,
            recipients: &names,
        };
        pb::record_body::Body::Sealed(seal::seal(&draft.content, &salt, &binding, &recipients)?)
    };
    let body_bytes = pb::RecordBody { body: Some(body) }.encode_to_vec();
    let header = pb::RecordHeader {
        record_id: Some(record_id(draft.record_id)),
        kind: draft.kind as i32,
        schema_version: header::SCHEMA_VERSION,
        author: Some(pb::MemberId {
            id: author.to_owned(),
        }),
        signing_key_id: key.key_id().to_owned(),
        created_at: Some(time_to_timestamp(draft.created_at)),
        label: draft.label as i32,
        recipients: names
            .iter()
            .map(|n| pb::MemberId { id: n.clone() })
            .collect(),
        supersedes: draft.supersedes.map(record_id),
        retracts: draft.retracts.map(record_id),
        body_commitment: commitment::commit(&salt, &draft.content).to_vec(),
        body_digest: sha256(&body_bytes).to_vec(),
        body_size: body_bytes.len() as u64,
        index: draft.index.clone(),
        thread: draft.thread.map(record_id),
        acknowledges: draft.acknowledges.map(record_id),
        about: draft.about.map(record_id),
    };
    header::check(&header)?;
    let envelope = dsse::sign(dsse::RECORD_HEADER_TYPE, header.encode_to_vec(), key);
    Ok(pb::SignedRecord {
        envelope: envelope.encode_to_vec(),
        body: body_bytes,
    })
}

/// SHA-256.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn decode<M: prost::Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, RecordError> {
    M::decode(bytes).map_err(|e| RecordError::Decode {
        what,
        detail: e.to_string(),
    })
}

/// Decodes an envelope.
pub fn decode_envelope(bytes: &[u8]) -> Result<pb::Envelope, RecordError> {
    decode("envelope", bytes)
}

/// Decodes a header.
pub fn decode_header(bytes: &[u8]) -> Result<pb::RecordHeader, RecordError> {
    decode("header", bytes)
}

/// Decodes a body.
pub fn decode_body(bytes: &[u8]) -> Result<pb::RecordBody, RecordError> {
    decode("body", bytes)
}

/// A record whose signature, header and body have been checked.
#[derive(Clone, Debug)]
pub struct VerifiedRecord {
    /// The header, checked.
    pub header: CheckedHeader,
    /// The header as decoded.
    pub raw_header: pb::RecordHeader,
    /// The body as decoded; `None` for an erased record.
    pub body: Option<pb::RecordBody>,
    /// SHA-256 of the envelope bytes.
    pub envelope_digest: [u8; 32],
}

/// The decrypted, commitment-checked content of a record.
pub struct OpenedContent {
    /// The commitment salt.
    pub salt: [u8; SALT_LEN],
    /// The encoded content message.
    pub content: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for OpenedContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedContent")
            .field("len", &self.content.len())
            .finish_non_exhaustive()
    }
}

/// Verifies the envelope's signature against the directory and checks the
/// header's structure. Works without the body (erased records).
pub fn verify_envelope(
    envelope_bytes: &[u8],
    directory: &Directory,
) -> Result<(pb::RecordHeader, CheckedHeader), RecordError> {
    let envelope = decode_envelope(envelope_bytes)?;
    if envelope.payload_type != dsse::RECORD_HEADER_TYPE {
        return Err(RecordError::PayloadType {
            expected: dsse::RECORD_HEADER_TYPE,
            found: envelope.payload_type.chars().take(100).collect(),
        });
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(RecordError::field(
            "envelope.signatures",
            format!(
                "{} signatures, a record carries exactly one",
                envelope.signatures.len()
            ),
        ));
    };
    let raw = decode_header(&envelope.payload)?;
    let checked = header::check(&raw)?;
    if signature.keyid != checked.signing_key_id {
        return Err(RecordError::field(
            "envelope.signatures[0].keyid",
            "does not match header.signing_key_id",
        ));
    }
    let member = directory
        .member(checked.author.as_str())
        .ok_or_else(|| RecordError::UnknownAuthor(checked.author.to_string()))?;
    let key = member.signing_key_at(&checked.signing_key_id, checked.created_at)?;
    if !dsse::verify(&envelope, signature, key) {
        return Err(RecordError::BadSignature);
    }
    Ok((raw, checked))
}

/// Checks that `body_bytes` is the body the header describes and has the
/// form its label requires.
pub fn check_body(
    raw: &pb::RecordHeader,
    h: &CheckedHeader,
    body_bytes: &[u8],
) -> Result<pb::RecordBody, RecordError> {
    if body_bytes.len() as u64 != raw.body_size {
        return Err(RecordError::BodyMismatch(
            "its length differs from header.body_size",
        ));
    }
    if sha256(body_bytes).as_slice() != raw.body_digest.as_slice() {
        return Err(RecordError::BodyMismatch(
            "its SHA-256 differs from header.body_digest",
        ));
    }
    let body = decode_body(body_bytes)?;
    match (&body.body, h.label) {
        (Some(pb::record_body::Body::Clear(clear)), SharingLabel::TlpClear) => {
            if clear.salt.len() != SALT_LEN {
                return Err(RecordError::BodyForm(format!(
                    "clear.salt is {} bytes, expected {SALT_LEN}",
                    clear.salt.len()
                )));
            }
        }
        (Some(pb::record_body::Body::Clear(_)), label) => {
            return Err(RecordError::BodyForm(format!(
                "a {} record must be sealed",
                label.as_str_name()
            )));
        }
        (Some(pb::record_body::Body::Sealed(_)), SharingLabel::TlpClear) => {
            return Err(RecordError::BodyForm(
                "a TLP:CLEAR record must not be sealed".into(),
            ));
        }
        (Some(pb::record_body::Body::Sealed(sealed)), _) => check_sealed(sealed, h)?,
        (None, _) => return Err(RecordError::BodyForm("neither clear nor sealed".into())),
    }
    Ok(body)
}

fn check_sealed(sealed: &pb::SealedBody, h: &CheckedHeader) -> Result<(), RecordError> {
    if sealed.aead != pb::ContentAead::Aes256Gcm as i32 {
        return Err(RecordError::BodyForm(format!(
            "sealed.aead {} is not supported",
            sealed.aead
        )));
    }
    if sealed.nonce.len() != NONCE_LEN {
        return Err(RecordError::BodyForm(format!(
            "sealed.nonce is {} bytes, expected {NONCE_LEN}",
            sealed.nonce.len()
        )));
    }
    if sealed.ciphertext.len() < SALT_LEN + TAG_LEN {
        return Err(RecordError::BodyForm(
            "sealed.ciphertext is too short".into(),
        ));
    }
    let wrapped: Vec<&str> = sealed
        .wrapped_keys
        .iter()
        .map(|w| {
            w.recipient
                .as_ref()
                .map(|r| r.id.as_str())
                .unwrap_or_default()
        })
        .collect();
    if wrapped != h.recipients {
        return Err(RecordError::BodyForm(
            "sealed.wrapped_keys must hold one key per header recipient, in the same order".into(),
        ));
    }
    for (i, w) in sealed.wrapped_keys.iter().enumerate() {
        if w.suite.is_none() || w.enc.is_empty() || w.ciphertext.is_empty() {
            return Err(RecordError::BodyForm(format!(
                "sealed.wrapped_keys[{i}] is incomplete"
            )));
        }
    }
    Ok(())
}

/// Verifies a whole record: the envelope's signature with a key of the
/// author valid at created-at, the header's structure, and that the body is
/// the one the header describes in the form its label requires.
pub fn verify(
    signed: &pb::SignedRecord,
    directory: &Directory,
) -> Result<VerifiedRecord, RecordError> {
    let (raw, checked) = verify_envelope(&signed.envelope, directory)?;
    let body = check_body(&raw, &checked, &signed.body)?;
    Ok(VerifiedRecord {
        header: checked,
        raw_header: raw,
        body: Some(body),
        envelope_digest: sha256(&signed.envelope),
    })
}

impl VerifiedRecord {
    /// The record id as canonical text.
    pub fn record_id_text(&self) -> String {
        self.header.record_id.hyphenated().to_string()
    }

    /// Checks that the header's disclosed index fields are what `content`
    /// implies (catches an author whose cleartext index misdescribes the
    /// sealed content); also validates the content.
    pub fn check_content(&self, content: &[u8], now: OffsetDateTime) -> Result<(), RecordError> {
        let implied = crate::content::validate_content(
            self.header.kind,
            self.header.retracts.is_some(),
            self.header.author.as_str(),
            content,
            now,
        )?;
        if !crate::content::index_matches(self.raw_header.index.as_ref(), implied.as_ref()) {
            return Err(RecordError::field(
                "header.index",
                "does not match the content",
            ));
        }
        Ok(())
    }

    /// Opens the body as `member` with its sealing key (not needed for
    /// TLP:CLEAR) and checks the content against the signed commitment.
    pub fn open(
        &self,
        member: &str,
        key: Option<&SealingKey>,
    ) -> Result<OpenedContent, RecordError> {
        let body = self
            .body
            .as_ref()
            .ok_or(RecordError::BodyForm("the record has been erased".into()))?;
        let (salt, content) = match &body.body {
            Some(pb::record_body::Body::Clear(clear)) => {
                let salt: [u8; SALT_LEN] = clear
                    .salt
                    .as_slice()
                    .try_into()
                    .map_err(|_| RecordError::BodyForm("clear.salt length".into()))?;
                (salt, Zeroizing::new(clear.content.clone()))
            }
            Some(pb::record_body::Body::Sealed(sealed)) => {
                let key = key.ok_or_else(|| RecordError::NotARecipient(member.to_owned()))?;
                let id_text = self.record_id_text();
                let binding = Binding {
                    record_id: &id_text,
                    kind: self.header.kind as i32,
                    author: self.header.author.as_str(),
                    recipients: &self.header.recipients,
                };
                let plain = seal::open(sealed, &binding, member, key)?;
                let mut salt = [0u8; SALT_LEN];
                salt.copy_from_slice(&plain[..SALT_LEN]);
                (salt, Zeroizing::new(plain[SALT_LEN..].to_vec()))
            }
            None => return Err(RecordError::BodyForm("neither clear nor sealed".into())),
        };
        if !commitment::matches(&self.raw_header.body_commitment, &salt, &content) {
            return Err(RecordError::CommitmentMismatch);
        }
        Ok(OpenedContent { salt, content })
    }
}
