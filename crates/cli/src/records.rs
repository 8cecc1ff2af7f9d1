//! `cairn incident`, `cairn eval`, `cairn record`: submit (and correct),
//! fetch, list, watch, open; retraction and erasure are in `lifecycle`.

use std::io::Read as _;

use anyhow::{Context as _, anyhow};
use cairn_client::{Client, Share, json};
use cairn_record::pb;
use clap::{Args, Subcommand};
use tokio_stream::StreamExt as _;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::lifecycle::{self, EraseArgs, Holder, RetractArgs};
use crate::show::{describe, print_dry, print_opened, print_stored, print_submitted};

#[derive(Args, Debug, Clone)]
pub struct ShareArgs {
    /// Sharing label: clear, green, amber, amber+strict or red.
    #[arg(long, default_value = "green")]
    pub(crate) label: String,
    /// A recipient member (amber, amber+strict, red); repeatable.
    #[arg(long = "to")]
    pub(crate) to: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// Validate, seal, sign and submit an incident from a JSON file (the
    /// protobuf JSON mapping of cairn.intake.v1.Incident; `-` for stdin).
    /// The file is validated before any network call.
    Submit {
        /// One file, several (sent on one stream), or `-`.
        #[arg(required = true)]
        files: Vec<String>,
        #[command(flatten)]
        share: ShareArgs,
        /// Correct an earlier incident of yours.
        #[arg(long)]
        supersedes: Option<String>,
        /// A follow-up report (status update or final) in the thread that
        /// this first report of yours starts.
        #[arg(long, conflicts_with = "supersedes")]
        thread: Option<String>,
        /// Validate, seal and sign only; print, do not submit.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Fetch an incident; --open verifies and decrypts it.
    Get {
        record_id: String,
        #[arg(long)]
        open: bool,
        /// Also prove inclusion in the latest checkpoint.
        #[arg(long)]
        proof: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List incidents you may see.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// A thread's reports (give any of them) and its EU AI Act Art. 73
    /// clock: the period, and whether the serious incident was reported and
    /// the final report is in by its end.
    Timeline {
        record_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Report a sighting ("observed here too") from a JSON file
    /// (cairn.intake.v1.Sighting), about an incident or the model it names.
    Sighting(crate::related::ObservationArgs),
    /// Publish a mitigation or advisory from a JSON file
    /// (cairn.intake.v1.Mitigation), about an incident or the model it names.
    Mitigation(crate::related::ObservationArgs),
    /// Everything related to an incident that you can open: its thread and
    /// acknowledgements, sightings, mitigations, and evaluation results
    /// about the same models.
    Related {
        record_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Acknowledge a report you received: its state (received, triaged,
    /// action taken, closed) and a sealed note, for its author and --to.
    Ack(crate::timeline::AckArgs),
    /// Withdraw an incident of yours: a signed retraction, shared as the
    /// incident is; the incident stays readable, marked retracted.
    Retract(RetractArgs),
    /// Delete an incident's body under a signed order (yours, or as a
    /// governance member one you may read); its header and log entry stay.
    Erase(EraseArgs),
    /// Export incidents you can open as a STIX 2.1 bundle.
    Export(crate::stix::ExportArgs),
    /// Share the incidents of a STIX 2.1 bundle (each needs cairn's AI
    /// extension and one TLP 2.0 marking); all or nothing.
    Import(crate::stix::ImportArgs),
    /// Stream incidents as they arrive (from --cursor, or the beginning).
    Watch {
        #[arg(long, default_value = "")]
        cursor: String,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Validate, seal, sign and publish an evaluation result from JSON
    /// (cairn.evals.v1.EvaluationResult; `-` for stdin).
    Publish {
        /// One file, several (sent on one stream), or `-`.
        #[arg(required = true)]
        files: Vec<String>,
        #[command(flatten)]
        share: ShareArgs,
        /// Correct an earlier result of yours (SupersedeResult).
        #[arg(long)]
        supersedes: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Withdraw a result (or baseline, assessment) of yours: a signed
    /// retraction, shared as the record is.
    Retract(RetractArgs),
    /// Delete a result's body under a signed order (yours, or as a
    /// governance member one you may read); its header and log entry stay.
    Erase(EraseArgs),
    /// Fetch a result; --open verifies and decrypts it.
    Get {
        record_id: String,
        #[arg(long)]
        open: bool,
        #[arg(long)]
        proof: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// List results you may see.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Fetch a record, verify its signature, receipt and commitment, and
    /// print its decrypted content.
    Open {
        record_id: String,
        /// Which service holds it.
        #[arg(long, default_value = "intake")]
        service: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only this author.
    #[arg(long)]
    author: Option<String>,
    /// Incidents: at least this severity (negligible, low, moderate, high, critical).
    #[arg(long)]
    min_severity: Option<String>,
    /// Incidents: this sector.
    #[arg(long)]
    sector: Option<String>,
    /// Incidents: this jurisdiction.
    #[arg(long)]
    jurisdiction: Option<String>,
    /// Results: this model name.
    #[arg(long)]
    model: Option<String>,
    /// Results: this task id.
    #[arg(long)]
    task: Option<String>,
    /// Include superseded, retracted and erased records.
    #[arg(long)]
    all: bool,
    /// Stop after this many records.
    #[arg(long, default_value_t = 200)]
    limit: usize,
}

pub(crate) fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
    }
}

fn filter_of(f: &FilterArgs, incidents: bool) -> anyhow::Result<pb::RecordFilter> {
    let mut filter = pb::RecordFilter {
        author: f.author.clone().map(|id| pb::MemberId { id }),
        include_inactive: f.all,
        ..Default::default()
    };
    if incidents && (f.min_severity.is_some() || f.sector.is_some() || f.jurisdiction.is_some()) {
        let min = match f.min_severity.as_deref() {
            None => 0,
            Some(s) => pb::Severity::from_str_name(&format!("SEVERITY_{}", s.to_ascii_uppercase()))
                .ok_or_else(|| {
                    anyhow!("--min-severity {s:?}: use negligible, low, moderate, high or critical")
                })? as i32,
        };
        filter.incident = Some(pb::IncidentFilter {
            min_severity: min,
            sector: f.sector.clone().unwrap_or_default(),
            jurisdiction: f.jurisdiction.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    if !incidents && (f.model.is_some() || f.task.is_some()) {
        filter.evaluation = Some(pb::EvaluationFilter {
            model_name: f.model.clone().unwrap_or_default(),
            task_id: f.task.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    Ok(filter)
}

async fn list_all(
    client: &Client,
    filter: pb::RecordFilter,
    limit: usize,
    incidents: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let mut token = String::new();
    let mut all = Vec::new();
    while all.len() < limit {
        let (records, next) = if incidents {
            client.list_incidents(filter.clone(), 100, token).await?
        } else {
            client.list_results(filter.clone(), 100, token).await?
        };
        all.extend(records);
        if next.is_empty() {
            break;
        }
        token = next;
    }
    all.truncate(limit);
    // Under a thread's first report: its Art. 73 clock, from what is listed.
    let clocks = if incidents && !json_out {
        crate::timeline::clocks(client, &all)
    } else {
        Default::default()
    };
    for r in &all {
        print_stored(r, json_out)?;
        if let Some(clock) = clocks.get(&cairn_client::verify::stored_id(r)) {
            println!("    {}", clock.replace('\n', "\n    "));
        }
    }
    if !json_out && all.is_empty() {
        println!("no records");
    }
    Ok(())
}

pub async fn incident(cmd: IncidentCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        IncidentCommand::Submit {
            files,
            share,
            supersedes,
            thread,
            dry_run,
            connect,
        } => {
            let link = match (supersedes.as_deref(), thread.as_deref()) {
                (Some(old), _) => Link::Supersedes(old),
                (None, Some(first)) => Link::Thread(first),
                (None, None) => Link::New,
            };
            let holder = Holder::Intake;
            submit(holder, &files, share, link, dry_run, &connect, json_out).await
        }
        IncidentCommand::Get {
            record_id,
            open,
            proof,
            connect,
        } => {
            let client = connect.client().await?;
            let stored = client.get_incident(&record_id, proof).await?;
            if open {
                print_opened(&client, &stored, json_out)?
            } else {
                print_stored(&stored, json_out)?
            }
            Ok(exit::OK)
        }
        IncidentCommand::Export(args) => crate::stix::export(args, json_out).await,
        IncidentCommand::Import(args) => crate::stix::import(args, json_out).await,
        IncidentCommand::List { filter, connect } => {
            let client = connect.client().await?;
            list_all(
                &client,
                filter_of(&filter, true)?,
                filter.limit,
                true,
                json_out,
            )
            .await?;
            Ok(exit::OK)
        }
        IncidentCommand::Timeline { record_id, connect } => {
            crate::timeline::timeline(&record_id, &connect, json_out).await
        }
        IncidentCommand::Ack(args) => crate::timeline::ack(args, json_out).await,
        IncidentCommand::Sighting(args) => crate::related::observe(args, true, json_out).await,
        IncidentCommand::Mitigation(args) => crate::related::observe(args, false, json_out).await,
        IncidentCommand::Related { record_id, connect } => {
            crate::related::related(&record_id, &connect, json_out).await
        }
        IncidentCommand::Retract(args) => lifecycle::retract(Holder::Intake, args, json_out).await,
        IncidentCommand::Erase(args) => lifecycle::erase(Holder::Intake, args, json_out).await,
        IncidentCommand::Watch {
            cursor,
            count,
            connect,
        } => watch_incidents(cursor, count, &connect, json_out).await,
    }
}

/// What a new record names in its header.
#[derive(Clone, Copy, Debug)]
enum Link<'a> {
    /// Nothing: a new record (a thread's first report, for an incident).
    New,
    /// The record it corrects.
    Supersedes(&'a str),
    /// The thread it follows up (incidents).
    Thread(&'a str),
}

/// `cairn incident submit` and `cairn eval publish`: one record (the
/// unary call), or many on one stream (`crate::bulk`).
async fn submit(
    holder: Holder,
    files: &[String],
    share: ShareArgs,
    link: Link<'_>,
    dry_run: bool,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let mut sources = Vec::new();
    for f in files {
        sources.extend(crate::bulk::values(f, &read_input(f)?)?);
    }
    if let [(source, text)] = sources.as_slice() {
        return submit_text(
            holder, source, text, share, link, dry_run, connect, json_out,
        )
        .await;
    }
    if !matches!(link, Link::New) {
        anyhow::bail!("--supersedes and --thread name one record: give one file");
    }
    let share = Share::parse(&share.label, share.to)?;
    crate::bulk::submit_many(holder, sources, &share, dry_run, connect, json_out).await
}

/// One record: validates `text` (from `file`) as the holder's content,
/// seals, signs and sends it, as `link` says (or, with `dry_run`, prints
/// what would be sent).
#[allow(clippy::too_many_arguments)]
async fn submit_text(
    holder: Holder,
    file: &str,
    text: &str,
    share: ShareArgs,
    link: Link<'_>,
    dry_run: bool,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let invalid = || match holder {
        Holder::Intake => format!("{file} is not a valid incident"),
        Holder::Evals => format!("{file} is not a valid evaluation result"),
    };
    let share = Share::parse(&share.label, share.to)?;
    let client = connect.client().await?;
    let prepared = match holder {
        Holder::Intake => {
            let incident = json::incident_from_json(text).with_context(invalid)?;
            match link {
                Link::Supersedes(old) => client.prepare_incident_correction(&incident, &share, old),
                Link::Thread(first) => client.prepare_follow_up(&incident, &share, first),
                Link::New => client.prepare_incident(&incident, &share),
            }
        }
        Holder::Evals => {
            let result = json::result_from_json(text).with_context(invalid)?;
            match link {
                Link::Supersedes(old) => client.prepare_result_correction(&result, &share, old),
                Link::Thread(_) | Link::New => client.prepare_result(&result, &share),
            }
        }
    }
    .with_context(invalid)?;
    if dry_run {
        print_dry(&prepared, json_out)?;
        return Ok(exit::OK);
    }
    let sent = match (holder, link) {
        (Holder::Intake, _) => client.submit_incident(&prepared).await?,
        (Holder::Evals, Link::Supersedes(_)) => client.supersede_result(&prepared).await?,
        (Holder::Evals, _) => client.publish_result(&prepared).await?,
    };
    print_submitted(&sent, json_out);
    Ok(exit::OK)
}

/// `cairn incident watch`: prints incidents as they arrive, from `cursor`,
/// stopping after `count` events when given.
async fn watch_incidents(
    cursor: String,
    count: Option<usize>,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let mut stream = client
        .watch_incidents(pb::RecordFilter::default(), cursor)
        .await?;
    let mut n = 0;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if let Some(r) = &ev.record {
            if json_out {
                println!(
                    "{}",
                    serde_json::json!({"cursor": ev.cursor, "record": json::to_json("cairn.common.v1.StoredRecord", r)?})
                );
            } else {
                println!("{}  cursor={}", describe(r), ev.cursor);
            }
        }
        n += 1;
        if count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(exit::OK)
}

pub async fn eval(cmd: EvalCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        EvalCommand::Publish {
            files,
            share,
            supersedes,
            dry_run,
            connect,
        } => {
            let link = supersedes.as_deref().map_or(Link::New, Link::Supersedes);
            let holder = Holder::Evals;
            submit(holder, &files, share, link, dry_run, &connect, json_out).await
        }
        EvalCommand::Retract(args) => lifecycle::retract(Holder::Evals, args, json_out).await,
        EvalCommand::Erase(args) => lifecycle::erase(Holder::Evals, args, json_out).await,
        EvalCommand::Get {
            record_id,
            open,
            proof,
            connect,
        } => {
            let client = connect.client().await?;
            let stored = client.get_result(&record_id, proof).await?;
            if open {
                print_opened(&client, &stored, json_out)?
            } else {
                print_stored(&stored, json_out)?
            }
            Ok(exit::OK)
        }
        EvalCommand::List { filter, connect } => {
            let client = connect.client().await?;
            list_all(
                &client,
                filter_of(&filter, false)?,
                filter.limit,
                false,
                json_out,
            )
            .await?;
            Ok(exit::OK)
        }
    }
}

pub async fn record(cmd: RecordCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        RecordCommand::Open {
            record_id,
            service,
            connect,
        } => {
            let client = connect.client().await?;
            let stored = match service.as_str() {
                "intake" => client.get_incident(&record_id, false).await?,
                "evals" => client.get_result(&record_id, false).await?,
                other => anyhow::bail!("--service {other:?}: use intake or evals"),
            };
            print_opened(&client, &stored, json_out)?;
            Ok(exit::OK)
        }
    }
}
