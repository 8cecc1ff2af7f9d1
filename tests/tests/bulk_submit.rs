//! The bulk path (SubmitIncidents, PublishResults) over mTLS: more records
//! than a stream keeps in work at once, answered in the order sent; the
//! bad ones refused with exactly what the unary call answers, storing
//! nothing, without ending the stream; every receipt verifies; sending the
//! same stream again is idempotent per record id (duplicates with the
//! same receipts).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::submit_incidents_result::Outcome;
use cairn_record::pb::{self, SharingLabel};
use cairn_tests::Net;
use tokio_stream::StreamExt as _;

const N: usize = 300;

fn requests(
    records: Vec<Option<pb::SignedRecord>>,
) -> impl tokio_stream::Stream<Item = intake::SubmitIncidentRequest> {
    tokio_stream::iter(
        records
            .into_iter()
            .map(|record| intake::SubmitIncidentRequest { record }),
    )
}

async fn answers(
    net: &Net,
    records: &[Option<pb::SignedRecord>],
) -> Vec<intake::SubmitIncidentsResult> {
    let mut s = net
        .intake("uk-aisi")
        .submit_incidents(requests(records.to_vec()))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(a) = s.next().await {
        out.push(a.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_records_is_answered_in_order_with_exact_refusals() {
    let net = Net::start(Duration::from_secs(10)).await;
    let mut records: Vec<Option<pb::SignedRecord>> = (0..N)
        .map(|i| {
            Some(
                net.incident(
                    "uk-aisi",
                    SharingLabel::TlpGreen,
                    &cairn_tests::MEMBERS,
                    &format!("bulk {i}"),
                )
                .1,
            )
        })
        .collect();
    // Three bad ones: a broken signature, no record, another author's.
    let broken_id = cairn_client::verify::stored_id(&pb::StoredRecord {
        record: records[7].clone(),
        ..Default::default()
    });
    // The envelope ends with its signature: the header stays readable.
    let env = &mut records[7].as_mut().unwrap().envelope;
    *env.last_mut().unwrap() ^= 1;
    records[150] = None;
    records[299] = Some(
        net.incident(
            "jp-aisi",
            SharingLabel::TlpGreen,
            &cairn_tests::MEMBERS,
            "not uk's",
        )
        .1,
    );
    let bad = [7, 150, 299];
    // What the unary call says to each bad one.
    let mut unary = Vec::new();
    for i in bad {
        let got = net
            .intake("uk-aisi")
            .submit_incident(intake::SubmitIncidentRequest {
                record: records[i].clone(),
            })
            .await
            .unwrap_err();
        unary.push((got.code() as i32, got.message().to_owned()));
    }

    let first = answers(&net, &records).await;
    assert_eq!(first.len(), N, "one answer per request");
    for (i, a) in first.iter().enumerate() {
        assert_eq!(a.index, i as u64, "in order");
        match (&a.outcome, bad.iter().position(|b| *b == i)) {
            (Some(Outcome::Refused(r)), Some(k)) => {
                assert_eq!((r.code, r.message.clone()), unary[k], "record {i}");
            }
            (Some(Outcome::Accepted(ok)), None) => {
                let r = ok.receipt.as_ref().expect("a receipt");
                let rec = records[i].as_ref().unwrap();
                cairn_testkit::verify_receipt_of(r, &rec.envelope, &net.log_key);
            }
            other => panic!("record {i}: {other:?}"),
        }
    }
    // A refused record was not stored.
    assert!(!broken_id.is_empty());
    let got = net
        .intake("uk-aisi")
        .get_incident(intake::GetIncidentRequest {
            record_id: Some(pb::RecordId { uuid: broken_id }),
            include_latest_proof: false,
        })
        .await;
    assert!(
        matches!(&got, Err(s) if s.code() == tonic::Code::NotFound),
        "{got:?}"
    );

    // Again: idempotent per record id.
    let again = answers(&net, &records).await;
    for (i, (a, b)) in first.iter().zip(&again).enumerate() {
        if let (Some(Outcome::Accepted(x)), Some(Outcome::Accepted(y))) = (&a.outcome, &b.outcome) {
            assert!(y.duplicate, "record {i} again is a duplicate");
            assert_eq!(x.receipt, y.receipt, "record {i}: the same receipt");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_results_take_the_bulk_path_too() {
    let net = Net::start(Duration::from_secs(10)).await;
    let jp = net.client("jp-aisi");
    let result =
        cairn_client::json::result_from_json(include_str!("../../examples/result.json")).unwrap();
    let prepared: Vec<_> = (0..5)
        .map(|_| {
            jp.prepare_result(&result, &cairn_client::Share::Green)
                .unwrap()
        })
        .collect();
    let mut answers = jp
        .publish_results(prepared.iter().map(|p| p.record.clone()).collect())
        .await
        .unwrap();
    let mut n = 0;
    while let Some(a) = answers.next().await {
        let a = a.unwrap();
        let Some(cairn_proto::evals::v1::publish_results_result::Outcome::Accepted(r)) = a.outcome
        else {
            panic!("refused: {a:?}");
        };
        let s = jp.result_published(&prepared[a.index as usize], r).unwrap();
        assert!(s.verified_in_tree_of.is_some(), "receipt verified");
        n += 1;
    }
    assert_eq!(n, 5);
}
