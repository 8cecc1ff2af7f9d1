//! Two `cairn-intake` processes on one PostgreSQL database (replicas
//! behind one address in a deployment): members submit through both at
//! once, and idempotency, the sequence and its watch cursors, receipts and
//! label enforcement hold across them. Needs `CAIRN_TEST_POSTGRES`
//! (skipped without it; `.ci/run` sets it and requires it).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use cairn_devpki::layout;
use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::pb::SharingLabel;
use cairn_store::conformance::{fresh_postgres_database, postgres_test_ca, postgres_test_url};
use cairn_tests::Net;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

async fn replica(net: &Net, postgres: &str) -> (Child, SocketAddr) {
    let svc = net.pki.join(layout::SERVICES).join("intake");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn-intake"));
    // Encrypted to the database when the test server offers TLS.
    if let Some(ca) = postgres_test_ca() {
        cmd.arg("--postgres-ca").arg(ca);
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .arg("--audit")
        .arg(net.audit_addr.to_string())
        .arg("--postgres")
        .arg(postgres)
        .arg("--directory")
        .arg(net.pki.join(layout::DIRECTORY))
        .arg("--tls-cert")
        .arg(svc.join(layout::TLS_CERT))
        .arg("--tls-key")
        .arg(svc.join(layout::TLS_KEY))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the replica did not start")
        .unwrap()
        .expect("the replica exited");
    let addr = line
        .strip_prefix("cairn-intake listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn client(net: &Net, member: &str, addr: SocketAddr) -> IncidentIntakeClient<Channel> {
    IncidentIntakeClient::new(net.channel(member, addr, "intake"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_are_one_service() {
    let Some(url) = postgres_test_url() else {
        return;
    };
    let db = fresh_postgres_database(&url, "replicas").await;
    let net = Net::start(Duration::from_secs(10)).await;
    let (_a, addr_a) = replica(&net, &db).await;
    let (_b, addr_b) = replica(&net, &db).await;
    let replicas = [addr_a, addr_b];

    // Submissions through both replicas at once.
    let per_replica = 12;
    let mut tasks = Vec::new();
    let mut expected = BTreeSet::new();
    for (r, addr) in replicas.iter().enumerate() {
        for i in 0..per_replica {
            let (_, record) = net.incident(
                "uk-aisi",
                SharingLabel::TlpAmber,
                &["jp-aisi"],
                &format!("replica {r} incident {i}"),
            );
            let mut c = client(&net, "uk-aisi", *addr);
            tasks.push(tokio::spawn(async move {
                c.submit_incident(intake::SubmitIncidentRequest {
                    record: Some(record),
                })
                .await
                .map(|r| r.into_inner())
            }));
        }
    }
    for t in tasks {
        let out = t.await.unwrap().expect("a submission was refused");
        assert!(!out.duplicate);
        let receipt = out.receipt.expect("a receipt within the wait");
        cairn_tlog::checkpoint::open(&receipt.checkpoint, &net.log_key).unwrap();
        expected.insert(out.record_id.unwrap().uuid);
    }
    assert_eq!(expected.len(), 2 * per_replica);

    // Idempotency across replicas: the same record through the other
    // replica is a duplicate with the same receipt; another record under
    // the same id is refused there too.
    let (_, record) = net.incident("uk-aisi", SharingLabel::TlpAmber, &["jp-aisi"], "twice");
    let first = client(&net, "uk-aisi", addr_a)
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    let again = client(&net, "uk-aisi", addr_b)
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(first.record_id, again.record_id);
    assert_eq!(first.receipt, again.receipt);
    let id = first.record_id.clone().unwrap().uuid;
    expected.insert(id.clone());

    // One sequence: a watch on either replica sees every record exactly
    // once, in the same order, and a cursor from one resumes on the other.
    let mut orders = Vec::new();
    let mut cursors = Vec::new();
    for addr in replicas {
        let mut stream = client(&net, "jp-aisi", addr)
            .watch_incidents(intake::WatchIncidentsRequest::default())
            .await
            .unwrap()
            .into_inner();
        let mut seen = Vec::new();
        let mut cursor = Vec::new();
        while seen.len() < expected.len() {
            let ev = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("the watch stalled")
                .unwrap()
                .unwrap();
            let env = ev.record.unwrap().record.unwrap().envelope;
            let h = cairn_record::record::decode_envelope(&env).unwrap();
            let header = cairn_record::record::decode_header(&h.payload).unwrap();
            seen.push(header.record_id.unwrap().uuid);
            cursor.push(ev.cursor);
        }
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
        orders.push(seen);
        cursors.push(cursor);
    }
    assert_eq!(orders[0], orders[1], "the replicas disagree on the order");
    let mid = expected.len() / 2;
    let mut resumed = client(&net, "jp-aisi", addr_b)
        .watch_incidents(intake::WatchIncidentsRequest {
            cursor: cursors[0][mid - 1].clone(),
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let ev = resumed.next().await.unwrap().unwrap();
    let env = ev.record.unwrap().record.unwrap().envelope;
    let h = cairn_record::record::decode_envelope(&env).unwrap();
    let header = cairn_record::record::decode_header(&h.payload).unwrap();
    assert_eq!(header.record_id.unwrap().uuid, orders[0][mid]);

    // Labels hold on both: the AMBER record is refused to a non-recipient.
    for addr in replicas {
        let err = client(&net, "eu-aio", addr)
            .get_incident(intake::GetIncidentRequest {
                record_id: Some(cairn_record::pb::RecordId { uuid: id.clone() }),
                include_latest_proof: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        let got = client(&net, "jp-aisi", addr)
            .get_incident(intake::GetIncidentRequest {
                record_id: Some(cairn_record::pb::RecordId { uuid: id.clone() }),
                include_latest_proof: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.record.unwrap().receipt, first.receipt);
    }
}
