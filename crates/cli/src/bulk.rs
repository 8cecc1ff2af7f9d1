//! `cairn incident submit` and `cairn eval publish` with many files, or
//! `-` for a stream of JSON values on standard input (JSON lines or
//! concatenated documents): every record is validated, sealed and signed
//! here, then all go on one stream (SubmitIncidents / PublishResults) and
//! each is answered in order — its receipt, verified, or its exact
//! refusal. A file that is not valid content is reported and not sent;
//! the others still are. Exit 2 when anything was refused.

use anyhow::Context as _;
use cairn_client::{Client, Prepared, Share, json};
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use serde_json::json;
use tokio_stream::StreamExt as _;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::lifecycle::Holder;

/// The JSON values of `text` (one document, JSON lines, or several
/// documents one after another), each with where it came from.
pub(crate) fn values(source: &str, text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    for (i, v) in stream.enumerate() {
        let v = v.with_context(|| format!("{source}: value {} is not JSON", i + 1))?;
        out.push((format!("{source}#{}", i + 1), v.to_string()));
    }
    if out.len() == 1 {
        out[0].0 = source.to_owned();
    }
    Ok(out)
}

fn prepare(client: &Client, holder: Holder, text: &str, share: &Share) -> anyhow::Result<Prepared> {
    Ok(match holder {
        Holder::Intake => client.prepare_incident(&json::incident_from_json(text)?, share)?,
        Holder::Evals => client.prepare_result(&json::result_from_json(text)?, share)?,
    })
}

fn report(source: &str, outcome: Result<cairn_client::Submitted, String>, json_out: bool) -> bool {
    match outcome {
        Ok(s) => {
            if json_out {
                println!(
                    "{}",
                    json!({"source": source, "record_id": s.record_id, "duplicate": s.duplicate,
                        "receipt_pending": s.receipt_pending,
                        "leaf_index": s.receipt.as_ref().map(|r| r.leaf_index),
                        "receipt_verified_in_tree_of": s.verified_in_tree_of})
                );
            } else {
                let receipt = match (&s.receipt, s.verified_in_tree_of) {
                    (Some(r), Some(n)) => {
                        format!("leaf {} in a tree of {n}, verified", r.leaf_index)
                    }
                    (Some(r), None) => format!("leaf {} (no log key to verify it)", r.leaf_index),
                    (None, _) => "receipt pending".to_owned(),
                };
                println!("{source}: record {} accepted; {receipt}", s.record_id);
            }
            true
        }
        Err(why) => {
            if json_out {
                println!("{}", json!({"source": source, "refused": why}));
            } else {
                println!("{source}: refused: {why}");
            }
            false
        }
    }
}

/// Prepares every source, sends the good ones on one stream, reports each.
pub(crate) async fn submit_many(
    holder: Holder,
    sources: Vec<(String, String)>,
    share: &Share,
    dry_run: bool,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let mut all_ok = true;
    let mut sent: Vec<(String, Prepared)> = Vec::with_capacity(sources.len());
    for (source, text) in &sources {
        match prepare(&client, holder, text, share) {
            Ok(p) => sent.push((source.clone(), p)),
            Err(e) => all_ok &= report(source, Err(format!("{e:#}")), json_out),
        }
    }
    if dry_run {
        for (source, p) in &sent {
            println!("{source}: record {} prepared (not sent)", p.record_id);
        }
        return Ok(if all_ok { exit::OK } else { exit::USAGE });
    }
    if sent.is_empty() {
        return Ok(exit::USAGE);
    }
    let records = sent.iter().map(|(_, p)| p.record.clone()).collect();
    match holder {
        Holder::Intake => {
            let mut answers = client.submit_incidents(records).await?;
            while let Some(a) = answers.next().await {
                let a = a?;
                let (source, p) = answered(&sent, a.index)?;
                let outcome = match a.outcome {
                    Some(intake::submit_incidents_result::Outcome::Accepted(r)) => {
                        client.incident_submitted(p, r).map_err(|e| e.to_string())
                    }
                    Some(intake::submit_incidents_result::Outcome::Refused(r)) => Err(refused(&r)),
                    None => Err("no answer".into()),
                };
                all_ok &= report(source, outcome, json_out);
            }
        }
        Holder::Evals => {
            let mut answers = client.publish_results(records).await?;
            while let Some(a) = answers.next().await {
                let a = a?;
                let (source, p) = answered(&sent, a.index)?;
                let outcome = match a.outcome {
                    Some(evals::publish_results_result::Outcome::Accepted(r)) => {
                        client.result_published(p, r).map_err(|e| e.to_string())
                    }
                    Some(evals::publish_results_result::Outcome::Refused(r)) => Err(refused(&r)),
                    None => Err("no answer".into()),
                };
                all_ok &= report(source, outcome, json_out);
            }
        }
    }
    Ok(if all_ok { exit::OK } else { exit::USAGE })
}

/// The record an answer is for.
fn answered(sent: &[(String, Prepared)], index: u64) -> anyhow::Result<&(String, Prepared)> {
    usize::try_from(index)
        .ok()
        .and_then(|i| sent.get(i))
        .ok_or_else(|| {
            anyhow::anyhow!("the service answered for record {index}, which was not sent")
        })
}

fn refused(r: &cairn_proto::common::v1::Refusal) -> String {
    format!("{:?}: {}", tonic::Code::from_i32(r.code), r.message)
}
