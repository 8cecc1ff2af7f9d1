//! Assessing a model against a jurisdiction's baseline, from evaluation
//! results the member can open.
//!
//! **How results combine.** For each criterion, a result *qualifies* when
//! it is for the model (name, and provider and version when given), for the
//! criterion's task id *and version*, reports the criterion's metric (with
//! a 95 % confidence interval when the criterion judges a CI bound), has at
//! least the minimum completed samples, was completed no later than the
//! assessment time and no earlier than `max_age_days` before it, and comes
//! from an evaluator relationship the rule allows. The **most recent
//! qualifying result decides** (by completed-at; ties by record id): its
//! judged estimate is compared with the threshold. With no qualifying
//! result the outcome is *insufficient evidence*. A result the member
//! cannot open never counts as evidence either way: if such a result for
//! the criterion's task is newer (by its signed created-at) than the
//! deciding one — or there is no deciding one — the outcome is
//! *insufficient evidence* for that member, never silently *met*.

use cairn_proto::evals::v1 as evals;
use cairn_record::header::{time_to_timestamp, timestamp_to_time};
use cairn_record::pb;
use time::OffsetDateTime;

/// Which model to assess.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// Provider, if it must match.
    pub provider: Option<String>,
    /// Model name.
    pub name: String,
    /// Version, if it must match.
    pub version: Option<String>,
}

impl ModelRef {
    /// Parses `[provider/]name[@version]`.
    pub fn parse(text: &str) -> Self {
        let (rest, version) = match text.rsplit_once('@') {
            Some((r, v)) => (r, Some(v.to_owned())),
            None => (text, None),
        };
        let (provider, name) = match rest.split_once('/') {
            Some((p, n)) => (Some(p.to_owned()), n.to_owned()),
            None => (None, rest.to_owned()),
        };
        Self {
            provider,
            name,
            version,
        }
    }

    fn matches(&self, m: &evals::ModelUnderTest) -> bool {
        m.name == self.name
            && self.provider.as_ref().is_none_or(|p| *p == m.provider)
            && self.version.as_ref().is_none_or(|v| *v == m.version)
    }

    /// As a ModelUnderTest (for the assessment record).
    pub fn to_model(&self) -> evals::ModelUnderTest {
        evals::ModelUnderTest {
            provider: self.provider.clone().unwrap_or_default(),
            name: self.name.clone(),
            version: self.version.clone().unwrap_or_default(),
            digest: String::new(),
        }
    }
}

/// One evaluation-result record as this member sees it.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// Record id.
    pub record_id: String,
    /// Its audit receipt.
    pub receipt: Option<pb::Receipt>,
    /// Its signed created-at.
    pub created_at: OffsetDateTime,
    /// Its cleartext index fields.
    pub index: Option<pb::EvaluationIndex>,
    /// Its content, if this member could open and verify it.
    pub result: Option<evals::EvaluationResult>,
}

/// Why a readable result does not count for a criterion. The first two
/// are not about evidence at all (the result is about something else), so
/// they are not reported as refusals.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum Disqualified {
    #[error("another model")]
    AnotherModel,
    #[error("another task")]
    AnotherTask,
    #[error("task version {found} (the baseline needs {needed})")]
    TaskVersion { found: String, needed: String },
    #[error("too few samples ({found} < {needed})")]
    TooFewSamples { found: u64, needed: u64 },
    #[error("no completion time")]
    NoCompletionTime,
    #[error("completed after the assessment time")]
    CompletedAfter,
    #[error("stale (older than {max_age_days} days)")]
    Stale { max_age_days: u32 },
    #[error("an evaluator relationship the baseline excludes")]
    Relationship,
    #[error("no metric {metric}")]
    NoMetric { metric: String },
    #[error("no 95 % confidence interval")]
    NoConfidenceInterval,
    #[error("the criterion judges no estimate")]
    NoEstimate,
}

fn judged(c: &evals::Criterion, metric: &evals::Metric) -> Result<f64, Disqualified> {
    let e = c.evidence.clone().unwrap_or_default();
    match evals::Estimate::try_from(e.judged).unwrap_or(evals::Estimate::Unspecified) {
        evals::Estimate::Point => Ok(metric.value),
        est @ (evals::Estimate::Ci95Lower | evals::Estimate::Ci95Upper) => {
            let ci = metric
                .ci
                .as_ref()
                .filter(|ci| (ci.level - 0.95).abs() < 1e-9)
                .ok_or(Disqualified::NoConfidenceInterval)?;
            Ok(if est == evals::Estimate::Ci95Lower {
                ci.lower
            } else {
                ci.upper
            })
        }
        evals::Estimate::Unspecified => Err(Disqualified::NoEstimate),
    }
}

/// Whether `value` meets `threshold` under `comparator`.
pub fn compare(comparator: i32, value: f64, threshold: f64) -> Option<bool> {
    Some(match evals::Comparator::try_from(comparator).ok()? {
        evals::Comparator::LessThan => value < threshold,
        evals::Comparator::LessOrEqual => value <= threshold,
        evals::Comparator::GreaterThan => value > threshold,
        evals::Comparator::GreaterOrEqual => value >= threshold,
        evals::Comparator::Unspecified => return None,
    })
}

fn comparator_text(c: i32) -> &'static str {
    match evals::Comparator::try_from(c) {
        Ok(evals::Comparator::LessThan) => "<",
        Ok(evals::Comparator::LessOrEqual) => "<=",
        Ok(evals::Comparator::GreaterThan) => ">",
        Ok(evals::Comparator::GreaterOrEqual) => ">=",
        _ => "?",
    }
}

/// Why a readable result does not qualify, or its judged value and time.
fn qualify(
    c: &evals::Criterion,
    model: &ModelRef,
    r: &evals::EvaluationResult,
    at: OffsetDateTime,
) -> Result<(f64, OffsetDateTime), Disqualified> {
    if !r.model.as_ref().is_some_and(|m| model.matches(m)) {
        return Err(Disqualified::AnotherModel);
    }
    let task = r.task.clone().unwrap_or_default();
    if task.id != c.task_id {
        return Err(Disqualified::AnotherTask);
    }
    if task.version != c.task_version {
        return Err(Disqualified::TaskVersion {
            found: task.version,
            needed: c.task_version.clone(),
        });
    }
    let rule = c.evidence.clone().unwrap_or_default();
    let samples = r.samples.as_ref().map(|s| s.completed).unwrap_or(0);
    if samples < rule.min_samples {
        return Err(Disqualified::TooFewSamples {
            found: samples,
            needed: rule.min_samples,
        });
    }
    let completed = r
        .completed_at
        .as_ref()
        .and_then(|t| timestamp_to_time(t).ok())
        .ok_or(Disqualified::NoCompletionTime)?;
    if completed > at {
        return Err(Disqualified::CompletedAfter);
    }
    if rule.max_age_days > 0 && completed < at - time::Duration::days(i64::from(rule.max_age_days))
    {
        return Err(Disqualified::Stale {
            max_age_days: rule.max_age_days,
        });
    }
    if !rule.relationships.is_empty() && !rule.relationships.contains(&r.relationship) {
        return Err(Disqualified::Relationship);
    }
    let metric = r
        .metrics
        .iter()
        .find(|m| m.name == c.metric)
        .ok_or_else(|| Disqualified::NoMetric {
            metric: c.metric.clone(),
        })?;
    Ok((judged(c, metric)?, completed))
}

fn index_covers(e: &Evidence, c: &evals::Criterion, model: &ModelRef) -> bool {
    e.index
        .as_ref()
        .is_some_and(|i| i.task_ids.contains(&c.task_id) && i.model_name == model.name)
}

/// What the evidence for one criterion gave: the deciding result (most
/// recent qualifying one), why others were refused, and the sealed results
/// for its task the member cannot open.
struct Scan<'a> {
    best: Option<(OffsetDateTime, f64, &'a Evidence)>,
    refusals: Vec<String>,
    unreadable: Vec<&'a Evidence>,
}

fn scan<'a>(
    c: &evals::Criterion,
    model: &ModelRef,
    evidence: &'a [Evidence],
    at: OffsetDateTime,
) -> Scan<'a> {
    let mut s = Scan {
        best: None,
        refusals: Vec::new(),
        unreadable: Vec::new(),
    };
    for e in evidence {
        match &e.result {
            Some(r) => match qualify(c, model, r, at) {
                Ok((value, completed)) => {
                    if s.best.as_ref().is_none_or(|(t, _, b)| {
                        (completed, e.record_id.as_str()) > (*t, b.record_id.as_str())
                    }) {
                        s.best = Some((completed, value, e));
                    }
                }
                Err(Disqualified::AnotherModel | Disqualified::AnotherTask) => {}
                Err(why) => s.refusals.push(why.to_string()),
            },
            None if index_covers(e, c, model) => s.unreadable.push(e),
            None => {}
        }
    }
    s
}

/// The outcome of one criterion.
pub fn criterion_outcome(
    c: &evals::Criterion,
    model: &ModelRef,
    evidence: &[Evidence],
    at: OffsetDateTime,
) -> evals::CriterionOutcome {
    let s = scan(c, model, evidence, at);
    let insufficient = |reason: String| evals::CriterionOutcome {
        criterion_id: c.id.clone(),
        outcome: evals::Outcome::InsufficientEvidence as i32,
        reason,
        cited: vec![],
    };
    let Some((completed, value, e)) = s.best else {
        let mut parts: Vec<String> = s
            .refusals
            .iter()
            .map(|r| format!("1 result: {r}"))
            .collect();
        if !s.unreadable.is_empty() {
            parts.push(format!(
                "{} sealed result(s) you cannot open",
                s.unreadable.len()
            ));
        }
        return insufficient(if parts.is_empty() {
            format!("no result for task {} {}", c.task_id, c.task_version)
        } else {
            format!("no qualifying result: {}", parts.join("; "))
        });
    };
    if let Some(newer) = s.unreadable.iter().find(|u| u.created_at > completed) {
        return insufficient(format!(
            "a newer result ({}) exists that you cannot open",
            newer.record_id
        ));
    }
    decided(c, value, e)
}

/// Met or not met, by the deciding result `e` whose judged value is `value`.
fn decided(c: &evals::Criterion, value: f64, e: &Evidence) -> evals::CriterionOutcome {
    let met = compare(c.comparator, value, c.threshold).unwrap_or(false);
    let est = evals::Estimate::try_from(c.evidence.clone().unwrap_or_default().judged)
        .map(|e| {
            e.as_str_name()
                .trim_start_matches("ESTIMATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    evals::CriterionOutcome {
        criterion_id: c.id.clone(),
        outcome: met_or_not(met),
        reason: format!(
            "{} ({est}) = {value} {} {} {} in result {}",
            c.metric,
            if met { "meets" } else { "fails" },
            comparator_text(c.comparator),
            c.threshold,
            e.record_id
        ),
        cited: vec![evals::CitedResult {
            record_id: Some(pb::RecordId {
                uuid: e.record_id.clone(),
            }),
            receipt: e.receipt.clone(),
        }],
    }
}

fn met_or_not(met: bool) -> i32 {
    let outcome = if met {
        evals::Outcome::Met
    } else {
        evals::Outcome::NotMet
    };
    outcome as i32
}

/// Assesses `model` against a baseline at time `at`.
pub fn assess(
    baseline_id: &str,
    baseline: &evals::Baseline,
    model: &ModelRef,
    evidence: &[Evidence],
    at: OffsetDateTime,
) -> evals::Assessment {
    evals::Assessment {
        baseline: Some(pb::RecordId {
            uuid: baseline_id.to_owned(),
        }),
        model: Some(model.to_model()),
        assessed_at: Some(time_to_timestamp(at)),
        outcomes: baseline
            .criteria
            .iter()
            .map(|c| criterion_outcome(c, model, evidence, at))
            .collect(),
    }
}

/// Recomputes a published assessment from the results it cites (looked up
/// in `cited`, already fetched and opened) and says where it differs.
pub fn verify_assessment(
    a: &evals::Assessment,
    baseline: &evals::Baseline,
    cited: &[Evidence],
) -> Result<(), Vec<String>> {
    let Some(at) = a
        .assessed_at
        .as_ref()
        .and_then(|t| timestamp_to_time(t).ok())
    else {
        return Err(vec!["the assessment has no assessment time".into()]);
    };
    let model = a.model.as_ref().map(|m| ModelRef {
        provider: (!m.provider.is_empty()).then(|| m.provider.clone()),
        name: m.name.clone(),
        version: (!m.version.is_empty()).then(|| m.version.clone()),
    });
    let Some(model) = model else {
        return Err(vec!["the assessment names no model".into()]);
    };
    let mut problems = Vec::new();
    for c in &baseline.criteria {
        match a.outcomes.iter().find(|o| o.criterion_id == c.id) {
            None => problems.push(format!("criterion {}: no outcome", c.id)),
            Some(o) => recheck(c, o, &model, at, cited, &mut problems),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Recomputes outcome `o` of criterion `c` from the result it cites,
/// adding to `problems` where it differs.
fn recheck(
    c: &evals::Criterion,
    o: &evals::CriterionOutcome,
    model: &ModelRef,
    at: OffsetDateTime,
    cited: &[Evidence],
    problems: &mut Vec<String>,
) {
    let mut problem = |what: String| problems.push(format!("criterion {}: {what}", c.id));
    if o.outcome == evals::Outcome::InsufficientEvidence as i32 {
        if !o.cited.is_empty() {
            problem("insufficient evidence but cites results".into());
        }
        return;
    }
    let [cite] = o.cited.as_slice() else {
        problem("a met/not met outcome cites exactly one result".into());
        return;
    };
    let id = cite
        .record_id
        .as_ref()
        .map(|r| r.uuid.clone())
        .unwrap_or_default();
    let Some(e) = cited.iter().find(|e| e.record_id == id) else {
        problem(format!(
            "cited result {id} cannot be fetched or opened by you"
        ));
        return;
    };
    if e.receipt != cite.receipt {
        problem(format!(
            "the cited receipt of {id} is not the result's receipt"
        ));
    }
    let Some(r) = &e.result else {
        problem(format!("cited result {id} cannot be opened by you"));
        return;
    };
    match qualify(c, model, r, at) {
        Err(why) => problem(format!("cited result {id} does not qualify ({why})")),
        Ok((value, _)) => {
            let want = met_or_not(compare(c.comparator, value, c.threshold).unwrap_or(false));
            if want != o.outcome {
                problem(format!(
                    "recomputed {} but the assessment says {}",
                    outcome_name(want),
                    outcome_name(o.outcome)
                ));
            }
        }
    }
}

/// `met`, `not met` or `insufficient evidence`.
pub fn outcome_name(o: i32) -> &'static str {
    match evals::Outcome::try_from(o) {
        Ok(evals::Outcome::Met) => "met",
        Ok(evals::Outcome::NotMet) => "not met",
        Ok(evals::Outcome::InsufficientEvidence) => "insufficient evidence",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests;
