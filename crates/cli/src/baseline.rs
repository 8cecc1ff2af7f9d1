//! `cairn baseline`: publish jurisdictions' baselines, assess a model
//! against them, publish and verify assessments, and the cross-border
//! matrix.

use anyhow::{Context as _, anyhow};
use cairn_client::assess::{self, ModelRef, outcome_name};
use cairn_client::{Client, Share, json};
use cairn_proto::evals::v1 as evals;
use clap::Subcommand;

use crate::connect::ConnectArgs;
use crate::exit;

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Validate, sign and publish a baseline from JSON (cairn.evals.v1.Baseline).
    /// Needs the governance role.
    Publish {
        file: String,
        /// Sharing label (baselines are usually clear or green).
        #[arg(long, default_value = "clear")]
        label: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Assess a model ([provider/]name[@version]) against one baseline from
    /// the results you can open.
    Assess {
        #[arg(long)]
        model: String,
        #[arg(long)]
        baseline: String,
        /// Also publish the assessment as a signed record.
        #[arg(long)]
        publish: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Recompute a published assessment from the results it cites.
    VerifyAssessment {
        assessment_id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// The model against every current baseline you can read: one row per
    /// baseline, one column per criterion.
    Matrix {
        #[arg(long)]
        model: String,
        /// Comma-separated values for tools.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

fn mark(o: i32) -> &'static str {
    match evals::Outcome::try_from(o) {
        Ok(evals::Outcome::Met) => "MET",
        Ok(evals::Outcome::NotMet) => "NOT MET",
        _ => "INSUFFICIENT",
    }
}

fn print_assessment(
    a: &evals::Assessment,
    baseline: &evals::Baseline,
    json_out: bool,
) -> anyhow::Result<()> {
    if json_out {
        println!("{}", json::to_json("cairn.evals.v1.Assessment", a)?);
        return Ok(());
    }
    println!(
        "{} v{} ({}) for {}:",
        baseline.name,
        baseline.version,
        baseline.jurisdiction,
        a.model
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or_default()
    );
    for o in &a.outcomes {
        println!(
            "  {:<20} {:<13} {}",
            o.criterion_id,
            mark(o.outcome),
            o.reason
        );
    }
    Ok(())
}

/// The matrix rows for `model`.
pub async fn matrix_rows(
    client: &Client,
    model: &ModelRef,
) -> anyhow::Result<Vec<(String, evals::Baseline, evals::Assessment)>> {
    let now = time::OffsetDateTime::now_utc();
    let evidence = client.evidence(model).await?;
    Ok(client
        .current_baselines(now)
        .await?
        .into_iter()
        .map(|(id, b)| {
            let a = assess::assess(&id, &b, model, &evidence, now);
            (id, b, a)
        })
        .collect())
}

/// Prints the matrix.
pub fn print_matrix(
    model: &ModelRef,
    rows: &[(String, evals::Baseline, evals::Assessment)],
    json_out: bool,
    csv: bool,
) -> anyhow::Result<()> {
    if json_out {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, b, a)| {
                serde_json::json!({
                    "baseline_id": id, "baseline": b.name, "version": b.version, "jurisdiction": b.jurisdiction,
                    "outcomes": a.outcomes.iter().map(|o| serde_json::json!({"criterion": o.criterion_id, "outcome": outcome_name(o.outcome), "reason": o.reason,
                        "cited": o.cited.iter().filter_map(|c| c.record_id.as_ref().map(|r| r.uuid.clone())).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"model": model.name, "baselines": v})
        );
        return Ok(());
    }
    if csv {
        println!(
            "jurisdiction,baseline,version,baseline_id,criterion,task,metric,comparator,threshold,outcome,reason"
        );
        for (id, b, a) in rows {
            for (c, o) in b.criteria.iter().zip(&a.outcomes) {
                let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                let comparator = evals::Comparator::try_from(c.comparator)
                    .map(|x| {
                        x.as_str_name()
                            .trim_start_matches("COMPARATOR_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                println!(
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    b.jurisdiction,
                    q(&b.name),
                    q(&b.version),
                    id,
                    c.id,
                    q(&c.task_id),
                    q(&c.metric),
                    comparator,
                    c.threshold,
                    outcome_name(o.outcome),
                    q(&o.reason)
                );
            }
        }
        return Ok(());
    }
    println!(
        "{} against every current baseline you can read:\n",
        model.name
    );
    for (_, b, a) in rows {
        let cells: Vec<String> = a
            .outcomes
            .iter()
            .map(|o| format!("{}: {}", o.criterion_id, mark(o.outcome)))
            .collect();
        println!(
            "  {:<3} {:<54} {}",
            b.jurisdiction,
            format!("{} v{}", b.name, b.version),
            cells.join("  |  ")
        );
    }
    if rows.is_empty() {
        println!("  (no current baselines)");
    }
    Ok(())
}

pub async fn run(cmd: BaselineCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        BaselineCommand::Publish {
            file,
            label,
            connect,
        } => publish(&file, &label, &connect, json_out).await,
        BaselineCommand::Assess {
            model,
            baseline,
            publish,
            connect,
        } => {
            let client = connect.client().await?;
            let model = ModelRef::parse(&model);
            let b = client.baseline(&baseline).await?;
            let a = client.assess(&baseline, &model).await?;
            print_assessment(&a, &b, json_out)?;
            if publish {
                let out = client
                    .publish_result(&client.prepare_assessment(&a, &Share::Green)?)
                    .await?;
                if !json_out {
                    println!("assessment published as record {}", out.record_id);
                }
            }
            Ok(exit::OK)
        }
        BaselineCommand::VerifyAssessment {
            assessment_id,
            connect,
        } => verify_assessment(&assessment_id, &connect, json_out).await,
        BaselineCommand::Matrix {
            model,
            csv,
            connect,
        } => {
            let client = connect.client().await?;
            let model = ModelRef::parse(&model);
            let rows = matrix_rows(&client, &model)
                .await
                .map_err(|e| anyhow!("{e:#}"))?;
            print_matrix(&model, &rows, json_out, csv)?;
            Ok(exit::OK)
        }
    }
}

/// `cairn baseline publish`: validates, signs and publishes `file`.
async fn publish(
    file: &str,
    label: &str,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let baseline: evals::Baseline = json::from_json("cairn.evals.v1.Baseline", &text)
        .with_context(|| format!("{file} is not a valid baseline"))?;
    let client = connect.client().await?;
    let prepared = client
        .prepare_baseline(&baseline, &Share::parse(label, vec![])?)
        .with_context(|| format!("{file} is not a valid baseline"))?;
    let out = client.publish_result(&prepared).await?;
    if json_out {
        println!(
            "{}",
            serde_json::json!({"record_id": out.record_id, "receipt_pending": out.receipt_pending})
        );
    } else {
        println!(
            "baseline {} published: {} v{} ({})",
            out.record_id, baseline.name, baseline.version, baseline.jurisdiction
        );
    }
    Ok(exit::OK)
}

/// `cairn baseline verify-assessment`: recomputes the assessment from the
/// results it cites; CHECK_FAILED when it does not match.
async fn verify_assessment(
    assessment_id: &str,
    connect: &ConnectArgs,
    json_out: bool,
) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let (a, verdict) = client.verify_assessment(assessment_id).await?;
    match verdict {
        Ok(()) => {
            if json_out {
                println!("{}", serde_json::json!({"matches": true}));
            } else {
                println!(
                    "assessment {assessment_id} matches its cited results ({} criteria)",
                    a.outcomes.len()
                );
            }
            Ok(exit::OK)
        }
        Err(problems) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::json!({"matches": false, "problems": problems})
                );
            } else {
                eprintln!("assessment {assessment_id} does NOT match:");
                for p in problems {
                    eprintln!("  {p}");
                }
            }
            Ok(exit::CHECK_FAILED)
        }
    }
}
