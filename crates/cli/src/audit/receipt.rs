//! `cairn audit receipt`: a receipt in the documented JSON schema (every
//! field present), or with `--cose` as an RFC 9942 COSE Receipt that the
//! log signs and this command verifies before writing it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use cairn_proto::audit::v1 as pb;
use cairn_tlog::checkpoint;

use super::verify::read_receipt;
use super::{client, fail, read_key};
use crate::connect::ConnectArgs;

/// What `cairn audit receipt` was asked.
pub(super) struct ReceiptArgs {
    pub(super) receipt: PathBuf,
    pub(super) cose: bool,
    pub(super) out: Option<PathBuf>,
    pub(super) server: Option<SocketAddr>,
    pub(super) log_key: Option<String>,
    pub(super) connect: ConnectArgs,
}

pub(super) async fn run(a: ReceiptArgs, json: bool) -> anyhow::Result<()> {
    let r = read_receipt(&a.receipt)?;
    if !a.cose {
        let value = cairn_client::json::to_json("cairn.common.v1.Receipt", &r)?;
        let text = if json {
            value.to_string()
        } else {
            serde_json::to_string_pretty(&value)?
        };
        return match &a.out {
            Some(out) => std::fs::write(out, text + "\n")
                .with_context(|| format!("writing {}", out.display())),
            None => {
                println!("{text}");
                Ok(())
            }
        };
    }
    let out = a
        .out
        .as_ref()
        .ok_or_else(|| anyhow!("--cose writes binary CBOR: give --out <file>"))?;
    let devnet = a.connect.devnet_info()?;
    let key = match (&a.log_key, &devnet) {
        (Some(k), _) => read_key(k)?,
        (None, Some(d)) => read_key(&d.log_key)?,
        (None, None) => bail!("give --log-key (or --devnet <dir> of a running devnet)"),
    };
    let server = a
        .server
        .or(devnet.map(|d| d.audit))
        .ok_or_else(|| anyhow!("the log signs COSE receipts: give --server <audit>"))?;
    // The receipt's own tree: its checkpoint must be the log's.
    let cp = checkpoint::open(&r.checkpoint, &key)
        .map_err(|e| fail(format!("the receipt's checkpoint: {e}")))?
        .checkpoint;
    let got = client(&a.connect, server)
        .await?
        .get_cose_receipt(pb::GetCoseReceiptRequest {
            leaf_index: r.leaf_index,
            tree_size: cp.size,
        })
        .await
        .context("GetCoseReceipt")?
        .into_inner();
    let inclusion = cairn_tlog::cose::verify_inclusion_receipt(&got.receipt, &key, &r.leaf)
        .map_err(|e| fail(format!("the COSE receipt from {server}: {e}")))?;
    if inclusion.root != cp.root || inclusion.tree_size != cp.size {
        return Err(fail(format!(
            "the COSE receipt from {server} proves another tree than the receipt's checkpoint (size {})",
            cp.size
        )));
    }
    std::fs::write(out, &got.receipt).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "  ok  COSE receipt of leaf {} in the tree of size {} (root verified against the receipt's checkpoint, EdDSA signature by {}) written to {}",
        inclusion.leaf_index,
        inclusion.tree_size,
        key.name(),
        out.display()
    );
    Ok(())
}
