//! Limits: a per-member rate limit and message sizes answer
//! RESOURCE_EXHAUSTED and store nothing; other members are not affected.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::intake::v1 as intake;
use cairn_record::pb::SharingLabel;
use cairn_service_core::RecordCoreConfig;
use cairn_tests::{MEMBERS, Net};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_its_rate_is_refused_and_others_are_not() {
    let net = Net::start_with(RecordCoreConfig {
        rate_per_member: 0.5,
        burst_per_member: 3.0,
        ..RecordCoreConfig::default()
    })
    .await;
    let mut uk = net.intake("uk-aisi");
    for i in 0..3 {
        let (_, rec) = net.incident(
            "uk-aisi",
            SharingLabel::TlpGreen,
            &MEMBERS,
            &format!("burst {i}"),
        );
        uk.submit_incident(intake::SubmitIncidentRequest { record: Some(rec) })
            .await
            .unwrap();
    }
    let (d, rec) = net.incident("uk-aisi", SharingLabel::TlpGreen, &MEMBERS, "one too many");
    let err = uk
        .submit_incident(intake::SubmitIncidentRequest { record: Some(rec) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("rate limit: member uk-aisi"),
        "{}",
        err.message()
    );
    let gone = uk
        .get_incident(intake::GetIncidentRequest {
            record_id: Some(cairn_record::pb::RecordId {
                uuid: d.record_id.to_string(),
            }),
            include_latest_proof: false,
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "a refused record was stored");
    // An erasure order takes from the same budget, and is refused first.
    let order = cairn_testkit::erasure_order(
        &net.signing_key("uk-aisi"),
        "uk-aisi",
        &d.record_id.to_string(),
        time::OffsetDateTime::now_utc(),
    );
    let err = uk
        .erase_incident(intake::EraseIncidentRequest { order })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("rate limit: member uk-aisi"),
        "{err:?}"
    );
    // jp-aisi has its own budget.
    let (_, rec) = net.incident(
        "jp-aisi",
        SharingLabel::TlpGreen,
        &MEMBERS,
        "another member",
    );
    net.intake("jp-aisi")
        .submit_incident(intake::SubmitIncidentRequest { record: Some(rec) })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused() {
    let net = Net::start(Duration::from_secs(5)).await;
    let (_, mut rec) = net.incident("uk-aisi", SharingLabel::TlpGreen, &MEMBERS, "huge");
    // Far beyond the body limit and the transport's limit.
    rec.body = vec![0u8; 12 * 1024 * 1024];
    let err = net
        .intake("uk-aisi")
        .submit_incident(intake::SubmitIncidentRequest { record: Some(rec) })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );
}
