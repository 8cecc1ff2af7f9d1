//! A member's own credentials on disk (`cairn member init`), in a layout
//! that is not the dev PKI's:
//!
//! ```text
//! <dir>/member.toml            who: id, trust domain, name, jurisdiction, roles, key ids
//! <dir>/card.toml              the public member card, for the network's governance members
//! <dir>/ca.pem                 the member CA's certificate
//! <dir>/ca-offline/ca.key.pem  the CA's key: move this folder to an offline machine
//! <dir>/keys/signing-<id>.key.pem, keys/sealing.key.pem   Ed25519 and X25519 keys
//! <dir>/tls/<name>.pem, tls/<name>.key.pem                a program's or person's certificate
//! ```
//!
//! Private files are mode 0600 in 0700 folders; nothing is overwritten.

use std::path::{Path, PathBuf};

use cairn_identity::Role;
use serde::{Deserialize, Serialize};

use crate::MemberError;

/// `member.toml`.
pub const MEMBER_FILE: &str = "member.toml";
/// `card.toml`.
pub const CARD_FILE: &str = "card.toml";
/// `ca.pem`.
pub const CA_CERT: &str = "ca.pem";
/// The folder to move offline.
pub const CA_OFFLINE: &str = "ca-offline";
/// The CA key in it.
pub const CA_KEY: &str = "ca.key.pem";

/// `member.toml`: the facts the tools need beside the key files.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemberFile {
    /// Member id.
    pub id: String,
    /// The network's trust domain.
    pub trust_domain: String,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 or `EU`.
    pub jurisdiction: String,
    /// Roles asked for.
    pub roles: Vec<Role>,
    /// The current signing key's id.
    pub signing_key_id: String,
    /// When it became valid (RFC 3339).
    pub signing_key_valid_from: String,
    /// The sealing key's id.
    pub sealing_key_id: String,
}

/// A member's folder.
#[derive(Clone, Debug)]
pub struct MemberDir {
    root: PathBuf,
}

/// The files one program or person connects with.
#[derive(Clone, Debug)]
pub struct ConnectFiles {
    /// Member id.
    pub member: String,
    /// TLS certificate (PEM).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM) and its id.
    pub signing_key: (PathBuf, String),
    /// X25519 sealing key (PKCS#8 PEM) and its id.
    pub sealing_key: (PathBuf, String),
}

fn io(path: &Path, e: std::io::Error) -> MemberError {
    MemberError::Io {
        path: path.to_owned(),
        source: e,
    }
}

impl MemberDir {
    /// The folder `root` (not read yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path under the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The CA key's path.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join(CA_OFFLINE).join(CA_KEY)
    }

    /// The signing key's path for key `id`.
    pub fn signing_key(&self, id: &str) -> PathBuf {
        self.root.join("keys").join(format!("signing-{id}.key.pem"))
    }

    /// The sealing key's path.
    pub fn sealing_key(&self) -> PathBuf {
        self.root.join("keys").join("sealing.key.pem")
    }

    /// The certificate and key of program or person `name`.
    pub fn tls(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.root.join("tls");
        (
            d.join(format!("{name}.pem")),
            d.join(format!("{name}.key.pem")),
        )
    }

    /// Reads `member.toml`.
    pub fn member_file(&self) -> Result<MemberFile, MemberError> {
        let path = self.path(MEMBER_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        toml::from_str(&text).map_err(|e| MemberError::File {
            path,
            detail: e.message().to_owned(),
        })
    }

    /// What program or person `name` connects with.
    pub fn connect_files(&self, name: &str) -> Result<ConnectFiles, MemberError> {
        let m = self.member_file()?;
        let (cert, key) = self.tls(name);
        if !cert.exists() {
            return Err(MemberError::File {
                path: cert,
                detail: format!(
                    "no certificate for {name:?}: issue one (cairn member renew --name {name})"
                ),
            });
        }
        Ok(ConnectFiles {
            cert,
            key,
            signing_key: (
                self.signing_key(&m.signing_key_id),
                m.signing_key_id.clone(),
            ),
            sealing_key: (self.sealing_key(), m.sealing_key_id.clone()),
            member: m.id,
        })
    }
}

/// Creates `dir` (and parents), readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<(), MemberError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(dir, e))
}

/// Writes a new file (never over an existing one), 0600 when `private`.
pub fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), MemberError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if private { 0o600 } else { 0o644 };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                MemberError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io(path, e)
            }
        })?;
    f.write_all(bytes).map_err(|e| io(path, e))?;
    f.sync_all().map_err(|e| io(path, e))
}

/// Replaces `path` with `bytes` (written beside it, synced, renamed).
pub fn replace(path: &Path, bytes: &[u8], private: bool) -> Result<(), MemberError> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, private)?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}
