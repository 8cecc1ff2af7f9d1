//! `cairn-audit`: the gRPC face of the audit log ([`cairn_log`]) and of the
//! witness, plus the log's C2SP tiles and the witness's C2SP
//! `add-checkpoint` over HTTPS on the same port.
//!
//! This crate wires libraries together: mTLS from `cairn-identity`, the
//! pipeline and witness from `cairn-log`, storage from `cairn-store`. It
//! must not hold log logic of its own. Appends are allowed only to service
//! identities that the directory grants the `append` right; every other
//! call is open to any authenticated member or service.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod governance;
mod grpc;
pub mod guard;
pub mod status;
mod tiles_http;
mod witness_client;
mod witness_http;
pub mod witnessing;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_identity::{Directory, DirectoryHandle};
use cairn_log::lease::Lease;
use cairn_log::witness::Witness;
use cairn_log::{Log, LogConfig};
use cairn_mtls::{self as tls, TlsIdentity, TlsIncoming};
use cairn_proto::audit::v1::audit_log_server::AuditLogServer;
use cairn_proto::audit::v1::governance_server::GovernanceServer;
use cairn_proto::audit::v1::witness_server::WitnessServer;
use cairn_store::{Store, StoreLocation};
use cairn_telemetry::metrics::{BATCH_BUCKETS, Metrics, OpsEndpoint};
use cairn_tlog::note::{ALG_COSIGNATURE_V1, ALG_ED25519, NoteSigner, VerifierKey};
use tokio::net::TcpListener;

pub use error::AuditError;
pub use governance::GovernanceService;
pub use grpc::{AuditService, WitnessService};

/// Everything `cairn-audit` needs to run.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Where its data lives (an embedded store's directory, or a database shared with
    /// standby replicas).
    pub store: StoreLocation,
    /// The network directory file.
    pub directory: PathBuf,
    /// This service's TLS certificate chain (PEM).
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// The log's Ed25519 signing key (PKCS#8 PEM).
    pub log_key: PathBuf,
    /// The log's origin (checkpoint origin line and key name).
    pub origin: String,
    /// Witness mode: the cosigner's Ed25519 key (PKCS#8 PEM) and name.
    pub witness: Option<WitnessConfig>,
    /// Witnesses to ask for cosignatures of this log's checkpoints.
    pub cosigners: Vec<witnessing::WitnessPeer>,
    /// Where to serve Prometheus `/metrics` over plain HTTP (`None`: not
    /// served).
    pub metrics_listen: Option<SocketAddr>,
    /// On a shared store: the sequencer lease's lifetime. A standby takes
    /// over this long after the sequencer stops renewing.
    pub lease_ttl: std::time::Duration,
}

/// The default sequencer lease lifetime.
pub const DEFAULT_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// Witness mode settings.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    /// The cosigning key file.
    pub key: PathBuf,
    /// The cosigner name.
    pub name: String,
    /// Verifier keys of the logs this witness follows.
    pub logs: Vec<String>,
}

/// A running audit service.
pub struct RunningAudit {
    /// The bound address.
    pub addr: SocketAddr,
    /// The log.
    pub log: Log,
    /// The log's verifier key.
    pub log_verifier: VerifierKey,
    /// The witness's verifier key, in witness mode.
    pub witness_verifier: Option<VerifierKey>,
    /// The latest checkpoint cosigned by this log's witnesses.
    pub cosigned: tokio::sync::watch::Receiver<Option<String>>,
    /// The metrics (rendered at `/metrics`).
    pub metrics: Metrics,
    /// Where `/metrics` and the plaintext gRPC health service are served,
    /// if they are.
    pub metrics_addr: Option<SocketAddr>,
    ops: Option<OpsEndpoint>,
    /// The sequencer lease, on a shared store.
    pub lease: Option<Arc<Lease>>,
    store: Arc<dyn Store>,
    governance: GovernanceService,
    /// Whether the witnesses let this log sequence (the fork guard).
    pub gate: guard::Gate,
    witnessing: Option<tokio::task::JoinHandle<()>>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningAudit {
    /// Resolves if this replica loses the sequencer lease (never on a
    /// store of its own). Its log can no longer commit; the process should
    /// exit and come back as a standby.
    pub async fn lease_lost(&self) {
        match &self.lease {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    }

    /// Writes a consistent backup of the log (as of its latest checkpoint)
    /// into the embedded store at `dir`, which must hold no log, while serving;
    /// appends wait for the copy. Returns the tree size backed up.
    pub async fn backup(&self, dir: &std::path::Path) -> Result<u64, AuditError> {
        let to = StoreLocation::embedded(dir).open("audit").await?;
        let size = self.log.backup(to.as_ref()).await?;
        governance::copy_history(self.store.as_ref(), to.as_ref(), size).await?;
        Ok(size)
    }

    /// Stops serving and waits for the server and the sequencer.
    pub async fn stop(self) -> Result<(), AuditError> {
        self.governance.close();
        let _ = self.shutdown.send(());
        // The witnessing task holds the log (and its store) until stopped.
        if let Some(w) = self.witnessing {
            w.abort();
            let _ = w.await;
        }
        if let Some(ops) = self.ops {
            ops.stop().await;
        }
        self.server
            .await
            .map_err(|e| AuditError::Server(e.to_string()))?
            .map_err(|e| AuditError::Server(e.to_string()))?;
        self.log.close().await;
        if let Some(lease) = self.lease.and_then(Arc::into_inner) {
            lease.release().await?;
        }
        Ok(())
    }
}

/// Restores the backup in the embedded store at `from` (written by
/// [`RunningAudit::backup`]) into `to`, which must hold no log. Returns how
/// many keys were copied. The restored log is older than what it published
/// since the backup: it sequences again only once its witnesses confirm it
/// (see [`guard`]).
pub async fn restore(from: &std::path::Path, to: &StoreLocation) -> Result<u64, AuditError> {
    if !from.is_dir() {
        return Err(AuditError::NoBackup {
            path: from.to_owned(),
        });
    }
    let source = StoreLocation::embedded(from).open("audit").await?;
    let target = to.open("audit").await?;
    let copied = cairn_log::backup::restore(source.as_ref(), target.as_ref()).await?;
    let changes = governance::copy_history(source.as_ref(), target.as_ref(), u64::MAX).await?;
    Ok(copied + changes)
}

/// Opens the store and the log and starts serving.
pub async fn start(config: AuditConfig) -> Result<RunningAudit, AuditError> {
    let (directory_text, directory) = Directory::load_with_text(&config.directory)?;
    let directory = DirectoryHandle::new(directory);
    let identity = TlsIdentity::load(&config.tls_cert, &config.tls_key)?;
    let signer = Arc::new(note_signer(
        &config.log_key,
        &config.origin,
        ALG_ED25519,
        "log key",
    )?);
    let log_verifier = signer.verifier().clone();
    let store: Arc<dyn Store> = config.store.open("audit").await?;
    let metrics = Metrics::new("audit")?;
    // Health and metrics come first: a standby replica answers probes
    // (NOT_SERVING) while it waits for the lease.
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<AuditLogServer<AuditService>>()
        .await;
    let ops = metrics
        .serve(
            config.metrics_listen,
            tonic::service::Routes::new(health_service.clone()).into_axum_router(),
        )
        .await?;
    let (log, lease) = open_log(&config, store.clone(), signer.clone(), &metrics).await?;
    let witness = open_witness(&config, store.clone())?;
    let witness_verifier = witness.as_ref().map(|w| w.verifier().clone());
    let (published, cosigned) = tokio::sync::watch::channel(None);
    let gate = guard::Gate::new(
        config
            .cosigners
            .iter()
            .map(|c| c.key.name().to_owned())
            .collect(),
    );
    let witnessing = (!config.cosigners.is_empty()).then(|| {
        tokio::spawn(witnessing::run(
            log.clone(),
            config.cosigners.clone(),
            identity.clone(),
            directory.clone(),
            published,
            gate.clone(),
        ))
    });
    let governance = open_governance(
        store.clone(),
        &log,
        &gate,
        &directory,
        &directory_text,
        &metrics,
    )
    .await?;
    health.set_serving::<AuditLogServer<AuditService>>().await;
    if witness.is_some() {
        health.set_serving::<WitnessServer<WitnessService>>().await;
    }
    let stopper = governance.clone();
    let served = Served {
        log: &log,
        directory: &directory,
        gate: &gate,
        signer,
        witness,
        governance,
    };
    let routes = routes(health_service, served)?;
    let (addr, shutdown, server) =
        serve(config.listen, routes, &identity, &directory, &metrics).await?;
    tracing::info!(%addr, origin = %config.origin, "audit service listening");
    Ok(RunningAudit {
        addr,
        log,
        log_verifier,
        witness_verifier,
        cosigned,
        metrics,
        metrics_addr: ops.as_ref().map(|o| o.addr),
        ops,
        lease,
        store,
        governance: stopper,
        gate,
        witnessing,
        shutdown,
        server,
    })
}

/// A note signer named `name` from the PKCS#8 key file `path`.
fn note_signer(
    path: &std::path::Path,
    name: &str,
    alg: u8,
    what: &'static str,
) -> Result<NoteSigner, AuditError> {
    let der = cairn_identity::keys::load_pkcs8_der(path)?;
    NoteSigner::from_pkcs8(name, alg, &der).map_err(|source| AuditError::NoteKey {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The folder of the data directory that holds the log's full tiles.
pub const TILE_DIR: &str = "tiles";

/// Opens the log with its metrics; on a shared store, first takes the
/// sequencer lease (a standby waits here) and fences every commit by it.
async fn open_log(
    config: &AuditConfig,
    store: Arc<dyn Store>,
    signer: Arc<NoteSigner>,
    metrics: &Metrics,
) -> Result<(Log, Option<Arc<Lease>>), AuditError> {
    let batch_size = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("log_batch_size", "Leaves integrated per log batch")
            .buckets(BATCH_BUCKETS.to_vec()),
    )
    .map_err(Metrics::error)?;
    metrics.register(&batch_size)?;
    let mut log_config = LogConfig::new(signer);
    let lease = if store.is_shared() {
        let holder = format!(
            "{}/{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "audit".into()),
            std::process::id()
        );
        tracing::info!(%holder, "shared store: acquiring the sequencer lease");
        let lease = Lease::acquire(store.clone(), &holder, config.lease_ttl).await?;
        log_config.fence = Some(lease.fence());
        Some(Arc::new(lease))
    } else {
        None
    };
    // Embedded: full tiles and bundles are immutable files beside the
    // store (`<data-dir>/tiles`, the C2SP layout); a database keeps them
    // as rows, which replicas share.
    if let StoreLocation::Embedded(embedded) = &config.store {
        log_config.tile_dir = Some(embedded.path.join(TILE_DIR));
    }
    log_config.on_batch = Some(cairn_log::BatchObserver(Arc::new(move |n| {
        batch_size.observe(n as f64)
    })));
    let log = Log::open(store.clone(), log_config).await?;
    let size_of = log.clone();
    metrics.gauge_on_scrape(
        "log_size",
        "Leaves in the log (tree size of the latest checkpoint)",
        move || {
            let size = size_of.snapshot().size;
            async move { i64::try_from(size).ok() }
        },
    )?;
    metrics.store_size_gauge(store)?;
    Ok((log, lease))
}

/// The directory's history from the genesis (`directory_text`, when the
/// directory file is one) and the stored change records; the version in
/// force is exported as `directory_version`, and a change left in flight by
/// a crash is completed in the background once appends are admitted.
async fn open_governance(
    store: Arc<dyn Store>,
    log: &Log,
    gate: &guard::Gate,
    directory: &DirectoryHandle,
    directory_text: &str,
    metrics: &Metrics,
) -> Result<GovernanceService, AuditError> {
    let version = metrics.directory_version()?;
    let genesis = cairn_identity::genesis::is_genesis(directory_text).then_some(directory_text);
    let governance = GovernanceService::open(
        store,
        log.clone(),
        gate.clone(),
        directory.clone(),
        genesis,
        version,
    )
    .await?;
    let recovering = governance.clone();
    tokio::spawn(async move {
        if let Err(e) = recovering.recover().await {
            tracing::warn!(error = %e, "could not yet complete a directory change left in flight");
        }
    });
    Ok(governance)
}

/// The witness of witness mode, if configured.
fn open_witness(
    config: &AuditConfig,
    store: Arc<dyn Store>,
) -> Result<Option<Arc<Witness>>, AuditError> {
    let Some(w) = &config.witness else {
        return Ok(None);
    };
    let cosigner = Arc::new(note_signer(
        &w.key,
        &w.name,
        ALG_COSIGNATURE_V1,
        "witness key",
    )?);
    let logs = w
        .logs
        .iter()
        .map(|k| VerifierKey::parse(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(Witness::new(store, cosigner, logs))))
}

/// What the port serves the log and the witness with.
struct Served<'a> {
    log: &'a Log,
    directory: &'a DirectoryHandle,
    gate: &'a guard::Gate,
    signer: Arc<NoteSigner>,
    witness: Option<Arc<Witness>>,
    governance: GovernanceService,
}

/// What the port serves: health, the log, the witness if any, reflection
/// listing exactly those, the C2SP tiles, and 404 for anything else.
fn routes(
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    served_by: Served<'_>,
) -> Result<tonic::service::Routes, AuditError> {
    let Served {
        log,
        directory,
        gate,
        signer,
        witness,
        governance,
    } = served_by;
    let mut routes = tonic::service::Routes::new(health)
        .add_service(AuditLogServer::new(AuditService::new(
            log.clone(),
            directory.clone(),
            gate.clone(),
            signer,
        )))
        .add_service(GovernanceServer::new(governance));
    let mut served = vec![
        <AuditLogServer<AuditService> as tonic::server::NamedService>::NAME,
        <GovernanceServer<GovernanceService> as tonic::server::NamedService>::NAME,
        cairn_proto::HEALTH_SERVICE,
    ];
    if let Some(w) = &witness {
        routes = routes.add_service(WitnessServer::new(WitnessService::new(w.clone())));
        served.push(<WitnessServer<WitnessService> as tonic::server::NamedService>::NAME);
    }
    let routes = cairn_proto::with_reflection(routes, &served)?;
    let mut router = tiles_http::add_routes(routes.into_axum_router(), log.clone());
    if let Some(w) = witness {
        router = witness_http::add_routes(router, w);
    }
    let router = router.fallback(cairn_server::unserved);
    Ok(tonic::service::Routes::from(router))
}

type ServerTask = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Binds `listen` and serves `routes` over mTLS with cairn's limits.
async fn serve(
    listen: std::net::SocketAddr,
    routes: tonic::service::Routes,
    identity: &TlsIdentity,
    directory: &DirectoryHandle,
    metrics: &Metrics,
) -> Result<
    (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        ServerTask,
    ),
    AuditError,
> {
    let bind = |source| AuditError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let server_config = tls::server_config(identity, directory.clone())?;
    let incoming = TlsIncoming::new(listener, server_config, directory.clone());
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        // The same limits and status edge as every cairn service.
        cairn_server::builder()
            .accept_http1(true)
            .layer(metrics.grpc_layer())
            .layer(cairn_server::StatusEdgeLayer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown_rx.await;
            }),
    );
    Ok((addr, shutdown, server))
}
