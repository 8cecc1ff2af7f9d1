//! The evaluation-result schema: validation and index fields.

use cairn_proto::evals::v1 as evals;
use time::OffsetDateTime;

use super::{bad, check_artifacts, check_digest, optional_text, required_text, time_field};
use crate::error::RecordError;
use crate::pb;

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
    check_model(res.model.as_ref())?;
    check_task(res.task.as_ref())?;
    check_harness(res.harness.as_ref())?;
    check_metrics(&res.metrics)?;
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

fn check_model(m: Option<&evals::ModelUnderTest>) -> Result<(), RecordError> {
    let m = m.ok_or_else(|| bad("model", "is required"))?;
    required_text("model.provider", &m.provider, 200)?;
    required_text("model.name", &m.name, 200)?;
    optional_text("model.version", &m.version, 100)?;
    if !m.digest.is_empty() {
        check_digest("model.digest", &m.digest)?;
    }
    Ok(())
}

fn check_task(t: Option<&evals::Task>) -> Result<(), RecordError> {
    let t = t.ok_or_else(|| bad("task", "is required"))?;
    required_text("task.id", &t.id, 200)?;
    required_text("task.version", &t.version, 100)?;
    if !t.dataset_digest.is_empty() {
        check_digest("task.dataset_digest", &t.dataset_digest)?;
    }
    Ok(())
}

fn check_harness(h: Option<&evals::Harness>) -> Result<(), RecordError> {
    let h = h.ok_or_else(|| bad("harness", "is required"))?;
    required_text("harness.name", &h.name, 200)?;
    if !h.commit.is_empty()
        && (h.commit.len() < 7
            || h.commit.len() > 64
            || !h.commit.bytes().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(bad("harness.commit", "7 to 64 hex digits"));
    }
    Ok(())
}

/// At least one metric; names unique; values, errors and intervals sane.
fn check_metrics(metrics: &[evals::Metric]) -> Result<(), RecordError> {
    if metrics.is_empty() {
        return Err(bad("metrics", "at least one metric"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, metric) in metrics.iter().enumerate() {
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
    Ok(())
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
