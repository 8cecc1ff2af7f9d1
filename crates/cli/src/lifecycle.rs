//! `cairn incident retract|erase` and `cairn eval retract|erase`: a
//! record's retraction (a signed record shared as the one it withdraws)
//! and the erasure of its body under a signed order.

use anyhow::Context as _;
use cairn_client::{Client, Erased};
use clap::Args;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::show::{print_dry, print_submitted};

/// Which service holds the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// cairn-intake: incidents.
    Intake,
    /// cairn-evals: evaluation results, baselines, assessments.
    Evals,
}

#[derive(Args, Debug)]
pub struct RetractArgs {
    /// The record to withdraw (yours).
    record_id: String,
    /// Why it is withdrawn (required; shown to everyone who may read it).
    #[arg(long)]
    reason: String,
    /// Sign only; print, do not send.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub struct EraseArgs {
    /// The record whose body is to be deleted (yours, or, for a governance
    /// member, one you may read).
    record_id: String,
    /// The legal or policy basis (required; it goes into the audit log).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Fetches the record, signs its retraction (shared as the record is) and
/// sends it to the service that holds it.
pub async fn retract(holder: Holder, args: RetractArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = args.connect.client().await?;
    let target = match holder {
        Holder::Intake => client.get_incident(&args.record_id, false).await?,
        Holder::Evals => client.get_result(&args.record_id, false).await?,
    };
    let prepared = client
        .prepare_retraction(&target, &args.reason)
        .with_context(|| format!("cannot retract record {}", args.record_id))?;
    if args.dry_run {
        print_dry(&prepared, json_out)?;
        return Ok(exit::OK);
    }
    let sent = match holder {
        Holder::Intake => client.retract_incident(&prepared).await?,
        Holder::Evals => client.retract_result(&prepared).await?,
    };
    if !json_out {
        println!("record {} is retracted by:", args.record_id);
    }
    print_submitted(&sent, json_out);
    Ok(exit::OK)
}

/// Signs an erasure order for the record and sends it.
pub async fn erase(holder: Holder, args: EraseArgs, json_out: bool) -> anyhow::Result<u8> {
    let client: Client = args.connect.client().await?;
    let order = client.prepare_erasure(&args.record_id, &args.reason)?;
    let erased = match holder {
        Holder::Intake => client.erase_incident(&args.record_id, &order).await?,
        Holder::Evals => client.erase_result(&args.record_id, &order).await?,
    };
    print_erased(&erased, json_out);
    Ok(exit::OK)
}

fn print_erased(e: &Erased, json_out: bool) {
    if json_out {
        println!(
            "{}",
            serde_json::json!({
                "record_id": e.record_id,
                "erased": true,
                "receipt_pending": e.receipt_pending,
                "leaf_index": e.receipt.as_ref().map(|r| r.leaf_index),
                "receipt_verified_in_tree_of": e.verified_in_tree_of,
            })
        );
        return;
    }
    println!(
        "record {} erased: its body is deleted; its header and log entry stay",
        e.record_id
    );
    match (&e.receipt, e.verified_in_tree_of) {
        (Some(r), Some(size)) => println!(
            "the erasure order is leaf {} in a tree of {size}: checkpoint signature and inclusion proof verified",
            r.leaf_index
        ),
        (Some(r), None) => println!(
            "the erasure order is leaf {} (not verified: no log key known)",
            r.leaf_index
        ),
        (None, _) => println!(
            "receipt pending: the audit log has not integrated the order yet; send it again later"
        ),
    }
}
