//! How member commands print records and answers: one line per record,
//! or the protobuf JSON mapping with `--json`.

use cairn_client::verify::Content;
use cairn_client::{Client, Prepared, json};
use cairn_record::pb;

pub(crate) fn describe(r: &pb::StoredRecord) -> String {
    let Some(rec) = &r.record else {
        return "(empty)".into();
    };
    let header = cairn_record::record::decode_envelope(&rec.envelope)
        .ok()
        .and_then(|e| cairn_record::record::decode_header(&e.payload).ok());
    match header {
        Some(h) => format!(
            "{}  {:<16} {:<10} {:<30} {}{}",
            h.record_id.map(|r| r.uuid).unwrap_or_default(),
            pb::SharingLabel::try_from(h.label)
                .map(|l| l
                    .as_str_name()
                    .trim_start_matches("SHARING_LABEL_")
                    .to_owned())
                .unwrap_or_default(),
            h.author.map(|a| a.id).unwrap_or_default(),
            pb::RecordState::try_from(r.state)
                .map(|s| s
                    .as_str_name()
                    .trim_start_matches("RECORD_STATE_")
                    .to_lowercase())
                .unwrap_or_default(),
            if r.receipt_pending {
                "receipt pending"
            } else {
                ""
            },
            if rec.body.is_empty() {
                " (no body for you)"
            } else {
                ""
            },
        ),
        None => "(unreadable header)".into(),
    }
}

pub(crate) fn print_submitted(s: &cairn_client::Submitted, json_out: bool) {
    if json_out {
        println!(
            "{}",
            serde_json::json!({
                "record_id": s.record_id,
                "duplicate": s.duplicate,
                "receipt_pending": s.receipt_pending,
                "leaf_index": s.receipt.as_ref().map(|r| r.leaf_index),
                "receipt_verified_in_tree_of": s.verified_in_tree_of,
                "reporting_deadline": s.reporting_deadline.and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok()),
            })
        );
    } else {
        println!(
            "record {} {}",
            s.record_id,
            if s.duplicate {
                "(already accepted: same receipt)"
            } else {
                "accepted"
            }
        );
        match (&s.receipt, s.verified_in_tree_of) {
            (Some(r), Some(size)) => println!(
                "receipt: leaf {} in a tree of {size}, checkpoint signature and inclusion proof verified",
                r.leaf_index
            ),
            (Some(r), None) => println!(
                "receipt: leaf {} (not verified: no log key known)",
                r.leaf_index
            ),
            (None, _) => println!(
                "receipt pending: the audit log has not integrated it yet; submit the same file again later"
            ),
        }
        if let Some(d) = s.reporting_deadline {
            println!(
                "EU AI Act Art. 73 reporting deadline: {}",
                d.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            );
        }
    }
}

pub(crate) fn print_dry(p: &Prepared, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        println!(
            "{}",
            serde_json::json!({"record_id": p.record_id, "record": json::to_json("cairn.common.v1.SignedRecord", &p.record)?})
        );
    } else {
        println!(
            "record {} is valid, sealed and signed ({} bytes); not submitted (--dry-run)",
            p.record_id,
            p.record.envelope.len() + p.record.body.len()
        );
    }
    Ok(())
}

pub(crate) fn print_opened(
    client: &Client,
    stored: &pb::StoredRecord,
    json_out: bool,
) -> anyhow::Result<()> {
    let opened = client.open(stored)?;
    let content = match &opened.content {
        Content::Incident(i) => json::to_json("cairn.intake.v1.Incident", i)?,
        Content::Result(r) => json::to_json("cairn.evals.v1.EvaluationResult", r)?,
        Content::Baseline(b) => json::to_json("cairn.evals.v1.Baseline", b)?,
        Content::Assessment(a) => json::to_json("cairn.evals.v1.Assessment", a)?,
        Content::Retraction(r) => json::to_json("cairn.common.v1.Retraction", r)?,
        Content::Acknowledgement(a) => json::to_json("cairn.common.v1.Acknowledgement", a)?,
        Content::Sighting(x) => json::to_json("cairn.intake.v1.Sighting", x)?,
        Content::Mitigation(m) => json::to_json("cairn.intake.v1.Mitigation", m)?,
        Content::Other(b) => serde_json::json!({"bytes": b.len()}),
    };
    if json_out {
        println!(
            "{}",
            serde_json::json!({"record_id": opened.header.record_id.to_string(), "author": opened.header.author.to_string(), "verified": true, "content": content})
        );
    } else {
        println!(
            "record {} by {}: signature, commitment{} verified",
            opened.header.record_id,
            opened.header.author,
            if stored.receipt.is_some() {
                " and receipt"
            } else {
                ""
            }
        );
        println!("{}", serde_json::to_string_pretty(&content)?);
    }
    Ok(())
}

pub(crate) fn print_stored(r: &pb::StoredRecord, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        println!("{}", json::to_json("cairn.common.v1.StoredRecord", r)?);
    } else {
        println!("{}", describe(r));
        if let Some(p) = &r.latest_proof {
            println!("in the latest checkpoint at leaf {}", p.leaf_index);
        }
    }
    Ok(())
}
