//! Baselines and assessments across the services: who may publish a
//! baseline, validation naming the criterion and field, assessments from
//! what a member can open, publishing and verifying them.
#![allow(clippy::unwrap_used)]

use cairn_client::assess::{ModelRef, outcome_name};
use cairn_client::{ClientError, Share, json};
use cairn_identity::Role;
use cairn_proto::evals::v1 as evals;
use cairn_record::pb::{self, RecordKind};
use cairn_service_core::RecordCoreConfig;
use cairn_tests::Net;
use prost::Message as _;
use tonic::Code;

fn baseline(name: &str) -> evals::Baseline {
    json::from_json("cairn.evals.v1.Baseline", name).unwrap()
}

const GB: &str = include_str!("../../examples/baselines/gb.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baselines_assessments_and_what_a_member_cannot_open() {
    // jp-aisi is an evaluator without the governance role here.
    let net = Net::start_spec(
        cairn_tests::example_without("jp-aisi", Role::Governance),
        RecordCoreConfig::default(),
    )
    .await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );

    // A non-governance member cannot publish a baseline.
    let gb = baseline(GB);
    let err = jp
        .publish_result(&jp.prepare_baseline(&gb, &Share::Clear).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Status(s) if s.code() == Code::PermissionDenied),
        "{err}"
    );
    // Validation names the criterion and the field.
    let mut bad = gb.clone();
    bad.criteria[1].comparator = 0;
    let err = uk
        .prepare_baseline(&bad, &Share::Clear)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("content.criteria[bio-knowledge].comparator"),
        "{err}"
    );
    bad = gb.clone();
    bad.criteria[0].threshold = f64::NAN;
    assert!(
        uk.prepare_baseline(&bad, &Share::Clear)
            .unwrap_err()
            .to_string()
            .contains("criteria[cyber-uplift].threshold")
    );
    let published = uk
        .publish_result(&uk.prepare_baseline(&gb, &Share::Clear).unwrap())
        .await
        .unwrap();
    let gb_id = published.record_id;

    // Results: the cyber result is GREEN; the CBRN one is AMBER to uk-aisi
    // only (so eu-aio cannot open it); the refusal one is CLEAR.
    let read = |p: &str| {
        json::result_from_json(
            &std::fs::read_to_string(format!(
                "{}/../examples/results/{p}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    };
    let cyber = read("frontier-1-cyber");
    jp.publish_result(&jp.prepare_result(&cyber, &Share::Green).unwrap())
        .await
        .unwrap();
    let cbrn = read("frontier-1-cbrn");
    uk.publish_result(&uk.prepare_result(&cbrn, &Share::Amber(vec![])).unwrap())
        .await
        .unwrap();
    let refusal = read("frontier-1-safeguards");
    uk.publish_result(&uk.prepare_result(&refusal, &Share::Clear).unwrap())
        .await
        .unwrap();

    let model = ModelRef::parse("Frontier-1");
    let by_uk = uk.assess(&gb_id, &model).await.unwrap();
    let by_eu = eu.assess(&gb_id, &model).await.unwrap();
    let outcome = |a: &evals::Assessment, id: &str| {
        outcome_name(
            a.outcomes
                .iter()
                .find(|o| o.criterion_id == id)
                .unwrap()
                .outcome,
        )
    };
    assert_eq!(outcome(&by_uk, "cyber-uplift"), "met");
    assert_eq!(
        outcome(&by_uk, "bio-knowledge"),
        "met",
        "uk-aisi can open its own CBRN result"
    );
    assert_eq!(
        outcome(&by_eu, "bio-knowledge"),
        "insufficient evidence",
        "a sealed result eu-aio cannot open is never counted as met"
    );
    assert!(
        by_eu.outcomes[1].reason.contains("cannot open"),
        "{}",
        by_eu.outcomes[1].reason
    );
    assert_eq!(outcome(&by_uk, "refusal"), "met");

    // Published and verified by another member.
    let a_id = uk
        .publish_result(&uk.prepare_assessment(&by_uk, &Share::Green).unwrap())
        .await
        .unwrap()
        .record_id;
    let (_, verdict) = eu.verify_assessment(&a_id).await.unwrap();
    // eu-aio cannot open the cited CBRN result: it says so rather than agreeing.
    let problems = verdict.unwrap_err();
    assert!(
        problems.iter().any(|p| p.contains("opened by you")),
        "{problems:?}"
    );
    let (_, verdict) = uk.verify_assessment(&a_id).await.unwrap();
    verdict.unwrap();

    // A tampered assessment: a cited receipt that is not the result's.
    let mut tampered = by_uk.clone();
    tampered.outcomes[0].cited[0]
        .receipt
        .as_mut()
        .unwrap()
        .leaf_index += 1;
    let t_id = uk
        .publish_result(&uk.prepare_assessment(&tampered, &Share::Green).unwrap())
        .await
        .unwrap()
        .record_id;
    let (_, verdict) = uk.verify_assessment(&t_id).await.unwrap();
    assert!(
        verdict
            .unwrap_err()
            .iter()
            .any(|p| p.contains("is not the result's receipt"))
    );
    // And one that claims a different outcome than its citation gives.
    let mut flipped = by_uk.clone();
    flipped.outcomes[0].outcome = evals::Outcome::NotMet as i32;
    let f_id = uk
        .publish_result(&uk.prepare_assessment(&flipped, &Share::Green).unwrap())
        .await
        .unwrap()
        .record_id;
    let (_, verdict) = uk.verify_assessment(&f_id).await.unwrap();
    assert!(
        verdict
            .unwrap_err()
            .iter()
            .any(|p| p.contains("recomputed met"))
    );

    // Baselines can be superseded like any record.
    let mut v2 = gb.clone();
    v2.version = "1.1".into();
    let d = cairn_client::prepare::record(
        uk.directory(),
        "uk-aisi",
        &net.signing_key("uk-aisi"),
        RecordKind::Baseline,
        v2.encode_to_vec(),
        Some(cairn_record::content::baseline_index(&v2)),
        &Share::Clear,
        Some(&gb_id),
        None,
    )
    .unwrap();
    net.evals("uk-aisi")
        .supersede_result(evals::SupersedeResultRequest {
            record: Some(d.record),
        })
        .await
        .unwrap();
    let current = eu
        .current_baselines(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(
        current
            .iter()
            .map(|(_, b)| b.version.as_str())
            .collect::<Vec<_>>(),
        vec!["1.1"]
    );
    let _ = pb::RecordState::Superseded;
}
