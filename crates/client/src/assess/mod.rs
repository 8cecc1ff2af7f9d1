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

/// The outcome of one criterion.
pub fn criterion_outcome(
    c: &evals::Criterion,
    model: &ModelRef,
    evidence: &[Evidence],
    at: OffsetDateTime,
) -> evals::CriterionOutcome {
    let mut best: Option<(OffsetDateTime, &str, f64, &Evidence)> = None;
    let mut refusals: Vec<String> = Vec::new();
    let mut unreadable: Vec<&Evidence> = Vec::new();
    for e in evidence {
        match &e.result {
            Some(r) => match qualify(c, model, r, at) {
                Ok((value, completed)) => {
                    if best
                        .as_ref()
                        .is_none_or(|(t, id, _, _)| (completed, e.record_id.as_str()) > (*t, *id))
                    {
                        best = Some((completed, e.record_id.as_str(), value, e));
                    }
                }
                Err(Disqualified::AnotherModel | Disqualified::AnotherTask) => {}
                Err(why) => refusals.push(why.to_string()),
            },
            None if index_covers(e, c, model) => unreadable.push(e),
            None => {}
        }
    }
    let insufficient = |reason: String| evals::CriterionOutcome {
        criterion_id: c.id.clone(),
        outcome: evals::Outcome::InsufficientEvidence as i32,
        reason,
        cited: vec![],
    };
    let Some((completed, _, value, e)) = best else {
        let mut parts: Vec<String> = refusals.iter().map(|r| format!("1 result: {r}")).collect();
        if !unreadable.is_empty() {
            parts.push(format!(
                "{} sealed result(s) you cannot open",
                unreadable.len()
            ));
        }
        return insufficient(if parts.is_empty() {
            format!("no result for task {} {}", c.task_id, c.task_version)
        } else {
            format!("no qualifying result: {}", parts.join("; "))
        });
    };
    if let Some(newer) = unreadable.iter().find(|u| u.created_at > completed) {
        return insufficient(format!(
            "a newer result ({}) exists that you cannot open",
            newer.record_id
        ));
    }
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
        outcome: if met {
            evals::Outcome::Met
        } else {
            evals::Outcome::NotMet
        } as i32,
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
    let mut problems = Vec::new();
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
    for c in &baseline.criteria {
        let Some(o) = a.outcomes.iter().find(|o| o.criterion_id == c.id) else {
            problems.push(format!("criterion {}: no outcome", c.id));
            continue;
        };
        if o.outcome == evals::Outcome::InsufficientEvidence as i32 {
            if !o.cited.is_empty() {
                problems.push(format!(
                    "criterion {}: insufficient evidence but cites results",
                    c.id
                ));
            }
            continue;
        }
        let [cite] = o.cited.as_slice() else {
            problems.push(format!(
                "criterion {}: a met/not met outcome cites exactly one result",
                c.id
            ));
            continue;
        };
        let id = cite
            .record_id
            .as_ref()
            .map(|r| r.uuid.clone())
            .unwrap_or_default();
        let Some(e) = cited.iter().find(|e| e.record_id == id) else {
            problems.push(format!(
                "criterion {}: cited result {id} cannot be fetched or opened by you",
                c.id
            ));
            continue;
        };
        if e.receipt != cite.receipt {
            problems.push(format!(
                "criterion {}: the cited receipt of {id} is not the result's receipt",
                c.id
            ));
        }
        let Some(r) = &e.result else {
            problems.push(format!(
                "criterion {}: cited result {id} cannot be opened by you",
                c.id
            ));
            continue;
        };
        match qualify(c, &model, r, at) {
            Err(why) => problems.push(format!(
                "criterion {}: cited result {id} does not qualify ({why})",
                c.id
            )),
            Ok((value, _)) => {
                let met = compare(c.comparator, value, c.threshold).unwrap_or(false);
                let want = if met {
                    evals::Outcome::Met
                } else {
                    evals::Outcome::NotMet
                } as i32;
                if want != o.outcome {
                    problems.push(format!(
                        "criterion {}: recomputed {} but the assessment says {}",
                        c.id,
                        outcome_name(want),
                        outcome_name(o.outcome)
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
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
mod tests {
    use super::*;

    fn criterion(
        comparator: evals::Comparator,
        threshold: f64,
        judged: evals::Estimate,
        min_samples: u64,
        max_age_days: u32,
        relationships: Vec<i32>,
    ) -> evals::Criterion {
        evals::Criterion {
            id: "c1".into(),
            task_id: "cybench".into(),
            task_version: "1.0".into(),
            metric: "success_rate".into(),
            comparator: comparator as i32,
            threshold,
            evidence: Some(evals::EvidenceRule {
                min_samples,
                judged: judged as i32,
                max_age_days,
                relationships,
            }),
        }
    }

    fn result(
        value: f64,
        ci: Option<(f64, f64)>,
        samples: u64,
        days_ago: i64,
        version: &str,
        relationship: evals::EvaluatorRelationship,
        now: OffsetDateTime,
    ) -> evals::EvaluationResult {
        evals::EvaluationResult {
            model: Some(evals::ModelUnderTest {
                provider: "P".into(),
                name: "M".into(),
                version: "1".into(),
                digest: String::new(),
            }),
            task: Some(evals::Task {
                id: "cybench".into(),
                version: version.into(),
                dataset_digest: String::new(),
            }),
            metrics: vec![evals::Metric {
                name: "success_rate".into(),
                value,
                ci: ci.map(|(lower, upper)| evals::ConfidenceInterval {
                    lower,
                    upper,
                    level: 0.95,
                }),
                ..Default::default()
            }],
            samples: Some(evals::SampleCounts {
                total: samples,
                completed: samples,
                errored: 0,
            }),
            completed_at: Some(time_to_timestamp(now - time::Duration::days(days_ago))),
            relationship: relationship as i32,
            ..Default::default()
        }
    }

    fn ev(
        id: &str,
        r: Option<evals::EvaluationResult>,
        created_days_ago: i64,
        now: OffsetDateTime,
    ) -> Evidence {
        Evidence {
            record_id: id.into(),
            receipt: None,
            created_at: now - time::Duration::days(created_days_ago),
            index: Some(pb::EvaluationIndex {
                model_name: "M".into(),
                task_ids: vec!["cybench".into()],
                ..Default::default()
            }),
            result: r,
        }
    }

    fn outcome(
        c: &evals::Criterion,
        e: &[Evidence],
        now: OffsetDateTime,
    ) -> evals::CriterionOutcome {
        criterion_outcome(c, &ModelRef::parse("M"), e, now)
    }

    use evals::{Comparator as C, Estimate as E, EvaluatorRelationship as R, Outcome as O};

    #[test]
    fn exactly_at_the_threshold() {
        let now = OffsetDateTime::now_utc();
        let r = vec![ev(
            "a",
            Some(result(0.25, None, 100, 1, "1.0", R::ThirdParty, now)),
            1,
            now,
        )];
        assert_eq!(
            outcome(
                &criterion(C::LessOrEqual, 0.25, E::Point, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::Met as i32
        );
        assert_eq!(
            outcome(
                &criterion(C::LessThan, 0.25, E::Point, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::NotMet as i32
        );
        assert_eq!(
            outcome(
                &criterion(C::GreaterOrEqual, 0.25, E::Point, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::Met as i32
        );
        assert_eq!(
            outcome(
                &criterion(C::GreaterThan, 0.25, E::Point, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::NotMet as i32
        );
    }

    #[test]
    fn a_ci_straddling_the_threshold_depends_on_the_bound_judged() {
        let now = OffsetDateTime::now_utc();
        // Point 0.20, CI [0.15, 0.27], threshold <= 0.25.
        let r = vec![ev(
            "a",
            Some(result(
                0.20,
                Some((0.15, 0.27)),
                100,
                1,
                "1.0",
                R::ThirdParty,
                now,
            )),
            1,
            now,
        )];
        assert_eq!(
            outcome(
                &criterion(C::LessOrEqual, 0.25, E::Point, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::Met as i32
        );
        assert_eq!(
            outcome(
                &criterion(C::LessOrEqual, 0.25, E::Ci95Upper, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::NotMet as i32
        );
        assert_eq!(
            outcome(
                &criterion(C::LessOrEqual, 0.25, E::Ci95Lower, 10, 0, vec![]),
                &r,
                now
            )
            .outcome,
            O::Met as i32
        );
        // No CI: a CI bound cannot be judged.
        let no_ci = vec![ev(
            "b",
            Some(result(0.20, None, 100, 1, "1.0", R::ThirdParty, now)),
            1,
            now,
        )];
        let o = outcome(
            &criterion(C::LessOrEqual, 0.25, E::Ci95Upper, 10, 0, vec![]),
            &no_ci,
            now,
        );
        assert_eq!(o.outcome, O::InsufficientEvidence as i32);
        assert!(
            o.reason.contains("no 95 % confidence interval"),
            "{}",
            o.reason
        );
    }

    #[test]
    fn evidence_rules_disqualify() {
        let now = OffsetDateTime::now_utc();
        let cases = [
            (
                result(0.1, None, 5, 1, "1.0", R::ThirdParty, now),
                "too few samples",
            ),
            (
                result(0.1, None, 100, 400, "1.0", R::ThirdParty, now),
                "stale",
            ),
            (
                result(0.1, None, 100, 1, "2.0", R::ThirdParty, now),
                "task version 2.0",
            ),
            (
                result(0.1, None, 100, 1, "1.0", R::FirstParty, now),
                "relationship",
            ),
        ];
        let c = criterion(
            C::LessOrEqual,
            0.25,
            E::Point,
            50,
            365,
            vec![R::ThirdParty as i32],
        );
        for (r, why) in cases {
            let o = outcome(&c, &[ev("a", Some(r), 1, now)], now);
            assert_eq!(o.outcome, O::InsufficientEvidence as i32);
            assert!(o.reason.contains(why), "{} should mention {why}", o.reason);
        }
    }

    #[test]
    fn the_most_recent_qualifying_result_decides() {
        let now = OffsetDateTime::now_utc();
        let c = criterion(C::LessOrEqual, 0.25, E::Point, 10, 0, vec![]);
        let r = vec![
            ev(
                "old",
                Some(result(0.10, None, 100, 30, "1.0", R::ThirdParty, now)),
                30,
                now,
            ),
            ev(
                "new",
                Some(result(0.40, None, 100, 2, "1.0", R::ThirdParty, now)),
                2,
                now,
            ),
        ];
        let o = outcome(&c, &r, now);
        assert_eq!(o.outcome, O::NotMet as i32);
        assert_eq!(o.cited[0].record_id.as_ref().unwrap().uuid, "new");
    }

    #[test]
    fn a_sealed_result_you_cannot_open_is_never_silently_met() {
        let now = OffsetDateTime::now_utc();
        let c = criterion(C::LessOrEqual, 0.25, E::Point, 10, 0, vec![]);
        let only_sealed = vec![ev("sealed", None, 1, now)];
        let o = outcome(&c, &only_sealed, now);
        assert_eq!(o.outcome, O::InsufficientEvidence as i32);
        assert!(o.reason.contains("cannot open"), "{}", o.reason);
        // A readable older result that would be met, and a newer sealed one.
        let both = vec![
            ev(
                "readable",
                Some(result(0.1, None, 100, 10, "1.0", R::ThirdParty, now)),
                10,
                now,
            ),
            ev("sealed", None, 1, now),
        ];
        let o = outcome(&c, &both, now);
        assert_eq!(o.outcome, O::InsufficientEvidence as i32, "{}", o.reason);
    }

    #[test]
    fn verification_recomputes_and_catches_tampering() {
        let now = OffsetDateTime::now_utc();
        let c = criterion(C::LessOrEqual, 0.25, E::Point, 10, 0, vec![]);
        let baseline = evals::Baseline {
            criteria: vec![c],
            ..Default::default()
        };
        let evidence = vec![ev(
            "a",
            Some(result(0.1, None, 100, 1, "1.0", R::ThirdParty, now)),
            1,
            now,
        )];
        let a = assess("b", &baseline, &ModelRef::parse("M"), &evidence, now);
        verify_assessment(&a, &baseline, &evidence).unwrap();
        // The cited result says something else now (tampered or swapped).
        let tampered = vec![ev(
            "a",
            Some(result(0.9, None, 100, 1, "1.0", R::ThirdParty, now)),
            1,
            now,
        )];
        let err = verify_assessment(&a, &baseline, &tampered).unwrap_err();
        assert!(err[0].contains("recomputed not met"), "{err:?}");
        // An outcome flipped in the published assessment.
        let mut flipped = a.clone();
        flipped.outcomes[0].outcome = O::NotMet as i32;
        assert!(verify_assessment(&flipped, &baseline, &evidence).is_err());
    }

    #[test]
    fn model_refs_parse() {
        assert_eq!(
            ModelRef::parse("Example Labs/Frontier-1@2026-10"),
            ModelRef {
                provider: Some("Example Labs".into()),
                name: "Frontier-1".into(),
                version: Some("2026-10".into())
            }
        );
        assert_eq!(
            ModelRef::parse("Frontier-1"),
            ModelRef {
                provider: None,
                name: "Frontier-1".into(),
                version: None
            }
        );
    }
}
