//! A member's credentials from files anywhere, and the settings a program
//! connects with (what a `cairn profile` holds).

use cairn_identity::{Directory, SealingKey, SigningKey};
use cairn_mtls::TlsIdentity;
use cairn_tlog::note::VerifierKey;

use super::{Client, Credentials, Endpoints};
use crate::error::ClientError;

/// The files of a member's identity and keys, wherever they are (a
/// member folder made by `cairn member init`, an HSM-backed export, …).
#[derive(Clone, Debug)]
pub struct CredentialFiles {
    /// Member id.
    pub member: String,
    /// TLS certificate chain (PEM).
    pub cert: std::path::PathBuf,
    /// Its private key (PEM).
    pub key: std::path::PathBuf,
    /// Ed25519 signing key (PKCS#8 PEM).
    pub signing_key: std::path::PathBuf,
    /// Its directory key id.
    pub signing_key_id: String,
    /// X25519 sealing key (PKCS#8 PEM).
    pub sealing_key: std::path::PathBuf,
    /// Its directory key id.
    pub sealing_key_id: String,
}

impl Credentials {
    /// A member's credentials from `files`.
    pub fn from_files(files: &CredentialFiles) -> Result<Self, ClientError> {
        Ok(Self {
            member: files.member.clone(),
            tls: TlsIdentity::load(&files.cert, &files.key)?,
            signing: SigningKey::load(files.signing_key_id.clone(), &files.signing_key)?,
            sealing: SealingKey::load(files.sealing_key_id.clone(), &files.sealing_key)?,
        })
    }
}

/// Everything a program needs to act as a member on a network: whose
/// credentials, which directory, where the services are, and the log and
/// witness keys receipts and checkpoints are checked against (the same
/// settings as a `cairn profile`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The member's files.
    pub credentials: CredentialFiles,
    /// The network directory file.
    pub directory: std::path::PathBuf,
    /// The services.
    pub endpoints: Endpoints,
    /// The audit log's verifier key (C2SP note key).
    pub log_key: Option<String>,
    /// Witness verifier keys.
    pub witnesses: Vec<String>,
    /// How many of them must cosign (default: all).
    pub quorum: Option<usize>,
}

impl Settings {
    /// Loads the credentials and directory and connects (lazily).
    pub fn connect(&self) -> Result<Client, ClientError> {
        let log_key = self
            .log_key
            .as_deref()
            .map(|k| {
                VerifierKey::parse(k.trim()).map_err(|e| ClientError::Settings {
                    detail: format!("log key: {e}"),
                })
            })
            .transpose()?;
        Client::connect(
            Credentials::from_files(&self.credentials)?,
            Directory::load(&self.directory)?,
            self.endpoints,
            log_key,
        )
    }
}
