//! Why a directory change record is refused, one variant per reason;
//! each service's status table maps them to gRPC codes.

/// Longest summary of a change, in characters.
pub const MAX_SUMMARY_CHARS: usize = 1000;

/// Why a directory change record cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeProblem {
    /// A record of another kind.
    #[error("header.kind: a directory change is a RECORD_KIND_DIRECTORY_CHANGE record")]
    Kind,
    /// Not TLP:CLEAR: everybody, auditors included, must read the history.
    #[error(
        "header.label: a directory change is TLP:CLEAR, so that every member and auditor can replay it"
    )]
    NotClear,
    /// A header field that a directory change does not carry.
    #[error("header.{field}: a directory change does not carry it")]
    Field {
        /// The field.
        field: &'static str,
    },
    /// The signer does not hold the governance role in the directory in force.
    #[error("{member} does not hold the governance role in directory version {version}")]
    NotGovernance {
        /// The signer.
        member: String,
        /// The version in force.
        version: u64,
    },
    /// The network was not founded by a genesis, so no quorum rule exists.
    #[error(
        "this network's directory was not founded by a signed genesis: it has no quorum rule and cannot change through the log"
    )]
    NoGenesis,
    /// Neither a proposal nor an approval, or both.
    #[error("content: give either directory (a proposal) or approves (an approval)")]
    Shape,
    /// A proposal or approval against a directory no longer in force.
    #[error(
        "proposed against directory {against}, but version {version} ({current}) is in force: propose again against it"
    )]
    Stale {
        /// Hex digest the record names.
        against: String,
        /// The version in force.
        version: u64,
        /// Its hex digest.
        current: String,
    },
    /// An approval of a proposal the log does not hold.
    #[error("approves: no proposal {proposal} in this network's history")]
    UnknownProposal {
        /// The id named.
        proposal: String,
    },
    /// An approval of a proposal that already took effect.
    #[error("approves: proposal {proposal} already took effect (version {version})")]
    AlreadyEffective {
        /// The proposal.
        proposal: String,
        /// The version it made.
        version: u64,
    },
    /// A second approval by the same member.
    #[error("{member} has already signed proposal {proposal}")]
    AlreadyApproved {
        /// The member.
        member: String,
        /// The proposal.
        proposal: String,
    },
    /// An approval naming another document than the proposal's.
    #[error("proposed_digest: is not the SHA-256 of proposal {proposal}'s directory")]
    DigestMismatch {
        /// The proposal.
        proposal: String,
    },
    /// The proposed directory is not a valid directory document.
    #[error("directory: {detail}")]
    BadDirectory {
        /// What is wrong, naming the field.
        detail: String,
    },
    /// The proposed directory is the one in force.
    #[error("directory: the same document as version {version}: nothing would change")]
    NoChange {
        /// The version in force.
        version: u64,
    },
    /// A quorum rule the new directory's governance members cannot meet.
    #[error("quorum: {quorum} of {governance} governance members; give 1 to {governance}")]
    Quorum {
        /// The quorum asked for.
        quorum: u32,
        /// Governance members in the new directory.
        governance: usize,
    },
    /// A change a signing key may not undergo (rebinding an id, moving a
    /// window into the past, withdrawing or postdating a revocation).
    #[error("directory: signing key {key_id:?} of member {member} {detail}")]
    Key {
        /// The member.
        member: String,
        /// The key id.
        key_id: String,
        /// What the change does to it, and what to do instead.
        detail: String,
    },
    /// A revoked TLS certificate taken off the list while the member's CA
    /// that issued it stays in force.
    #[error(
        "directory: certificate {serial} of member {member} is revoked; a revocation cannot be withdrawn while the CA that issued it is in force (replace the CA instead)"
    )]
    Certificate {
        /// The member.
        member: String,
        /// The serial ([`cairn_identity::directory::serial_hex`]).
        serial: String,
    },
    /// A summary too long.
    #[error("summary: {chars} characters, at most {MAX_SUMMARY_CHARS}")]
    Summary {
        /// Its length.
        chars: usize,
    },
    /// A record id accepted before with other bytes.
    #[error("record {record_id} was accepted before with other content")]
    Conflict {
        /// The record id.
        record_id: String,
    },
}
