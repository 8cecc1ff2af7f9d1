//! The dev layout on disk: where [`DevPki::write_to`] puts each file
//! ([`layout`]), and reading a member's or a service's files back.

use std::path::{Path, PathBuf};

use cairn_identity::Error;
use cairn_identity::genesis::Genesis;
use cairn_identity::keys::{SealingKey, SigningKey};
use cairn_mtls::TlsIdentity;

use crate::DevPki;

/// Where [`DevPki::write_to`] puts things, relative to its directory.
pub mod layout {
    /// The directory document.
    pub const DIRECTORY: &str = "directory.toml";
    /// A member's files live in `members/<id>/`.
    pub const MEMBERS: &str = "members";
    /// The services' files live in `services/` (CA) and `services/<name>/`.
    pub const SERVICES: &str = "services";
    /// CA certificate.
    pub const CA_CERT: &str = "ca.pem";
    /// CA private key.
    pub const CA_KEY: &str = "ca.key.pem";
    /// TLS certificate.
    pub const TLS_CERT: &str = "tls.pem";
    /// TLS private key.
    pub const TLS_KEY: &str = "tls.key.pem";
    /// Ed25519 signing key (PKCS#8).
    pub const SIGNING_KEY: &str = "signing.key.pem";
    /// X25519 sealing key (PKCS#8).
    pub const SEALING_KEY: &str = "sealing.key.pem";
    /// The key ids of a member's keys, one per line: signing, sealing.
    pub const KEY_IDS: &str = "key-ids.txt";
    /// A witness's Ed25519 cosigning key (PKCS#8), in `members/<id>/`.
    pub const WITNESS_KEY: &str = "witness.key.pem";
    /// The audit log's Ed25519 checkpoint key (PKCS#8), in `services/audit/`.
    pub const LOG_KEY: &str = "log.key.pem";
}

impl DevPki {
    /// The directory as the network is founded with it: a genesis signed
    /// by every governance member (the founders), a majority of them the
    /// quorum for later changes — the same document `cairn network init`
    /// and `cairn directory sign` produce. A directory without governance
    /// members cannot be founded (nobody could change it) and is written
    /// bare.
    pub fn founding_document(&self) -> Result<String, Error> {
        let text = self.directory.to_toml();
        let founders: Vec<&crate::DevMember> = self
            .members
            .iter()
            .filter(|m| m.spec.roles.contains(&cairn_identity::Role::Governance))
            .collect();
        if founders.is_empty() {
            return Ok(text);
        }
        let quorum = founders.len() as u32 / 2 + 1;
        let mut genesis = Genesis::new(text, quorum, layout::DIRECTORY)?;
        for m in founders {
            genesis.sign(&m.spec.id, &m.signing_key, layout::DIRECTORY)?;
        }
        Ok(genesis.to_toml())
    }

    /// Writes everything under `dir` (see [`layout`]); private keys are
    /// readable by their owner only.
    pub fn write_to(&self, dir: &Path) -> Result<(), Error> {
        use layout::*;
        write_file(
            &dir.join(DIRECTORY),
            self.founding_document()?.as_bytes(),
            false,
        )?;
        for m in &self.members {
            let d = dir.join(MEMBERS).join(&m.spec.id);
            write_file(&d.join(CA_CERT), m.ca.cert_pem().as_bytes(), false)?;
            write_file(&d.join(CA_KEY), m.ca.key_pem().as_bytes(), true)?;
            write_file(&d.join(TLS_CERT), m.tls.cert_pem.as_bytes(), false)?;
            write_file(&d.join(TLS_KEY), m.tls.key_pem.as_bytes(), true)?;
            write_file(&d.join(SIGNING_KEY), m.signing_key_pem.as_bytes(), true)?;
            write_file(&d.join(SEALING_KEY), m.sealing_key_pem.as_bytes(), true)?;
            let ids = format!("{}\n{}\n", m.signing_key.key_id(), m.sealing_key.key_id());
            write_file(&d.join(KEY_IDS), ids.as_bytes(), false)?;
            if let Some(pem) = &m.witness_key_pem {
                write_file(&d.join(WITNESS_KEY), pem.as_bytes(), true)?;
            }
        }
        let s = dir.join(SERVICES);
        write_file(
            &s.join(CA_CERT),
            self.service_ca.cert_pem().as_bytes(),
            false,
        )?;
        write_file(&s.join(CA_KEY), self.service_ca.key_pem().as_bytes(), true)?;
        for svc in &self.services {
            let d = s.join(&svc.name);
            write_file(&d.join(TLS_CERT), svc.tls.cert_pem.as_bytes(), false)?;
            write_file(&d.join(TLS_KEY), svc.tls.key_pem.as_bytes(), true)?;
        }
        write_file(
            &s.join("audit").join(LOG_KEY),
            self.log_key_pem.as_bytes(),
            true,
        )?;
        Ok(())
    }
}

/// The files of one member in a written dev PKI.
#[derive(Clone, Debug)]
pub struct MemberFiles {
    /// `members/<id>`.
    pub dir: PathBuf,
}

impl MemberFiles {
    /// The files of member `id` under `pki_dir`.
    pub fn new(pki_dir: &Path, id: &str) -> Self {
        Self {
            dir: pki_dir.join(layout::MEMBERS).join(id),
        }
    }

    /// The member's TLS identity.
    pub fn tls_identity(&self) -> Result<TlsIdentity, Error> {
        TlsIdentity::load(
            &self.dir.join(layout::TLS_CERT),
            &self.dir.join(layout::TLS_KEY),
        )
    }

    /// The ids of the signing and sealing keys (`key-ids.txt`).
    pub fn key_ids(&self) -> Result<(String, String), Error> {
        let path = self.dir.join(layout::KEY_IDS);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        match (lines.next(), lines.next()) {
            (Some(sign), Some(seal)) => Ok((sign.to_owned(), seal.to_owned())),
            _ => Err(Error::Key {
                what: path.display().to_string(),
                problem: cairn_identity::KeyProblem::Rejected(
                    "expected two lines: signing key id, sealing key id".into(),
                ),
            }),
        }
    }

    /// The member's signing key.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        let (id, _) = self.key_ids()?;
        SigningKey::load(id, &self.dir.join(layout::SIGNING_KEY))
    }

    /// The member's sealing key.
    pub fn sealing_key(&self) -> Result<SealingKey, Error> {
        let (_, id) = self.key_ids()?;
        SealingKey::load(id, &self.dir.join(layout::SEALING_KEY))
    }
}

/// The TLS identity of service `name` under `pki_dir`.
pub fn service_tls_identity(pki_dir: &Path, name: &str) -> Result<TlsIdentity, Error> {
    let d = pki_dir.join(layout::SERVICES).join(name);
    TlsIdentity::load(&d.join(layout::TLS_CERT), &d.join(layout::TLS_KEY))
}

fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    use std::io::Write as _;
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}
