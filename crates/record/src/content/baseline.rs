//! The baseline schema: validation and index fields.

use cairn_identity::directory::is_valid_jurisdiction;
use cairn_proto::evals::v1 as evals;

use super::{bad, check_tags, required_text, short};
use crate::error::RecordError;
use crate::header::timestamp_to_time;
use crate::pb;

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
        check_criterion(i, c, &mut ids)?;
    }
    Ok(())
}

/// Criterion `i`: its id (not one of `ids`, the earlier ones), task,
/// metric, comparator, threshold and the evidence it asks for. Fields are
/// named by the criterion's id once it has a valid one.
fn check_criterion<'a>(
    i: usize,
    c: &'a evals::Criterion,
    ids: &mut std::collections::BTreeSet<&'a str>,
) -> Result<(), RecordError> {
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
    let at = |f: &str| format!("criteria[{}].{f}", c.id);
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
    if !matches!(evals::Estimate::try_from(e.judged), Ok(x) if x != evals::Estimate::Unspecified) {
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
