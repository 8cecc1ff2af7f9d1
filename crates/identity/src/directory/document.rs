//! The directory's document form: the TOML file as written and read
//! (serde), before it is checked into a [`super::Directory`].

use serde::{Deserialize, Serialize};

use super::{Role, ServiceRight};

/// The TOML document, as written to and read from disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryDocument {
    /// Must be 1.
    pub version: u32,
    /// The network's trust domain, e.g. `cairn.example`.
    pub trust_domain: String,
    /// Members.
    #[serde(default)]
    pub members: Vec<MemberDocument>,
    /// Services.
    #[serde(default)]
    pub services: Vec<ServiceDocument>,
}

/// A member in the document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberDocument {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 or `EU`.
    pub jurisdiction: String,
    /// Roles.
    pub roles: Vec<Role>,
    /// PEM of the member's CA certificate.
    pub ca_certificate: String,
    /// The sealing key.
    pub sealing_key: KeyDocument,
    /// Signing keys.
    pub signing_keys: Vec<SigningKeyDocument>,
    /// Serial numbers (hex) of TLS certificates the member's CA issued and
    /// that are revoked: no connection presenting one is admitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_certificates: Vec<String>,
}

/// A key id and base64 public key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDocument {
    /// Key id.
    pub id: String,
    /// Base64 of the raw 32-byte public key.
    pub public_key: String,
}

/// A signing key in the document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyDocument {
    /// Key id.
    pub id: String,
    /// Base64 of the raw 32-byte Ed25519 public key.
    pub public_key: String,
    /// RFC 3339.
    pub valid_from: String,
    /// RFC 3339; open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// RFC 3339: set when the key is revoked for compromise, the time the
    /// compromise began. A revoked key signs nothing valid under this
    /// directory, whatever time a record claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_since: Option<String>,
}

/// A service in the document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDocument {
    /// Service name.
    pub name: String,
    /// PEM of the CA that issues the service's certificates.
    pub ca_certificate: String,
    /// Rights.
    #[serde(default)]
    pub rights: Vec<ServiceRight>,
}

impl DirectoryDocument {
    /// Renders the document as TOML.
    pub fn to_toml(&self) -> String {
        // Serializing these plain structs cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
