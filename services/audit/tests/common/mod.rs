//! Shared set-up for the audit service's tests: a dev PKI on disk, configs
//! and mTLS clients.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_audit::{AuditConfig, WitnessConfig};
use cairn_identity::devpki::{self, DevPki, DevPkiSpec, MemberFiles, layout};
use cairn_identity::tls::{self, TlsIdentity};
use cairn_identity::{Directory, DirectoryHandle};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::audit::v1::witness_client::WitnessClient;
use tonic::transport::Channel;

pub struct Net {
    pub tmp: tempfile::TempDir,
    pub pki: PathBuf,
    pub directory: DirectoryHandle,
}

impl Net {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        DevPki::generate(&DevPkiSpec::example())
            .unwrap()
            .write_to(&pki)
            .unwrap();
        let directory =
            DirectoryHandle::new(Directory::load(&pki.join(layout::DIRECTORY)).unwrap());
        Self {
            tmp,
            pki,
            directory,
        }
    }

    pub fn origin(&self) -> String {
        devpki::log_origin("cairn.example")
    }

    pub fn config(&self, data: &str) -> AuditConfig {
        let svc = self.pki.join(layout::SERVICES).join("audit");
        AuditConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store: cairn_store::StoreLocation::Sled(self.tmp.path().join(data)),
            directory: self.pki.join(layout::DIRECTORY),
            tls_cert: svc.join(layout::TLS_CERT),
            tls_key: svc.join(layout::TLS_KEY),
            log_key: svc.join(layout::LOG_KEY),
            origin: self.origin(),
            witness: None,
            cosigners: vec![],
            metrics_listen: None,
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
