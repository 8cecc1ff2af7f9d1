//! Everything the audit service refuses or fails at, typed: the API's
//! refusals, what can stop it from starting, and a witness's answers while
//! gathering cosignatures. [`crate::status`] is the one table from these
//! to gRPC statuses.

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_log::LogError;
use cairn_log::witness::WitnessError;
use cairn_tlog::TlogError;

/// Why the audit service refused a request, could not start, or could not
/// get a checkpoint cosigned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The connection carries no authenticated peer.
    #[error("no authenticated peer on this connection")]
    NoPeer,
    /// A member (or another non-service) tried to append.
    #[error("only network services holding the append right may append; {peer} may not")]
    NotAService {
        /// The peer's identity.
        peer: String,
    },
    /// A service without the append right tried to append.
    #[error("service {service} does not hold the append right")]
    NoAppendRight {
        /// The service's name.
        service: String,
    },
    /// An AppendBatch with no leaves or too many.
    #[error("leaves: {count} leaves, give 1 to {max}")]
    BatchSize {
        /// Leaves given.
        count: usize,
        /// The most accepted.
        max: usize,
    },
    /// An appended leaf that is not a well-formed `LogLeaf`.
    #[error("leaves[{index}]: {problem}")]
    BadLeaf {
        /// Its position in the request (0 for Append).
        index: usize,
        /// What is wrong with it.
        problem: cairn_record::RecordError,
    },
    /// An appended leaf naming another service than the one appending it.
    #[error(
        "leaves[{index}]: names service {named:?} as accepting it, but service {appender} appended it"
    )]
    OtherService {
        /// Its position in the request (0 for Append).
        index: usize,
        /// The service the leaf names.
        named: String,
        /// The service that appended it.
        appender: String,
    },
    /// A witness has cosigned a larger checkpoint than this log holds: the
    /// log was started on an older copy of its store.
    #[error(
        "sequencing stopped: this log holds {size} leaves, but witness {witness} has cosigned its checkpoint of size {held}, so it was started on an older copy of its store (a restored backup?) and appending would sign a second history at sizes it has already published; restore the newest copy of the store (or a backup taken at size {held} or later) and restart"
    )]
    BehindWitness {
        /// The witness.
        witness: String,
        /// The size the witness cosigned.
        held: u64,
        /// This log's size.
        size: u64,
    },
    /// Witnesses have not yet confirmed that this log's state is not older
    /// than what they cosigned.
    #[error("not sequencing yet: waiting for witnesses {} to confirm that this log's state is not older than what they cosigned; retry", waiting_for.join(", "))]
    WitnessesUnconfirmed {
        /// The witnesses not yet heard from.
        waiting_for: Vec<String>,
    },
    /// A restore from a path that holds no backup.
    #[error("{}: no backup there (a directory written by a backup)", path.display())]
    NoBackup {
        /// The path given.
        path: PathBuf,
    },
    /// GetInclusionProof without a leaf.
    #[error("leaf: give leaf_index or leaf_hash")]
    NoLeaf,
    /// A page larger than the service serves.
    #[error("page_size: at most {max}")]
    PageSize {
        /// The largest page.
        max: u32,
    },
    /// A Governance call without its record.
    #[error("record: is required")]
    NoRecord,
    /// A directory change signed by another member than the one connected.
    #[error(
        "record signed by {signer:?} arrived on {peer}'s connection; members submit their own directory changes"
    )]
    SignerNotPeer {
        /// The record's signer.
        signer: String,
        /// The connection's identity.
        peer: String,
    },
    /// A directory change record that cannot be accepted (its signature,
    /// its form, or its place in the history).
    #[error("directory change: {0}")]
    Change(cairn_record::RecordError),
    /// A directory change dated too far from the time the audit service
    /// receives it (`cairn_record::clock`).
    #[error("directory change: header.created_at: {}", match skew {
        cairn_record::clock::Skew::InFuture => "is in the future".to_owned(),
        cairn_record::clock::Skew::TooOld { max_days } => format!("is older than {max_days} days"),
    })]
    ChangeClock {
        /// How it is off.
        skew: cairn_record::clock::Skew,
    },
    /// A directory change signed by a key that is not valid now (a key
    /// whose window has ended signs no change, however it is dated).
    #[error("directory change: {0} (now: a key whose validity window has ended signs nothing new)")]
    ChangeKeyNotCurrent(cairn_identity::directory::KeyLookupError),
    /// A stored directory change that no longer replays: the store was
    /// altered.
    #[error("directory history, change {ordinal}: {problem}")]
    GovernanceCorrupt {
        /// Its ordinal.
        ordinal: u64,
        /// What is wrong.
        problem: String,
    },
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The witness refused a checkpoint.
    #[error(transparent)]
    Witness(#[from] WitnessError),
    /// Identity, keys or directory (at start).
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
    /// The store (at start, or releasing the lease).
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// Metrics (at start).
    #[error(transparent)]
    Telemetry(#[from] cairn_telemetry::TelemetryError),
    /// A signing key that is not a usable note key.
    #[error("{what} {}: {source}", path.display())]
    NoteKey {
        /// `log key` or `witness key`.
        what: &'static str,
        /// The key file.
        path: PathBuf,
        /// Why it is not usable.
        source: TlogError,
    },
    /// A verifier key, note or cosignature that does not parse or verify.
    #[error(transparent)]
    Tlog(#[from] TlogError),
    /// A `--cosigner` flag that is not `<addr or https URL>,<verifier
    /// key>[,<service> or ca=<file>]`.
    #[error("witness {text:?}: {problem}")]
    CosignerSpec {
        /// The flag's value.
        text: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Reflection could not be set up (a descriptor bug).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server task ended with an error.
    #[error("server: {0}")]
    Server(String),
    /// A witness answered with an error.
    #[error("witness: {code:?}: {message}")]
    WitnessRefused {
        /// Its status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// A C2SP witness reached by URL answered with an HTTP error.
    #[error("witness {url}: HTTP {status}: {message}")]
    WitnessHttp {
        /// The witness's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body of its answer (its reason).
        message: String,
    },
    /// A C2SP witness reached by URL could not be reached.
    #[error("witness {url}: {detail}")]
    WitnessUnreachable {
        /// The witness's URL.
        url: String,
        /// What failed (connect, TLS, HTTP).
        detail: String,
    },
    /// A witness answered without a cosignature.
    #[error("witness: no cosignature returned")]
    NoCosignature,
    /// A witness kept reporting another held size.
    #[error("witness: it kept changing its held size")]
    WitnessSizeChanging,
}
