//! Runs the bad-input catalogue (`tests/bad-input.toml`) against a running
//! network: each case must get its exact gRPC status with a message naming
//! the problem, and must store nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::{Recipient, dsse, record};
use cairn_tests::{MEMBERS, Net};
use prost::Message as _;
use tonic::Status;

/// One catalogue entry.
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Case {
    input: String,
    service: String,
    #[serde(rename = "as")]
    as_: String,
    code: String,
    says: String,
}

#[derive(serde::Deserialize)]
struct Catalogue {
    case: Vec<Case>,
}

/// A valid AMBER incident by uk-aisi to jp-aisi (draft and record).
fn base(net: &Net) -> (cairn_record::RecordDraft, pb::SignedRecord) {
    net.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "catalogue",
    )
}

fn parts(rec: &pb::SignedRecord) -> (pb::Envelope, pb::RecordHeader) {
    let env = record::decode_envelope(&rec.envelope).unwrap();
    let h = record::decode_header(&env.payload).unwrap();
    (env, h)
}

/// Re-signs `rec` as `signer` after changing its header (and body).
fn resign(
    net: &Net,
    rec: &pb::SignedRecord,
    signer: &str,
    body: Option<Vec<u8>>,
    change: impl FnOnce(&mut pb::RecordHeader),
) -> pb::SignedRecord {
    let (_, mut h) = parts(rec);
    let body = body.unwrap_or_else(|| rec.body.clone());
    h.body_digest = record::sha256(&body).to_vec();
    h.body_size = body.len() as u64;
    change(&mut h);
    let key = net.signing_key(signer);
    pb::SignedRecord {
        envelope: dsse::sign(dsse::RECORD_HEADER_TYPE, h.encode_to_vec(), &key).encode_to_vec(),
        body,
    }
}

fn with_envelope(
    rec: &pb::SignedRecord,
    change: impl FnOnce(&mut pb::Envelope),
) -> pb::SignedRecord {
    let (mut env, _) = parts(rec);
    change(&mut env);
    pb::SignedRecord {
        envelope: env.encode_to_vec(),
        body: rec.body.clone(),
    }
}

fn clear_body(content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let salt = [5u8; 32];
    let body = pb::RecordBody {
        body: Some(pb::record_body::Body::Clear(pb::ClearBody {
            salt: salt.to_vec(),
            content: content.to_vec(),
        })),
    }
    .encode_to_vec();
    (
        body,
        cairn_record::commitment::commit(&salt, content).to_vec(),
    )
}

fn record_id_of(rec: &pb::SignedRecord) -> Option<String> {
    record::decode_envelope(&rec.envelope)
        .ok()
        .and_then(|e| record::decode_header(&e.payload).ok())
        .and_then(|h| h.record_id)
        .map(|r| r.uuid)
}

async fn submit(net: &Net, as_: &str, rec: Option<pb::SignedRecord>) -> Result<(), Status> {
    net.intake(as_)
        .submit_incident(intake::SubmitIncidentRequest { record: rec })
        .await
        .map(drop)
}

async fn publish(net: &Net, as_: &str, rec: pb::SignedRecord) -> Result<(), Status> {
    net.evals(as_)
        .publish_result(evals::PublishResultRequest { record: Some(rec) })
        .await
        .map(drop)
}

fn evaluation(author: &str) -> evals::EvaluationResult {
    let now = time::OffsetDateTime::now_utc();
    evals::EvaluationResult {
        evaluator: Some(pb::MemberId { id: author.into() }),
        model: Some(evals::ModelUnderTest {
            provider: "P".into(),
            name: "M".into(),
            ..Default::default()
        }),
        task: Some(evals::Task {
            id: "t".into(),
            version: "1".into(),
            ..Default::default()
        }),
        harness: Some(evals::Harness {
            name: "h".into(),
            ..Default::default()
        }),
        metrics: vec![evals::Metric {
            name: "m".into(),
            value: 1.0,
            ..Default::default()
        }],
        started_at: Some(cairn_record::header::time_to_timestamp(
            now - time::Duration::hours(2),
        )),
        completed_at: Some(cairn_record::header::time_to_timestamp(
            now - time::Duration::hours(1),
        )),
        risk_domain: pb::RiskDomain::Cyber as i32,
        ..Default::default()
    }
}

/// Sends the broken request named `input`; returns the outcome and the id
/// of the record it tried to store, if any.
async fn send(net: &Net, input: &str, as_: &str) -> (Result<(), Status>, Option<String>) {
    if let Some(outcome) = cairn_tests::governance::send_bad_change(net, input, as_).await {
        return (outcome, None);
    }
    let (draft, rec) = base(net);
    let same = |r: pb::SignedRecord| (Some(r.clone()), record_id_of(&r));
    let intake_case = |r: pb::SignedRecord| same(r);
    let (record, id): (Option<pb::SignedRecord>, Option<String>) = match input {
        "missing_record" => (None, None),
        "truncated_envelope" => intake_case(pb::SignedRecord {
            envelope: rec.envelope[..rec.envelope.len() / 2].to_vec(),
            body: rec.body.clone(),
        }),
        "garbage_envelope" => (
            Some(pb::SignedRecord {
                envelope: vec![0xff; 64],
                body: rec.body.clone(),
            }),
            None,
        ),
        "garbage_body" => intake_case(resign(net, &rec, "uk-aisi", Some(vec![0xff; 64]), |_| {})),
        "wrong_payload_type" => intake_case(with_envelope(&rec, |e| {
            e.payload_type = "application/json".into()
        })),
        "no_signature" => intake_case(with_envelope(&rec, |e| e.signatures.clear())),
        "two_signatures" => intake_case(with_envelope(&rec, |e| {
            e.signatures.push(e.signatures[0].clone())
        })),
        "bad_signature" => intake_case(with_envelope(&rec, |e| e.signatures[0].sig[5] ^= 1)),
        "unknown_key_id" => {
            let r = resign(net, &rec, "uk-aisi", None, |h| {
                h.signing_key_id = "uk-aisi-sign-9".into()
            });
            intake_case(with_envelope(&r, |e| {
                e.signatures[0].keyid = "uk-aisi-sign-9".into()
            }))
        }
        "keyid_differs_from_header" => intake_case(with_envelope(&rec, |e| {
            e.signatures[0].keyid = "other".into()
        })),
        "signed_by_another_member" => intake_case(
            net.incident("jp-aisi", SharingLabel::TlpGreen, &MEMBERS, "x")
                .1,
        ),
        "malformed_uuid" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.record_id = Some(pb::RecordId {
                uuid: "not-a-uuid".into(),
            })
        })),
        "uuid_v4" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.record_id = Some(pb::RecordId {
                uuid: uuid::Uuid::new_v4().to_string(),
            })
        })),
        "uppercase_uuid" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.record_id = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string().to_uppercase(),
            })
        })),
        "created_in_the_future" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.created_at = Some(cairn_record::header::time_to_timestamp(
                time::OffsetDateTime::now_utc() + time::Duration::days(30),
            ))
        })),
        "created_before_the_key" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.created_at = Some(cairn_record::header::time_to_timestamp(
                time::OffsetDateTime::now_utc() - time::Duration::days(3),
            ))
        })),
        "kind_unspecified" => intake_case(resign(net, &rec, "uk-aisi", None, |h| h.kind = 0)),
        "result_at_intake" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.kind = RecordKind::EvaluationResult as i32
        })),
        "schema_version_2" => {
            intake_case(resign(net, &rec, "uk-aisi", None, |h| h.schema_version = 2))
        }
        "label_unspecified" => intake_case(resign(net, &rec, "uk-aisi", None, |h| h.label = 0)),
        "clear_with_recipients" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.label = SharingLabel::TlpClear as i32
        })),
        "amber_without_recipients" => {
            intake_case(resign(net, &rec, "uk-aisi", None, |h| h.recipients.clear()))
        }
        "recipient_not_in_directory" => {
            // Sealed honestly to a key of a member the directory does not know.
            let (sk, _) = cairn_identity::SealingKey::generate("fr-inesia-seal-1").unwrap();
            let mut d = draft.clone();
            d.record_id = uuid::Uuid::now_v7();
            d.recipients.push(Recipient {
                member: "fr-inesia".into(),
                key_id: sk.key_id().into(),
                key: sk.public_key(),
            });
            intake_case(net.sign("uk-aisi", &d))
        }
        "unsorted_recipients" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.recipients.reverse()
        })),
        "enormous_recipient_list" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.recipients = (0..300)
                .map(|i| pb::MemberId {
                    id: format!("m{i:04}"),
                })
                .collect();
        })),
        "green_not_to_every_member" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.label = SharingLabel::TlpGreen as i32
        })),
        "sealed_clear_body" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.label = SharingLabel::TlpClear as i32;
            h.recipients.clear();
        })),
        "unsealed_amber_body" => {
            let (body, commitment) =
                clear_body(&cairn_tests::incident("clear but amber").encode_to_vec());
            intake_case(resign(net, &rec, "uk-aisi", Some(body), |h| {
                h.body_commitment = commitment
            }))
        }
        "wrapped_to_a_stale_key" => {
            let (sk, _) = cairn_identity::SealingKey::generate("jp-aisi-seal-0").unwrap();
            let mut d = draft.clone();
            d.record_id = uuid::Uuid::now_v7();
            d.recipients[0] = Recipient {
                member: "jp-aisi".into(),
                key_id: sk.key_id().into(),
                key: sk.public_key(),
            };
            intake_case(net.sign("uk-aisi", &d))
        }
        "body_digest_mismatch" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.body_digest[0] ^= 1
        })),
        "body_size_mismatch" => {
            intake_case(resign(net, &rec, "uk-aisi", None, |h| h.body_size += 1))
        }
        "short_commitment" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.body_commitment.truncate(16)
        })),
        "oversized_body" => intake_case(resign(
            net,
            &rec,
            "uk-aisi",
            Some(vec![0u8; 1024 * 1024 + 1]),
            |_| {},
        )),
        "oversized_envelope" => intake_case(with_envelope(&rec, |e| {
            e.signatures.push(pb::Signature {
                keyid: "pad".into(),
                sig: vec![0; 70_000],
            })
        })),
        "clear_content_missing_title"
        | "clear_content_not_an_incident"
        | "clear_index_misdescribes_content" => {
            let mut inc = cairn_tests::incident("clear");
            let content = match input {
                "clear_content_missing_title" => {
                    inc.title.clear();
                    inc.encode_to_vec()
                }
                "clear_content_not_an_incident" => vec![0xff, 0xff, 0xff],
                _ => inc.encode_to_vec(),
            };
            let (body, commitment) = clear_body(&content);
            let mut index = cairn_record::content::incident_index(&inc);
            if input == "clear_index_misdescribes_content"
                && let Some(pb::index_fields::Fields::Incident(i)) = index.fields.as_mut()
            {
                i.severity = pb::Severity::Critical as i32;
            }
            intake_case(resign(net, &rec, "uk-aisi", Some(body), |h| {
                h.label = SharingLabel::TlpClear as i32;
                h.recipients.clear();
                h.body_commitment = commitment;
                h.index = Some(index);
            }))
        }
        "supersedes_unknown_record" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.supersedes = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            })
        })),
        "about_on_an_incident" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.about = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            })
        })),
        "sighting_about_unknown_incident" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.kind = RecordKind::Sighting as i32;
            h.index = None;
            h.about = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            });
        })),
        "clear_sighting_without_description" => {
            let content = cairn_proto::intake::v1::Sighting {
                jurisdiction: "GB".into(),
                ..Default::default()
            };
            let d = net.draft(
                RecordKind::Sighting,
                SharingLabel::TlpClear,
                &[],
                content.encode_to_vec(),
                None,
            );
            intake_case(net.sign("uk-aisi", &d))
        }
        "acknowledgement_naming_nothing" | "acknowledge_unknown_report" => {
            intake_case(resign(net, &rec, "uk-aisi", None, |h| {
                h.kind = RecordKind::Acknowledgement as i32;
                h.index = None;
                if input == "acknowledge_unknown_report" {
                    h.acknowledges = Some(pb::RecordId {
                        uuid: uuid::Uuid::now_v7().to_string(),
                    });
                }
            }))
        }
        "acknowledges_on_an_incident" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.acknowledges = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            })
        })),
        "follow_up_in_unknown_thread" | "follow_up_marked_initial" | "thread_names_itself" => {
            intake_case(resign(net, &rec, "uk-aisi", None, |h| {
                let own = h.record_id.clone();
                h.thread = if input == "thread_names_itself" {
                    own
                } else {
                    Some(pb::RecordId {
                        uuid: uuid::Uuid::now_v7().to_string(),
                    })
                };
                if input != "follow_up_marked_initial"
                    && let Some(pb::index_fields::Fields::Incident(i)) =
                        h.index.as_mut().and_then(|x| x.fields.as_mut())
                {
                    i.status = pb::IncidentStatus::Update as i32;
                }
            }))
        }
        "retraction_at_intake" => intake_case(resign(net, &rec, "uk-aisi", None, |h| {
            h.retracts = Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            })
        })),
        other => {
            let outcome = non_submit(net, other, as_).await;
            return (outcome, None);
        }
    };
    (submit(net, as_, record).await, id)
}

async fn non_submit(net: &Net, input: &str, as_: &str) -> Result<(), Status> {
    let mut intake_client = net.intake(as_);
    let mut audit = AuditLogClient::new(net.channel(as_, net.audit_addr, "audit"));
    let id = |s: &str| Some(pb::RecordId { uuid: s.into() });
    match input {
        "get_malformed_id" => intake_client
            .get_incident(intake::GetIncidentRequest {
                record_id: id("x"),
                include_latest_proof: false,
            })
            .await
            .map(drop),
        "get_unknown_id" => intake_client
            .get_incident(intake::GetIncidentRequest {
                record_id: id(&uuid::Uuid::now_v7().to_string()),
                include_latest_proof: false,
            })
            .await
            .map(drop),
        "list_tampered_token" => intake_client
            .list_incidents(intake::ListIncidentsRequest {
                page_size: 10,
                page_token: "AAAAAAAAAAEtampered".into(),
                filter: None,
            })
            .await
            .map(drop),
        "list_page_too_large" => intake_client
            .list_incidents(intake::ListIncidentsRequest {
                page_size: 501,
                page_token: String::new(),
                filter: None,
            })
            .await
            .map(drop),
        "watch_tampered_cursor" => intake_client
            .watch_incidents(intake::WatchIncidentsRequest {
                cursor: "bm90IGEgY3Vyc29y".into(),
                filter: None,
            })
            .await
            .map(drop),
        "result_by_non_evaluator" | "result_evaluator_not_author" => {
            let author = if input == "result_by_non_evaluator" {
                "eu-aio"
            } else {
                "jp-aisi"
            };
            let content = evaluation(if input == "result_evaluator_not_author" {
                "uk-aisi"
            } else {
                author
            });
            let d = net.draft(
                RecordKind::EvaluationResult,
                SharingLabel::TlpClear,
                &[],
                content.encode_to_vec(),
                Some(cairn_record::content::evaluation_index(&content)),
            );
            publish(net, as_, net.sign(author, &d)).await
        }
        "publish_with_supersedes" => {
            let content = evaluation("jp-aisi");
            let mut d = net.draft(
                RecordKind::EvaluationResult,
                SharingLabel::TlpClear,
                &[],
                content.encode_to_vec(),
                Some(cairn_record::content::evaluation_index(&content)),
            );
            d.supersedes = Some(uuid::Uuid::now_v7());
            publish(net, as_, net.sign("jp-aisi", &d)).await
        }
        "retract_incident_without_retracts" => {
            let (_, rec) = base(net);
            intake_client
                .retract_incident(intake::RetractIncidentRequest { record: Some(rec) })
                .await
                .map(drop)
        }
        "retract_unknown_incident" | "retraction_without_reason" => {
            let reason = if input == "retract_unknown_incident" {
                "filed twice"
            } else {
                " "
            };
            let mut d = net.draft(
                RecordKind::Incident,
                SharingLabel::TlpClear,
                &[],
                pb::Retraction {
                    reason: reason.into(),
                }
                .encode_to_vec(),
                None,
            );
            d.retracts = Some(uuid::Uuid::now_v7());
            intake_client
                .retract_incident(intake::RetractIncidentRequest {
                    record: Some(net.sign(as_, &d)),
                })
                .await
                .map(drop)
        }
        "erase_incident_garbage_order" => intake_client
            .erase_incident(intake::EraseIncidentRequest {
                order: vec![0xff; 10],
            })
            .await
            .map(drop),
        // Beyond the envelope limit (64 KiB), within the transport's.
        "erase_incident_order_too_large" => intake_client
            .erase_incident(intake::EraseIncidentRequest {
                order: vec![0; 70 * 1024],
            })
            .await
            .map(drop),
        "erase_unknown_incident" | "erase_incident_order_of_another_member" => {
            let by = if input == "erase_unknown_incident" {
                as_
            } else {
                "jp-aisi"
            };
            let record = uuid::Uuid::now_v7().hyphenated().to_string();
            let now = time::OffsetDateTime::now_utc();
            let order = cairn_testkit::erasure_order(&net.signing_key(by), by, &record, now);
            intake_client
                .erase_incident(intake::EraseIncidentRequest { order })
                .await
                .map(drop)
        }
        "erase_garbage_order" => net
            .evals(as_)
            .erase_result(evals::EraseResultRequest {
                order: vec![0xff; 10],
            })
            .await
            .map(drop),
        "append_as_member" => audit
            .append(audit::AppendRequest {
                leaf: b"x".to_vec(),
            })
            .await
            .map(drop),
        "append_malformed_leaf" => audit
            .append(audit::AppendRequest {
                leaf: b"x".to_vec(),
            })
            .await
            .map(drop),
        "append_leaf_of_another_service" => audit
            .append(audit::AppendRequest {
                leaf: cairn_testkit::log_leaf("evals", "intake poses as evals"),
            })
            .await
            .map(drop),
        "append_empty_leaf" => audit
            .append(audit::AppendRequest { leaf: vec![] })
            .await
            .map(drop),
        "inclusion_index_out_of_range" => audit
            .get_inclusion_proof(audit::GetInclusionProofRequest {
                leaf: Some(audit::get_inclusion_proof_request::Leaf::LeafIndex(5)),
                tree_size: 0,
            })
            .await
            .map(drop),
        "cose_receipt_index_out_of_range" | "cose_receipt_beyond_the_log" => audit
            .get_cose_receipt(audit::GetCoseReceiptRequest {
                leaf_index: 5,
                tree_size: if input == "cose_receipt_beyond_the_log" {
                    10
                } else {
                    0
                },
            })
            .await
            .map(drop),
        "consistency_backwards" => audit
            .get_consistency_proof(audit::GetConsistencyProofRequest {
                from_size: 3,
                to_size: 0,
            })
            .await
            .map(drop),
        "entries_beyond_the_log" => audit
            .get_entries(audit::GetEntriesRequest {
                start: 0,
                end: 10,
                page_size: 0,
            })
            .await
            .map(drop),
        "erase_order_from_the_future" | "erase_order_backdated" => {
            let now = time::OffsetDateTime::now_utc();
            let at = if input == "erase_order_from_the_future" {
                now + time::Duration::days(365 * 70)
            } else {
                now - time::Duration::days(30)
            };
            let record = uuid::Uuid::now_v7().hyphenated().to_string();
            let order = cairn_testkit::erasure_order(&net.signing_key(as_), as_, &record, at);
            net.evals(as_)
                .erase_result(evals::EraseResultRequest { order })
                .await
                .map(drop)
        }
        "malformed_protobuf" => raw_submit(net, as_, vec![0xff; 16]).await,
        // Beyond the transport's limit (4 x (1 MiB body + 64 KiB envelope)).
        "oversized_message" => raw_submit(net, as_, vec![0; 5 * 1024 * 1024]).await,
        other => panic!("the catalogue names an input this test does not know: {other}"),
    }
}

/// Sends `bytes` as the whole SubmitIncident request message, unchecked.
async fn raw_submit(net: &Net, as_: &str, bytes: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(net.channel(as_, net.intake.addr, "intake"));
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/cairn.intake.v1.IncidentIntake/SubmitIncident",
    );
    grpc.unary(tonic::Request::new(bytes), path, RawCodec)
        .await
        .map(drop)
}

/// A codec that sends its bytes as the message and ignores the answer.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, Status> {
        let n = bytes::Buf::remaining(buf);
        bytes::Buf::advance(buf, n);
        Ok(Some(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogued_bad_input_is_refused_precisely_and_stores_nothing() {
    let cases = toml::from_str::<Catalogue>(include_str!("../bad-input.toml"))
        .unwrap()
        .case;
    assert!(
        cases.len() >= 40,
        "the catalogue must hold at least 40 cases"
    );
    let net = Net::start(Duration::from_secs(5)).await;
    let mut failures = Vec::new();
    for c in &cases {
        let (outcome, record_id) = send(&net, &c.input, &c.as_).await;
        let problem = match outcome {
            Ok(()) => Some("was accepted".to_owned()),
            Err(s) => {
                let code = format!("{:?}", s.code()).to_uppercase();
                let want = c.code.replace('_', "");
                if code != want {
                    Some(format!("got {:?}: {}", s.code(), s.message()))
                } else if !s.message().contains(&c.says) {
                    Some(format!(
                        "message {:?} does not say {:?}",
                        s.message(),
                        c.says
                    ))
                } else {
                    None
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{} ({} as {}): {p}", c.input, c.service, c.as_));
            continue;
        }
        // Nothing stored: the record does not exist for its author…
        if let Some(id) = record_id.filter(|id| cairn_record::header::parse_record_id(id).is_ok()) {
            let got = net
                .intake("uk-aisi")
                .get_incident(intake::GetIncidentRequest {
                    record_id: Some(pb::RecordId { uuid: id }),
                    include_latest_proof: false,
                })
                .await;
            if !matches!(&got, Err(s) if s.code() == tonic::Code::NotFound) {
                failures.push(format!("{}: the refused record was stored", c.input));
            }
        }
    }
    // …no directory change was accepted…
    let (governed, _) = net.governed("uk-aisi").await;
    assert!(governed.is_empty(), "a refused directory change was stored");
    // …and nothing reached the audit log.
    assert_eq!(
        net.log_size("eu-aio").await,
        0,
        "refused requests appended to the audit log"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
