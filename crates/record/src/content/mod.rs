//! Content schemas: validation of incidents and evaluation results, the
//! EU AI Act Article 73 deadline, and the cleartext index fields derived
//! from content.
//!
//! The services cannot read sealed bodies, so the SDK runs these checks
//! before sealing; the services run them on TLP:CLEAR bodies. Errors name
//! the field (`content.ai_system.provider`).

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use time::{Duration, OffsetDateTime};

use crate::error::RecordError;
use crate::header::timestamp_to_time;
use crate::pb;

mod baseline;
mod evaluation;
mod incident;

pub use baseline::{baseline_index, validate_baseline};
pub use evaluation::{evaluation_index, validate_evaluation};
pub use incident::{incident_index, validate_incident, validate_mitigation, validate_sighting};

/// How far in the future a content timestamp may be (clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

fn bad(field: &str, detail: impl Into<String>) -> RecordError {
    RecordError::field(format!("content.{field}"), detail)
}

fn required_text(field: &str, value: &str, max_chars: usize) -> Result<(), RecordError> {
    if value.trim().is_empty() {
        return Err(bad(field, "is required"));
    }
    optional_text(field, value, max_chars)
}

fn optional_text(field: &str, value: &str, max_chars: usize) -> Result<(), RecordError> {
    let n = value.chars().count();
    if n > max_chars {
        return Err(bad(
            field,
            format!("is {n} characters, at most {max_chars}"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(bad(field, "contains control characters"));
    }
    Ok(())
}

/// Checks an OCI-style digest: `sha256:<64 hex>` or `sha512:<128 hex>`.
pub fn check_digest(field: &str, digest: &str) -> Result<(), RecordError> {
    let (alg, hex) = digest.split_once(':').ok_or_else(|| {
        bad(
            field,
            format!("{:?} is not <algorithm>:<hex>", short(digest)),
        )
    })?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(bad(
                field,
                format!("algorithm {:?} is not sha256 or sha512", short(alg)),
            ));
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(bad(
            field,
            format!("a {alg} digest is {want} lowercase hex digits"),
        ));
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn time_field(
    field: &str,
    ts: &Option<prost_types::Timestamp>,
    required: bool,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, RecordError> {
    let Some(ts) = ts else {
        return if required {
            Err(bad(field, "is required"))
        } else {
            Ok(None)
        };
    };
    let t = timestamp_to_time(ts).map_err(|d| bad(field, d))?;
    if t > now + MAX_CLOCK_SKEW {
        return Err(bad(field, "is in the future"));
    }
    if t.year() < 1990 {
        return Err(bad(field, "is before 1990"));
    }
    Ok(Some(t))
}

fn check_tags(field: &str, tags: &[String], max: usize) -> Result<(), RecordError> {
    if tags.len() > max {
        return Err(bad(field, format!("{} entries, at most {max}", tags.len())));
    }
    for (i, t) in tags.iter().enumerate() {
        let ok = !t.is_empty()
            && t.len() <= 64
            && t.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || c == b'-'
                    || c == b'_'
                    || c == b'.'
                    || c == b'/'
            });
        if !ok {
            return Err(bad(
                &format!("{field}[{i}]"),
                "1 to 64 characters of a-z, 0-9, '-', '_', '.', '/'",
            ));
        }
    }
    Ok(())
}

fn check_artifacts(field: &str, artifacts: &[pb::Artifact]) -> Result<(), RecordError> {
    if artifacts.len() > 100 {
        return Err(bad(field, "at most 100 entries"));
    }
    for (i, a) in artifacts.iter().enumerate() {
        check_digest(&format!("{field}[{i}].digest"), &a.digest)?;
        optional_text(&format!("{field}[{i}].description"), &a.description, 1000)?;
        optional_text(&format!("{field}[{i}].uri"), &a.uri, 2000)?;
    }
    Ok(())
}

fn check_record_ids(field: &str, ids: &[pb::RecordId]) -> Result<(), RecordError> {
    for (i, r) in ids.iter().enumerate() {
        crate::header::parse_record_id(&r.uuid).map_err(|d| bad(&format!("{field}[{i}]"), d))?;
    }
    Ok(())
}

/// Days from awareness to the Art. 73 reporting deadline.
pub fn art73_days(category: intake::Art73Category) -> Option<i64> {
    match category {
        intake::Art73Category::General => Some(15),
        intake::Art73Category::Death => Some(10),
        intake::Art73Category::WidespreadOrCriticalInfrastructure => Some(2),
        intake::Art73Category::Unspecified => None,
    }
}

/// The Art. 73 reporting deadline of a serious incident, if it is one.
pub fn art73_deadline(incident: &intake::Incident) -> Option<OffsetDateTime> {
    let s = incident
        .serious_incident
        .as_ref()
        .filter(|s| s.is_serious)?;
    let days = art73_days(intake::Art73Category::try_from(s.category).ok()?)?;
    let aware = timestamp_to_time(s.aware_at.as_ref()?).ok()?;
    Some(aware + Duration::days(days))
}

/// Validates a retraction body.
pub fn validate_retraction(r: &pb::Retraction) -> Result<(), RecordError> {
    required_text("reason", &r.reason, 2000)
}

/// Validates an acknowledgement body: a state, and a note of at most
/// 4,000 characters.
pub fn validate_acknowledgement(a: &pb::Acknowledgement) -> Result<(), RecordError> {
    if pb::AcknowledgementState::try_from(a.state)
        .is_ok_and(|s| s != pb::AcknowledgementState::Unspecified)
    {
        optional_text("note", &a.note, 4000)
    } else {
        Err(bad(
            "state",
            "is required (received, triaged, action taken or closed)",
        ))
    }
}

/// Decodes and validates the content of a record of `kind` by `author`;
/// returns the index fields it implies (None for kinds without any).
pub fn validate_content(
    kind: pb::RecordKind,
    retraction: bool,
    author: &str,
    content: &[u8],
    now: OffsetDateTime,
) -> Result<Option<pb::IndexFields>, RecordError> {
    use prost::Message as _;
    let decode_err = |what: &'static str| {
        move |e: prost::DecodeError| RecordError::Decode {
            what,
            detail: e.to_string(),
        }
    };
    if retraction {
        validate_retraction(
            &pb::Retraction::decode(content).map_err(decode_err("content (Retraction)"))?,
        )?;
        return Ok(None);
    }
    match kind {
        pb::RecordKind::Incident => {
            let inc =
                intake::Incident::decode(content).map_err(decode_err("content (Incident)"))?;
            validate_incident(&inc, now)?;
            Ok(Some(incident_index(&inc)))
        }
        pb::RecordKind::EvaluationResult => {
            let res = evals::EvaluationResult::decode(content)
                .map_err(decode_err("content (EvaluationResult)"))?;
            validate_evaluation(&res, author, now)?;
            Ok(Some(evaluation_index(&res)))
        }
        pb::RecordKind::Baseline => {
            let b = evals::Baseline::decode(content).map_err(decode_err("content (Baseline)"))?;
            validate_baseline(&b)?;
            Ok(Some(baseline_index(&b)))
        }
        pb::RecordKind::Assessment => {
            evals::Assessment::decode(content).map_err(decode_err("content (Assessment)"))?;
            Ok(None)
        }
        pb::RecordKind::Sighting => {
            validate_sighting(
                &intake::Sighting::decode(content).map_err(decode_err("content (Sighting)"))?,
                now,
            )?;
            Ok(None)
        }
        pb::RecordKind::Mitigation => {
            validate_mitigation(
                &intake::Mitigation::decode(content).map_err(decode_err("content (Mitigation)"))?,
            )?;
            Ok(None)
        }
        pb::RecordKind::Acknowledgement => {
            validate_acknowledgement(
                &pb::Acknowledgement::decode(content)
                    .map_err(decode_err("content (Acknowledgement)"))?,
            )?;
            Ok(None)
        }
        pb::RecordKind::DirectoryChange => {
            pb::DirectoryChange::decode(content)
                .map_err(decode_err("content (DirectoryChange)"))?;
            Ok(None)
        }
        pb::RecordKind::Unspecified => Err(RecordError::field("header.kind", "unspecified")),
    }
}

/// Whether a header's index fields (if disclosed) agree with what the
/// content implies. Disclosing nothing always agrees.
pub fn index_matches(
    header_index: Option<&pb::IndexFields>,
    implied: Option<&pb::IndexFields>,
) -> bool {
    match (header_index, implied) {
        (None, _) => true,
        (Some(h), Some(i)) => h == i,
        (Some(h), None) => h.fields.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::time_to_timestamp;

    pub(crate) fn incident(now: OffsetDateTime) -> intake::Incident {
        let ts = |d: i64| Some(time_to_timestamp(now - Duration::days(d)));
        intake::Incident {
            title: "Model gave dangerous dosage advice".into(),
            summary: "A deployed assistant recommended a lethal dose.".into(),
            occurred_at: ts(3),
            detected_at: ts(2),
            reported_at: ts(0),
            status: pb::IncidentStatus::Initial as i32,
            ai_system: Some(intake::AiSystem {
                name: "MedAssist".into(),
                provider: "Example Corp".into(),
                ..Default::default()
            }),
            sectors: vec!["healthcare".into()],
            jurisdictions: vec!["GB".into(), "EU".into()],
            harm_types: vec![intake::HarmType::Physical as i32],
            severity: pb::Severity::High as i32,
            serious_incident: Some(intake::SeriousIncident {
                is_serious: true,
                category: intake::Art73Category::Death as i32,
                aware_at: ts(2),
                reporting_deadline: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_incident_validates_and_gets_its_deadline() {
        let now = OffsetDateTime::now_utc();
        let inc = incident(now);
        validate_incident(&inc, now).unwrap();
        let aware = timestamp_to_time(
            inc.serious_incident
                .as_ref()
                .unwrap()
                .aware_at
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(art73_deadline(&inc).unwrap(), aware + Duration::days(10));
        for (cat, days) in [
            (intake::Art73Category::General, 15),
            (intake::Art73Category::WidespreadOrCriticalInfrastructure, 2),
        ] {
            let mut i = inc.clone();
            i.serious_incident.as_mut().unwrap().category = cat as i32;
            assert_eq!(art73_deadline(&i).unwrap(), aware + Duration::days(days));
        }
    }

    #[test]
    fn bad_incidents_name_the_field() {
        let now = OffsetDateTime::now_utc();
        type Mutation = Box<dyn Fn(&mut intake::Incident)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("content.title: is required", Box::new(|i| i.title.clear())),
            (
                "content.detected_at: is before occurred_at",
                Box::new(|i| std::mem::swap(&mut i.reported_at, &mut i.occurred_at)),
            ),
            (
                "content.reported_at: is before detected_at",
                Box::new(|i| i.reported_at = i.occurred_at),
            ),
            (
                "content.occurred_at: is in the future",
                Box::new(|i| {
                    i.occurred_at = Some(time_to_timestamp(
                        OffsetDateTime::now_utc() + Duration::days(2),
                    ))
                }),
            ),
            ("content.status: is required", Box::new(|i| i.status = 0)),
            (
                "content.severity: is required",
                Box::new(|i| i.severity = 99),
            ),
            (
                "content.ai_system.provider: is required",
                Box::new(|i| i.ai_system.as_mut().unwrap().provider.clear()),
            ),
            (
                "content.jurisdictions[1]:",
                Box::new(|i| i.jurisdictions[1] = "Europe".into()),
            ),
            (
                "content.harm_types: at least one",
                Box::new(|i| i.harm_types.clear()),
            ),
            (
                "content.serious_incident.category: is required",
                Box::new(|i| i.serious_incident.as_mut().unwrap().category = 0),
            ),
            (
                "content.evidence[0].digest: a sha256 digest is 64",
                Box::new(|i| {
                    i.evidence.push(pb::Artifact {
                        digest: "sha256:abc".into(),
                        ..Default::default()
                    })
                }),
            ),
            (
                "content.tags[0]:",
                Box::new(|i| i.tags.push("Not A Tag".into())),
            ),
        ];
        for (want, mutate) in cases {
            let mut i = incident(now);
            mutate(&mut i);
            let err = validate_incident(&i, now).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err} should start with {want}");
        }
    }
}
