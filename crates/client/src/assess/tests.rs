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

fn outcome(c: &evals::Criterion, e: &[Evidence], now: OffsetDateTime) -> evals::CriterionOutcome {
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
