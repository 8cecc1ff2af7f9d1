//! Running a record service: the store, the audit client, mTLS, standard
//! health and reflection, and a graceful stop. The service supplies its
//! gRPC routes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_identity::{Directory, DirectoryHandle};
use cairn_mtls::{self as tls, TlsIdentity, TlsIncoming};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_store::{Store, StoreLocation};
use cairn_telemetry::metrics::{Metrics, OpsEndpoint};
use tokio::net::TcpListener;

use crate::core::{RecordCore, RecordCoreConfig};
use crate::policy::ServicePolicy;

/// Where a record service runs and what it talks to.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// Where its data lives (an embedded store's directory, or a database that replicas
    /// share).
    pub store: StoreLocation,
    /// Directory file.
    pub directory: PathBuf,
    /// TLS certificate chain.
    pub tls_cert: PathBuf,
    /// TLS key.
    pub tls_key: PathBuf,
    /// The audit service, `host:port` (resolved at every connection).
    pub audit: String,
    /// Limits and timings.
    pub core: RecordCoreConfig,
    /// Where to serve Prometheus `/metrics` over plain HTTP (`None`: not
    /// served; the metrics are still kept).
    pub metrics_listen: Option<SocketAddr>,
}

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Identity, keys or directory.
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] cairn_store::StoreError),
    /// The core.
    #[error(transparent)]
    Core(#[from] crate::ServiceError),
    /// Metrics.
    #[error(transparent)]
    Metrics(#[from] cairn_telemetry::TelemetryError),
    /// Binding or serving.
    #[error("{0}")]
    Io(String),
}

/// A running record service.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The core (for tests and embedding).
    pub core: Arc<RecordCore>,
    /// The metrics (rendered at `/metrics`).
    pub metrics: Metrics,
    /// Where `/metrics` and the plaintext gRPC health service are served,
    /// if they are.
    pub metrics_addr: Option<SocketAddr>,
    ops: Option<OpsEndpoint>,
    follower: Option<crate::follow::Follower>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Running {
    /// The directory version in force, as it follows the log (`None`: the
    /// directory file is not a genesis, so there is nothing to follow).
    pub fn directory_version(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.follower.as_ref().map(|f| f.version())
    }

    /// Stops accepting connections, finishes in-flight requests, returns.
    pub async fn stop(self) -> Result<(), ServeError> {
        drop(self.follower);
        let _ = self.shutdown.send(());
        if let Some(ops) = self.ops {
            ops.stop().await;
        }
        self.server
            .await
            .map_err(|e| ServeError::Io(e.to_string()))?
            .map_err(|e| ServeError::Io(e.to_string()))
    }
}

/// The authenticated member or service on `request`'s connection (the
/// mTLS listener admits nobody else).
pub fn peer<T>(
    request: &tonic::Request<T>,
) -> Result<cairn_identity::PeerIdentity, crate::ServiceError> {
    tls::peer_info(request)
        .map(|p| p.identity.clone())
        .ok_or(crate::ServiceError::NoPeer)
}

/// Opens the store and core, and serves `routes(core)` plus health and
/// reflection over mutual TLS. `health_name` is the gRPC service name
/// reported as serving.
pub async fn start(
    config: ServeConfig,
    policy: ServicePolicy,
    health_name: &'static str,
    routes: impl FnOnce(Arc<RecordCore>) -> tonic::service::Routes,
) -> Result<Running, ServeError> {
    let (directory_text, directory) = Directory::load_with_text(&config.directory)?;
    let directory = DirectoryHandle::new(directory);
    let identity = TlsIdentity::load(&config.tls_cert, &config.tls_key)?;
    let store: Arc<dyn Store> = config.store.open(policy.service).await?;
    let audit_tls = tls::client_config(&identity, directory.clone(), "audit")?;
    let audit_channel = tls::channel_to(&config.audit, audit_tls)?;
    let audit = AuditLogClient::new(audit_channel.clone());
    let metrics = Metrics::new(policy.service)?;
    let version_gauge = metrics.directory_version()?;
    let follower = crate::follow::start(
        &directory_text,
        store.clone(),
        directory.clone(),
        audit_channel,
        version_gauge,
    )
    .await?;
    let core =
        RecordCore::open(store, directory.clone(), policy, config.core.clone(), audit).await?;
    core.register_metrics(&metrics)?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Io(format!("binding {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Io(e.to_string()))?;
    let incoming = TlsIncoming::new(
        listener,
        tls::server_config_admitting(&identity, directory.clone(), tls::Peers::MembersOnly)?,
        directory,
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(health_name, tonic_health::ServingStatus::Serving)
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let all = cairn_proto::with_reflection(
        routes(core.clone()).add_service(health_service.clone()),
        &[health_name, cairn_proto::HEALTH_SERVICE],
    )
    .map_err(|e| ServeError::Io(e.to_string()))?;
    let all = cairn_server::with_fallback(all);
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let ops = metrics
        .serve(
            config.metrics_listen,
            tonic::service::Routes::new(health_service.clone()).into_axum_router(),
        )
        .await?;
    let server = tokio::spawn(
        // The same limits and status edge as every cairn service.
        cairn_server::builder()
            .layer(metrics.grpc_layer())
            .layer(cairn_server::StatusEdgeLayer)
            .add_routes(all)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown_rx.await;
            }),
    );
    tracing::info!(%addr, service = health_name, "record service listening");
    Ok(Running {
        addr,
        core,
        metrics,
        metrics_addr: ops.as_ref().map(|o| o.addr),
        ops,
        follower,
        shutdown,
        server,
    })
}
