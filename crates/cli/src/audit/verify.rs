//! `cairn audit verify`: the SDK's [`LogVerifier`] step by step, saying
//! each step that held.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use cairn_client::ClientError;
use cairn_client::audit::{Flagged, Head, LogVerifier, TileSource};
use cairn_tlog::note::VerifierKey;

use super::{client, fail, read_key};
use crate::connect::ConnectArgs;

/// What `cairn audit verify` checks, from its flags.
pub(super) struct VerifyArgs {
    pub(super) tiles: Option<String>,
    pub(super) tiles_ca: Option<PathBuf>,
    pub(super) log_key: Option<String>,
    pub(super) witnesses: Vec<String>,
    pub(super) quorum: Option<usize>,
    pub(super) trusted: Option<PathBuf>,
    pub(super) update_trusted: bool,
    pub(super) server: Option<SocketAddr>,
    pub(super) cp_file: Option<PathBuf>,
    pub(super) receipts: Vec<PathBuf>,
    pub(super) full: bool,
    pub(super) records: bool,
    pub(super) connect: ConnectArgs,
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
pub(super) fn read_receipt(
    path: &std::path::Path,
) -> anyhow::Result<cairn_proto::common::v1::Receipt> {
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
) -> anyhow::Result<Vec<Flagged>> {
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
        return Ok(Vec::new());
    }
    let client = a.connect.client().await?;
    let history = if client.directory().quorum().is_some() {
        Some(
            client
                .directory_history()
                .await
                .map_err(check(String::new))?,
        )
    } else {
        None
    };
    let bar = progress_bar("records", size, json);
    let seen = v
        .check_records(&leaves, &client, history.as_ref(), |n| bar.set_position(n))
        .await
        .map_err(check(String::new))?;
    bar.finish_and_clear();
    if let Some(h) = &history {
        say(format!(
            "directory history replayed from the genesis: {} change records, all in the log at their places; version {} in force; every signature checked against the directory in force at its leaf",
            seen.directory_changes,
            h.governed.current().version
        ));
    }
    say(format!(
        "{} records and {} erasures served as logged, signatures verified ({} not readable by {}, {} TLP:RED)",
        seen.records,
        seen.erasures,
        seen.unreadable,
        client.member(),
        seen.salted
    ));
    for f in &seen.flagged {
        if !json {
            println!(
                "  FLAG record {} (leaf {}): signed by {}'s key {} at {}, after its compromise began ({}); logged before the key was revoked",
                f.record_id,
                f.leaf_index,
                f.member,
                f.key_id,
                rfc3339(f.claimed),
                rfc3339(f.compromised_since)
            );
        }
    }
    Ok(seen.flagged)
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn flagged_json(flagged: &[Flagged]) -> serde_json::Value {
    flagged
        .iter()
        .map(|f| {
            serde_json::json!({
                "record": f.record_id,
                "leaf_index": f.leaf_index,
                "member": f.member,
                "key_id": f.key_id,
                "claimed": rfc3339(f.claimed),
                "compromised_since": rfc3339(f.compromised_since),
            })
        })
        .collect()
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

/// `cairn audit verify --tiles`: the log from its tiles alone.
async fn from_tiles(v: &LogVerifier, at: &str, a: &VerifyArgs, json: bool) -> anyhow::Result<()> {
    let source = if at.starts_with("https://") {
        TileSource::Https(a.connect.https_target(at, "audit", a.tiles_ca.as_deref())?)
    } else {
        TileSource::Dir(PathBuf::from(at))
    };
    let trusted_text = match &a.trusted {
        Some(t) if t.exists() => {
            Some(std::fs::read_to_string(t).with_context(|| format!("reading {}", t.display()))?)
        }
        Some(t) if !a.update_trusted => bail!(
            "--trusted {} does not exist (add --update-trusted to start trusting this checkpoint)",
            t.display()
        ),
        _ => None,
    };
    let bar = progress_bar("entries", 0, json);
    let done = v
        .verify_tiles(&source, trusted_text.as_deref(), |n| bar.set_position(n))
        .await
        .map_err(check(String::new))?;
    bar.finish_and_clear();
    let cp = &done.head.checkpoint;
    let mut steps = vec![format!(
        "checkpoint of {} at size {} signed by the log",
        cp.origin, cp.size
    )];
    if !done.head.cosigned_by.is_empty() || v.quorum() > 0 {
        let names: Vec<&str> = done
            .head
            .cosigned_by
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        steps.push(format!(
            "{} witnesses cosigned it (quorum {}): {}",
            names.len(),
            v.quorum(),
            names.join(", ")
        ));
    }
    steps.push(format!(
        "all {} entries in {} bundles hash to their level-0 tiles; {} hash tiles of every level match the tiles below them; the leaves hash to the checkpoint's root",
        cp.size, done.bundles, done.hash_tiles
    ));
    if let Some(t) = done.consistent_with {
        steps.push(format!("consistent with the trusted checkpoint of size {t} (its root recomputed from the same leaves)"));
    }
    if a.update_trusted
        && let Some(t) = &a.trusted
    {
        std::fs::write(t, &done.head.text).with_context(|| format!("writing {}", t.display()))?;
        steps.push(format!("trusted checkpoint updated in {}", t.display()));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "size": cp.size, "root": B64.encode(cp.root), "cosigned_by": done.head.cosigned_by, "steps": steps})
        );
    } else {
        for s in &steps {
            println!("  ok  {s}");
        }
        println!("the log verifies.");
    }
    Ok(())
}

/// How long `verify` waits for the latest checkpoint's cosignatures.
const COSIGNATURE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Fills what the flags leave out from the devnet (`--devnet`, or one in
/// the default place): its log key, its audit service unless a checkpoint
/// file is given, and — when the log is the devnet's — its witnesses.
/// Returns the log's key.
fn devnet_defaults(a: &mut VerifyArgs) -> anyhow::Result<VerifierKey> {
    let devnet = a.connect.devnet_info()?;
    let log_key = match (&a.log_key, &devnet) {
        (Some(k), _) => read_key(k)?,
        (None, Some(d)) => read_key(&d.log_key)?,
        (None, None) => bail!("give --log-key (or --devnet <dir> of a running devnet)"),
    };
    let Some(d) = devnet.filter(|d| read_key(&d.log_key).is_ok_and(|k| k == log_key)) else {
        return Ok(log_key);
    };
    if a.server.is_none() && a.cp_file.is_none() {
        a.server = Some(d.audit);
    }
    if a.witnesses.is_empty() {
        a.witnesses = d.witnesses.iter().map(|w| w.key.clone()).collect();
    }
    Ok(log_key)
}

/// `cairn audit verify`: the SDK's [`LogVerifier`] step by step, saying
/// each step that held.
pub(super) async fn verify(mut a: VerifyArgs, json: bool) -> anyhow::Result<()> {
    let log_key = devnet_defaults(&mut a)?;
    let witness_keys = a
        .witnesses
        .iter()
        .map(|w| read_key(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let quorum = a.quorum.unwrap_or(witness_keys.len());
    let mut v = LogVerifier::new(log_key, witness_keys.clone(), quorum)?;
    if let Some(at) = &a.tiles {
        return from_tiles(&v, at, &a, json).await;
    }
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
        // A new checkpoint's cosignatures follow it within moments.
        None if a.server.is_some() => {
            v.latest_witnessed(COSIGNATURE_WAIT)
                .await
                .map_err(check(String::new))?
                .text
        }
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
            quorum,
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
    let flagged = if a.full {
        full(&mut v, &head, &a, json, &mut say).await?
    } else {
        Vec::new()
    };
    if a.update_trusted
        && let Some(t) = &a.trusted
    {
        std::fs::write(t, &text).with_context(|| format!("writing {}", t.display()))?;
        say(format!("trusted checkpoint updated in {}", t.display()));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "size": cp.size, "root": B64.encode(cp.root), "cosigned_by": head.cosigned_by, "steps": steps, "flagged": flagged_json(&flagged)})
        );
    } else if flagged.is_empty() {
        println!("the log verifies.");
    } else {
        println!(
            "the log verifies; {} records flagged: signed by a key revoked for compromise, claiming a time after the compromise began.",
            flagged.len()
        );
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
    fn the_receipt_of_leaf_0_in_a_one_leaf_tree_is_printed_whole_and_reads_back() {
        let receipt = Receipt {
            leaf: b"leaf bytes".to_vec(),
            leaf_index: 0,
            checkpoint: "log\n1\nroot\n\n— log sig\n".into(),
            inclusion_proof: vec![],
        };
        let printed = cairn_client::json::to_json("cairn.common.v1.Receipt", &receipt).unwrap();
        // Every field is present, leaf 0 and the empty proof included.
        assert_eq!(printed["leafIndex"], "0", "{printed}");
        assert_eq!(
            printed["inclusionProof"],
            serde_json::json!([]),
            "{printed}"
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
