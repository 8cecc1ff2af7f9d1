//! STIX 2.1 incidents to cairn incident content and the share their
//! markings name.
//!
//! cairn takes an `incident` object that carries cairn's AI extension
//! (`extensions.<ai_incident_extension_id>.incident`: the content in the
//! protobuf JSON mapping); `name` and `description` stand for the title
//! and summary when the extension leaves them out. Exactly one TLP 2.0
//! marking in `object_marking_refs` sets the label; the extension's
//! `recipients` list who may read an AMBER, AMBER+STRICT or RED record.

use cairn_client::Share;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb::SharingLabel;
use serde_json::{Map, Value};

use crate::StixError;
use crate::vocab;

/// A STIX incident, mapped.
#[derive(Debug)]
pub struct Imported {
    /// The STIX object's id.
    pub stix_id: String,
    /// The version (`modified`).
    pub modified: String,
    /// The content.
    pub incident: intake::Incident,
    /// Label and recipients.
    pub share: Share,
}

/// Maps one STIX object to an incident `author` may share: checks the
/// object's form, its author, its marking and recipients, and the
/// content (the content's own rules are checked again when the record is
/// prepared).
pub fn incident_from_object(obj: &Value, author: &str) -> Result<Imported, StixError> {
    let map = obj
        .as_object()
        .ok_or_else(|| StixError::property("(object)", "must be a JSON object"))?;
    let ty = text(map, "type")?;
    if ty != "incident" {
        return Err(StixError::NotAnIncident { ty: ty.to_owned() });
    }
    if text(map, "spec_version")? != vocab::SPEC_VERSION {
        return Err(StixError::property("spec_version", "must be \"2.1\""));
    }
    let stix_id = text(map, "id")?;
    if !vocab::is_id_of("incident", stix_id) {
        return Err(StixError::property(
            "id",
            "must be incident--<RFC 4122 UUID>",
        ));
    }
    let created = vocab::parse_timestamp("created", text(map, "created")?)?;
    let modified = text(map, "modified")?;
    if vocab::parse_timestamp("modified", modified)? < created {
        return Err(StixError::property("modified", "is before created"));
    }
    check_author(map, author)?;
    if map.get("revoked").and_then(Value::as_bool) == Some(true) {
        return Err(StixError::property(
            "revoked",
            "a revoked object cannot be shared (retract the record instead)",
        ));
    }
    let label = label_of(map)?;
    let ext = ai_extension(map)?;
    let recipients = recipients_of(ext)?;
    let share = share_of(label, recipients)?;
    let incident = content_of(map, ext)?;
    Ok(Imported {
        stix_id: stix_id.to_owned(),
        modified: modified.to_owned(),
        incident,
        share,
    })
}

fn text<'a>(map: &'a Map<String, Value>, property: &str) -> Result<&'a str, StixError> {
    match map.get(property) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(StixError::property(property, "must be a string")),
        None => Err(StixError::property(property, "is required")),
    }
}

fn check_author(map: &Map<String, Value>, author: &str) -> Result<(), StixError> {
    let own = vocab::member_identity_id(author);
    match map.get("created_by_ref") {
        None => Ok(()),
        Some(Value::String(by)) if *by == own => Ok(()),
        Some(by) => Err(StixError::property(
            "created_by_ref",
            format!(
                "names {by}, not this member's identity {own}: records are shared only as their signer"
            ),
        )),
    }
}

/// The one TLP 2.0 label the object's markings name.
fn label_of(map: &Map<String, Value>) -> Result<SharingLabel, StixError> {
    if map.contains_key("granular_markings") {
        return Err(StixError::Marking {
            detail: "granular markings are not enforceable: cairn labels a whole record".into(),
        });
    }
    let refs = match map.get("object_marking_refs") {
        None => Vec::new(),
        Some(Value::Array(refs)) => refs.iter().collect(),
        Some(_) => {
            return Err(StixError::property(
                "object_marking_refs",
                "must be a list of marking-definition ids",
            ));
        }
    };
    let mut labels = Vec::new();
    for r in refs {
        let id = r.as_str().unwrap_or_default();
        match vocab::label_of_marking(id) {
            Some(l) => labels.push(l),
            None => {
                return Err(StixError::Marking {
                    detail: format!(
                        "{r} is not one of the five official TLP 2.0 marking definitions cairn enforces"
                    ),
                });
            }
        }
    }
    match labels.as_slice() {
        [one] => Ok(*one),
        [] => Err(StixError::Marking {
            detail: "no TLP 2.0 marking: cairn needs one to know who may read the record".into(),
        }),
        _ => Err(StixError::Marking {
            detail: "more than one TLP marking".into(),
        }),
    }
}

fn ai_extension(map: &Map<String, Value>) -> Result<&Map<String, Value>, StixError> {
    let id = vocab::ai_incident_extension_id();
    let path = format!("extensions.{id}");
    let ext = map
        .get("extensions")
        .and_then(|e| e.get(&id))
        .ok_or_else(|| {
            StixError::property(&path, "is required: cairn's AI incident extension carries the AI system, harms and severity")
        })?
        .as_object()
        .ok_or_else(|| StixError::property(&path, "must be an object"))?;
    if ext.get("extension_type").and_then(Value::as_str) != Some("property-extension") {
        return Err(StixError::property(
            &format!("{path}.extension_type"),
            "must be \"property-extension\"",
        ));
    }
    Ok(ext)
}

fn recipients_of(ext: &Map<String, Value>) -> Result<Vec<String>, StixError> {
    let property = "extensions.<cairn-ai-incident>.recipients";
    match ext.get("recipients") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| StixError::property(property, "must list member ids"))
            })
            .collect(),
        Some(_) => Err(StixError::property(
            property,
            "must be a list of member ids",
        )),
    }
}

fn share_of(label: SharingLabel, recipients: Vec<String>) -> Result<Share, StixError> {
    let name = vocab::label_name(label);
    let open = matches!(label, SharingLabel::TlpClear | SharingLabel::TlpGreen);
    if open && !recipients.is_empty() {
        return Err(StixError::Recipients {
            detail: format!(
                "TLP:{} goes to every member; list no recipients",
                name.to_uppercase()
            ),
        });
    }
    if !open && recipients.is_empty() {
        return Err(StixError::Recipients {
            detail: format!(
                "TLP:{} needs the recipients' member ids",
                name.to_uppercase()
            ),
        });
    }
    Share::parse(name, recipients).map_err(|e| StixError::Recipients {
        detail: e.to_string(),
    })
}

/// The content: the extension's `incident`, with `name` and
/// `description` as title and summary where it leaves them out.
fn content_of(
    map: &Map<String, Value>,
    ext: &Map<String, Value>,
) -> Result<intake::Incident, StixError> {
    let mut content = match ext.get("incident") {
        Some(Value::Object(c)) => c.clone(),
        _ => {
            return Err(StixError::property(
                "extensions.<cairn-ai-incident>.incident",
                "is required: the incident content as an object",
            ));
        }
    };
    for (stix, field) in [("name", "title"), ("description", "summary")] {
        let Some(v) = map.get(stix) else { continue };
        let v = v
            .as_str()
            .ok_or_else(|| StixError::property(stix, "must be a string"))?;
        match content.get(field) {
            None => {
                content.insert(field.into(), Value::String(v.to_owned()));
            }
            Some(Value::String(c)) if c == v => {}
            Some(_) => {
                return Err(StixError::property(
                    stix,
                    format!("differs from the incident's {field} in cairn's extension"),
                ));
            }
        }
    }
    let json = Value::Object(content).to_string();
    cairn_client::json::incident_from_json(&json).map_err(|e| StixError::Content {
        detail: e.to_string(),
    })
}
