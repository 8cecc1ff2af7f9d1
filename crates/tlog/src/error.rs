/// Why a proof, note, checkpoint, key or tile path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// A proof does not verify, or its arguments are inconsistent.
    #[error("proof: {0}")]
    Proof(String),
    /// A signed note is malformed.
    #[error("note: {0}")]
    Note(String),
    /// A checkpoint body is malformed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A verifier or signer key string is malformed.
    #[error("key: {0}")]
    Key(String),
    /// A signature does not verify.
    #[error("signature by {name} does not verify")]
    BadSignature {
        /// The key name.
        name: String,
    },
    /// A tile path is malformed.
    #[error("tile path: {0}")]
    TilePath(String),
    /// A COSE Receipt is malformed or does not verify.
    #[error("COSE receipt: {0}")]
    Cose(String),
    /// A C2SP tlog-witness request body is malformed.
    #[error("witness request: {0}")]
    WitnessRequest(String),
}

pub(crate) fn proof_err(msg: impl Into<String>) -> TlogError {
    TlogError::Proof(msg.into())
}
