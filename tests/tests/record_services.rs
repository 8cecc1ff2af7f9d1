//! audit, intake and evals together on loopback with a dev PKI: the
//! submission chain, receipts, labels, idempotency, reading, watching, the
//! lifecycle and an audit outage.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::RecordError;
use cairn_record::pb::{self, RecordKind, RecordState, SharingLabel};
use cairn_tests::{MEMBERS, Net};

use prost::Message as _;
use tokio_stream::StreamExt as _;
use tonic::Code;

fn verify_receipt(net: &Net, r: &pb::Receipt, envelope: &[u8]) {
    cairn_tests::verify_receipt_of(r, envelope, &net.log_key);
}

async fn submit(
    net: &Net,
    member: &str,
    record: &pb::SignedRecord,
) -> Result<intake::SubmitIncidentResponse, tonic::Status> {
    net.intake(member)
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .map(|r| r.into_inner())
}

fn get_req(id: &str, proof: bool) -> intake::GetIncidentRequest {
    intake::GetIncidentRequest {
        record_id: Some(pb::RecordId { uuid: id.into() }),
        include_latest_proof: proof,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_verify_open_and_the_refusals() {
    let net = Net::start(Duration::from_secs(10)).await;
    // uk-aisi shares an AMBER incident with jp-aisi (and itself).
    let (_, rec) = net.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "Sandbagging on a dangerous-capability eval",
    );
    let out = submit(&net, "uk-aisi", &rec).await.unwrap();
    assert!(!out.duplicate && !out.receipt_pending);
    assert!(
        out.reporting_deadline.is_none(),
        "sealed content: the service cannot compute the deadline"
    );
    let receipt = out.receipt.unwrap();
    verify_receipt(&net, &receipt, &rec.envelope);
    let id = out.record_id.unwrap().uuid;

    // A recipient fetches, verifies, opens and checks the commitment.
    let got = net
        .intake("jp-aisi")
        .get_incident(get_req(&id, true))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(got.record.as_ref().unwrap(), &rec);
    assert_eq!(got.receipt.as_ref().unwrap(), &receipt);
    let latest = got.latest_proof.unwrap();
    verify_receipt(&net, &latest, &rec.envelope);
    let v = cairn_record::verify(got.record.as_ref().unwrap(), &net.directory).unwrap();
    let opened = v
        .open("jp-aisi", Some(&net.sealing_key("jp-aisi")))
        .unwrap();
    v.check_content(&opened.content, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(
        intake::Incident::decode(opened.content.as_slice())
            .unwrap()
            .title,
        "Sandbagging on a dangerous-capability eval"
    );

    // A non-recipient may not fetch it.
    let err = net
        .intake("eu-aio")
        .get_incident(get_req(&id, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Idempotency: same record again → same receipt; another record under the id → ALREADY_EXISTS.
    let again = submit(&net, "uk-aisi", &rec).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.receipt.unwrap(), receipt);
    let (mut d2, _) = net.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "Another incident",
    );
    d2.record_id = uuid::Uuid::parse_str(&id).unwrap();
    let conflicting = net.sign("uk-aisi", &d2);
    assert_eq!(
        submit(&net, "uk-aisi", &conflicting)
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );

    // Refusals, each with its documented status, storing nothing.
    let (_, jp_rec) = net.incident(
        "jp-aisi",
        SharingLabel::TlpGreen,
        &MEMBERS,
        "Signed by jp-aisi",
    );
    let cases: Vec<(&str, &str, pb::SignedRecord, Code, &str)> = vec![
        (
            "record signed by another member",
            "uk-aisi",
            jp_rec.clone(),
            Code::PermissionDenied,
            "arrived on member uk-aisi's connection",
        ),
        (
            "GREEN not sealed to every member",
            "uk-aisi",
            net.incident(
                "uk-aisi",
                SharingLabel::TlpGreen,
                &["uk-aisi", "jp-aisi"],
                "x",
            )
            .1,
            Code::InvalidArgument,
            "every member",
        ),
        (
            "oversized body",
            "uk-aisi",
            {
                let inc = cairn_tests::incident("big");
                let mut content = inc.encode_to_vec();
                content.extend(std::iter::repeat_n(0u8, 0)); // keep valid
                let mut d = net.draft(
                    RecordKind::Incident,
                    SharingLabel::TlpAmber,
                    &["uk-aisi"],
                    vec![7u8; 1_100_000],
                    None,
                );
                d.content = [content, vec![7u8; 1_100_000]].concat();
                net.sign("uk-aisi", &d)
            },
            Code::ResourceExhausted,
            "record.body",
        ),
        (
            "tampered body",
            "uk-aisi",
            {
                let mut r = rec.clone();
                let n = r.body.len();
                r.body[n - 1] ^= 1;
                r
            },
            Code::InvalidArgument,
            "body_digest",
        ),
        (
            "an evaluation result at intake",
            "uk-aisi",
            net.sign(
                "uk-aisi",
                &net.draft(
                    RecordKind::EvaluationResult,
                    SharingLabel::TlpGreen,
                    &MEMBERS,
                    vec![1],
                    None,
                ),
            ),
            Code::InvalidArgument,
            "not accepted by cairn-intake",
        ),
        (
            "invalid TLP:CLEAR content",
            "uk-aisi",
            net.sign(
                "uk-aisi",
                &net.draft(
                    RecordKind::Incident,
                    SharingLabel::TlpClear,
                    &[],
                    intake::Incident {
                        title: "no summary".into(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                    None,
                ),
            ),
            Code::InvalidArgument,
            "content.summary",
        ),
    ];
    for (what, who, record, code, needle) in cases {
        let err = submit(&net, who, &record).await.unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err:?}");
        assert!(err.message().contains(needle), "{what}: {}", err.message());
    }
    // A service identity is refused in the TLS handshake: no handler
    // answers the call.
    let err = submit(&net, "intake", &jp_rec).await.unwrap_err();
    assert!(
        cairn_tests::refused_in_transport(&err),
        "service identity: {err:?}"
    );
    // eu-aio (a submitter) lists: only the one accepted record, header only.
    let list = net
        .intake("eu-aio")
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.records.len(), 1);
    assert!(list.records[0].record.as_ref().unwrap().body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_label_lists_filters_pages_and_watches() {
    let net = Net::start(Duration::from_secs(10)).await;
    let labels = [
        (SharingLabel::TlpClear, vec![]),
        (SharingLabel::TlpGreen, MEMBERS.to_vec()),
        (SharingLabel::TlpAmber, vec!["jp-aisi", "uk-aisi"]),
        (SharingLabel::TlpAmberStrict, vec!["jp-aisi", "uk-aisi"]),
        (SharingLabel::TlpRed, vec!["jp-aisi", "uk-aisi"]),
    ];
    // eu-aio watches from the start.
    let mut watch = net
        .intake("eu-aio")
        .watch_incidents(intake::WatchIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    for (label, recipients) in &labels {
        let (_, rec) = net.incident(
            "uk-aisi",
            *label,
            recipients,
            &format!("{label:?} incident"),
        );
        let out = submit(&net, "uk-aisi", &rec).await.unwrap();
        if *label == SharingLabel::TlpClear {
            assert!(
                out.reporting_deadline.is_some(),
                "a CLEAR serious incident gets its Art. 73 deadline"
            );
        }
        ids.push((out.record_id.unwrap().uuid, *label));
    }
    // RED does not exist for eu-aio: not listed, not watched, NOT_FOUND.
    let red = &ids[4].0;
    assert_eq!(
        net.intake("eu-aio")
            .get_incident(get_req(red, false))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let eu_list = net
        .intake("eu-aio")
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(eu_list.len(), 4);
    let jp_list = net
        .intake("jp-aisi")
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(jp_list.len(), 5);
    for r in &jp_list {
        assert!(
            !r.record.as_ref().unwrap().body.is_empty(),
            "a recipient gets every body"
        );
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = watch.next().await.unwrap().unwrap();
        seen.push(ev.cursor.clone());
    }
    // Paging: two per page, with tokens; a tampered token is refused.
    let mut tokens = Vec::new();
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = net
            .intake("jp-aisi")
            .list_incidents(intake::ListIncidentsRequest {
                page_size: 2,
                page_token: token.clone(),
                filter: None,
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        tokens.push(token.clone());
    }
    assert_eq!(all.len(), 5);
    let mut bad = tokens[0].clone().into_bytes();
    bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
    let err = net
        .intake("jp-aisi")
        .list_incidents(intake::ListIncidentsRequest {
            page_size: 2,
            page_token: String::from_utf8(bad).unwrap(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Another member cannot use jp-aisi's token.
    let err = net
        .intake("eu-aio")
        .list_incidents(intake::ListIncidentsRequest {
            page_size: 2,
            page_token: tokens[0].clone(),
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Filters on the cleartext index fields.
    let f = |min: pb::Severity, juris: &str| pb::RecordFilter {
        incident: Some(pb::IncidentFilter {
            min_severity: min as i32,
            jurisdiction: juris.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let n = |f: pb::RecordFilter| {
        let mut c = net.intake("jp-aisi");
        async move {
            c.list_incidents(intake::ListIncidentsRequest {
                filter: Some(f),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .records
            .len()
        }
    };
    assert_eq!(n(f(pb::Severity::Moderate, "GB")).await, 5);
    assert_eq!(n(f(pb::Severity::High, "")).await, 0);
    assert_eq!(n(f(pb::Severity::Unspecified, "JP")).await, 0);

    // Watch resume: reconnect after the second event; no miss, no repeat.
    drop(watch);
    let (_, later) = net.incident(
        "jp-aisi",
        SharingLabel::TlpGreen,
        &MEMBERS,
        "Later incident",
    );
    submit(&net, "jp-aisi", &later).await.unwrap();
    let mut resumed = net
        .intake("eu-aio")
        .watch_incidents(intake::WatchIncidentsRequest {
            cursor: seen[1].clone(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let mut titles = Vec::new();
    for _ in 0..3 {
        let ev = resumed.next().await.unwrap().unwrap();
        titles.push(ev.record.unwrap().record.unwrap().envelope);
    }
    let first_ids: Vec<String> = titles
        .iter()
        .map(|env| {
            let h = cairn_record::record::decode_header(
                &cairn_record::record::decode_envelope(env).unwrap().payload,
            )
            .unwrap();
            h.record_id.unwrap().uuid
        })
        .collect();
    assert_eq!(
        first_ids[..2],
        [ids[2].0.clone(), ids[3].0.clone()],
        "resumes right after the cursor, RED still hidden"
    );
    // The third is the later record, seen live.
    assert_ne!(first_ids[2], ids[4].0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_supersede_retract_and_erase() {
    // uk-aisi without governance: it may not erase another's result.
    let net = Net::start_spec(
        cairn_tests::example_without("uk-aisi", cairn_identity::Role::Governance),
        cairn_service_core::RecordCoreConfig {
            receipt_wait: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .await;
    let result = |title: &str| cairn_proto::evals::v1::EvaluationResult {
        evaluator: Some(pb::MemberId {
            id: "jp-aisi".into(),
        }),
        model: Some(evals::ModelUnderTest {
            provider: "Example Labs".into(),
            name: "Frontier-1".into(),
            version: "2026-10".into(),
            digest: String::new(),
        }),
        task: Some(evals::Task {
            id: "inspect_evals/cybench".into(),
            version: "1.0".into(),
            dataset_digest: String::new(),
        }),
        harness: Some(evals::Harness {
            name: "inspect_ai".into(),
            version: "0.3".into(),
            commit: String::new(),
        }),
        metrics: vec![evals::Metric {
            name: "accuracy".into(),
            value: 0.42,
            unit: "fraction".into(),
            ..Default::default()
        }],
        started_at: Some(cairn_record::header::time_to_timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::hours(5),
        )),
        completed_at: Some(cairn_record::header::time_to_timestamp(
            time::OffsetDateTime::now_utc() - time::Duration::hours(1),
        )),
        risk_domain: pb::RiskDomain::Cyber as i32,
        summary_findings: title.into(),
        ..Default::default()
    };
    let publish = |d: &cairn_record::RecordDraft| net.sign("jp-aisi", d);
    let r1 = result("first");
    let d1 = net.draft(
        RecordKind::EvaluationResult,
        SharingLabel::TlpClear,
        &[],
        r1.encode_to_vec(),
        Some(cairn_record::content::evaluation_index(&r1)),
    );
    let s1 = publish(&d1);
    let mut jp = net.evals("jp-aisi");
    let out = jp
        .publish_result(evals::PublishResultRequest {
            record: Some(s1.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    verify_receipt(&net, out.receipt.as_ref().unwrap(), &s1.envelope);
    let id1 = d1.record_id;

    // uk-aisi (also an evaluator) cannot supersede jp-aisi's result.
    let mut by_uk = result("uk's version");
    by_uk.evaluator = Some(pb::MemberId {
        id: "uk-aisi".into(),
    });
    let mut du = net.draft(
        RecordKind::EvaluationResult,
        SharingLabel::TlpClear,
        &[],
        by_uk.encode_to_vec(),
        Some(cairn_record::content::evaluation_index(&by_uk)),
    );
    du.supersedes = Some(id1);
    let uk_sup = net.sign("uk-aisi", &du);
    let r2 = result("corrected");
    let mut d2 = net.draft(
        RecordKind::EvaluationResult,
        SharingLabel::TlpClear,
        &[],
        r2.encode_to_vec(),
        Some(cairn_record::content::evaluation_index(&r2)),
    );
    d2.supersedes = Some(id1);
    let err = net
        .evals("uk-aisi")
        .supersede_result(evals::SupersedeResultRequest {
            record: Some(uk_sup),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // PublishResult refuses a superseding record; SupersedeResult takes it.
    let s2 = publish(&d2);
    assert_eq!(
        jp.publish_result(evals::PublishResultRequest {
            record: Some(s2.clone())
        })
        .await
        .unwrap_err()
        .code(),
        Code::InvalidArgument
    );
    jp.supersede_result(evals::SupersedeResultRequest { record: Some(s2) })
        .await
        .unwrap();
    let old = jp
        .get_result(evals::GetResultRequest {
            record_id: Some(pb::RecordId {
                uuid: id1.to_string(),
            }),
            include_latest_proof: false,
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(old.state, RecordState::Superseded as i32);
    assert_eq!(old.superseded_by.unwrap().uuid, d2.record_id.to_string());
    // Superseding it again fails: it is no longer active.
    let mut d3 = d2.clone();
    d3.record_id = uuid::Uuid::now_v7();
    let again = publish(&d3);
    assert_eq!(
        jp.supersede_result(evals::SupersedeResultRequest {
            record: Some(again)
        })
        .await
        .unwrap_err()
        .code(),
        Code::FailedPrecondition
    );

    // Retract the correction.
    let mut dr = net.draft(
        RecordKind::EvaluationResult,
        SharingLabel::TlpClear,
        &[],
        pb::Retraction {
            reason: "harness bug".into(),
        }
        .encode_to_vec(),
        None,
    );
    dr.retracts = Some(d2.record_id);
    jp.retract_result(evals::RetractResultRequest {
        record: Some(publish(&dr)),
    })
    .await
    .unwrap();
    let retracted = jp
        .get_result(evals::GetResultRequest {
            record_id: Some(pb::RecordId {
                uuid: d2.record_id.to_string(),
            }),
            include_latest_proof: false,
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(retracted.state, RecordState::Retracted as i32);

    // Erase the first result: by its author, with a signed order.
    let order = |by: &str, key: &cairn_identity::SigningKey| {
        cairn_testkit::erasure_order(key, by, &id1.to_string(), time::OffsetDateTime::now_utc())
    };
    // uk-aisi is neither the author nor governance.
    let err = net
        .evals("uk-aisi")
        .erase_result(evals::EraseResultRequest {
            order: order("uk-aisi", &net.signing_key("uk-aisi")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let erased = jp
        .erase_result(evals::EraseResultRequest {
            order: order("jp-aisi", &net.signing_key("jp-aisi")),
        })
        .await
        .unwrap()
        .into_inner();
    let er = erased.receipt.unwrap();
    let got = net
        .evals("eu-aio")
        .get_result(evals::GetResultRequest {
            record_id: Some(pb::RecordId {
                uuid: id1.to_string(),
            }),
            include_latest_proof: false,
        })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(got.state, RecordState::Erased as i32);
    assert!(
        got.record.as_ref().unwrap().body.is_empty(),
        "the body is gone"
    );
    assert_eq!(got.erasure_receipt.unwrap(), er);
    verify_receipt(&net, &er, &got.erasure_order);
    // The record's own log entry stays provable.
    verify_receipt(&net, got.receipt.as_ref().unwrap(), &s1.envelope);
    // Only the header remains: verification without a body says so.
    assert!(matches!(
        cairn_record::verify(got.record.as_ref().unwrap(), &net.directory),
        Err(RecordError::BodyMismatch(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_accepted_while_the_audit_log_is_down_are_logged_after() {
    let mut net = Net::start(Duration::from_millis(500)).await;
    let mut accepted = Vec::new();
    // A stream of submissions; the audit service stops in the middle.
    for i in 0..12 {
        if i == 4 {
            net.stop_audit().await;
        }
        let (_, rec) = net.incident(
            "uk-aisi",
            SharingLabel::TlpGreen,
            &MEMBERS,
            &format!("incident {i}"),
        );
        let out = submit(&net, "uk-aisi", &rec).await.unwrap();
        assert_eq!(out.receipt_pending, i >= 4, "submission {i}");
        accepted.push((out.record_id.unwrap().uuid, rec));
    }
    // Pending records are durable and readable, their receipts pending.
    let pending = net
        .intake("jp-aisi")
        .get_incident(get_req(&accepted[6].0, false))
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert!(pending.receipt_pending && pending.receipt.is_none());
    // The audit log comes back: the outbox drains; resubmitting returns the receipt.
    net.restart_audit().await;
    for (id, rec) in &accepted {
        let out = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let out = submit(&net, "uk-aisi", rec).await.unwrap();
                if !out.receipt_pending {
                    return out;
                }
            }
        })
        .await
        .expect("the receipt never came");
        assert!(out.duplicate, "{id}");
        verify_receipt(&net, &out.receipt.unwrap(), &rec.envelope);
    }
}
