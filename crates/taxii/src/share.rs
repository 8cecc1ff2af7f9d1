//! The write path: STIX objects a local tool adds to an incident
//! collection. Each incident is mapped (`cairn_stix::import`), checked
//! against the collection's label, prepared (validated, sealed to the
//! recipients, signed with the member's key) and submitted; a newer
//! version of an incident this gateway shared is submitted as its
//! correction. Marking definitions, identities and extension definitions
//! the gateway already serves are taken as known; anything else is
//! refused. Every outcome names the object and, for a refusal, why.

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

/// Shares the objects of an envelope added to `collection`.
pub async fn add_objects(gw: &Gateway, collection: &Collection, objects: &[Value]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(objects.len());
    for obj in objects {
        let id = obj["id"].as_str().unwrap_or_default().to_owned();
        let version = obj["modified"]
            .as_str()
            .or_else(|| obj["created"].as_str())
            .unwrap_or_default()
            .to_owned();
        let result = match obj["type"].as_str() {
            Some("incident") => share_incident(gw, collection, obj).await,
            Some("marking-definition" | "extension-definition" | "identity") if known(gw, &id) => {
                Ok("already served by this gateway".to_owned())
            }
            Some(ty) => Err(format!(
                "objects of type {ty:?} cannot be shared through cairn: add incident objects"
            )),
            None => Err("not a STIX object: no type".to_owned()),
        };
        if let Err(why) = &result {
            tracing::info!(object = %id, %why, "added object refused");
        }
        out.push(Outcome {
            id,
            version,
            result,
        });
    }
    out
}

/// Whether the gateway serves an object with this id itself.
fn known(gw: &Gateway, id: &str) -> bool {
    gw.store.versions(id).is_ok_and(|v| !v.is_empty())
}

async fn share_incident(
    gw: &Gateway,
    collection: &Collection,
    obj: &Value,
) -> Result<String, String> {
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
    if let Some(record) = gw
        .store
        .shared(&imported.stix_id, &imported.modified)
        .map_err(|e| e.to_string())?
    {
        return Ok(format!("already shared as record {record}"));
    }
    let supersedes = match gw
        .store
        .last_shared(&imported.stix_id)
        .map_err(|e| e.to_string())?
    {
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
    gw.store
        .name_record(&prepared.record_id, &imported.stix_id)
        .map_err(|e| e.to_string())?;
    let submitted = gw
        .client
        .submit_incident(&prepared)
        .await
        .map_err(|e| e.to_string())?;
    gw.store
        .record_shared(&imported.stix_id, &imported.modified, &submitted.record_id)
        .map_err(|e| e.to_string())?;
    let verb = if supersedes.is_some() {
        "correction"
    } else {
        "record"
    };
    let logged = match (&submitted.receipt, submitted.receipt_pending) {
        (Some(r), _) => format!(", in the audit log at leaf {}", r.leaf_index),
        (None, _) => ", durable; its audit receipt is pending".to_owned(),
    };
    Ok(format!(
        "shared as {verb} {} (TLP:{}{}){logged}",
        submitted.record_id,
        upper(label),
        recipients(&imported.share)
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
