//! `cairn incident sighting|mitigation` (another member's "observed here
//! too", or what to do about it) and `cairn incident related <id>`.

use anyhow::Context as _;
use cairn_client::verify::stored_id;
use cairn_client::{Share, json};
use clap::Args;

use crate::connect::ConnectArgs;
use crate::exit;
use crate::records::{ShareArgs, read_input};
use crate::show::{describe, print_submitted};

#[derive(Args, Debug)]
pub struct ObservationArgs {
    /// The JSON file (`-` for stdin).
    file: String,
    /// The incident it concerns (without it, the model in the file).
    #[arg(long)]
    about: Option<String>,
    #[command(flatten)]
    share: ShareArgs,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Validates, seals, signs and submits a sighting (`sighting`) or a
/// mitigation.
pub async fn observe(args: ObservationArgs, sighting: bool, json_out: bool) -> anyhow::Result<u8> {
    let text = read_input(&args.file)?;
    let share = Share::parse(&args.share.label, args.share.to.clone())?;
    let client = args.connect.client().await?;
    let about = args.about.as_deref();
    let invalid = || {
        format!(
            "{} is not a valid {}",
            args.file,
            if sighting { "sighting" } else { "mitigation" }
        )
    };
    let prepared = if sighting {
        let s = json::from_json("cairn.intake.v1.Sighting", &text).with_context(invalid)?;
        client.prepare_sighting(&s, &share, about)
    } else {
        let m = json::from_json("cairn.intake.v1.Mitigation", &text).with_context(invalid)?;
        client.prepare_mitigation(&m, &share, about)
    }
    .with_context(invalid)?;
    print_submitted(&client.submit_incident(&prepared).await?, json_out);
    Ok(exit::OK)
}

/// Prints what is related to an incident.
pub async fn related(record_id: &str, connect: &ConnectArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let r = client.related(record_id).await?;
    if json_out {
        let mut sightings = Vec::new();
        for (s, c) in &r.sightings {
            let content = c
                .as_ref()
                .map(|c| json::to_json("cairn.intake.v1.Sighting", c))
                .transpose()?;
            sightings.push(serde_json::json!({"record_id": stored_id(s), "content": content}));
        }
        let mut mitigations = Vec::new();
        for (s, c) in &r.mitigations {
            let content = c
                .as_ref()
                .map(|c| json::to_json("cairn.intake.v1.Mitigation", c))
                .transpose()?;
            mitigations.push(serde_json::json!({"record_id": stored_id(s), "content": content}));
        }
        println!(
            "{}",
            serde_json::json!({
                "thread": r.timeline.thread,
                "reports": r.timeline.reports.iter().map(|x| &x.record_id).collect::<Vec<_>>(),
                "sightings": sightings,
                "mitigations": mitigations,
                "results": r.results.iter().map(stored_id).collect::<Vec<_>>(),
            })
        );
        return Ok(exit::OK);
    }
    println!("{}", crate::timeline::clock_text(&r.timeline));
    println!(
        "thread {}: {} report(s)",
        r.timeline.thread,
        r.timeline.reports.len()
    );
    println!("sightings: {}", r.sightings.len());
    for (s, c) in &r.sightings {
        let what = c.as_ref().map_or("(sealed to others)".to_owned(), |c| {
            format!("{} ({})", c.description, c.jurisdiction)
        });
        println!("  {}  {what}", describe(s));
    }
    println!("mitigations and advisories: {}", r.mitigations.len());
    for (s, c) in &r.mitigations {
        let what = c.as_ref().map_or("(sealed to others)".to_owned(), |c| {
            format!("{}{}", if c.advisory { "advisory: " } else { "" }, c.title)
        });
        println!("  {}  {what}", describe(s));
    }
    println!(
        "evaluation results about the same models: {}",
        r.results.len()
    );
    for s in &r.results {
        println!("  {}", describe(s));
    }
    Ok(exit::OK)
}
