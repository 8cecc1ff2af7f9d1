/// What the SDK reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The directory's history does not replay.
    #[error("directory history, change {at}: {problem}")]
    History {
        /// The change record's ordinal.
        at: usize,
        /// What is wrong.
        problem: String,
    },
    /// Identity, keys, directory or TLS.
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
    /// The record is malformed, does not verify or does not open.
    #[error(transparent)]
    Record(#[from] cairn_record::RecordError),
    /// The service refused or failed.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// A receipt, checkpoint or proof does not verify.
    #[error("receipt: {0}")]
    Receipt(#[from] ReceiptProblem),
    /// Content JSON does not fit the schema.
    #[error("{message}: {detail}")]
    Json {
        /// The message it was read as (`cairn.intake.v1.Incident`).
        message: String,
        /// What does not fit.
        detail: String,
    },
    /// A message name that the v1 API does not have.
    #[error("no message {name}")]
    UnknownMessage {
        /// The name asked for.
        name: String,
    },
    /// A log verification ran and said no.
    #[error("{0}")]
    LogFailed(#[from] crate::audit::LogFailure),
    /// Connection settings that cannot be used.
    #[error("settings: {detail}")]
    Settings {
        /// What is wrong.
        detail: String,
    },
    /// A sharing label that does not exist.
    #[error("label {label:?}: use clear, green, amber, amber+strict or red")]
    Label {
        /// The label given.
        label: String,
    },
    /// Recipients given for a label that shares with everyone.
    #[error("a {label} record has no recipient list")]
    RecipientsNotTaken {
        /// The label given.
        label: String,
    },
    /// No recipients for a label that needs them.
    #[error("a {label} record needs --to <member>...")]
    RecipientsNeeded {
        /// The label given.
        label: String,
    },
    /// A recipient that is not a member.
    #[error("recipient {member:?} is not a member of the directory")]
    UnknownRecipient {
        /// The id given.
        member: String,
    },
    /// A record id given to supersede or retract that is not a UUID.
    #[error("{what} {id:?}: {detail}")]
    RecordId {
        /// `supersedes`, `retracts`, `thread`, `about`, `erase`.
        what: &'static str,
        /// The id given.
        id: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Opened content that does not decode as its kind's message.
    #[error("content: {0}")]
    Content(prost::DecodeError),
    /// The service answered without the record it should hold.
    #[error("{0}: the answer holds no record")]
    NoRecord(&'static str),
    /// A record of another kind than the call needs.
    #[error("record {record_id} is not {expected}")]
    WrongKind {
        /// The record.
        record_id: String,
        /// What it should be (`a baseline`, `an assessment`).
        expected: &'static str,
    },
    /// A sighting or mitigation about neither an incident nor a model.
    #[error("{what} is about an incident (--about) or names a model (content.model)")]
    AboutNothing {
        /// `a sighting`, `a mitigation`.
        what: &'static str,
    },
    /// An assessment that names no baseline.
    #[error("the assessment names no baseline")]
    NoBaseline,
    /// A witness quorum larger than the witnesses given.
    #[error("--quorum {quorum} is more than the {witnesses} witnesses given")]
    Quorum {
        /// The quorum asked for.
        quorum: usize,
        /// How many witnesses were given.
        witnesses: usize,
    },
    /// A log's tiles could not be read (a file, an HTTPS fetch).
    #[error("{at}: {detail}")]
    TileSource {
        /// The file or URL.
        at: String,
        /// What failed.
        detail: String,
    },
    /// A step that needs the audit service, with none given.
    #[error("--server is needed {why}")]
    ServerNeeded {
        /// What for (`to read the entries`).
        why: &'static str,
    },
}

/// How a receipt fails to prove a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptProblem {
    /// Its checkpoint is not signed by the log.
    #[error("checkpoint: {0}")]
    Checkpoint(cairn_tlog::TlogError),
    /// Its inclusion proof does not verify against that checkpoint.
    #[error("inclusion: {0}")]
    Inclusion(cairn_tlog::TlogError),
    /// Its leaf is not a log leaf.
    #[error("leaf: {0}")]
    Leaf(prost::DecodeError),
    /// The leaf's digest is of another envelope.
    #[error("the leaf names another envelope")]
    OtherEnvelope,
    /// The leaf's clear subject names another record or author.
    #[error("the leaf names another record or author")]
    OtherRecord,
    /// The leaf's salted subject does not match this record with its salt.
    #[error("the salted leaf does not name this record")]
    SaltedMismatch,
    /// The leaf has no subject.
    #[error("the leaf names no record")]
    NoSubject,
}
