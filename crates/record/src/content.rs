//! Content schemas: validation of incidents and evaluation results, the
//! EU AI Act Article 73 deadline, and the cleartext index fields derived
//! from content.
//!
//! The services cannot read sealed bodies, so the SDK runs these checks
//! before sealing; the services run them on TLP:CLEAR bodies. Errors name
//! the field (`content.ai_system.provider`).

use cairn_identity::directory::is_valid_jurisdiction;
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use time::{Duration, OffsetDateTime};

use crate::error::RecordError;
use crate::header::timestamp_to_time;
use crate::pb;

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

/// Validates an incident.
pub fn validate_incident(inc: &intake::Incident, now: OffsetDateTime) -> Result<(), RecordError> {
    required_text("title", &inc.title, 200)?;
    required_text("summary", &inc.summary, 2000)?;
    optional_text("description", &inc.description, 65_536)?;
    let occurred = time_field("occurred_at", &inc.occurred_at, true, now)?;
    let detected = time_field("detected_at", &inc.detected_at, true, now)?;
    let reported = time_field("reported_at", &inc.reported_at, true, now)?;
    if occurred > detected {
        return Err(bad("detected_at", "is before occurred_at"));
    }
    if detected > reported {
        return Err(bad("reported_at", "is before detected_at"));
    }
    if !matches!(pb::IncidentStatus::try_from(inc.status), Ok(s) if s != pb::IncidentStatus::Unspecified)
    {
        return Err(bad("status", "is required: initial, update or final"));
    }
    let sys = inc
        .ai_system
        .as_ref()
        .ok_or_else(|| bad("ai_system", "is required"))?;
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
    check_tags("sectors", &inc.sectors, 20)?;
    if inc.jurisdictions.is_empty() {
        return Err(bad(
            "jurisdictions",
            "at least one ISO 3166-1 alpha-2 code or EU",
        ));
    }
    for (i, j) in inc.jurisdictions.iter().enumerate() {
        if !is_valid_jurisdiction(j) {
            return Err(bad(
                &format!("jurisdictions[{i}]"),
                format!("{:?} is not an ISO 3166-1 alpha-2 code or EU", short(j)),
            ));
        }
    }
    if inc.harm_types.is_empty() {
        return Err(bad("harm_types", "at least one harm type"));
    }
    for (i, h) in inc.harm_types.iter().enumerate() {
        if !matches!(intake::HarmType::try_from(*h), Ok(t) if t != intake::HarmType::Unspecified) {
            return Err(bad(
                &format!("harm_types[{i}]"),
                format!("{h} is not a harm type"),
            ));
        }
    }
    if !matches!(pb::Severity::try_from(inc.severity), Ok(s) if s != pb::Severity::Unspecified) {
        return Err(bad(
            "severity",
            "is required: negligible, low, moderate, high or critical",
        ));
    }
    if let Some(a) = &inc.affected {
        optional_text("affected.description", &a.description, 2000)?;
    }
    if let Some(s) = &inc.serious_incident
        && s.is_serious
    {
        if art73_days(
            intake::Art73Category::try_from(s.category)
                .unwrap_or(intake::Art73Category::Unspecified),
        )
        .is_none()
        {
            return Err(bad(
                "serious_incident.category",
                "is required for a serious incident",
            ));
        }
        let aware = time_field("serious_incident.aware_at", &s.aware_at, true, now)?;
        if aware < occurred {
            return Err(bad("serious_incident.aware_at", "is before occurred_at"));
        }
        if let (Some(given), Some(computed)) = (s.reporting_deadline.as_ref(), art73_deadline(inc))
        {
            let given = timestamp_to_time(given)
                .map_err(|d| bad("serious_incident.reporting_deadline", d))?;
            if given != computed {
                return Err(bad(
                    "serious_incident.reporting_deadline",
                    "differs from aware_at plus the Art. 73 period",
                ));
            }
        }
    }
    optional_text("root_cause", &inc.root_cause, 65_536)?;
    optional_text("mitigation", &inc.mitigation, 65_536)?;
    check_artifacts("evidence", &inc.evidence)?;
    check_record_ids("related_incidents", &inc.related_incidents)?;
    check_record_ids("related_evaluations", &inc.related_evaluations)?;
    check_tags("tags", &inc.tags, 50)
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

/// Validates an evaluation result by `author`.
pub fn validate_evaluation(
    res: &evals::EvaluationResult,
    author: &str,
    now: OffsetDateTime,
) -> Result<(), RecordError> {
    let evaluator = res
        .evaluator
        .as_ref()
        .map(|m| m.id.as_str())
        .ok_or_else(|| bad("evaluator", "is required"))?;
    if evaluator != author {
        return Err(bad(
            "evaluator",
            format!("{evaluator:?} is not the record's author {author:?}"),
        ));
    }
    let m = res
        .model
        .as_ref()
        .ok_or_else(|| bad("model", "is required"))?;
    required_text("model.provider", &m.provider, 200)?;
    required_text("model.name", &m.name, 200)?;
    optional_text("model.version", &m.version, 100)?;
    if !m.digest.is_empty() {
        check_digest("model.digest", &m.digest)?;
    }
    let t = res
        .task
        .as_ref()
        .ok_or_else(|| bad("task", "is required"))?;
    required_text("task.id", &t.id, 200)?;
    required_text("task.version", &t.version, 100)?;
    if !t.dataset_digest.is_empty() {
        check_digest("task.dataset_digest", &t.dataset_digest)?;
    }
    let h = res
        .harness
        .as_ref()
        .ok_or_else(|| bad("harness", "is required"))?;
    required_text("harness.name", &h.name, 200)?;
    if !h.commit.is_empty()
        && (h.commit.len() < 7
            || h.commit.len() > 64
            || !h.commit.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(bad("harness.commit", "7 to 64 hex digits"));
    }
    if res.metrics.is_empty() {
        return Err(bad("metrics", "at least one metric"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, metric) in res.metrics.iter().enumerate() {
        required_text(&format!("metrics[{i}].name"), &metric.name, 100)?;
        if !names.insert(metric.name.as_str()) {
            return Err(bad(
                &format!("metrics[{i}].name"),
                format!("duplicate metric {:?}", metric.name),
            ));
        }
        if !metric.value.is_finite() {
            return Err(bad(
                &format!("metrics[{i}].value"),
                "must be a finite number",
            ));
        }
        if metric.stderr.is_some_and(|s| !s.is_finite() || s < 0.0) {
            return Err(bad(
                &format!("metrics[{i}].stderr"),
                "must be finite and not negative",
            ));
        }
        if let Some(ci) = &metric.ci
            && !(ci.lower.is_finite()
                && ci.upper.is_finite()
                && ci.lower <= metric.value
                && metric.value <= ci.upper
                && ci.level > 0.0
                && ci.level < 1.0)
        {
            return Err(bad(
                &format!("metrics[{i}].ci"),
                "needs lower <= value <= upper and 0 < level < 1",
            ));
        }
    }
    if let Some(s) = &res.samples
        && s.completed.saturating_add(s.errored) > s.total
    {
        return Err(bad("samples", "completed + errored exceeds total"));
    }
    let started = time_field("started_at", &res.started_at, true, now)?;
    let completed = time_field("completed_at", &res.completed_at, true, now)?;
    if started > completed {
        return Err(bad("completed_at", "is before started_at"));
    }
    if let Some(env) = &res.environment
        && !env.image_digest.is_empty()
    {
        check_digest("environment.image_digest", &env.image_digest)?;
    }
    check_artifacts("artifacts", &res.artifacts)?;
    if !matches!(pb::RiskDomain::try_from(res.risk_domain), Ok(d) if d != pb::RiskDomain::Unspecified)
    {
        return Err(bad("risk_domain", "is required"));
    }
    optional_text("summary_findings", &res.summary_findings, 65_536)
}

/// The index fields of an evaluation result.
pub fn evaluation_index(res: &evals::EvaluationResult) -> pb::IndexFields {
    let m = res.model.clone().unwrap_or_default();
    pb::IndexFields {
        fields: Some(pb::index_fields::Fields::Evaluation(pb::EvaluationIndex {
            model_provider: m.provider,
            model_name: m.name,
            model_version: m.version,
            task_ids: res.task.iter().map(|t| t.id.clone()).collect(),
            evaluator: res.evaluator.clone(),
            risk_domain: res.risk_domain,
            jurisdiction: String::new(),
        })),
    }
}

/// Validates a baseline; errors name the criterion and field
/// (`content.criteria[cyber-1].threshold`).
pub fn validate_baseline(b: &evals::Baseline) -> Result<(), RecordError> {
    required_text("name", &b.name, 200)?;
    required_text("version", &b.version, 50)?;
    if !is_valid_jurisdiction(&b.jurisdiction) {
        return Err(bad(
            "jurisdiction",
            format!(
                "{:?} is not an ISO 3166-1 alpha-2 code or EU",
                short(&b.jurisdiction)
            ),
        ));
    }
    check_tags("sectors", &b.sectors, 20)?;
    if !matches!(pb::RiskDomain::try_from(b.risk_domain), Ok(d) if d != pb::RiskDomain::Unspecified)
    {
        return Err(bad("risk_domain", "is required"));
    }
    let from = b
        .effective_from
        .as_ref()
        .ok_or_else(|| bad("effective_from", "is required"))
        .and_then(|t| timestamp_to_time(t).map_err(|d| bad("effective_from", d)))?;
    if let Some(until) = &b.effective_until {
        let until = timestamp_to_time(until).map_err(|d| bad("effective_until", d))?;
        if until <= from {
            return Err(bad("effective_until", "is not after effective_from"));
        }
    }
    if b.criteria.is_empty() {
        return Err(bad("criteria", "at least one criterion"));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (i, c) in b.criteria.iter().enumerate() {
        let at = |f: &str| {
            if c.id.is_empty() {
                format!("criteria[{i}].{f}")
            } else {
                format!("criteria[{}].{f}", c.id)
            }
        };
        if c.id.is_empty()
            || c.id.len() > 64
            || !c
                .id
                .bytes()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == b'-' || x == b'_')
        {
            return Err(bad(
                &format!("criteria[{i}].id"),
                "1 to 64 characters of a-z, 0-9, '-', '_'",
            ));
        }
        if !ids.insert(c.id.as_str()) {
            return Err(bad(&at("id"), "duplicate criterion id"));
        }
        required_text(&at("task_id"), &c.task_id, 200)?;
        required_text(&at("task_version"), &c.task_version, 100)?;
        required_text(&at("metric"), &c.metric, 100)?;
        if !matches!(evals::Comparator::try_from(c.comparator), Ok(x) if x != evals::Comparator::Unspecified)
        {
            return Err(bad(
                &at("comparator"),
                "is required: less_than, less_or_equal, greater_than or greater_or_equal",
            ));
        }
        if !c.threshold.is_finite() {
            return Err(bad(&at("threshold"), "must be a finite number"));
        }
        let e = c
            .evidence
            .as_ref()
            .ok_or_else(|| bad(&at("evidence"), "is required"))?;
        if !matches!(evals::Estimate::try_from(e.judged), Ok(x) if x != evals::Estimate::Unspecified)
        {
            return Err(bad(
                &at("evidence.judged"),
                "is required: point, ci95_lower or ci95_upper",
            ));
        }
        for (j, r) in e.relationships.iter().enumerate() {
            if !matches!(evals::EvaluatorRelationship::try_from(*r), Ok(x) if x != evals::EvaluatorRelationship::Unspecified)
            {
                return Err(bad(
                    &at(&format!("evidence.relationships[{j}]")),
                    format!("{r} is not an evaluator relationship"),
                ));
            }
        }
    }
    Ok(())
}

/// The index fields of a baseline.
pub fn baseline_index(b: &evals::Baseline) -> pb::IndexFields {
    pb::IndexFields {
        fields: Some(pb::index_fields::Fields::Evaluation(pb::EvaluationIndex {
            task_ids: b
                .criteria
                .iter()
                .map(|c| c.task_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            risk_domain: b.risk_domain,
            jurisdiction: b.jurisdiction.clone(),
            ..Default::default()
        })),
    }
}

/// Validates a retraction body.
pub fn validate_retraction(r: &pb::Retraction) -> Result<(), RecordError> {
    required_text("reason", &r.reason, 2000)
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
