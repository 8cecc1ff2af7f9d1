//! The record services' error contract (DESIGN.md section 5) in one table.
//!
//! Every refusal is a [`ServiceError`] variant whose fields say which
//! record, member, field or limit it is about; its `Display` is the message
//! a person reads, and [`ServiceError::code`] is the one table mapping each
//! variant to its gRPC code. Handlers never build a `Status` by hand: they
//! return a `ServiceError` and `From<ServiceError> for Status` does the rest.

use cairn_identity::Role;
use cairn_record::RecordError;
use cairn_record::pb::{RecordKind, SharingLabel};
use cairn_store::StoreError;
use tonic::{Code, Status};

/// Why a request to a record service was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The connection carries no authenticated peer (never the case behind
    /// the mTLS listener; a misconfigured embedding).
    #[error("no authenticated peer on this connection")]
    NoPeer,
    /// The peer is a service, not a member.
    #[error("{peer} is not a member; records are submitted and read by members")]
    NotAMember {
        /// The peer's identity.
        peer: String,
    },
    /// The peer's member is not in the directory in force.
    #[error("member {member} is not in the directory")]
    UnknownMember {
        /// The member id.
        member: String,
    },
    /// The member holds none of the roles the service serves.
    #[error("member {member} holds none of the roles this service needs ({roles:?})")]
    NoServiceRole {
        /// The member id.
        member: String,
        /// Any one of these would do.
        roles: Vec<Role>,
    },
    /// The member may not submit this kind of record.
    #[error("member {member} needs one of the roles {roles:?} to submit {} records", kind.as_str_name())]
    MissingRole {
        /// The member id.
        member: String,
        /// The record kind.
        kind: RecordKind,
        /// Any one of these would do.
        roles: Vec<Role>,
    },
    /// A record signed by one member arrived on another's connection.
    #[error(
        "record signed by {signer:?} arrived on member {member}'s connection; members submit their own records"
    )]
    SignerNotPeer {
        /// The header's author.
        signer: String,
        /// The connection's member.
        member: String,
    },
    /// An erasure order by one member arrived on another's connection.
    #[error("an erasure order by {orderer:?} arrived on member {member}'s connection")]
    OrdererNotPeer {
        /// The order's `ordered_by`.
        orderer: String,
        /// The connection's member.
        member: String,
    },
    /// Only a record's author may supersede or retract it.
    #[error("record {record} is {author}'s; only its author may supersede or retract it")]
    NotAuthor {
        /// The target record.
        record: String,
        /// Its author.
        author: String,
    },
    /// A follow-up report added to a thread another member started.
    #[error("thread {thread} is {author}'s; a member adds reports only to its own threads")]
    NotThreadAuthor {
        /// The thread's first report.
        thread: String,
        /// Its author.
        author: String,
    },
    /// Only the author or a governance member may erase a record.
    #[error(
        "only the author ({author}) or a governance member that may read it may erase record {record}"
    )]
    MayNotErase {
        /// The record.
        record: String,
        /// Its author.
        author: String,
    },
    /// The reader may see the header (AMBER) but not the body.
    #[error("record {record} is {} and {member} is not among its recipients", label.as_str_name())]
    NotRecipient {
        /// The record.
        record: String,
        /// Its label.
        label: SharingLabel,
        /// The reader.
        member: String,
    },
    /// The signing key is not valid at the time the service receives the
    /// record or order (a key whose window has ended signs nothing new,
    /// whatever time the record claims).
    #[error("{0} (now: a key whose validity window has ended signs nothing new)")]
    KeyNotCurrent(cairn_identity::directory::KeyLookupError),
    /// An erasure order dated beyond the allowed clock skew.
    #[error("order.ordered_at: is in the future")]
    OrderedInFuture,
    /// An erasure order dated before the window the service accepts.
    #[error("order.ordered_at: is older than {max_days} days")]
    OrderedTooOld {
        /// The limit, in days.
        max_days: i64,
    },
    /// The erasure order's signing key is not valid for its orderer.
    #[error("{0}")]
    OrderKey(cairn_identity::directory::KeyLookupError),
    /// The erasure order's signature does not verify.
    #[error("order: the signature does not verify")]
    OrderSignature,
    /// A record-format problem (the field is named inside).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A required field is absent.
    #[error("{field}: is required")]
    Missing {
        /// The field's path.
        field: &'static str,
    },
    /// A field holds a value the service cannot use.
    #[error("{field}: {problem}")]
    BadField {
        /// The field's path.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The service does not take this kind of record.
    #[error("header.kind: {} records are not accepted by cairn-{service}", kind.as_str_name())]
    KindNotAccepted {
        /// The record kind.
        kind: RecordKind,
        /// The service.
        service: &'static str,
    },
    /// The header's created-at is beyond the allowed clock skew.
    #[error("header.created_at: is in the future")]
    CreatedInFuture,
    /// The header's created-at is older than the service accepts.
    #[error("header.created_at: is older than {max_days} days")]
    CreatedTooOld {
        /// The limit, in days.
        max_days: i64,
    },
    /// The call does not match what the header asks for (a publication
    /// that supersedes, a retraction without `retracts`, …).
    #[error("{0}")]
    WrongCall(crate::policy::CallMismatch),
    /// The header's disclosed index does not match the TLP:CLEAR content.
    #[error("header.index: does not match the content")]
    IndexMismatch,
    /// A recipient is not a member.
    #[error("header.recipients: {recipient:?} is not a member of the directory")]
    UnknownRecipient {
        /// The recipient id.
        recipient: String,
    },
    /// A TLP:GREEN record is not sealed to exactly every member.
    #[error(
        "header.recipients: a TLP:GREEN record is sealed to every member of the network ({})",
        members.join(", ")
    )]
    GreenRecipients {
        /// Every member of the network.
        members: Vec<String>,
    },
    /// A wrapped content key is for a key the directory does not list.
    #[error(
        "body.sealed.wrapped_keys[{index}]: sealed to key {key_id:?} of {recipient}, but the directory lists {:?}",
        listed.as_deref().unwrap_or("none")
    )]
    WrongSealingKey {
        /// Position in `wrapped_keys`.
        index: usize,
        /// The recipient.
        recipient: String,
        /// The key id it was wrapped to.
        key_id: String,
        /// The key id the directory lists (none: not a member).
        listed: Option<String>,
    },
    /// An author acknowledging its own report.
    #[error(
        "header.acknowledges: record {record} is your own report; its recipients acknowledge it"
    )]
    AckOwnReport {
        /// The report.
        record: String,
    },
    /// An acknowledgement the report's author would not see.
    #[error("header.recipients: an acknowledgement is shared with the report's author, {author}")]
    AckNotToAuthor {
        /// The report's author.
        author: String,
    },
    /// An acknowledgement, sighting or mitigation of a RED record that
    /// reaches beyond its recipients (its header names the record).
    #[error(
        "header.label: {what} of TLP:RED record {record} is TLP:RED, to that record's recipients only"
    )]
    BeyondRed {
        /// `an acknowledgement`, `a sighting or mitigation`.
        what: &'static str,
        /// The RED record.
        record: String,
    },
    /// A correction or retraction of a RED record that is not RED (its
    /// header names the record).
    #[error("header.label: {what} of TLP:RED record {record} is TLP:RED too")]
    RedChangeNotRed {
        /// `a correction`, `a retraction`.
        what: &'static str,
        /// The RED record.
        record: String,
    },
    /// `header.thread` names a follow-up report, not a thread's first.
    #[error(
        "header.thread: record {thread} is a follow-up report; name its thread's first report {first}"
    )]
    ThreadNotFirst {
        /// The record named.
        thread: String,
        /// The first report of its thread.
        first: String,
    },
    /// A correction that moves a report to another thread (or out of one).
    #[error(
        "header.thread: a correction stays in the thread of the report it corrects ({record} is in thread {thread})"
    )]
    ThreadChanged {
        /// The corrected report.
        record: String,
        /// Its thread (`none`: it is a first report or not in one).
        thread: String,
    },
    /// A report added to a thread whose first report is retracted.
    #[error("thread {thread}'s first report is retracted; the thread takes no more reports")]
    ThreadRetracted {
        /// The thread's first report.
        thread: String,
    },
    /// A supersede or retract names a record of another kind.
    #[error("header.kind: record {record} is a {} record", kind.as_str_name())]
    TargetKind {
        /// The target record.
        record: String,
        /// Its kind.
        kind: RecordKind,
    },
    /// A page size beyond the limit.
    #[error("page_size: at most {max}")]
    PageSize {
        /// The largest page.
        max: u32,
    },
    /// A page token or watch cursor this service did not issue to the
    /// caller.
    #[error(
        "{field}: not a token this service issued to you (tampered, truncated or from another member)"
    )]
    BadToken {
        /// `page_token` or `cursor`.
        field: &'static str,
    },
    /// A record the caller may not know of, or that does not exist.
    #[error("no record {record} here")]
    NotFound {
        /// The record id.
        record: String,
    },
    /// A supersede or retract names a record that does not exist.
    #[error("record {record} named by the header does not exist here")]
    TargetNotFound {
        /// The target record id.
        record: String,
    },
    /// A different record under a used id.
    #[error("record id {record} is already used by another record")]
    IdTaken {
        /// The record id.
        record: String,
    },
    /// The target of a supersede or retract is no longer active.
    #[error("record {record} is no longer active (already superseded, retracted or erased)")]
    Inactive {
        /// The target record id.
        record: String,
    },
    /// A member's submissions exceed its rate.
    #[error(
        "rate limit: member {member} is submitting faster than {rate}/s; retry in {retry_ms} ms"
    )]
    RateLimited {
        /// The member id.
        member: String,
        /// The sustained rate allowed.
        rate: f64,
        /// When a token is free again.
        retry_ms: u128,
    },
    /// A part of the request is larger than the service takes.
    #[error("{field} is {size} bytes, at most {limit}")]
    TooLarge {
        /// The field's path.
        field: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// What was read is stored but its commit has not returned in time.
    #[error("{what} is stored but not yet durable (the store is not syncing); retry")]
    NotDurable {
        /// What was read.
        what: String,
    },
    /// A change kept losing to concurrent changes of the same record.
    #[error("the record kept conflicting with concurrent changes; retry")]
    Conflicting,
    /// The audit log did not answer (for a latest proof).
    #[error("audit log: {message}")]
    AuditUnavailable {
        /// The audit service's status message.
        message: String,
    },
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Something stored cannot be read back: a bug or corruption.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// How it failed.
        detail: String,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A cryptographic primitive failed where it cannot on valid input
    /// (a key derivation or a seal of our own).
    #[error("{what} failed")]
    Crypto {
        /// Which operation.
        what: &'static str,
    },
    /// Registering the service's metrics failed.
    #[error("metrics: {0}")]
    Metrics(String),
}

impl ServiceError {
    /// The one table: each error's gRPC code.
    pub fn code(&self) -> Code {
        use ServiceError as E;
        match self {
            E::NoPeer => Code::Unauthenticated,
            E::NotAMember { .. }
            | E::UnknownMember { .. }
            | E::NoServiceRole { .. }
            | E::MissingRole { .. }
            | E::SignerNotPeer { .. }
            | E::OrdererNotPeer { .. }
            | E::NotAuthor { .. }
            | E::NotThreadAuthor { .. }
            | E::MayNotErase { .. }
            | E::NotRecipient { .. }
            | E::OrderKey(_)
            | E::KeyNotCurrent(_)
            | E::OrderSignature => Code::PermissionDenied,
            E::Record(
                RecordError::UnknownAuthor(_)
                | RecordError::SigningKey(_)
                | RecordError::BadSignature,
            ) => Code::PermissionDenied,
            E::Record(_)
            | E::Missing { .. }
            | E::BadField { .. }
            | E::KindNotAccepted { .. }
            | E::CreatedInFuture
            | E::CreatedTooOld { .. }
            | E::OrderedInFuture
            | E::OrderedTooOld { .. }
            | E::WrongCall(_)
            | E::IndexMismatch
            | E::UnknownRecipient { .. }
            | E::GreenRecipients { .. }
            | E::WrongSealingKey { .. }
            | E::TargetKind { .. }
            | E::ThreadNotFirst { .. }
            | E::ThreadChanged { .. }
            | E::AckOwnReport { .. }
            | E::AckNotToAuthor { .. }
            | E::BeyondRed { .. }
            | E::RedChangeNotRed { .. }
            | E::PageSize { .. }
            | E::BadToken { .. } => Code::InvalidArgument,
            E::NotFound { .. } | E::TargetNotFound { .. } => Code::NotFound,
            E::IdTaken { .. } => Code::AlreadyExists,
            E::Inactive { .. } | E::ThreadRetracted { .. } => Code::FailedPrecondition,
            E::RateLimited { .. } | E::TooLarge { .. } => Code::ResourceExhausted,
            E::Store(StoreError::ValueTooLarge { .. }) => Code::ResourceExhausted,
            E::NotDurable { .. } | E::Conflicting | E::AuditUnavailable { .. } | E::Store(_) => {
                Code::Unavailable
            }
            E::Corrupt { .. } | E::Random | E::Crypto { .. } | E::Metrics(_) => Code::Internal,
        }
    }

    /// The gRPC status for this error: its code and its message.
    pub fn status(&self) -> Status {
        let code = self.code();
        if code == Code::Internal {
            tracing::error!(error = %self, "internal error");
        }
        let message = match self {
            // Says what the limit is about, not only the store's words.
            ServiceError::Store(e @ StoreError::ValueTooLarge { .. }) => {
                format!("record too large to store: {e}")
            }
            other => other.to_string(),
        };
        Status::new(code, message)
    }

    /// A stored value that does not decode.
    pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> Self {
        ServiceError::Corrupt {
            what,
            detail: e.to_string(),
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        e.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticity_problems_are_permission_denied_and_format_problems_invalid() {
        assert_eq!(
            ServiceError::Record(RecordError::BadSignature).code(),
            Code::PermissionDenied
        );
        let malformed = ServiceError::Record(RecordError::Field {
            field: "header.kind".into(),
            detail: "unknown".into(),
        });
        assert_eq!(malformed.code(), Code::InvalidArgument);
        assert!(malformed.status().message().contains("header.kind"));
    }

    #[test]
    fn an_oversized_value_is_resource_exhausted_and_says_so() {
        let e = ServiceError::Store(StoreError::ValueTooLarge { len: 10, limit: 5 });
        let s = e.status();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(
            s.message().starts_with("record too large to store"),
            "{}",
            s.message()
        );
        assert_eq!(
            ServiceError::Store(StoreError::Backend("down".into())).code(),
            Code::Unavailable
        );
    }

    #[test]
    fn messages_name_what_they_are_about() {
        let e = ServiceError::RateLimited {
            member: "uk-aisi".into(),
            rate: 10.0,
            retry_ms: 7,
        };
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(
            e.to_string(),
            "rate limit: member uk-aisi is submitting faster than 10/s; retry in 7 ms"
        );
        let e = ServiceError::NotRecipient {
            record: "r1".into(),
            label: SharingLabel::TlpAmber,
            member: "jp-aisi".into(),
        };
        assert_eq!(e.code(), Code::PermissionDenied);
        assert_eq!(
            e.to_string(),
            "record r1 is SHARING_LABEL_TLP_AMBER and jp-aisi is not among its recipients"
        );
    }
}
