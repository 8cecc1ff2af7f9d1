//! `cairn incident timeline <id>`: a thread's reports and its EU AI Act
//! Art. 73 clock; and the clock line `cairn incident list` prints under a
//! thread's first report.

use std::collections::BTreeMap;

use cairn_client::Client;
use cairn_client::thread::{self, Clock, Timeline};
use cairn_record::pb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::connect::ConnectArgs;
use crate::exit;

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
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
    let client = connect.client()?;
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
    }
    println!("{}", clock_text(&t));
    Ok(exit::OK)
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
