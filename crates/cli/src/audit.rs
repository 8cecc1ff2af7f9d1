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
use serde::Deserialize as _;
use tonic::transport::Channel;

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
        /// Download every entry and recompute the checkpoint's root.
        #[arg(long, requires = "server")]
        full: bool,
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

/// A receipt as JSON, in the protobuf JSON mapping of
/// `cairn.common.v1.Receipt` (snake_case accepted too).
#[derive(serde::Deserialize, serde::Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptJson {
    /// Base64 leaf.
    pub leaf: String,
    /// Leaf index (number or decimal string).
    #[serde(alias = "leaf_index", deserialize_with = "u64_from_any")]
    pub leaf_index: u64,
    /// Checkpoint note.
    pub checkpoint: String,
    /// Base64 hashes.
    #[serde(alias = "inclusion_proof", default)]
    pub inclusion_proof: Vec<String>,
}

fn u64_from_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
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
        } => {
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
        AuditCommand::Prove {
            server,
            log_key,
            index,
            leaf_hash,
            connect,
        } => {
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
            connect,
        } => {
            match verify(
                log_key,
                witnesses,
                quorum,
                trusted,
                update_trusted,
                server,
                cp_file,
                receipts,
                full,
                connect,
                json,
            )
            .await
            {
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

fn leaf_hash_of(leaf: &[u8]) -> Hash {
    leaf_hash(leaf)
}

#[allow(clippy::too_many_arguments)]
async fn verify(
    log_key: String,
    witnesses: Vec<String>,
    quorum: usize,
    trusted: Option<PathBuf>,
    update_trusted: bool,
    server: Option<SocketAddr>,
    cp_file: Option<PathBuf>,
    receipts: Vec<PathBuf>,
    full: bool,
    connect: ConnectArgs,
    json: bool,
) -> anyhow::Result<()> {
    let key = read_key(&log_key)?;
    let witness_keys = witnesses
        .iter()
        .map(|w| read_key(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if quorum > witness_keys.len() {
        bail!(
            "--quorum {quorum} is more than the {} witnesses given",
            witness_keys.len()
        );
    }
    let mut steps: Vec<String> = Vec::new();
    let mut say = |s: String| {
        if !json {
            println!("  ok  {s}");
        }
        steps.push(s);
    };
    let mut c = match server {
        Some(s) => Some(client(&connect, s).await?),
        None => None,
    };
    let text = match (&cp_file, &mut c) {
        (Some(f), _) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, Some(c)) => fetch_checkpoint(c).await?,
        (None, None) => bail!("give --server or --checkpoint"),
    };
    let head = checkpoint::verify_witnessed(&text, &key, &witness_keys, quorum)
        .map_err(|e| fail(format!("checkpoint: {e}")))?;
    let cp = head.checkpoint.clone();
    say(format!(
        "checkpoint of {} at size {} signed by the log",
        cp.origin, cp.size
    ));
    if !witness_keys.is_empty() {
        say(format!(
            "{} of {} witnesses cosigned it (quorum {quorum}): {}",
            head.cosigned_by.len(),
            witness_keys.len(),
            head.cosigned_by
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    if let Some(t) = &trusted {
        if t.exists() {
            let old_text =
                std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?;
            let old = checkpoint::open(&old_text, &key)
                .map_err(|e| fail(format!("trusted checkpoint {}: {e}", t.display())))?
                .checkpoint;
            if old.size > cp.size {
                return Err(fail(format!(
                    "the log rewound: trusted size {} is larger than the new size {}",
                    old.size, cp.size
                )));
            }
            if old.size == cp.size {
                if old.root != cp.root {
                    return Err(fail(format!(
                        "fork: two checkpoints of size {} with different roots",
                        cp.size
                    )));
                }
            } else if old.size > 0 {
                let c = c
                    .as_mut()
                    .ok_or_else(|| anyhow!("--server is needed to fetch a consistency proof"))?;
                let p = c
                    .get_consistency_proof(pb::GetConsistencyProofRequest {
                        from_size: old.size,
                        to_size: cp.size,
                    })
                    .await
                    .context("GetConsistencyProof")?
                    .into_inner();
                proof::verify_consistency(old.size, cp.size, &p.proof, &old.root, &cp.root)
                    .map_err(|e| {
                        fail(format!(
                            "not consistent with the trusted checkpoint of size {}: {e}",
                            old.size
                        ))
                    })?;
            }
            say(format!(
                "consistent with the trusted checkpoint of size {}",
                old.size
            ));
        } else if !update_trusted {
            bail!(
                "--trusted {} does not exist (add --update-trusted to start trusting this checkpoint)",
                t.display()
            );
        }
    }

    for (i, path) in receipts.iter().enumerate() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let r: ReceiptJson = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a receipt", path.display()))?;
        let leaf = B64
            .decode(&r.leaf)
            .with_context(|| format!("{}: leaf is not base64", path.display()))?;
        let rp: Vec<Vec<u8>> = r
            .inclusion_proof
            .iter()
            .map(|h| B64.decode(h))
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: proof is not base64", path.display()))?;
        let rc = checkpoint::open(&r.checkpoint, &key)
            .map_err(|e| fail(format!("receipt {}: {e}", path.display())))?
            .checkpoint;
        proof::verify_inclusion(r.leaf_index, rc.size, &leaf_hash(&leaf), &rp, &rc.root).map_err(
            |e| {
                fail(format!(
                    "receipt {}: leaf {} is not in its checkpoint: {e}",
                    path.display(),
                    r.leaf_index
                ))
            },
        )?;
        if rc.size > cp.size {
            return Err(fail(format!(
                "receipt {} is from a larger tree ({}) than the checkpoint ({})",
                path.display(),
                rc.size,
                cp.size
            )));
        }
        if rc.size < cp.size {
            let c = c.as_mut().ok_or_else(|| {
                anyhow!(
                    "--server is needed to relate receipt {} to the checkpoint",
                    i + 1
                )
            })?;
            let p = c
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    from_size: rc.size,
                    to_size: cp.size,
                })
                .await
                .context("GetConsistencyProof")?
                .into_inner();
            proof::verify_consistency(rc.size, cp.size, &p.proof, &rc.root, &cp.root).map_err(
                |e| {
                    fail(format!(
                        "receipt {}: its checkpoint is not consistent with the current one: {e}",
                        path.display()
                    ))
                },
            )?;
        } else if rc.root != cp.root {
            return Err(fail(format!(
                "receipt {}: fork at size {}",
                path.display(),
                cp.size
            )));
        }
        say(format!(
            "receipt {}: leaf {} included",
            path.display(),
            r.leaf_index
        ));
    }

    if full {
        let c = c.as_mut().ok_or_else(|| anyhow!("--full needs --server"))?;
        let bar = indicatif::ProgressBar::new(cp.size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} entries {pos}/{len} [{bar:40}] {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        if json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut hashes: Vec<Hash> = Vec::with_capacity(cp.size as usize);
        while (hashes.len() as u64) < cp.size {
            let page = c
                .get_entries(pb::GetEntriesRequest {
                    start: hashes.len() as u64,
                    end: cp.size,
                    page_size: 1000,
                })
                .await
                .context("GetEntries")?
                .into_inner();
            if page.entries.is_empty() {
                return Err(fail(format!(
                    "the server returned no entries from {}",
                    hashes.len()
                )));
            }
            for e in page.entries {
                if e.index != hashes.len() as u64 {
                    return Err(fail(format!("entry {} arrived out of order", e.index)));
                }
                hashes.push(leaf_hash(&e.leaf));
            }
            bar.set_position(hashes.len() as u64);
        }
        bar.finish_and_clear();
        let root = cairn_tlog::hash::naive_root(&hashes);
        if root != cp.root {
            return Err(fail(format!(
                "the {} entries do not hash to the checkpoint's root",
                cp.size
            )));
        }
        say(format!(
            "all {} entries recomputed to the checkpoint's root",
            cp.size
        ));
    }

    if update_trusted && let Some(t) = &trusted {
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
