//! Prometheus `/metrics` of a running network: every service serves it,
//! requests are counted by method and status, and the log, batch, lag and
//! store series move with real traffic.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use cairn_proto::intake::v1 as intake;
use cairn_record::pb::SharingLabel;
use cairn_tests::Net;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the series whose line starts with `prefix`.
fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {prefix} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_reports_requests_sizes_batches_and_lag() {
    let net = Net::start(Duration::from_secs(10)).await;
    let (_, record) = net.incident("uk-aisi", SharingLabel::TlpClear, &[], "metrics");
    let ok = net
        .intake("uk-aisi")
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ok.receipt.is_some());
    let refused = net
        .intake("uk-aisi")
        .submit_incident(intake::SubmitIncidentRequest { record: None })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let intake_text = scrape(net.intake.metrics_addr.unwrap()).await;
    let submit = r#"method="/cairn.intake.v1.IncidentIntake/SubmitIncident",service="intake"}"#;
    assert_eq!(
        value(
            &intake_text,
            &format!(r#"cairn_grpc_requests_total{{code="OK",{submit}"#)
        ),
        1.0
    );
    assert_eq!(
        value(
            &intake_text,
            &format!(r#"cairn_grpc_requests_total{{code="INVALID_ARGUMENT",{submit}"#)
        ),
        1.0
    );
    assert_eq!(
        value(
            &intake_text,
            &format!(r#"cairn_grpc_request_duration_seconds_count{{code="OK",{submit}"#)
        ),
        1.0
    );
    assert_eq!(
        value(&intake_text, r#"cairn_records_sequenced{service="intake"}"#),
        1.0
    );
    assert!(value(&intake_text, r#"cairn_store_bytes{service="intake"}"#) > 0.0);
    assert_eq!(
        value(
            &intake_text,
            r#"cairn_audit_batch_size_sum{service="intake"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &intake_text,
            r#"cairn_audit_lag_seconds_count{service="intake"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&intake_text, r#"cairn_outbox_pending{service="intake"}"#),
        0.0
    );

    let evals_text = scrape(net.evals.metrics_addr.unwrap()).await;
    assert_eq!(
        value(&evals_text, r#"cairn_records_sequenced{service="evals"}"#),
        0.0
    );

    let audit = net.audit.as_ref().unwrap();
    let audit_text = scrape(audit.metrics_addr.unwrap()).await;
    assert_eq!(
        value(&audit_text, r#"cairn_log_size{service="audit"}"#),
        1.0
    );
    assert_eq!(
        value(&audit_text, r#"cairn_log_batch_size_sum{service="audit"}"#),
        1.0
    );
    assert!(value(&audit_text, r#"cairn_store_bytes{service="audit"}"#) > 0.0);
    assert_eq!(
        value(
            &audit_text,
            r#"cairn_grpc_requests_total{code="OK",method="/cairn.audit.v1.AuditLog/AppendBatch",service="audit"}"#
        ),
        1.0
    );
    // Nothing from a record appears in any series.
    let id = ok.record_id.unwrap().uuid;
    for text in [&intake_text, &evals_text, &audit_text] {
        assert!(!text.contains(&id) && !text.contains("uk-aisi"));
    }
}

async fn health(addr: SocketAddr, service: &str) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_port_answers_plaintext_grpc_health_probes() {
    let net = Net::start(Duration::from_secs(10)).await;
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let ops = net.intake.metrics_addr.unwrap();
    assert_eq!(health(ops, "cairn.intake.v1.IncidentIntake").await, serving);
    assert_eq!(health(ops, "").await, serving);
    let ops = net.evals.metrics_addr.unwrap();
    assert_eq!(health(ops, "").await, serving);
    let ops = net.audit.as_ref().unwrap().metrics_addr.unwrap();
    assert_eq!(health(ops, "cairn.audit.v1.AuditLog").await, serving);
    // Only health: the record API is not on the plaintext port.
    let channel = tonic::transport::Channel::from_shared(format!(
        "http://{}",
        net.intake.metrics_addr.unwrap()
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let err = cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient::new(channel)
        .submit_incident(intake::SubmitIncidentRequest { record: None })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("SubmitIncident"), "{err:?}");
}

/// A plain HTTP request for a path nothing serves is 404 (not 200 with a
/// gRPC status), so an HTTP probe of a wrong path fails as it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unserved_http_paths_are_404_on_every_operations_port() {
    let net = Net::start(Duration::from_secs(10)).await;
    let audit_ops = net.audit.as_ref().unwrap().metrics_addr.unwrap();
    for ops in [
        net.intake.metrics_addr.unwrap(),
        net.evals.metrics_addr.unwrap(),
        audit_ops,
    ] {
        let mut s = tokio::net::TcpStream::connect(ops).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: cairn\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 404"), "{ops}: {out}");
    }
}
