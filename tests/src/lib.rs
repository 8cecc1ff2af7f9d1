//! The harness for tests that cross cairn's services: a dev PKI on disk and
//! the audit, intake and evals services running in-process on loopback
//! ports chosen by the OS, with helpers to build and sign records as the
//! dev network's members. Tests live in `tests/`.
#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used)]

pub mod fuzz;
pub mod governance;
pub mod python;
pub mod small_fs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_audit::{AuditConfig, RunningAudit};
use cairn_devpki::{self as devpki, DevPki, DevPkiSpec, MemberFiles, layout};
use cairn_identity::{Directory, DirectoryHandle, SealingKey, SigningKey};
use cairn_mtls as tls;
use cairn_proto::evals::v1::evaluation_results_client::EvaluationResultsClient;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::RecordDraft;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_service_core::RecordCoreConfig;
use cairn_service_core::serve::{Running, ServeConfig};
use cairn_store::StoreLocation;
use cairn_tlog::note::VerifierKey;
use tonic::transport::Channel;

pub struct Net {
    pub tmp: tempfile::TempDir,
    pub pki: PathBuf,
    pub directory: Directory,
    pub handle: DirectoryHandle,
    pub audit: Option<RunningAudit>,
    pub audit_addr: SocketAddr,
    pub log_key: VerifierKey,
    pub intake: Running,
    pub evals: Running,
    core: RecordCoreConfig,
    backing: Backing,
}

pub use cairn_testkit::{MEMBERS, incident, verify_receipt, verify_receipt_of};

/// The example dev PKI with `member` stripped of `role` (every example
/// member holds governance; tests of refusals need one that does not).
pub fn example_without(member: &str, role: cairn_identity::Role) -> DevPkiSpec {
    let mut spec = DevPkiSpec::example();
    spec.members
        .iter_mut()
        .filter(|m| m.id == member)
        .for_each(|m| m.roles.retain(|r| *r != role));
    spec
}

impl Net {
    /// Starts audit, intake and evals; submissions wait at most
    /// `receipt_wait` for their receipts.
    pub async fn start(receipt_wait: Duration) -> Self {
        Self::start_with(RecordCoreConfig {
            receipt_wait,
            ..RecordCoreConfig::default()
        })
        .await
    }

    /// Starts the network with these record-service settings.
    pub async fn start_with(core: RecordCoreConfig) -> Self {
        Self::start_spec(DevPkiSpec::example(), core).await
    }

    /// Starts the network with its members as `spec` says.
    pub async fn start_spec(spec: DevPkiSpec, core: RecordCoreConfig) -> Self {
        Self::start_full(
            tempfile::tempdir().unwrap(),
            spec,
            core,
            Backing::embedded(),
        )
        .await
    }

    /// Starts the network in `tmp`, where a test may have prepared the
    /// services' data directories (`<service>-data`: see
    /// [`Net::data_dir`]), say on small filesystems.
    pub async fn start_in(tmp: tempfile::TempDir, core: RecordCoreConfig) -> Self {
        Self::start_full(tmp, DevPkiSpec::example(), core, Backing::embedded()).await
    }

    /// Where service `name` keeps its embedded store in `tmp`.
    pub fn data_dir(tmp: &std::path::Path, name: &str) -> PathBuf {
        tmp.join(format!("{name}-data"))
    }

    /// Starts the network with every service on the PostgreSQL database
    /// `url` (a fresh one per network: tables have fixed names).
    pub async fn start_postgres(core: RecordCoreConfig, url: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        Self::start_full(
            tmp,
            DevPkiSpec::example(),
            core,
            Backing::Postgres(url.to_owned()),
        )
        .await
    }

    /// Starts the network on embedded stores whose caches take at most
    /// `cache_bytes` each (the soak bench bounds memory with it).
    pub async fn start_store_cache(core: RecordCoreConfig, cache_bytes: u64) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        Self::start_full(
            tmp,
            DevPkiSpec::example(),
            core,
            Backing::Embedded { cache_bytes },
        )
        .await
    }

    /// Where service `name` keeps its data.
    pub fn store(&self, name: &str) -> StoreLocation {
        store_for(self.tmp.path(), &self.backing, name)
    }

    /// Another replica of record service `name` (`intake` or `evals`) on
    /// the same store (a database: see [`Net::start_postgres`]).
    pub async fn start_replica(&self, name: &str) -> Running {
        self.start_service(name, self.store(name)).await
    }

    async fn start_full(
        tmp: tempfile::TempDir,
        spec: DevPkiSpec,
        core: RecordCoreConfig,
        backing: Backing,
    ) -> Self {
        let pki = tmp.path().join("pki");
        DevPki::generate(&spec).unwrap().write_to(&pki).unwrap();
        let directory = Directory::load(&pki.join(layout::DIRECTORY)).unwrap();
        let handle = DirectoryHandle::new(directory.clone());
        let mut audit_config = Self::audit_config(&pki, tmp.path(), "127.0.0.1:0".parse().unwrap());
        audit_config.store = store_for(tmp.path(), &backing, "audit");
        let audit = cairn_audit::start(audit_config).await.unwrap();
        let audit_addr = audit.addr;
        let log_key = audit.log_verifier.clone();
        let service = |name: &str| {
            let store = store_for(tmp.path(), &backing, name);
            ServeConfig {
                metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
                ..record_service(&pki, store, audit_addr, &core, name)
            }
        };
        let intake = cairn_intake::start(service("intake")).await.unwrap();
        let evals = cairn_evals::start(service("evals")).await.unwrap();
        Self {
            tmp,
            pki,
            directory,
            handle,
            audit: Some(audit),
            audit_addr,
            log_key,
            intake,
            evals,
            core,
            backing,
        }
    }

    fn audit_config(
        pki: &std::path::Path,
        data: &std::path::Path,
        listen: SocketAddr,
    ) -> AuditConfig {
        let d = pki.join(layout::SERVICES).join("audit");
        AuditConfig {
            listen,
            store: store_for(data, &Backing::embedded(), "audit"),
            directory: pki.join(layout::DIRECTORY),
            tls_cert: d.join(layout::TLS_CERT),
            tls_key: d.join(layout::TLS_KEY),
            log_key: d.join(layout::LOG_KEY),
            origin: devpki::log_origin("cairn.example"),
            witness: None,
            cosigners: vec![],
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
        }
    }

    /// Stops the audit service (the record services keep running).
    pub async fn stop_audit(&mut self) {
        if let Some(a) = self.audit.take() {
            a.stop().await.unwrap();
        }
    }

    /// Starts the audit service again on the same address and data.
    pub async fn restart_audit(&mut self) {
        let mut config = Self::audit_config(&self.pki, self.tmp.path(), self.audit_addr);
        config.store = self.store("audit");
        let a = cairn_audit::start(config).await.unwrap();
        self.audit = Some(a);
    }

    /// Stops record service `name` and starts it again on the same store
    /// (on a new port); returns how long the start took — opening its
    /// store and everything it reads back — until it serves. (A service on
    /// a scratch store holds its place meanwhile: the store's lock must be
    /// free before the timed start.)
    pub async fn reopen(&mut self, name: &str) -> std::time::Duration {
        let scratch = StoreLocation::embedded(self.tmp.path().join("scratch"));
        let scratch = self.start_service(name, scratch).await;
        std::mem::replace(self.slot(name), scratch)
            .stop()
            .await
            .unwrap();
        // The stopped service's tasks let go of the store as they end
        // (bounded: 5 s).
        let store = self.store(name);
        for _ in 0..1000 {
            if store.open(name).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let begun = std::time::Instant::now();
        let fresh = self.start_service(name, store).await;
        let took = begun.elapsed();
        std::mem::replace(self.slot(name), fresh)
            .stop()
            .await
            .unwrap();
        took
    }

    async fn start_service(&self, name: &str, store: StoreLocation) -> Running {
        let config = record_service(&self.pki, store, self.audit_addr, &self.core, name);
        match name {
            "intake" => cairn_intake::start(config).await.unwrap(),
            "evals" => cairn_evals::start(config).await.unwrap(),
            other => panic!("no record service {other}"),
        }
    }

    fn slot(&mut self, name: &str) -> &mut Running {
        match name {
            "intake" => &mut self.intake,
            _ => &mut self.evals,
        }
    }

    pub fn files(&self, member: &str) -> MemberFiles {
        MemberFiles::new(&self.pki, member)
    }

    pub fn signing_key(&self, member: &str) -> SigningKey {
        self.files(member).signing_key().unwrap()
    }

    pub fn sealing_key(&self, member: &str) -> SealingKey {
        self.files(member).sealing_key().unwrap()
    }

    /// An SDK client acting as `member`.
    pub fn client(&self, member: &str) -> cairn_client::Client {
        let creds = cairn_client::Credentials::from_dev_pki(&self.pki, member).unwrap();
        let endpoints = cairn_client::Endpoints {
            intake: self.intake.addr,
            evals: self.evals.addr,
            audit: self.audit_addr,
            source: None,
        };
        cairn_client::Client::connect(
            creds,
            self.directory.clone(),
            endpoints,
            Some(self.log_key.clone()),
        )
        .unwrap()
    }

    pub fn channel(&self, identity_of: &str, addr: SocketAddr, service: &str) -> Channel {
        let identity = if MEMBERS.contains(&identity_of) {
            self.files(identity_of).tls_identity().unwrap()
        } else {
            devpki::service_tls_identity(&self.pki, identity_of).unwrap()
        };
        tls::channel(
            addr,
            tls::client_config(&identity, self.handle.clone(), service).unwrap(),
        )
        .unwrap()
    }

    pub fn intake(&self, member: &str) -> IncidentIntakeClient<Channel> {
        IncidentIntakeClient::new(self.channel(member, self.intake.addr, "intake"))
    }

    /// The size of the audit log's current checkpoint (its signature
    /// verified), as `member` sees it.
    pub async fn log_size(&self, member: &str) -> u64 {
        use cairn_proto::audit::v1 as audit;
        let mut log = audit::audit_log_client::AuditLogClient::new(self.channel(
            member,
            self.audit_addr,
            "audit",
        ));
        let cp = log
            .get_checkpoint(audit::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint;
        cairn_tlog::checkpoint::open(&cp, &self.log_key)
            .unwrap()
            .checkpoint
            .size
    }

    pub fn evals(&self, member: &str) -> EvaluationResultsClient<Channel> {
        EvaluationResultsClient::new(self.channel(member, self.evals.addr, "evals"))
    }

    /// A draft of `kind` with `label` to `recipients` holding `content`.
    pub fn draft(
        &self,
        kind: RecordKind,
        label: SharingLabel,
        recipients: &[&str],
        content: Vec<u8>,
        index: Option<pb::IndexFields>,
    ) -> RecordDraft {
        cairn_testkit::draft(&self.directory, kind, label, recipients, content, index)
    }

    /// Signs a draft as `author`.
    pub fn sign(&self, author: &str, draft: &RecordDraft) -> pb::SignedRecord {
        cairn_record::build(draft, author, &self.signing_key(author)).unwrap()
    }

    /// An incident record by `author`.
    pub fn incident(
        &self,
        author: &str,
        label: SharingLabel,
        recipients: &[&str],
        title: &str,
    ) -> (RecordDraft, pb::SignedRecord) {
        let key = self.signing_key(author);
        cairn_testkit::signed_incident(&self.directory, &key, author, label, recipients, title)
    }
}

/// Record service `name` of a test network on a free loopback port.
fn record_service(
    pki: &std::path::Path,
    store: StoreLocation,
    audit: SocketAddr,
    core: &RecordCoreConfig,
    name: &str,
) -> ServeConfig {
    let d = pki.join(layout::SERVICES).join(name);
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store,
        directory: pki.join(layout::DIRECTORY),
        tls_cert: d.join(layout::TLS_CERT),
        tls_key: d.join(layout::TLS_KEY),
        audit: audit.to_string(),
        core: core.clone(),
        metrics_listen: None,
    }
}

/// Where a test network's services keep their data.
#[derive(Clone, Debug)]
enum Backing {
    /// An embedded store each in the network's directory, with this cache.
    Embedded { cache_bytes: u64 },
    /// One PostgreSQL database for all.
    Postgres(String),
}

impl Backing {
    fn embedded() -> Self {
        Backing::Embedded {
            cache_bytes: cairn_store::DEFAULT_CACHE_BYTES,
        }
    }
}

/// Where service `name` of a test network keeps its data.
fn store_for(tmp: &std::path::Path, backing: &Backing, name: &str) -> StoreLocation {
    match backing {
        Backing::Embedded { cache_bytes } => {
            let mut config = cairn_store::EmbeddedStoreConfig::new(Net::data_dir(tmp, name));
            config.cache_bytes = *cache_bytes;
            StoreLocation::Embedded(config)
        }
        Backing::Postgres(url) => StoreLocation::Postgres {
            url: url.to_owned(),
            ca_file: cairn_store::conformance::postgres_test_ca(),
        },
    }
}

/// Reads `stream` until it ends; panics unless it ends with an error (its
/// connection closed) within 5 s: `what` says whose connection.
pub async fn closed_within_5s<T>(stream: &mut tonic::Streaming<T>, what: &str) {
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(drop),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}'s open connection was not closed within 5 s"));
    assert!(ended.is_err(), "{what}'s stream ended without an error");
}

/// Whether a call failed in the transport, no handler answering it: what a
/// client sees when the TLS handshake refuses its certificate (an alert or
/// a closed connection, depending on timing; the reason is checked in
/// crates/identity/tests/mtls.rs).
pub fn refused_in_transport(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Unavailable
    ) && std::error::Error::source(s).is_some()
}
