//! `cairn audit`: read and verify the audit log without trusting its
//! operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::hash::{Hash, leaf_hash};
use cairn_tlog::note::VerifierKey;
use cairn_tlog::proof;
use clap::Subcommand;
use tonic::transport::Channel;

use crate::connect::ConnectArgs;
use crate::exit;

mod receipt;
mod verify;
use verify::{VerifyArgs, verify};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the log's current checkpoint (verified if --log-key is given).
    Checkpoint {
        /// The audit service (default: --audit, the profile's or the
        /// devnet's).
        #[arg(long, value_parser = crate::connect::resolve)]
        server: Option<SocketAddr>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Get and check an inclusion proof.
    Prove {
        /// The audit service (default: --audit, the profile's or the
        /// devnet's).
        #[arg(long, value_parser = crate::connect::resolve)]
        server: Option<SocketAddr>,
        /// Leaf index.
        #[arg(long, conflicts_with = "leaf_hash")]
        index: Option<u64>,
        /// Leaf hash, hex.
        #[arg(long)]
        leaf_hash: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Print a receipt file in the documented JSON schema (every field
    /// present; proto/cairn/common/v1/receipt.schema.json), or with --cose
    /// export it as an RFC 9942 COSE Receipt (COSE_Sign1, RFC9162_SHA256
    /// inclusion proof) that the log signs, verified here before writing.
    Receipt {
        /// The receipt (JSON: a receipt, or a stored record holding one).
        receipt: PathBuf,
        /// Export as a COSE Receipt (CBOR) into --out.
        #[arg(long, requires = "out")]
        cose: bool,
        /// Where to write it (default for JSON: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The audit service (default: --audit, the profile's or the
        /// devnet's).
        #[arg(long, value_parser = crate::connect::resolve)]
        server: Option<SocketAddr>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Verify the log offline or against a server: the checkpoint's log
    /// signature and witness cosignatures, its consistency with a checkpoint
    /// you trusted before, the inclusion of receipts you hold, and (with
    /// --full) every entry.
    Verify {
        /// A witness verifier key (or file); repeatable. Default: the
        /// profile's, or the devnet's witnesses when the log is the
        /// devnet's. (The log key is --log-key, else the profile's or the
        /// devnet's.)
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many witness cosignatures must verify (default: all the
        /// witnesses).
        #[arg(long)]
        quorum: Option<usize>,
        /// A checkpoint you trusted before (file).
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// After a successful check, write the new checkpoint to --trusted.
        #[arg(long, requires = "trusted")]
        update_trusted: bool,
        /// The audit service (to fetch the checkpoint and proofs); default,
        /// without --checkpoint: --audit, the profile's or the devnet's.
        #[arg(long, value_parser = crate::connect::resolve)]
        server: Option<SocketAddr>,
        /// Verify a C2SP tlog-tiles log from its tiles alone (cairn's or
        /// any other): a directory holding `checkpoint` and `tile/…`, or an
        /// https:// prefix (fetched as --member; the server is the
        /// directory's audit service, or checked against --tiles-ca).
        #[arg(long, conflicts_with_all = ["server", "checkpoint", "receipts", "full"])]
        tiles: Option<String>,
        /// With an https:// --tiles: the CA certificates (PEM) its server's
        /// certificate must chain to.
        #[arg(long, requires = "tiles")]
        tiles_ca: Option<PathBuf>,
        /// The checkpoint to verify, from a file instead of the server.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A receipt file (JSON: leaf, leafIndex, checkpoint, inclusionProof); repeatable.
        #[arg(long = "receipt")]
        receipts: Vec<PathBuf>,
        /// Download every entry, check that it is a well-formed log leaf and
        /// recompute the checkpoint's root (needs the audit service).
        #[arg(long)]
        full: bool,
        /// With --full: fetch every record the log names in the clear from
        /// intake and evals (--devnet, or --intake and --evals) as --member,
        /// and check that each is the envelope its leaf logged and that its
        /// signature verifies.
        #[arg(long, requires = "full")]
        records: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub(crate) fn read_key(text_or_file: &str) -> anyhow::Result<VerifierKey> {
    let text = if std::path::Path::new(text_or_file).is_file() {
        std::fs::read_to_string(text_or_file).with_context(|| format!("reading {text_or_file}"))?
    } else {
        text_or_file.to_owned()
    };
    Ok(VerifierKey::parse(text.trim())?)
}

fn fail(msg: impl Into<String>) -> anyhow::Error {
    anyhow!(VerifyFailed(msg.into()))
}

/// A verification that ran and said no (exit 1), as opposed to bad input.
#[derive(Debug)]
pub struct VerifyFailed(pub String);

impl std::fmt::Display for VerifyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerifyFailed {}

async fn client(
    connect: &ConnectArgs,
    server: SocketAddr,
) -> anyhow::Result<AuditLogClient<Channel>> {
    Ok(AuditLogClient::new(connect.channel(server, "audit")?))
}

async fn fetch_checkpoint(c: &mut AuditLogClient<Channel>) -> anyhow::Result<String> {
    Ok(c.get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .context("GetCheckpoint")?
        .into_inner()
        .checkpoint)
}

/// The audit service: `--server`, else `--audit`, the profile's or the
/// devnet's.
fn audit_server(server: Option<SocketAddr>, connect: &ConnectArgs) -> anyhow::Result<SocketAddr> {
    if let Some(s) = server.or(connect.audit_setting()?) {
        return Ok(s);
    }
    connect.devnet_info()?.map(|d| d.audit).ok_or_else(|| {
        anyhow::anyhow!(
            "where is the audit service? give --server <addr> (or --audit, a profile, --devnet)"
        )
    })
}

pub async fn run(cmd: AuditCommand, json: bool) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::Checkpoint { server, connect } => {
            let server = audit_server(server, &connect)?;
            let log_key = connect.log_key_setting()?;
            show_checkpoint(server, log_key, connect, json).await
        }
        AuditCommand::Prove {
            server,
            index,
            leaf_hash,
            connect,
        } => {
            let server = audit_server(server, &connect)?;
            let log_key = connect.log_key_setting()?.ok_or_else(|| {
                anyhow::anyhow!("a proof is checked against the log's key: give --log-key")
            })?;
            prove(server, log_key, index, leaf_hash, connect, json).await
        }
        AuditCommand::Receipt {
            receipt: file,
            cose,
            out,
            server,
            connect,
        } => {
            let args = receipt::ReceiptArgs {
                receipt: file,
                cose,
                out,
                server: server.or(connect.audit_setting()?),
                log_key: connect.log_key_setting()?,
                connect,
            };
            match receipt::run(args, json).await {
                Ok(()) => Ok(exit::OK),
                Err(e) => match e.downcast_ref::<VerifyFailed>() {
                    Some(f) => {
                        eprintln!("verification FAILED: {}", f.0);
                        Ok(exit::CHECK_FAILED)
                    }
                    None => Err(e),
                },
            }
        }
        AuditCommand::Verify {
            witnesses,
            quorum,
            trusted,
            update_trusted,
            server,
            checkpoint: cp_file,
            receipts,
            full,
            records,
            tiles,
            tiles_ca,
            connect,
        } => {
            let (profile_witnesses, profile_quorum) = connect.profile_witnesses()?;
            let args = VerifyArgs {
                tiles,
                tiles_ca,
                log_key: connect.log_key_setting()?,
                witnesses: if witnesses.is_empty() {
                    profile_witnesses
                } else {
                    witnesses
                },
                quorum: quorum.or(profile_quorum),
                trusted,
                update_trusted,
                server: server.or(connect.audit_setting()?),
                cp_file,
                receipts,
                full,
                records,
                connect,
            };
            match verify(args, json).await {
                Ok(()) => Ok(exit::OK),
                Err(e) => match e.downcast_ref::<VerifyFailed>() {
                    Some(f) => {
                        if json {
                            println!("{}", serde_json::json!({"ok": false, "failure": f.0}));
                        } else {
                            eprintln!("verification FAILED: {}", f.0);
                        }
                        Ok(exit::CHECK_FAILED)
                    }
                    None => Err(e),
                },
            }
        }
    }
}

/// `cairn audit checkpoint`.
async fn show_checkpoint(
    server: SocketAddr,
    log_key: Option<String>,
    connect: ConnectArgs,
    json: bool,
) -> anyhow::Result<u8> {
    let mut c = client(&connect, server).await?;
    let text = fetch_checkpoint(&mut c).await?;
    let verified = log_key
        .as_deref()
        .map(read_key)
        .transpose()?
        .map(|k| checkpoint::open(&text, &k))
        .transpose()?;
    if json {
        let cp = match &verified {
            Some(v) => Some(v.checkpoint.clone()),
            None => cairn_tlog::note::parse(&text)
                .ok()
                .and_then(|n| Checkpoint::parse_body(&n.text).ok()),
        };
        println!(
            "{}",
            serde_json::json!({
                "checkpoint": text,
                "verified": verified.is_some(),
                "origin": cp.as_ref().map(|c| c.origin.clone()),
                "size": cp.as_ref().map(|c| c.size),
                "root": cp.as_ref().map(|c| B64.encode(c.root)),
            })
        );
    } else {
        print!("{text}");
        if verified.is_some() {
            eprintln!("log signature verified");
        }
    }
    Ok(exit::OK)
}

/// `cairn audit prove`.
async fn prove(
    server: SocketAddr,
    log_key: String,
    index: Option<u64>,
    leaf_hash: Option<String>,
    connect: ConnectArgs,
    json: bool,
) -> anyhow::Result<u8> {
    let key = read_key(&log_key)?;
    let mut c = client(&connect, server).await?;
    let head = checkpoint::open(&fetch_checkpoint(&mut c).await?, &key)?.checkpoint;
    let leaf = match (index, &leaf_hash) {
        (Some(i), _) => pb::get_inclusion_proof_request::Leaf::LeafIndex(i),
        (None, Some(h)) => pb::get_inclusion_proof_request::Leaf::LeafHash(
            hex::decode(h).context("--leaf-hash is not hex")?,
        ),
        (None, None) => bail!("give --index or --leaf-hash"),
    };
    let p = c
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf: Some(leaf),
            tree_size: head.size,
        })
        .await
        .context("GetInclusionProof")?
        .into_inner();
    let hash: Hash = match &leaf_hash {
        Some(h) => hex::decode(h)?
            .as_slice()
            .try_into()
            .map_err(|_| anyhow!("--leaf-hash must be 32 bytes"))?,
        None => {
            let e = c
                .get_entries(pb::GetEntriesRequest {
                    start: p.leaf_index,
                    end: p.leaf_index + 1,
                    page_size: 1,
                })
                .await?
                .into_inner();
            leaf_hash_of(
                e.entries
                    .first()
                    .map(|e| e.leaf.as_slice())
                    .ok_or_else(|| anyhow!("entry missing"))?,
            )
        }
    };
    proof::verify_inclusion(p.leaf_index, head.size, &hash, &p.proof, &head.root)
        .map_err(|e| fail(format!("inclusion proof does not verify: {e}")))?;
    let proof_b64: Vec<String> = p.proof.iter().map(|h| B64.encode(h)).collect();
    if json {
        println!(
            "{}",
            serde_json::json!({"leaf_index": p.leaf_index, "tree_size": head.size, "root": B64.encode(head.root), "proof": proof_b64, "verified": true})
        );
    } else {
        println!(
            "leaf {} is in the tree of size {} (root {}):",
            p.leaf_index,
            head.size,
            B64.encode(head.root)
        );
        for h in proof_b64 {
            println!("  {h}");
        }
    }
    Ok(exit::OK)
}

fn leaf_hash_of(leaf: &[u8]) -> Hash {
    leaf_hash(leaf)
}
