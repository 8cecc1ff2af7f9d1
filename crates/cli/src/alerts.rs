//! `cairn alerts watch`: tells a member the moment an incident that
//! concerns it arrives, or when a recipient of its own report has not
//! acknowledged it in time — one line (or JSON object) per match, optionally a
//! command per match with the match on its standard input. It resumes from
//! its cursor after a restart and never alerts twice for one record: the
//! record is written to the state file (synced) before the alert goes
//! out, and the cursor moves past it after.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use cairn_client::Client;
use cairn_client::alerts::{Reason, Subscription};
use cairn_record::header::{time_to_timestamp, timestamp_to_time};
use cairn_record::pb;
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_stream::StreamExt as _;

use crate::connect::ConnectArgs;
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Watch for incidents that concern you, from where you left off.
    Watch(WatchArgs),
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// A model (name, identifier or `sha256:` digest) or AI system name you
    /// deploy; repeatable. Matched in what you can open.
    #[arg(long = "model")]
    models: Vec<String>,
    /// A sector; repeatable.
    #[arg(long = "sector")]
    sectors: Vec<String>,
    /// A jurisdiction; repeatable.
    #[arg(long = "jurisdiction")]
    jurisdictions: Vec<String>,
    /// At least this severity (negligible, low, moderate, high, critical).
    #[arg(long)]
    min_severity: Option<String>,
    /// Also every new report in a thread you are part of.
    #[arg(long)]
    my_threads: bool,
    /// Also when a recipient of a report of yours has not acknowledged it
    /// this many hours after it arrived (checked every minute, each
    /// recipient and report once).
    #[arg(long)]
    overdue_acks: Option<i64>,
    /// Where the cursor is kept (default .cairn/alerts-<member>.json).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Run this (with `sh -c`) per match, the match as JSON on its stdin.
    #[arg(long)]
    exec: Option<String>,
    /// A new state starts from now; with this, from the first record.
    #[arg(long)]
    from_start: bool,
    /// Stop after this many alerts.
    #[arg(long)]
    count: Option<usize>,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Where a watcher is: the last cursor it moved past, the time it started
/// from, and the record it is alerting on (if it stopped in between).
#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
struct State {
    cursor: String,
    since: Option<String>,
    alerting: Option<String>,
    /// `<report>/<member>` already alerted as overdue.
    #[serde(default)]
    overdue: std::collections::BTreeSet<String>,
}

impl State {
    fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not an alerts state file", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written whole and synced, then renamed over the old one.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
    }
}

pub async fn run(cmd: AlertsCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        AlertsCommand::Watch(args) => watch(args, json_out).await,
    }
}

fn subscription(args: &WatchArgs) -> anyhow::Result<Subscription> {
    let min_severity = match args.min_severity.as_deref() {
        None => pb::Severity::Unspecified,
        Some(s) => pb::Severity::from_str_name(&format!("SEVERITY_{}", s.to_ascii_uppercase()))
            .ok_or_else(|| {
                anyhow!("--min-severity {s:?}: use negligible, low, moderate, high or critical")
            })?,
    };
    Ok(Subscription {
        models: args.models.clone(),
        sectors: args.sectors.clone(),
        jurisdictions: args.jurisdictions.clone(),
        min_severity,
        my_threads: args.my_threads,
    })
}

async fn watch(args: WatchArgs, json_out: bool) -> anyhow::Result<u8> {
    let sub = subscription(&args)?;
    let client = args.connect.client().await?;
    let path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!(".cairn/alerts-{}.json", client.member())));
    let mut state = match State::load(&path)? {
        Some(s) => s,
        None => State {
            since: (!args.from_start)
                .then(|| OffsetDateTime::now_utc().format(&Rfc3339))
                .transpose()?,
            ..State::default()
        },
    };
    state.save(&path)?;
    let mut filter = sub.filter();
    filter.created_after = state
        .since
        .as_deref()
        .map(|s| OffsetDateTime::parse(s, &Rfc3339).map(time_to_timestamp))
        .transpose()
        .with_context(|| format!("{}: since", path.display()))?;
    eprintln!(
        "watching for alerts (state {}, from {})",
        path.display(),
        state.since.as_deref().unwrap_or("the first record")
    );
    let mut stream = client.watch_incidents(filter, state.cursor.clone()).await?;
    let mut threads: HashMap<String, bool> = HashMap::new();
    // Overdue acknowledgements alone ask for no records.
    let watch_records = args.overdue_acks.is_none() || sub != Subscription::default();
    let mut sent = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = tick.tick(), if args.overdue_acks.is_some() => {
                let hours = args.overdue_acks.unwrap_or_default();
                for alert in overdue(&client, hours, &mut state).await? {
                    state.save(&path)?;
                    deliver(&alert, json_out, args.exec.as_deref())?;
                    sent += 1;
                }
                if args.count.is_some_and(|c| sent >= c) {
                    break;
                }
                continue;
            }
        };
        let Some(ev) = ev else { break };
        let ev = ev?;
        if let Some(stored) = &ev.record
            && watch_records
            && let Some(alert) = check(&client, &sub, stored, &mut threads).await?
        {
            let id = alert["record_id"].as_str().unwrap_or_default().to_owned();
            if state.alerting.as_deref() != Some(id.as_str()) {
                state.alerting = Some(id);
                state.save(&path)?;
                deliver(&alert, json_out, args.exec.as_deref())?;
                sent += 1;
            }
        }
        state.cursor = ev.cursor;
        state.alerting = None;
        state.save(&path)?;
        if args.count.is_some_and(|c| sent >= c) {
            break;
        }
    }
    Ok(exit::OK)
}

/// An alert per recipient who has not acknowledged a report of this
/// member's `hours` after it arrived, not alerted before (noted in
/// `state`, which the caller saves before delivering).
async fn overdue(
    client: &Client,
    hours: i64,
    state: &mut State,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let filter = pb::RecordFilter {
        author: Some(pb::MemberId {
            id: client.member().to_owned(),
        }),
        kinds: vec![pb::RecordKind::Incident as i32],
        ..Default::default()
    };
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = client.list_incidents(filter.clone(), 500, token).await?;
        for stored in page {
            let id = cairn_client::verify::stored_id(&stored);
            let t = cairn_client::thread::timeline(&id, &[(stored.clone(), None)], now);
            let Some(mut report) = t.reports.into_iter().next() else {
                continue;
            };
            let Some(at) = report
                .received_at
                .filter(|at| now - *at >= time::Duration::hours(hours))
            else {
                continue;
            };
            let acks = client.acknowledgements(&id).await?;
            cairn_client::thread::acknowledge(&mut report, &stored, &acks, client.directory());
            for member in report.awaiting {
                if state.overdue.insert(format!("{id}/{member}")) {
                    out.push(serde_json::json!({
                        "record_id": id,
                        "author": client.member(),
                        "label": "",
                        "title": "your report",
                        "received_at": at.format(&Rfc3339).ok(),
                        "reason": format!("{member} has not acknowledged it after {} h", (now - at).whole_hours()),
                        "awaiting": member,
                    }));
                }
            }
        }
        if next.is_empty() {
            return Ok(out);
        }
        token = next;
    }
}

/// The alert for `stored`, if it matches.
async fn check(
    client: &Client,
    sub: &Subscription,
    stored: &pb::StoredRecord,
    threads: &mut HashMap<String, bool>,
) -> anyhow::Result<Option<serde_json::Value>> {
    let header = cairn_client::verify::stored_header(stored)?;
    let content = client.open(stored).ok().and_then(|o| o.incident().cloned());
    let in_my_thread = match header.thread.as_ref().map(|t| t.uuid.clone()) {
        Some(t) if sub.my_threads => match threads.get(&t) {
            Some(known) => *known,
            None => {
                let part = client.get_incident(&t, false).await.is_ok();
                threads.insert(t, part);
                part
            }
        },
        _ => false,
    };
    let Some(reason) = sub.matches(&header, content.as_ref(), in_my_thread) else {
        return Ok(None);
    };
    let when = stored
        .received_at
        .as_ref()
        .and_then(|t| timestamp_to_time(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok());
    Ok(Some(serde_json::json!({
        "label": header.label().as_str_name(),
        "record_id": header.record_id.map(|r| r.uuid),
        "author": header.author.map(|a| a.id),
        "received_at": when,
        "reason": match reason {
            Reason::Criteria => "matches your subscription".to_owned(),
            Reason::Thread(t) => format!("new report in thread {t}"),
        },
        "title": content.as_ref().map(|c| c.title.clone()),
        "severity": content.as_ref().map(|c| c.severity().as_str_name().trim_start_matches("SEVERITY_").to_lowercase()),
    })))
}

/// Prints the alert and runs `exec` with it on stdin.
fn deliver(alert: &serde_json::Value, json_out: bool, exec: Option<&str>) -> anyhow::Result<()> {
    if json_out {
        println!("{alert}");
    } else {
        let s = |k: &str| alert[k].as_str().unwrap_or("").to_owned();
        println!(
            "ALERT {} by {} ({}): {} [{}]",
            s("record_id"),
            s("author"),
            s("label").trim_start_matches("SHARING_LABEL_"),
            alert["title"].as_str().unwrap_or("(sealed to others)"),
            s("reason")
        );
    }
    std::io::stdout().flush()?;
    if let Some(cmd) = exec {
        let mut child = std::process::Command::new("sh")
            .args(["-c", cmd])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running --exec {cmd:?}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{alert}")?;
        }
        let status = child.wait()?;
        if !status.success() {
            eprintln!("warning: --exec {cmd:?} exited with {status}");
        }
    }
    Ok(())
}
