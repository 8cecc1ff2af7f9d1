use cairn_identity::directory::KeyLookupError;

/// Why a record could not be built, verified or opened. Each variant says
/// which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Bytes that should hold a protobuf message do not.
    #[error("{what}: not a valid encoding ({detail})")]
    Decode {
        /// Which message (`envelope`, `header`, `body`).
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// A header or envelope field is missing or malformed.
    #[error("{field}: {detail}")]
    Field {
        /// The field path, e.g. `header.recipients[2]`.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The envelope's payload type is not a cairn record header.
    #[error("envelope.payload_type: {found:?} is not {expected:?}")]
    PayloadType {
        /// Expected.
        expected: &'static str,
        /// Found.
        found: String,
    },
    /// The author is not a member of the directory.
    #[error("header.author: {0:?} is not a member of the directory")]
    UnknownAuthor(String),
    /// The signing key is unknown or not valid at the record's time.
    #[error("header.signing_key_id: {0}")]
    SigningKey(#[from] KeyLookupError),
    /// The signature does not verify.
    #[error("envelope.signatures[0]: the Ed25519 signature does not verify over the header")]
    BadSignature,
    /// The body does not match the header's digest or size.
    #[error("body: {0}")]
    BodyMismatch(&'static str),
    /// The body's form does not fit the header (clear vs sealed, recipients).
    #[error("body: {0}")]
    BodyForm(String),
    /// The opener is not among the record's recipients.
    #[error("member {0:?} is not a recipient of this record")]
    NotARecipient(String),
    /// The wrapped key or the body does not decrypt (tampered, or wrong key).
    #[error("{0}: decryption failed (tampered, or not sealed to this key)")]
    Decrypt(&'static str),
    /// The decrypted content does not match the signed commitment: the
    /// author showed this recipient something else than it committed to.
    #[error("body: the opened content does not match the header's commitment")]
    CommitmentMismatch,
    /// A log leaf is malformed.
    #[error("log leaf: {0}")]
    Leaf(crate::leaf::LeafProblem),
    /// A directory change that cannot be accepted.
    #[error("{0}")]
    Change(crate::governance::ChangeProblem),
    /// The recipient's key or a suite is not usable.
    #[error("{0}")]
    Unsupported(String),
}

impl RecordError {
    pub(crate) fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        RecordError::Field {
            field: field.into(),
            detail: detail.into(),
        }
    }
}
