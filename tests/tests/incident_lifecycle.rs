//! An incident's life after its first report, through the SDK as a
//! member's program calls it, on a real network on loopback: its author
//! retracts it (the retraction is shared as the incident was, and logged)
//! or erases its body under a signed order (the order is logged); the
//! recipients see each change; nobody else can make it; and an evaluation
//! result is corrected through SupersedeResult.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_client::verify::Content;
use cairn_client::{ClientError, Share};
use cairn_identity::Role;
use cairn_record::pb::{RecordState, SharingLabel};
use cairn_tests::Net;
use tonic::Code;

fn code(e: ClientError) -> Code {
    match e {
        ClientError::Status(s) => s.code(),
        other => panic!("not a refusal: {other}"),
    }
}

fn incident() -> cairn_proto::intake::v1::Incident {
    cairn_client::json::incident_from_json(include_str!("../../examples/incident.json")).unwrap()
}

async fn net() -> Net {
    // jp-aisi without governance: it may not erase what is not its own.
    Net::start_spec(
        cairn_tests::example_without("jp-aisi", Role::Governance),
        cairn_service_core::RecordCoreConfig {
            receipt_wait: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_is_retracted_by_its_author_and_shared_as_it_was() {
    let net = net().await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );
    let amber = Share::Amber(vec!["jp-aisi".into()]);
    let first = uk
        .submit_incident(&uk.prepare_incident(&incident(), &amber).unwrap())
        .await
        .unwrap();

    // A recipient is not the author: it cannot retract it.
    let seen = jp.get_incident(&first.record_id, false).await.unwrap();
    let not_mine = jp.prepare_retraction(&seen, "not ours").unwrap();
    assert_eq!(
        code(jp.retract_incident(&not_mine).await.unwrap_err()),
        Code::PermissionDenied
    );
    // Nor is a retraction a submission.
    let stored = uk.get_incident(&first.record_id, false).await.unwrap();
    let retraction = uk.prepare_retraction(&stored, "filed twice").unwrap();
    let err = uk.submit_incident(&retraction).await.unwrap_err();
    assert_eq!(code(err), Code::InvalidArgument);

    // The author retracts it: logged, the receipt verified, idempotent.
    let sent = uk.retract_incident(&retraction).await.unwrap();
    assert!(sent.verified_in_tree_of.is_some(), "{sent:?}");
    assert!(!sent.duplicate);
    let again = uk.retract_incident(&retraction).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt, sent.receipt);

    // The recipient sees it retracted, and reads why.
    let now = jp.get_incident(&first.record_id, false).await.unwrap();
    assert_eq!(now.state, RecordState::Retracted as i32);
    assert_eq!(now.superseded_by.unwrap().uuid, sent.record_id);
    let why = jp.get_incident(&sent.record_id, false).await.unwrap();
    match jp.open(&why).unwrap().content {
        Content::Retraction(r) => assert_eq!(r.reason, "filed twice"),
        other => panic!("not a retraction: {other:?}"),
    }
    // The retraction carries the incident's label and recipients: the
    // member outside the AMBER list reads neither body.
    for id in [&first.record_id, &sent.record_id] {
        assert_eq!(
            code(eu.get_incident(id, false).await.unwrap_err()),
            Code::PermissionDenied
        );
    }
    let header = cairn_record::record::decode_header(
        &cairn_record::record::decode_envelope(&why.record.unwrap().envelope)
            .unwrap()
            .payload,
    )
    .unwrap();
    assert_eq!(header.label(), SharingLabel::TlpAmber);
    let mut to: Vec<_> = header.recipients.iter().map(|m| m.id.as_str()).collect();
    to.sort();
    assert_eq!(to, ["jp-aisi", "uk-aisi"]);

    // A retracted incident is no longer active: it cannot be retracted again.
    let twice = uk.prepare_retraction(&stored, "again").unwrap();
    assert_eq!(
        code(uk.retract_incident(&twice).await.unwrap_err()),
        Code::FailedPrecondition
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_is_erased_by_its_author_or_governance_that_may_see_it() {
    let net = net().await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );
    let amber = Share::Amber(vec!["jp-aisi".into()]);
    let submitted = uk
        .submit_incident(&uk.prepare_incident(&incident(), &amber).unwrap())
        .await
        .unwrap();
    let id = submitted.record_id.clone();

    // jp-aisi reads it but is neither its author nor governance; eu-aio is
    // governance but may not read it: neither erases it.
    for who in [&jp, &eu] {
        let order = who.prepare_erasure(&id, "court order 2026/17").unwrap();
        assert_eq!(
            code(who.erase_incident(&id, &order).await.unwrap_err()),
            Code::PermissionDenied,
            "{}",
            who.member()
        );
    }
    // An order needs a reason, before any call.
    assert!(matches!(
        uk.prepare_erasure(&id, " "),
        Err(ClientError::Record(_))
    ));

    let order = uk.prepare_erasure(&id, "court order 2026/17").unwrap();
    let erased = uk.erase_incident(&id, &order).await.unwrap();
    assert!(erased.verified_in_tree_of.is_some(), "{erased:?}");
    // The same order again is answered with the same receipt.
    let again = uk.erase_incident(&id, &order).await.unwrap();
    assert_eq!(again.receipt, erased.receipt);

    // The recipient sees the header, the erasure and its logged order; the
    // body is gone, and the record's own log entry still proves it existed.
    let got = jp.get_incident(&id, false).await.unwrap();
    assert_eq!(got.state, RecordState::Erased as i32);
    assert!(got.record.as_ref().unwrap().body.is_empty());
    assert_eq!(got.erasure_receipt, erased.receipt);
    assert_eq!(got.erasure_order, order);
    assert_eq!(got.receipt, submitted.receipt);
    assert!(jp.open(&got).is_err(), "nothing is left to open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_corrected_retracted_and_erased_through_the_sdk() {
    let net = net().await;
    let jp = net.client("jp-aisi");
    let result =
        cairn_client::json::result_from_json(include_str!("../../examples/result.json")).unwrap();
    let first = jp
        .publish_result(&jp.prepare_result(&result, &Share::Green).unwrap())
        .await
        .unwrap();
    let mut corrected = result.clone();
    corrected.summary_findings = "re-run with the fixed harness".into();
    let correction = jp
        .prepare_result_correction(&corrected, &Share::Green, &first.record_id)
        .unwrap();
    // A correction is not a publication.
    assert_eq!(
        code(jp.publish_result(&correction).await.unwrap_err()),
        Code::InvalidArgument
    );
    let second = jp.supersede_result(&correction).await.unwrap();
    assert!(second.verified_in_tree_of.is_some());
    let old = jp.get_result(&first.record_id, false).await.unwrap();
    assert_eq!(old.state, RecordState::Superseded as i32);

    let current = jp.get_result(&second.record_id, false).await.unwrap();
    let retraction = jp.prepare_retraction(&current, "harness bug").unwrap();
    jp.retract_result(&retraction).await.unwrap();
    let gone = jp.get_result(&second.record_id, false).await.unwrap();
    assert_eq!(gone.state, RecordState::Retracted as i32);

    let order = jp
        .prepare_erasure(&first.record_id, "licence withdrawn")
        .unwrap();
    let erased = jp.erase_result(&first.record_id, &order).await.unwrap();
    assert!(erased.verified_in_tree_of.is_some());
    let got = jp.get_result(&first.record_id, false).await.unwrap();
    assert_eq!(got.state, RecordState::Erased as i32);
}
