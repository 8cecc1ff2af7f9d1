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

use cairn_client::ClientError;
use cairn_client::audit::{Head, LogVerifier};

use crate::connect::ConnectArgs;
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the log's current checkpoint (verified if --log-key is given).
    Checkpoint {
        /// The audit service.
        #[arg(long, env = "CAIRN_AUDIT", value_parser = crate::connect::resolve)]
        server: SocketAddr,
        /// The log's verifier key (or a file holding it).
        #[arg(long, env = "CAIRN_LOG_KEY")]
        log_key: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Get and check an inclusion proof.
    Prove {
        /// The audit service.
        #[arg(long, env = "CAIRN_AUDIT", value_parser = crate::connect::resolve)]
        server: SocketAddr,
        /// The log's verifier key (or a file holding it).
        #[arg(long, env = "CAIRN_LOG_KEY")]
        log_key: String,
        /// Leaf index.
        #[arg(long, conflicts_with = "leaf_hash")]
        index: Option<u64>,
        /// Leaf hash, hex.
        #[arg(long)]
        leaf_hash: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Verify the log offline or against a server: the checkpoint's log
    /// signature and witness cosignatures, its consistency with a checkpoint
    /// you trusted before, the inclusion of receipts you hold, and (with
    /// --full) every entry.
    Verify {
        /// The log's verifier key (or a file holding it).
        #[arg(long, env = "CAIRN_LOG_KEY")]
        log_key: String,
        /// A witness verifier key (or file); repeatable.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        /// How many witness cosignatures must verify.
        #[arg(long, default_value_t = 0)]
        quorum: usize,
        /// A checkpoint you trusted before (file).
        #[arg(long)]
        trusted: Option<PathBuf>,
        /// After a successful check, write the new checkpoint to --trusted.
        #[arg(long, requires = "trusted")]
        update_trusted: bool,
        /// The audit service (to fetch the checkpoint and proofs).
        #[arg(long, env = "CAIRN_AUDIT", value_parser = crate::connect::resolve)]
        server: Option<SocketAddr>,
        /// The checkpoint to verify, from a file instead of the server.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A receipt file (JSON: leaf, leafIndex, checkpoint, inclusionProof); repeatable.
        #[arg(long = "receipt")]
        receipts: Vec<PathBuf>,
        /// Download every entry, check that it is a well-formed log leaf and
        /// recompute the checkpoint's root.
        #[arg(long, requires = "server")]
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

fn read_key(text_or_file: &str) -> anyhow::Result<VerifierKey> {
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

pub async fn run(cmd: AuditCommand, json: bool) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::Checkpoint {
            server,
            log_key,
            connect,
        } => show_checkpoint(server, log_key, connect, json).await,
        AuditCommand::Prove {
            server,
            log_key,
            index,
            leaf_hash,
            connect,
        } => prove(server, log_key, index, leaf_hash, connect, json).await,
        AuditCommand::Verify {
            log_key,
            witnesses,
            quorum,
            trusted,
            update_trusted,
            server,
            checkpoint: cp_file,
            receipts,
            full,
            records,
            connect,
        } => {
            let args = VerifyArgs {
                log_key,
                witnesses,
                quorum,
                trusted,
                update_trusted,
                server,
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

/// What `cairn audit verify` checks, from its flags.
struct VerifyArgs {
    log_key: String,
    witnesses: Vec<String>,
    quorum: usize,
    trusted: Option<PathBuf>,
    update_trusted: bool,
    server: Option<SocketAddr>,
    cp_file: Option<PathBuf>,
    receipts: Vec<PathBuf>,
    full: bool,
    records: bool,
    connect: ConnectArgs,
}

/// A failed check as the CLI reports it: exit 1, not bad input.
fn check(context: impl FnOnce() -> String) -> impl FnOnce(ClientError) -> anyhow::Error {
    move |e| match e {
        ClientError::LogFailed(f) => fail(format!("{}{f}", context())),
        other => anyhow::Error::new(other),
    }
}

/// A receipt file as the SDK takes it: a `cairn.common.v1.Receipt` in the
/// protobuf JSON mapping (which leaves out fields at their zero value, such
/// as leaf 0's index and a one-leaf tree's empty proof), or a stored record
/// as `cairn incident get --json` and `cairn eval get --json` print it,
/// whose `receipt` is taken.
fn read_receipt(path: &std::path::Path) -> anyhow::Result<cairn_proto::common::v1::Receipt> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a receipt (not JSON)", path.display()))?;
    let receipt = match value.get("receipt") {
        Some(inner) => inner.to_string(),
        None => text,
    };
    let r: cairn_proto::common::v1::Receipt =
        cairn_client::json::from_json("cairn.common.v1.Receipt", &receipt)
            .with_context(|| format!("{}: not a receipt", path.display()))?;
    if r.leaf.is_empty() || r.checkpoint.is_empty() {
        bail!(
            "{}: not a receipt: it has no {}",
            path.display(),
            if r.leaf.is_empty() {
                "leaf"
            } else {
                "checkpoint"
            }
        );
    }
    Ok(r)
}

/// A progress bar over `len` items (hidden for --json).
fn progress_bar(what: &str, len: u64, json: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}}/{{len}} [{{bar:40}}] {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// `--full` (and `--records`): every entry parsed and hashed to the root;
/// every record it names that the member may read checked against it.
async fn full(
    v: &mut LogVerifier,
    head: &Head,
    a: &VerifyArgs,
    json: bool,
    say: &mut impl FnMut(String),
) -> anyhow::Result<()> {
    let size = head.checkpoint.size;
    let bar = progress_bar("entries", size, json);
    let leaves = v
        .recompute(head, |n| bar.set_position(n))
        .await
        .map_err(check(String::new))?;
    bar.finish_and_clear();
    say(format!(
        "all {size} entries are log leaves and recompute to the checkpoint's root"
    ));
    if !a.records {
        return Ok(());
    }
    let client = a.connect.client()?;
    let bar = progress_bar("records", size, json);
    let seen = v
        .check_records(&leaves, &client, |n| bar.set_position(n))
        .await
        .map_err(check(String::new))?;
    bar.finish_and_clear();
    say(format!(
        "{} records and {} erasures served as logged, signatures verified ({} not readable by {}, {} TLP:RED)",
        seen.records,
        seen.erasures,
        seen.unreadable,
        client.member(),
        seen.salted
    ));
    Ok(())
}

/// `--trusted`: the checkpoint extends the one trusted before (a missing
/// file is an error unless it is about to be written).
async fn trusted(
    v: &mut LogVerifier,
    head: &Head,
    t: &std::path::Path,
    update: bool,
    say: &mut impl FnMut(String),
) -> anyhow::Result<()> {
    if t.exists() {
        let old = std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?;
        let size = v.extends(&old, head).await.map_err(check(String::new))?;
        say(format!(
            "consistent with the trusted checkpoint of size {size}"
        ));
    } else if !update {
        bail!(
            "--trusted {} does not exist (add --update-trusted to start trusting this checkpoint)",
            t.display()
        );
    }
    Ok(())
}

/// `cairn audit verify`: the SDK's [`LogVerifier`] step by step, saying
/// each step that held.
async fn verify(a: VerifyArgs, json: bool) -> anyhow::Result<()> {
    let witness_keys = a
        .witnesses
        .iter()
        .map(|w| read_key(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut v = LogVerifier::new(read_key(&a.log_key)?, witness_keys.clone(), a.quorum)?;
    if let Some(s) = a.server {
        v = v.with_log(client(&a.connect, s).await?);
    }
    let mut steps: Vec<String> = Vec::new();
    let mut say = |s: String| {
        if !json {
            println!("  ok  {s}");
        }
        steps.push(s);
    };
    let text = match &a.cp_file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None if a.server.is_some() => v.latest().await.context("GetCheckpoint")?,
        None => bail!("give --server or --checkpoint"),
    };
    let head = v.head(&text).map_err(check(String::new))?;
    let cp = head.checkpoint.clone();
    say(format!(
        "checkpoint of {} at size {} signed by the log",
        cp.origin, cp.size
    ));
    if !witness_keys.is_empty() {
        let names: Vec<&str> = head.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
        say(format!(
            "{} of {} witnesses cosigned it (quorum {}): {}",
            head.cosigned_by.len(),
            witness_keys.len(),
            a.quorum,
            names.join(", ")
        ));
    }
    if let Some(t) = &a.trusted {
        trusted(&mut v, &head, t, a.update_trusted, &mut say).await?;
    }
    for path in &a.receipts {
        let r = read_receipt(path)?;
        v.includes(&r, &head)
            .await
            .map_err(check(|| format!("receipt {}: ", path.display())))?;
        say(format!(
            "receipt {}: leaf {} included",
            path.display(),
            r.leaf_index
        ));
    }
    if a.full {
        full(&mut v, &head, &a, json, &mut say).await?;
    }
    if a.update_trusted
        && let Some(t) = &a.trusted
    {
        std::fs::write(t, &text).with_context(|| format!("writing {}", t.display()))?;
        say(format!("trusted checkpoint updated in {}", t.display()));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "size": cp.size, "root": B64.encode(cp.root), "cosigned_by": head.cosigned_by, "steps": steps})
        );
    } else {
        println!("the log verifies.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::common::v1::{Receipt, StoredRecord};

    fn written(json: &serde_json::Value) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.json");
        std::fs::write(&path, json.to_string()).unwrap();
        (dir, path)
    }

    #[test]
    fn the_receipt_of_leaf_0_in_a_one_leaf_tree_reads_back_as_printed() {
        let receipt = Receipt {
            leaf: b"leaf bytes".to_vec(),
            leaf_index: 0,
            checkpoint: "log\n1\nroot\n\n— log sig\n".into(),
            inclusion_proof: vec![],
        };
        let printed = cairn_client::json::to_json("cairn.common.v1.Receipt", &receipt).unwrap();
        assert!(
            printed.get("leafIndex").is_none(),
            "zero fields are left out: {printed}"
        );
        let (_dir, path) = written(&printed);
        assert_eq!(read_receipt(&path).unwrap(), receipt);

        let stored = StoredRecord {
            receipt: Some(receipt.clone()),
            ..StoredRecord::default()
        };
        let printed = cairn_client::json::to_json("cairn.common.v1.StoredRecord", &stored).unwrap();
        let (_dir, path) = written(&printed);
        assert_eq!(
            read_receipt(&path).unwrap(),
            receipt,
            "taken from a stored record"
        );
    }

    #[test]
    fn what_is_not_a_receipt_is_refused_naming_the_file() {
        for bad in [
            serde_json::json!({"leaf": "bGVhZg==", "unknownField": 1}),
            serde_json::json!({"leaf": "bGVhZg=="}),
            serde_json::json!({"checkpoint": "log\n1\n"}),
            serde_json::json!([1, 2]),
        ] {
            let (_dir, path) = written(&bad);
            let e = read_receipt(&path).unwrap_err();
            assert!(
                format!("{e:#}").contains("receipt.json: not a receipt"),
                "{bad}: {e:#}"
            );
        }
    }
}
