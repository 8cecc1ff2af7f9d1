//! The incident schema: validation and index fields.

use cairn_identity::directory::is_valid_jurisdiction;
use cairn_proto::intake::v1 as intake;
use time::OffsetDateTime;

use super::{
    art73_days, art73_deadline, bad, check_artifacts, check_digest, check_record_ids, check_tags,
    optional_text, required_text, short, time_field,
};
use crate::error::RecordError;
use crate::header::timestamp_to_time;
use crate::pb;

/// Validates an incident.
pub fn validate_incident(inc: &intake::Incident, now: OffsetDateTime) -> Result<(), RecordError> {
    required_text("title", &inc.title, 200)?;
    required_text("summary", &inc.summary, 2000)?;
    optional_text("description", &inc.description, 65_536)?;
    let occurred = check_times(inc, now)?;
    if !matches!(pb::IncidentStatus::try_from(inc.status), Ok(s) if s != pb::IncidentStatus::Unspecified)
    {
        return Err(bad("status", "is required: initial, update or final"));
    }
    check_ai_system(inc.ai_system.as_ref())?;
    check_tags("sectors", &inc.sectors, 20)?;
    check_jurisdictions(&inc.jurisdictions)?;
    check_harm_types(&inc.harm_types)?;
    if !matches!(pb::Severity::try_from(inc.severity), Ok(s) if s != pb::Severity::Unspecified) {
        return Err(bad(
            "severity",
            "is required: negligible, low, moderate, high or critical",
        ));
    }
    if let Some(a) = &inc.affected {
        optional_text("affected.description", &a.description, 2000)?;
    }
    check_serious(inc, occurred, now)?;
    optional_text("root_cause", &inc.root_cause, 65_536)?;
    optional_text("mitigation", &inc.mitigation, 65_536)?;
    check_artifacts("evidence", &inc.evidence)?;
    check_record_ids("related_incidents", &inc.related_incidents)?;
    check_record_ids("related_evaluations", &inc.related_evaluations)?;
    check_tags("tags", &inc.tags, 50)
}

/// Occurred, detected and reported, each required and in that order;
/// returns when it occurred.
fn check_times(
    inc: &intake::Incident,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RecordError> {
    let occurred = time_field("occurred_at", &inc.occurred_at, true, now)?;
    let detected = time_field("detected_at", &inc.detected_at, true, now)?;
    let reported = time_field("reported_at", &inc.reported_at, true, now)?;
    if occurred > detected {
        return Err(bad("detected_at", "is before occurred_at"));
    }
    if detected > reported {
        return Err(bad("reported_at", "is before detected_at"));
    }
    Ok(occurred)
}

fn check_ai_system(sys: Option<&intake::AiSystem>) -> Result<(), RecordError> {
    let sys = sys.ok_or_else(|| bad("ai_system", "is required"))?;
    required_text("ai_system.name", &sys.name, 200)?;
    required_text("ai_system.provider", &sys.provider, 200)?;
    optional_text("ai_system.version", &sys.version, 100)?;
    optional_text("ai_system.deployer", &sys.deployer, 200)?;
    for (i, m) in sys.models.iter().enumerate() {
        required_text(&format!("ai_system.models[{i}].id"), &m.id, 200)?;
        if !m.digest.is_empty() {
            check_digest(&format!("ai_system.models[{i}].digest"), &m.digest)?;
        }
    }
    Ok(())
}

fn check_jurisdictions(jurisdictions: &[String]) -> Result<(), RecordError> {
    if jurisdictions.is_empty() {
        return Err(bad(
            "jurisdictions",
            "at least one ISO 3166-1 alpha-2 code or EU",
        ));
    }
    for (i, j) in jurisdictions.iter().enumerate() {
        if !is_valid_jurisdiction(j) {
            return Err(bad(
                &format!("jurisdictions[{i}]"),
                format!("{:?} is not an ISO 3166-1 alpha-2 code or EU", short(j)),
            ));
        }
    }
    Ok(())
}

fn check_harm_types(harm_types: &[i32]) -> Result<(), RecordError> {
    if harm_types.is_empty() {
        return Err(bad("harm_types", "at least one harm type"));
    }
    for (i, h) in harm_types.iter().enumerate() {
        if !matches!(intake::HarmType::try_from(*h), Ok(t) if t != intake::HarmType::Unspecified) {
            return Err(bad(
                &format!("harm_types[{i}]"),
                format!("{h} is not a harm type"),
            ));
        }
    }
    Ok(())
}

/// A serious incident names its Art. 73 category, when it became aware
/// (not before it occurred) and, if it gives one, the right deadline.
fn check_serious(
    inc: &intake::Incident,
    occurred: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<(), RecordError> {
    let Some(s) = inc.serious_incident.as_ref().filter(|s| s.is_serious) else {
        return Ok(());
    };
    let category =
        intake::Art73Category::try_from(s.category).unwrap_or(intake::Art73Category::Unspecified);
    if art73_days(category).is_none() {
        return Err(bad(
            "serious_incident.category",
            "is required for a serious incident",
        ));
    }
    let aware = time_field("serious_incident.aware_at", &s.aware_at, true, now)?;
    if aware < occurred {
        return Err(bad("serious_incident.aware_at", "is before occurred_at"));
    }
    if let (Some(given), Some(computed)) = (s.reporting_deadline.as_ref(), art73_deadline(inc)) {
        let given =
            timestamp_to_time(given).map_err(|d| bad("serious_incident.reporting_deadline", d))?;
        if given != computed {
            return Err(bad(
                "serious_incident.reporting_deadline",
                "differs from aware_at plus the Art. 73 period",
            ));
        }
    }
    Ok(())
}
/// The index fields of an incident.
pub fn incident_index(inc: &intake::Incident) -> pb::IndexFields {
    pb::IndexFields {
        fields: Some(pb::index_fields::Fields::Incident(pb::IncidentIndex {
            status: inc.status,
            severity: inc.severity,
            sectors: inc.sectors.clone(),
            jurisdictions: inc.jurisdictions.clone(),
        })),
    }
}

/// Validates a sighting: what, when (not in the future), where, and the
/// model and evidence it names.
pub fn validate_sighting(s: &intake::Sighting, now: OffsetDateTime) -> Result<(), RecordError> {
    required_text("description", &s.description, 4000)?;
    time_field("observed_at", &s.observed_at, true, now)?;
    if !is_valid_jurisdiction(&s.jurisdiction) {
        return Err(bad(
            "jurisdiction",
            format!(
                "{:?} is not an ISO 3166-1 alpha-2 code or EU",
                short(&s.jurisdiction)
            ),
        ));
    }
    check_model("model", s.model.as_ref())?;
    check_artifacts("evidence", &s.evidence)
}

/// Validates a mitigation or advisory.
pub fn validate_mitigation(m: &intake::Mitigation) -> Result<(), RecordError> {
    required_text("title", &m.title, 200)?;
    required_text("description", &m.description, 65_536)?;
    check_model("model", m.model.as_ref())?;
    check_artifacts("evidence", &m.evidence)
}

/// A named model: an id, and a digest in OCI form when given.
fn check_model(field: &str, model: Option<&intake::ModelIdentifier>) -> Result<(), RecordError> {
    let Some(m) = model else { return Ok(()) };
    required_text(&format!("{field}.id"), &m.id, 200)?;
    if !m.digest.is_empty() {
        check_digest(&format!("{field}.digest"), &m.digest)?;
    }
    Ok(())
}
