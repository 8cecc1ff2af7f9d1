//! `cairn incident export --stix` and `cairn incident import --stix`:
//! STIX 2.1 bundles as files (the mapping is `cairn-stix`'s).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use cairn_client::Client;
use cairn_record::pb;
use clap::Args;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::connect::ConnectArgs;
use crate::exit;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write a STIX 2.1 bundle (the only format so far).
    #[arg(long, required = true)]
    stix: bool,
    /// Only these incidents (record ids); default every incident-side
    /// record you can open (incidents, sightings, mitigations).
    record_ids: Vec<String>,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Read a STIX 2.1 bundle (the only format so far).
    #[arg(long, required = true)]
    stix: bool,
    /// The bundle (`-` for standard input).
    file: String,
    /// Check and prepare every incident, submit none.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Every record the member may list, oldest first, opened and mapped.
pub async fn export(args: ExportArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = args.connect.client().await?;
    let records = if args.record_ids.is_empty() {
        all_incident_records(&client).await?
    } else {
        let mut out = Vec::new();
        for id in &args.record_ids {
            out.push(client.get_incident(id, false).await?);
        }
        out
    };
    let bundle = bundle_of(&client, &records)?;
    let text = serde_json::to_string_pretty(&bundle)?;
    let count = bundle["objects"].as_array().map_or(0, Vec::len);
    match &args.out {
        Some(path) => {
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            if json_out {
                println!("{}", json!({ "out": path, "objects": count }));
            } else {
                println!("{count} STIX objects written to {}", path.display());
            }
        }
        None => println!("{text}"),
    }
    Ok(exit::OK)
}

async fn all_incident_records(client: &Client) -> anyhow::Result<Vec<pb::StoredRecord>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = client
            .list_incidents(
                pb::RecordFilter {
                    include_inactive: true,
                    ..pb::RecordFilter::default()
                },
                500,
                token,
            )
            .await?;
        out.extend(page);
        if next.is_empty() {
            return Ok(out);
        }
        token = next;
    }
}

/// A bundle: the TLP 2.0 markings, cairn's extension definitions, the
/// members, then what each record became (later versions replace
/// earlier ones: a bundle holds one version of an object).
fn bundle_of(client: &Client, records: &[pb::StoredRecord]) -> anyhow::Result<Value> {
    let mut made: HashMap<Uuid, Value> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, Value> = HashMap::new();
    for stored in records {
        let opened = match client.open(stored) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "a record was not opened; it is not exported");
                continue;
            }
        };
        let lookup = |r: Uuid| made.get(&r).cloned();
        let exported = cairn_stix::objects_of(&opened, &lookup)?;
        for obj in exported.objects {
            let id = obj["id"].as_str().unwrap_or_default().to_owned();
            if exported.primary.as_deref() == Some(&id) {
                made.insert(opened.header.record_id, obj.clone());
            }
            if !latest.contains_key(&id) {
                order.push(id.clone());
            }
            latest.insert(id, obj);
        }
    }
    let mut objects = cairn_stix::vocab::marking_definitions();
    objects.extend(cairn_stix::vocab::extension_definitions());
    objects.extend(
        client
            .directory()
            .members()
            .map(cairn_stix::export::identity),
    );
    objects.extend(order.iter().filter_map(|id| latest.remove(id)));
    Ok(json!({
        "type": "bundle",
        "id": format!("bundle--{}", Uuid::new_v4()),
        "objects": objects,
    }))
}

/// Maps and prepares every incident of the bundle first; submits only
/// when all are valid, so a bad bundle shares nothing.
pub async fn import(args: ImportArgs, json_out: bool) -> anyhow::Result<u8> {
    let text = crate::records::read_input(&args.file)?;
    let bundle: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.file))?;
    if bundle["type"] != "bundle" {
        bail!(
            "{} is not a STIX bundle (its type is not \"bundle\")",
            args.file
        );
    }
    let objects = bundle["objects"]
        .as_array()
        .ok_or_else(|| anyhow!("{}: the bundle has no objects list", args.file))?;
    let client = args.connect.client().await?;
    let mut prepared = Vec::new();
    let mut refused = Vec::new();
    for obj in objects {
        let id = obj["id"].as_str().unwrap_or("(no id)").to_owned();
        match obj["type"].as_str() {
            Some("incident") => {}
            Some("marking-definition" | "extension-definition" | "identity") => continue,
            other => {
                refused.push(format!("{id}: objects of type {other:?} are not imported"));
                continue;
            }
        }
        let mapped = cairn_stix::incident_from_object(obj, client.member())
            .map_err(|e| e.to_string())
            .and_then(|i| {
                client
                    .prepare_incident(&i.incident, &i.share)
                    .map_err(|e| e.to_string())
            });
        match mapped {
            Ok(p) => prepared.push((id, p)),
            Err(why) => refused.push(format!("{id}: {why}")),
        }
    }
    if !refused.is_empty() {
        bail!(
            "nothing was submitted; {} object(s) refused:\n  {}",
            refused.len(),
            refused.join("\n  ")
        );
    }
    let mut results = Vec::new();
    for (id, p) in &prepared {
        if args.dry_run {
            results.push(json!({"stix_id": id, "record_id": p.record_id, "submitted": false}));
            continue;
        }
        let s = client.submit_incident(p).await?;
        results.push(
            json!({"stix_id": id, "record_id": s.record_id, "submitted": true,
            "leaf_index": s.receipt.as_ref().map(|r| r.leaf_index)}),
        );
    }
    if json_out {
        println!("{}", json!({ "imported": results }));
    } else {
        for r in &results {
            let verb = if args.dry_run { "checked" } else { "shared" };
            println!(
                "{} {verb} as record {}",
                r["stix_id"].as_str().unwrap_or_default(),
                r["record_id"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}
