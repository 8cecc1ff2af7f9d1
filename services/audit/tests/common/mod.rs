//! Shared set-up for the audit service's tests: a dev PKI on disk, configs
//! and mTLS clients.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_audit::{AuditConfig, WitnessConfig};
use cairn_devpki::{self as devpki, MemberFiles, layout};
use cairn_identity::DirectoryHandle;
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::audit::v1::witness_client::WitnessClient;
use std::process::Stdio;

use cairn_proto::audit::v1 as pb;
use cairn_proto::common::v1::Receipt;
use cairn_store::StoreLocation;
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::hash::leaf_hash;
use cairn_tlog::note::VerifierKey;
use cairn_tlog::proof;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

pub struct Net {
    pub tmp: tempfile::TempDir,
    pub pki: PathBuf,
    pub directory: DirectoryHandle,
}

impl Net {
    pub fn new() -> Self {
        let kit = cairn_testkit::Pki::example();
        Self {
            tmp: kit.tmp,
            pki: kit.dir,
            directory: kit.handle,
        }
    }

    pub fn origin(&self) -> String {
        devpki::log_origin("cairn.example")
    }

    pub fn config(&self, data: &str) -> AuditConfig {
        let svc = self.pki.join(layout::SERVICES).join("audit");
        AuditConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store: cairn_store::StoreLocation::embedded(self.tmp.path().join(data)),
            directory: self.pki.join(layout::DIRECTORY),
            tls_cert: svc.join(layout::TLS_CERT),
            tls_key: svc.join(layout::TLS_KEY),
            log_key: svc.join(layout::LOG_KEY),
            origin: self.origin(),
            witness: None,
            cosigners: vec![],
            metrics_listen: None,
            lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
        }
    }

    /// A witness run by member `id`, following `logs`.
    pub fn witness_config(&self, data: &str, id: &str, logs: Vec<String>) -> AuditConfig {
        let mut c = self.config(data);
        c.origin = format!("cairn.example/{id}-witness-log");
        c.witness = Some(WitnessConfig {
            key: self
                .pki
                .join(layout::MEMBERS)
                .join(id)
                .join(layout::WITNESS_KEY),
            name: devpki::witness_name("cairn.example", id),
            logs,
        });
        c
    }

    pub fn service_identity(&self, name: &str) -> TlsIdentity {
        devpki::service_tls_identity(&self.pki, name).unwrap()
    }

    pub fn member_identity(&self, id: &str) -> TlsIdentity {
        MemberFiles::new(&self.pki, id).tls_identity().unwrap()
    }

    pub fn channel(&self, identity: &TlsIdentity, addr: SocketAddr) -> Channel {
        let config = tls::client_config(identity, self.directory.clone(), "audit").unwrap();
        tls::channel(addr, config).unwrap()
    }

    pub fn audit_client(
        &self,
        identity: &TlsIdentity,
        addr: SocketAddr,
    ) -> AuditLogClient<Channel> {
        AuditLogClient::new(self.channel(identity, addr))
    }

    pub fn witness_client(
        &self,
        identity: &TlsIdentity,
        addr: SocketAddr,
    ) -> WitnessClient<Channel> {
        WitnessClient::new(self.channel(identity, addr))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.pki.join(rel)
    }
}

pub fn pki_path(pki: &Path, parts: &[&str]) -> PathBuf {
    parts.iter().fold(pki.to_path_buf(), |p, s| p.join(s))
}

/// `cairn-audit` with the test network's directory, TLS identity, log key
/// and origin; the caller adds the store and what else it needs.
pub fn audit_command(net: &Net) -> std::process::Command {
    let c = net.config("unused");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-audit"));
    cmd.arg("--directory")
        .arg(&c.directory)
        .arg("--tls-cert")
        .arg(&c.tls_cert)
        .arg("--tls-key")
        .arg(&c.tls_key)
        .arg("--log-key")
        .arg(&c.log_key)
        .arg("--origin")
        .arg(&c.origin);
    cmd
}

/// A witness run by member `id` following this network's log, and the
/// peer entry a log gives it as `--cosigner` (the log's key is fixed by
/// the PKI, so the witness can start first).
pub async fn start_witness(
    net: &Net,
    id: &str,
) -> (
    cairn_audit::RunningAudit,
    cairn_audit::witnessing::WitnessPeer,
) {
    let probe = cairn_audit::start(net.config("probe")).await.unwrap();
    let log_vkey = probe.log_verifier.to_string();
    probe.stop().await.unwrap();
    let witness = cairn_audit::start(net.witness_config("witness", id, vec![log_vkey]))
        .await
        .unwrap();
    let peer = cairn_audit::witnessing::WitnessPeer {
        endpoint: cairn_audit::witnessing::Endpoint::Grpc(witness.addr),
        auth: cairn_audit::witnessing::ServerAuth::Service("audit".into()),
        key: witness.witness_verifier.clone().unwrap(),
    };
    (witness, peer)
}

/// Starts `cairn-audit` as a child process on `store` (plus `extra`
/// flags); the task resolves with its address and log key once it
/// listens (a standby replica only listens once it holds the lease).
pub fn spawn_audit(
    net: &Net,
    store: &StoreLocation,
    extra: &[&str],
) -> (Child, tokio::task::JoinHandle<(SocketAddr, VerifierKey)>) {
    let (child, started, _) = spawn_audit_with_output(net, store, extra);
    (child, started)
}

/// [`spawn_audit`], with the lines the service prints after its first two.
pub fn spawn_audit_with_output(
    net: &Net,
    store: &StoreLocation,
    extra: &[&str],
) -> (
    Child,
    tokio::task::JoinHandle<(SocketAddr, VerifierKey)>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut cmd = Command::from(audit_command(net));
    match store {
        StoreLocation::Embedded(c) => cmd.arg("--data-dir").arg(&c.path),
        StoreLocation::Postgres { url, ca_file } => {
            cmd.arg("--postgres").arg(url);
            if let Some(ca) = ca_file {
                cmd.arg("--postgres-ca").arg(ca);
            }
            &mut cmd
        }
    };
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next_line()
            .await
            .unwrap()
            .expect("the service exited");
        let addr: SocketAddr = first
            .strip_prefix("cairn-audit listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        let second = lines.next_line().await.unwrap().unwrap();
        let key = VerifierKey::parse(second.strip_prefix("log verifier key ").unwrap()).unwrap();
        // Keep draining stdout so the child never blocks on it.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        (addr, key)
    });
    (child, started, rx)
}

pub fn open(text: &str, key: &VerifierKey) -> Checkpoint {
    checkpoint::open(text, key).unwrap().checkpoint
}

/// Checks every receipt and every earlier checkpoint against the log now.
pub async fn check_everything(
    net: &Net,
    addr: SocketAddr,
    key: &VerifierKey,
    receipts: &[Receipt],
    checkpoints: &[Checkpoint],
) -> Checkpoint {
    let mut client = net.audit_client(&net.member_identity("eu-aio"), addr);
    let head = open(
        &client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint,
        key,
    );
    for old in checkpoints {
        assert!(
            old.size <= head.size,
            "the tree rewound from {} to {}",
            old.size,
            head.size
        );
        if old.size == 0 {
            continue;
        }
        let p = client
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                from_size: old.size,
                to_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        proof::verify_consistency(old.size, head.size, &p.proof, &old.root, &head.root)
            .unwrap_or_else(|e| {
                panic!(
                    "checkpoint {} is not consistent with the head {}: {e}",
                    old.size, head.size
                )
            });
    }
    for r in receipts {
        let cp = open(&r.checkpoint, key);
        proof::verify_inclusion(
            r.leaf_index,
            cp.size,
            &leaf_hash(&r.leaf),
            &r.inclusion_proof,
            &cp.root,
        )
        .unwrap();
        assert!(checkpoints.contains(&cp));
        let p = client
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(
                    r.leaf_index,
                )),
                tree_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        proof::verify_inclusion(
            r.leaf_index,
            head.size,
            &leaf_hash(&r.leaf),
            &p.proof,
            &head.root,
        )
        .unwrap_or_else(|e| {
            panic!(
                "acknowledged leaf {} is not in the log after restart: {e}",
                r.leaf_index
            )
        });
    }
    head
}

/// One HTTP/1.1 request on an mTLS connection as uk-aisi, as a tile client
/// or a C2SP witness client would send it; the status, the head (lowercase)
/// and the body (de-chunked).
pub async fn https(
    net: &Net,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut config = (*cairn_mtls::client_config(
        &net.member_identity("uk-aisi"),
        net.directory.clone(),
        "audit",
    )
    .unwrap())
    .clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if len == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + len]);
            rest = &rest[nl + 2 + len + 2..];
        }
        body = out;
    }
    (status, head, body)
}
