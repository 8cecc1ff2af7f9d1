//! Opened records to STIX 2.1 objects.
//!
//! A record becomes an object whose id is derived from the record id
//! ([`vocab::record_object_id`]); a correction (`supersedes`) becomes a
//! new *version* of the object its target became (same id and `created`,
//! a later `modified`), and a retraction a revoked version of it, so STIX
//! tools show the current state and TAXII's versions endpoint the history.

use cairn_client::verify::{Content, Opened};
use cairn_identity::Member;
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::header::CheckedHeader;
use cairn_record::pb::SharingLabel;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StixError;
use crate::vocab::{self, SPEC_VERSION, timestamp};

/// Finds the latest version of the object already made from a record.
pub trait Lookup {
    /// The object made from `record_id` (its latest version), if any.
    fn object_of(&self, record_id: Uuid) -> Option<Value>;
}

impl<F: Fn(Uuid) -> Option<Value>> Lookup for F {
    fn object_of(&self, record_id: Uuid) -> Option<Value> {
        self(record_id)
    }
}

/// What one record became.
#[derive(Debug, Default)]
pub struct Exported {
    /// New objects and new versions, in order.
    pub objects: Vec<Value>,
    /// The id of the object that stands for the record itself (for a
    /// correction or a retraction: the object it versions).
    pub primary: Option<String>,
    /// Why the record has no STIX form, when it has none.
    pub skipped: Option<&'static str>,
}

impl Exported {
    fn skip(why: &'static str) -> Self {
        Exported {
            skipped: Some(why),
            ..Exported::default()
        }
    }

    fn id(&self) -> &str {
        self.primary.as_deref().unwrap_or_default()
    }
}

/// The STIX objects an opened record becomes. `lookup` gives the objects
/// made from the records it names (the corrected, retracted, thread or
/// `about` record); a named record not made yet is referred to by the id
/// it will have.
pub fn objects_of(opened: &Opened, lookup: &dyn Lookup) -> Result<Exported, StixError> {
    let h = &opened.header;
    let base = h.supersedes.and_then(|s| lookup.object_of(s));
    let exported = match &opened.content {
        Content::Incident(i) => {
            let obj = incident(h, i, base.as_ref())?;
            let mut out = primary(obj);
            if let Some(thread) = h.thread {
                let first = reference(lookup, "incident", thread);
                let rel = relationship(h, "follow-up", out.id(), &first, "derived-from")?;
                out.objects.push(rel);
            }
            out
        }
        Content::Result(r) => primary(evaluation_result(h, r, base.as_ref())?),
        Content::Retraction(r) => match h.retracts.and_then(|t| lookup.object_of(t)) {
            Some(previous) => primary(revoked(&previous, h, &r.reason)),
            None => Exported::skip("it retracts a record this member has not seen"),
        },
        Content::Sighting(s) => match h.about {
            Some(about) => primary(sighting(h, s, &reference(lookup, "incident", about))?),
            None => Exported::skip("a sighting about a model only has no STIX sighting_of_ref"),
        },
        Content::Mitigation(m) => {
            let coa = mitigation(h, m, base.as_ref())?;
            let mut out = primary(coa);
            if let Some(about) = h.about {
                let target = reference(lookup, "incident", about);
                let rel = relationship(h, "mitigation", out.id(), &target, "related-to")?;
                out.objects.push(rel);
            }
            out
        }
        Content::Acknowledgement(_) => {
            Exported::skip("acknowledgements are workflow state between two members")
        }
        Content::Baseline(_) | Content::Assessment(_) | Content::Other(_) => {
            Exported::skip("this record kind has no STIX mapping")
        }
    };
    Ok(exported)
}

fn primary(obj: Value) -> Exported {
    let id = obj["id"].as_str().map(str::to_owned);
    Exported {
        objects: vec![obj],
        primary: id,
        skipped: None,
    }
}

/// The id of the object a named record became, or will become.
fn reference(lookup: &dyn Lookup, ty: &str, record_id: Uuid) -> String {
    lookup
        .object_of(record_id)
        .and_then(|o| o["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| vocab::record_object_id(ty, record_id))
}

/// The `identity` of a member.
pub fn identity(member: &Member) -> Value {
    let roles: Vec<String> = member.roles.iter().map(|r| format!("{r:?}")).collect();
    json!({
        "type": "identity",
        "spec_version": SPEC_VERSION,
        "id": vocab::member_identity_id(member.id.as_str()),
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": member.name,
        "description": format!(
            "cairn member {} ({}); roles: {}",
            member.id.as_str(),
            member.jurisdiction,
            roles.join(", ").to_lowercase()
        ),
        "identity_class": "organization",
        "sectors": ["government-national"],
        "external_references": [{"source_name": vocab::SOURCE_NAME, "external_id": member.id.as_str()}],
    })
}

/// The properties every object made from a record has. With `base`, the
/// object is a new version of `base` (its id and `created`).
fn common(
    ty: &str,
    h: &CheckedHeader,
    base: Option<&Value>,
) -> Result<Map<String, Value>, StixError> {
    let (id, created, modified) = match base {
        Some(b) => {
            let prev = b["modified"].as_str().unwrap_or_default();
            let prev = vocab::parse_timestamp("modified", prev)?;
            (
                b["id"].as_str().unwrap_or_default().to_owned(),
                b["created"].clone(),
                later(h.created_at, prev),
            )
        }
        None => (
            vocab::record_object_id(ty, h.record_id),
            json!(timestamp(h.created_at)),
            h.created_at,
        ),
    };
    let mut m = Map::new();
    m.insert("type".into(), json!(ty));
    m.insert("spec_version".into(), json!(SPEC_VERSION));
    m.insert("id".into(), json!(id));
    m.insert("created".into(), created);
    m.insert("modified".into(), json!(timestamp(modified)));
    m.insert(
        "created_by_ref".into(),
        json!(vocab::member_identity_id(h.author.as_str())),
    );
    m.insert(
        "object_marking_refs".into(),
        json!([vocab::marking_id(h.label)?]),
    );
    m.insert(
        "external_references".into(),
        json!([{"source_name": vocab::SOURCE_NAME, "external_id": h.record_id.to_string()}]),
    );
    Ok(m)
}

/// `at`, or a millisecond after `previous` when it is not later (a STIX
/// version's `modified` must grow).
fn later(at: OffsetDateTime, previous: OffsetDateTime) -> OffsetDateTime {
    let ms = time::Duration::milliseconds(1);
    if at - previous >= ms {
        at
    } else {
        previous + ms
    }
}

fn content_json<T: prost::Message>(name: &str, message: &T) -> Result<Value, StixError> {
    cairn_client::json::to_json_proto_names(name, message).map_err(|e| StixError::Content {
        detail: e.to_string(),
    })
}

/// The recipients the author listed: none for TLP:CLEAR and TLP:GREEN
/// (every member may read those). STIX allows no empty lists, so an
/// empty one is left out.
fn listed_recipients(h: &CheckedHeader) -> &[String] {
    match h.label {
        SharingLabel::TlpClear | SharingLabel::TlpGreen => &[],
        _ => &h.recipients,
    }
}

/// An incident: STIX `incident` with the Incident Core Extension and
/// cairn's AI extension (the whole content, its record id and recipients).
pub fn incident(
    h: &CheckedHeader,
    i: &intake::Incident,
    base: Option<&Value>,
) -> Result<Value, StixError> {
    let mut m = common("incident", h, base)?;
    m.insert("name".into(), json!(i.title));
    m.insert("description".into(), json!(i.summary));
    let status = match i.status() {
        cairn_proto::common::v1::IncidentStatus::Final => "closed",
        cairn_proto::common::v1::IncidentStatus::Update => "open",
        _ => "new",
    };
    // A near miss (no harm occurred) is a failed attempt; otherwise the
    // harm materialised.
    let negligible = i.severity() == cairn_proto::common::v1::Severity::Negligible;
    let determination = if negligible {
        "failed-attempt"
    } else {
        "successful-attempt"
    };
    m.insert(
        "extensions".into(),
        json!({
            vocab::INCIDENT_CORE_EXTENSION: {
                "extension_type": "property-extension",
                "determination": determination,
                "investigation_status": status,
                "criticality": i.severity * 20,
            },
            vocab::ai_incident_extension_id(): {
                "extension_type": "property-extension",
                "record_id": h.record_id.to_string(),
                "incident": content_json("cairn.intake.v1.Incident", i)?,
            }
        }),
    );
    if !listed_recipients(h).is_empty() {
        m["extensions"][vocab::ai_incident_extension_id()]["recipients"] =
            json!(listed_recipients(h));
    }
    Ok(Value::Object(m))
}

/// An evaluation result: an `x-cairn-evaluation-result` object (a new
/// SDO defined by cairn's evaluation extension).
pub fn evaluation_result(
    h: &CheckedHeader,
    r: &evals::EvaluationResult,
    base: Option<&Value>,
) -> Result<Value, StixError> {
    let mut m = common(vocab::EVALUATION_TYPE, h, base)?;
    let model = r.model.as_ref().map(|m| m.name.as_str()).unwrap_or("?");
    let task = r.task.as_ref().map(|t| t.id.as_str()).unwrap_or("?");
    m.insert("name".into(), json!(format!("{task} on {model}")));
    if !r.summary_findings.is_empty() {
        m.insert("description".into(), json!(r.summary_findings));
    }
    m.insert("record_id".into(), json!(h.record_id.to_string()));
    if !listed_recipients(h).is_empty() {
        m.insert("recipients".into(), json!(listed_recipients(h)));
    }
    m.insert(
        "evaluation".into(),
        content_json("cairn.evals.v1.EvaluationResult", r)?,
    );
    m.insert(
        "extensions".into(),
        json!({ vocab::evaluation_extension_id(): { "extension_type": "new-sdo" } }),
    );
    Ok(Value::Object(m))
}

/// A revoked version of `previous`, made by the retraction `h`.
pub fn revoked(previous: &Value, h: &CheckedHeader, reason: &str) -> Value {
    let mut next = previous.clone();
    let prev = previous["modified"]
        .as_str()
        .and_then(|m| vocab::parse_timestamp("modified", m).ok())
        .unwrap_or(h.created_at);
    next["modified"] = json!(timestamp(later(h.created_at, prev)));
    next["revoked"] = json!(true);
    if let Some(refs) = next["external_references"].as_array_mut() {
        refs.push(json!({
            "source_name": vocab::SOURCE_NAME,
            "external_id": h.record_id.to_string(),
            "description": format!("retracted: {reason}"),
        }));
    }
    next
}

/// A sighting of an incident by the sighting's author.
pub fn sighting(
    h: &CheckedHeader,
    s: &intake::Sighting,
    incident_id: &str,
) -> Result<Value, StixError> {
    let mut m = common("sighting", h, None)?;
    m.insert("sighting_of_ref".into(), json!(incident_id));
    m.insert(
        "where_sighted_refs".into(),
        json!([vocab::member_identity_id(h.author.as_str())]),
    );
    m.insert("description".into(), json!(s.description));
    if let Some(at) = &s.observed_at {
        let at = cairn_record::header::timestamp_to_time(at)
            .map_err(|e| StixError::property("observed_at", e.to_string()))?;
        m.insert("first_seen".into(), json!(timestamp(at)));
        m.insert("last_seen".into(), json!(timestamp(at)));
    }
    m.insert("count".into(), json!(1));
    Ok(Value::Object(m))
}

/// A mitigation or advisory: a `course-of-action`.
pub fn mitigation(
    h: &CheckedHeader,
    mi: &intake::Mitigation,
    base: Option<&Value>,
) -> Result<Value, StixError> {
    let mut m = common("course-of-action", h, base)?;
    m.insert("name".into(), json!(mi.title));
    m.insert("description".into(), json!(mi.description));
    Ok(Value::Object(m))
}

/// A relationship made by record `h` (`what` tells it from the record's
/// own object).
fn relationship(
    h: &CheckedHeader,
    what: &str,
    source: &str,
    target: &str,
    ty: &str,
) -> Result<Value, StixError> {
    let mut m = common("relationship", h, None)?;
    m.insert(
        "id".into(),
        json!(vocab::derived_id(
            "relationship",
            &format!("{what}:{}", h.record_id)
        )),
    );
    m.insert("relationship_type".into(), json!(ty));
    m.insert("source_ref".into(), json!(source));
    m.insert("target_ref".into(), json!(target));
    Ok(Value::Object(m))
}
