//! `cairn incident timeline <id>`: a thread's reports, who acknowledged
//! each and who has not, and its EU AI Act Art. 73 clock; the clock line
//! `cairn incident list` prints under a thread's first report; and
//! `cairn incident ack`.

use std::collections::BTreeMap;

use cairn_client::Client;
use cairn_client::thread::{self, Clock, Timeline};
use cairn_record::pb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::show::print_submitted;

#[derive(clap::Args, Debug)]
pub struct AckArgs {
    /// The report you acknowledge (one you may read, not your own).
    record_id: String,
    /// received, triaged, action-taken or closed.
    #[arg(long, default_value = "received")]
    state: String,
    /// A note for the report's author (and --to), sealed.
    #[arg(long, default_value = "")]
    note: String,
    /// Also share the acknowledgement with this member; repeatable (for a
    /// TLP:RED report, only its recipients).
    #[arg(long = "to")]
    to: Vec<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Signs and sends an acknowledgement of a report.
pub async fn ack(args: AckArgs, json_out: bool) -> anyhow::Result<u8> {
    let state = pb::AcknowledgementState::from_str_name(&format!(
        "ACKNOWLEDGEMENT_STATE_{}",
        args.state.to_ascii_uppercase().replace('-', "_")
    ))
    .filter(|s| *s != pb::AcknowledgementState::Unspecified)
    .ok_or_else(|| {
        anyhow::anyhow!(
            "--state {:?}: use received, triaged, action-taken or closed",
            args.state
        )
    })?;
    let client = args.connect.client().await?;
    let report = client.get_incident(&args.record_id, false).await?;
    let prepared = client.prepare_acknowledgement(&report, state, &args.note, &args.to)?;
    let sent = client.submit_incident(&prepared).await?;
    if !json_out {
        println!(
            "report {} acknowledged ({}) by:",
            args.record_id, args.state
        );
    }
    print_submitted(&sent, json_out);
    Ok(exit::OK)
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn ack_state(s: pb::AcknowledgementState) -> String {
    s.as_str_name()
        .trim_start_matches("ACKNOWLEDGEMENT_STATE_")
        .to_lowercase()
        .replace('_', "-")
}

fn name<T: std::fmt::Debug>(v: T) -> String {
    format!("{v:?}").to_lowercase()
}

/// Prints the timeline of the thread `record_id` belongs to.
pub async fn timeline(
    record_id: &str,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let t = client.timeline(record_id).await?;
    if json_out {
        println!("{}", to_json(&t));
        return Ok(exit::OK);
    }
    println!(
        "thread {}: {} report(s) you may see",
        t.thread,
        t.reports.len()
    );
    for r in &t.reports {
        println!(
            "  {:<25} {}  {:<8} {:<10} {:<10} {}",
            when(r.received_at),
            r.record_id,
            name(r.status),
            name(r.state),
            r.author,
            r.title.as_deref().unwrap_or("(sealed to others)")
        );
        println!("      {}", acks_text(r, OffsetDateTime::now_utc()));
    }
    println!("{}", clock_text(&t));
    Ok(exit::OK)
}

/// Who acknowledged a report (their latest state, since when) and who has
/// not (for how long).
fn acks_text(r: &thread::Report, now: OffsetDateTime) -> String {
    let done: Vec<String> = r
        .acknowledged
        .iter()
        .map(|a| {
            let state = a.state.map_or("(sealed)".to_owned(), ack_state);
            format!("{} {state} since {}", a.by, when(a.at))
        })
        .collect();
    let waiting = r
        .received_at
        .map(|t| format!(" (for {} h)", (now - t).whole_hours()))
        .unwrap_or_default();
    format!(
        "acknowledged: {}; not yet: {}{}",
        if done.is_empty() {
            "nobody".to_owned()
        } else {
            done.join(", ")
        },
        if r.awaiting.is_empty() {
            "nobody".to_owned()
        } else {
            r.awaiting.join(", ")
        },
        if r.awaiting.is_empty() {
            ""
        } else {
            waiting.as_str()
        }
    )
}

/// The clock in words: the period, then where the reports stand.
pub fn clock_text(t: &Timeline) -> String {
    let Some(d) = &t.deadline else {
        return "Art. 73: no report you can open classifies it as a serious incident".into();
    };
    let show = |c: &Option<Clock>| c.as_ref().map(Clock::to_string).unwrap_or_default();
    format!(
        "Art. 73: {}-day period ({}), aware {}, due {} (classified by {})\n  \
         serious incident reported: {}\n  final report: {}",
        d.days,
        name(d.category),
        when(Some(d.aware_at)),
        when(Some(d.due_at)),
        d.classified_by,
        show(&t.reported),
        show(&t.completed)
    )
}

fn to_json(t: &Timeline) -> serde_json::Value {
    serde_json::json!({
        "thread": t.thread,
        "reports": t.reports.iter().map(|r| serde_json::json!({
            "record_id": r.record_id,
            "author": r.author,
            "status": name(r.status),
            "state": name(r.state),
            "received_at": when(r.received_at),
            "title": r.title,
            "acknowledged": r.acknowledged.iter().map(|a| serde_json::json!({
                "by": a.by,
                "state": a.state.map(ack_state),
                "note": a.note,
                "at": when(a.at),
            })).collect::<Vec<_>>(),
            "awaiting": r.awaiting,
        })).collect::<Vec<_>>(),
        "deadline": t.deadline.as_ref().map(|d| serde_json::json!({
            "category": name(d.category),
            "days": d.days,
            "aware_at": when(Some(d.aware_at)),
            "due_at": when(Some(d.due_at)),
            "classified_by": d.classified_by,
        })),
        "reported": t.reported.as_ref().map(Clock::to_string),
        "completed": t.completed.as_ref().map(Clock::to_string),
    })
}

/// For each thread among `records` (first reports and follow-ups as
/// listed), its clock in words, by first report id; only threads with a
/// serious classification the caller can open.
pub fn clocks(client: &Client, records: &[pb::StoredRecord]) -> BTreeMap<String, String> {
    let mut threads: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in records {
        let Ok(h) = cairn_client::verify::stored_header(s) else {
            continue;
        };
        let id = h.record_id.map(|r| r.uuid).unwrap_or_default();
        let first = h.thread.map(|t| t.uuid).unwrap_or(id);
        let content = client.open(s).ok().and_then(|o| o.incident().cloned());
        threads.entry(first).or_default().push((s.clone(), content));
    }
    let now = OffsetDateTime::now_utc();
    threads
        .into_iter()
        .filter_map(|(first, reports)| {
            let t = thread::timeline(&first, &reports, now);
            t.deadline.is_some().then(|| (first, clock_text(&t)))
        })
        .collect()
}
