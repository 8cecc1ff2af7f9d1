//! The transport floor, measured in the same run: the same mTLS (TLS 1.3,
//! client certificates checked against the directory, the service's own
//! certificate), the same tonic server scaffold (`cairn_server::builder`),
//! the same records as request bodies, the same connections and calls in
//! flight, against an echo service that answers every SubmitIncident at
//! once with a response the size of a real one (the receipt a real call
//! got). What gRPC over mTLS alone costs here, per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_mtls as tls;
use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::incident_intake_server::{IncidentIntake, IncidentIntakeServer};
use cairn_record::pb;
use cairn_tests::Net;
use tonic::{Request, Response, Status};

/// What the echo run measured.
pub(crate) struct Transport {
    /// Calls per second, end to end.
    pub(crate) rate: f64,
    /// This process's CPU per call (client and server, as in the real run).
    pub(crate) cpu: Duration,
}

struct Echo {
    response: intake::SubmitIncidentResponse,
}

fn none() -> Status {
    Status::unimplemented("the echo service answers SubmitIncident only")
}

#[tonic::async_trait]
impl IncidentIntake for Echo {
    async fn submit_incident(
        &self,
        request: Request<intake::SubmitIncidentRequest>,
    ) -> Result<Response<intake::SubmitIncidentResponse>, Status> {
        std::hint::black_box(request.get_ref().record.as_ref().map(|r| r.body.len()));
        Ok(Response::new(self.response.clone()))
    }
    async fn retract_incident(
        &self,
        _: Request<intake::RetractIncidentRequest>,
    ) -> Result<Response<intake::SubmitIncidentResponse>, Status> {
        Err(none())
    }
    async fn erase_incident(
        &self,
        _: Request<intake::EraseIncidentRequest>,
    ) -> Result<Response<intake::EraseIncidentResponse>, Status> {
        Err(none())
    }
    async fn get_incident(
        &self,
        _: Request<intake::GetIncidentRequest>,
    ) -> Result<Response<intake::GetIncidentResponse>, Status> {
        Err(none())
    }
    async fn list_incidents(
        &self,
        _: Request<intake::ListIncidentsRequest>,
    ) -> Result<Response<intake::ListIncidentsResponse>, Status> {
        Err(none())
    }
    type SubmitIncidentsStream = tokio_stream::Empty<Result<intake::SubmitIncidentsResult, Status>>;
    async fn submit_incidents(
        &self,
        _: Request<tonic::Streaming<intake::SubmitIncidentRequest>>,
    ) -> Result<Response<Self::SubmitIncidentsStream>, Status> {
        Err(none())
    }
    type WatchIncidentsStream = tokio_stream::Empty<Result<pb::WatchEvent, Status>>;
    async fn watch_incidents(
        &self,
        _: Request<intake::WatchIncidentsRequest>,
    ) -> Result<Response<Self::WatchIncidentsStream>, Status> {
        Err(none())
    }
}

/// Starts the echo service on a loopback port, as `intake` (its
/// certificate), admitting members.
async fn start(net: &Net, receipt: pb::Receipt) -> std::net::SocketAddr {
    let identity = cairn_devpki::service_tls_identity(&net.pki, "intake").expect("intake identity");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config =
        tls::server_config_admitting(&identity, net.handle.clone(), tls::Peers::MembersOnly)
            .expect("tls");
    let incoming = tls::TlsIncoming::new(listener, config, net.handle.clone());
    let echo = Echo {
        response: intake::SubmitIncidentResponse {
            record_id: Some(pb::RecordId {
                uuid: uuid::Uuid::now_v7().to_string(),
            }),
            receipt: Some(receipt),
            ..Default::default()
        },
    };
    tokio::spawn(
        cairn_server::builder()
            .add_service(IncidentIntakeServer::new(echo))
            .serve_with_incoming(incoming),
    );
    addr
}

/// Sends every record once to the echo service over `connections`
/// connections (acting as `authors`, connection c as authors[c % n]) with
/// `in_flight` calls in flight.
pub(crate) async fn floor(
    net: &Net,
    authors: &[&str],
    records: Arc<Vec<pb::SignedRecord>>,
    receipt: pb::Receipt,
    connections: usize,
    in_flight: usize,
) -> Transport {
    let addr = start(net, receipt).await;
    let channels: Vec<_> = (0..connections)
        .map(|c| net.channel(authors[c % authors.len()], addr, "intake"))
        .collect();
    for ch in &channels {
        // Open each connection (TLS handshake) before timing.
        let mut c = intake::incident_intake_client::IncidentIntakeClient::new(ch.clone());
        let _ = c.get_incident(intake::GetIncidentRequest::default()).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = super::cpu_time();
    let start = Instant::now();
    let mut workers = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (records, next, channels) = (records.clone(), next.clone(), channels.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= records.len() {
                    break;
                }
                let mut c = intake::incident_intake_client::IncidentIntakeClient::new(
                    channels[i % channels.len()].clone(),
                );
                c.submit_incident(intake::SubmitIncidentRequest {
                    record: Some(records[i].clone()),
                })
                .await
                .expect("echo");
            }
        }));
    }
    for w in workers {
        w.await.expect("echo worker");
    }
    let elapsed = start.elapsed();
    let cpu = super::cpu_time() - cpu0;
    let n = records.len().max(1);
    let t = Transport {
        rate: n as f64 / elapsed.as_secs_f64(),
        cpu: cpu / u32::try_from(n).unwrap_or(u32::MAX),
    };
    println!(
        "transport floor (echo over the same mTLS, bodies, {connections} connections, \
         {in_flight} in flight): {:.0} calls/s, {:.1} µs CPU per call",
        t.rate,
        t.cpu.as_secs_f64() * 1e6
    );
    t
}
