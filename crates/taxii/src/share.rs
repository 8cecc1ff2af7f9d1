//! The write path: STIX objects a local tool adds to an incident
//! collection. Each incident is mapped (`cairn_stix::import`), checked
//! against the collection's label, prepared (validated, sealed to the
//! recipients, signed with the member's key) and submitted; a newer
//! version of an incident this gateway shared is submitted as its
//! correction. Marking definitions, identities and extension definitions
//! the gateway already serves are taken as known; anything else is
//! refused. Every outcome names the object and, for a refusal, why. The
//! incidents of one envelope go on the bulk path together.

use cairn_record::pb::SharingLabel;
use serde_json::{Value, json};

use crate::Gateway;
use crate::collections::Collection;

/// What became of one added object.
#[derive(Debug)]
pub struct Outcome {
    /// The object's id.
    pub id: String,
    /// Its version (`modified`, or `created`).
    pub version: String,
    /// What was done, or why it was refused.
    pub result: Result<String, String>,
}

/// What to do with one added incident.
enum Plan {
    /// Nothing: this version was shared before.
    Done(String),
    /// Submit this record (a correction when `correction`).
    Submit {
        stix_id: String,
        modified: String,
        label: SharingLabel,
        share: cairn_client::Share,
        prepared: cairn_client::Prepared,
        correction: bool,
    },
}

fn version_of(obj: &Value) -> String {
    obj["modified"]
        .as_str()
        .or_else(|| obj["created"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Shares the objects of an envelope added to `collection`: the
/// incidents whose id is once in the envelope go together on the bulk
/// path (SubmitIncidents), the others (versions of one object) one after
/// the other, in order, since each depends on the one before.
pub async fn add_objects(gw: &Gateway, collection: &Collection, objects: &[Value]) -> Vec<Outcome> {
    let mut counts = std::collections::HashMap::new();
    for obj in objects.iter().filter(|o| o["type"] == "incident") {
        *counts
            .entry(obj["id"].as_str().unwrap_or_default())
            .or_insert(0) += 1;
    }
    let mut results: Vec<Option<Result<String, String>>> = vec![None; objects.len()];
    let mut batch = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        let id = obj["id"].as_str().unwrap_or_default();
        results[i] = match obj["type"].as_str() {
            Some("incident") if counts.get(id) == Some(&1) => match plan(gw, collection, obj) {
                Ok(Plan::Done(m)) => Some(Ok(m)),
                Ok(submit) => {
                    batch.push((i, submit));
                    None
                }
                Err(e) => Some(Err(e)),
            },
            Some("incident") => None,
            Some("marking-definition" | "extension-definition" | "identity") if known(gw, id) => {
                Some(Ok("already served by this gateway".to_owned()))
            }
            Some(ty) => Some(Err(format!(
                "objects of type {ty:?} cannot be shared through cairn: add incident objects"
            ))),
            None => Some(Err("not a STIX object: no type".to_owned())),
        };
    }
    for (i, r) in submit_batch(gw, batch).await {
        results[i] = Some(r);
    }
    let mut out = Vec::with_capacity(objects.len());
    for (obj, r) in objects.iter().zip(results) {
        let result = match r {
            Some(r) => r,
            None => match plan(gw, collection, obj) {
                Ok(Plan::Done(m)) => Ok(m),
                Ok(p) => submit_one(gw, p).await,
                Err(e) => Err(e),
            },
        };
        let id = obj["id"].as_str().unwrap_or_default().to_owned();
        if let Err(why) = &result {
            tracing::info!(object = %id, %why, "added object refused");
        }
        out.push(Outcome {
            id,
            version: version_of(obj),
            result,
        });
    }
    out
}

/// Whether the gateway serves an object with this id itself.
fn known(gw: &Gateway, id: &str) -> bool {
    gw.store.versions(id).is_ok_and(|v| !v.is_empty())
}

/// Maps, checks and prepares one added incident against what the gateway
/// has shared so far.
fn plan(gw: &Gateway, collection: &Collection, obj: &Value) -> Result<Plan, String> {
    let Some(label) = collection.label else {
        return Err("this collection takes no incidents".into());
    };
    let mut obj = obj.clone();
    let marking = cairn_stix::vocab::marking_id(label).map_err(|e| e.to_string())?;
    if obj.get("object_marking_refs").is_none() {
        obj["object_marking_refs"] = json!([marking]);
    }
    let imported =
        cairn_stix::incident_from_object(&obj, gw.member()).map_err(|e| e.to_string())?;
    if imported.share.label() != label {
        return Err(format!(
            "the object is marked TLP:{} but was added to the TLP:{} collection",
            upper(imported.share.label()),
            upper(label)
        ));
    }
    let store = |e: crate::TaxiiError| e.to_string();
    if let Some(record) = gw
        .store
        .shared(&imported.stix_id, &imported.modified)
        .map_err(store)?
    {
        return Ok(Plan::Done(format!("already shared as record {record}")));
    }
    let supersedes = match gw.store.last_shared(&imported.stix_id).map_err(store)? {
        Some((modified, _)) if later_than(&modified, &imported.modified) => {
            return Err(format!(
                "version {} is older than version {modified}, already shared",
                imported.modified
            ));
        }
        Some((_, record)) => Some(record),
        None => None,
    };
    let prepared = match &supersedes {
        Some(old) => {
            gw.client
                .prepare_incident_correction(&imported.incident, &imported.share, old)
        }
        None => gw
            .client
            .prepare_incident(&imported.incident, &imported.share),
    }
    .map_err(|e| e.to_string())?;
    // The record's object keeps the tool's id.
    gw.store
        .name_record(&prepared.record_id, &imported.stix_id)
        .map_err(store)?;
    Ok(Plan::Submit {
        stix_id: imported.stix_id,
        modified: imported.modified,
        label,
        share: imported.share,
        prepared,
        correction: supersedes.is_some(),
    })
}

async fn submit_one(gw: &Gateway, plan: Plan) -> Result<String, String> {
    let Plan::Submit { prepared, .. } = &plan else {
        return Err("nothing to submit".into());
    };
    let submitted = gw
        .client
        .submit_incident(prepared)
        .await
        .map_err(|e| e.to_string());
    finish(gw, &plan, submitted)
}

/// Sends the planned records on one stream; each position's outcome.
async fn submit_batch(
    gw: &Gateway,
    batch: Vec<(usize, Plan)>,
) -> Vec<(usize, Result<String, String>)> {
    use cairn_proto::intake::v1::submit_incidents_result::Outcome as Answer;
    if batch.is_empty() {
        return Vec::new();
    }
    let records = batch
        .iter()
        .filter_map(|(_, p)| match p {
            Plan::Submit { prepared, .. } => Some(prepared.record.clone()),
            Plan::Done(_) => None,
        })
        .collect();
    let mut answers = match gw.client.submit_incidents(records).await {
        Ok(a) => a,
        Err(e) => {
            return batch
                .into_iter()
                .map(|(i, _)| (i, Err(e.to_string())))
                .collect();
        }
    };
    let mut got = vec![None; batch.len()];
    while let Ok(Some(a)) = answers.message().await {
        let Some(slot) = usize::try_from(a.index).ok().filter(|k| *k < batch.len()) else {
            continue;
        };
        got[slot] = Some(a.outcome);
    }
    batch
        .into_iter()
        .zip(got)
        .map(|((i, plan), answer)| {
            let submitted = match (&plan, answer.flatten()) {
                (Plan::Submit { prepared, .. }, Some(Answer::Accepted(r))) => gw
                    .client
                    .incident_submitted(prepared, r)
                    .map_err(|e| e.to_string()),
                (_, Some(Answer::Refused(r))) => Err(format!(
                    "{:?}: {}",
                    tonic::Code::from_i32(r.code),
                    r.message
                )),
                _ => Err("the service did not answer for this record; add it again".into()),
            };
            (i, finish(gw, &plan, submitted))
        })
        .collect()
}

/// Remembers a shared version and says what was done.
fn finish(
    gw: &Gateway,
    plan: &Plan,
    submitted: Result<cairn_client::Submitted, String>,
) -> Result<String, String> {
    let Plan::Submit {
        stix_id,
        modified,
        label,
        share,
        correction,
        ..
    } = plan
    else {
        return Err("nothing was submitted".into());
    };
    let submitted = submitted?;
    gw.store
        .record_shared(stix_id, modified, &submitted.record_id)
        .map_err(|e| e.to_string())?;
    let verb = if *correction { "correction" } else { "record" };
    let logged = match &submitted.receipt {
        Some(r) => format!(", in the audit log at leaf {}", r.leaf_index),
        None => ", durable; its audit receipt is pending".to_owned(),
    };
    Ok(format!(
        "shared as {verb} {} (TLP:{}{}){logged}",
        submitted.record_id,
        upper(*label),
        recipients(share)
    ))
}

/// Whether STIX timestamp `a` is after `b` (both checked on import).
fn later_than(a: &str, b: &str) -> bool {
    let t = |s: &str| cairn_stix::vocab::parse_timestamp("modified", s).ok();
    matches!((t(a), t(b)), (Some(a), Some(b)) if a > b)
}

fn upper(label: SharingLabel) -> String {
    cairn_stix::vocab::label_name(label).to_uppercase()
}

fn recipients(share: &cairn_client::Share) -> String {
    use cairn_client::Share;
    match share {
        Share::Amber(r) | Share::AmberStrict(r) | Share::Red(r) => format!(" to {}", r.join(", ")),
        Share::Clear | Share::Green => String::new(),
    }
}
