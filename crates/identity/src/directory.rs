//! The directory: the list of a network's members and services, loaded from
//! one TOML document.
//!
//! ```toml
//! version = 1
//! trust_domain = "cairn.example"
//!
//! [[members]]
//! id = "uk-aisi"
//! name = "UK AI Security Institute"
//! jurisdiction = "GB"
//! roles = ["submitter", "evaluator", "auditor"]
//! ca_certificate = """
//! -----BEGIN CERTIFICATE-----
//! ...
//! -----END CERTIFICATE-----
//! """
//! sealing_key = { id = "uk-aisi-seal-1", public_key = "<base64 of 32 bytes>" }
//!
//! [[members.signing_keys]]
//! id = "uk-aisi-sign-1"
//! public_key = "<base64 of 32 bytes>"
//! valid_from = "2026-01-01T00:00:00Z"
//! valid_until = "2027-01-01T00:00:00Z"   # optional: a rotated key's window ends
//! compromised_since = "2026-05-01T00:00:00Z"   # optional: revoked for compromise
//!
//! # optional, in the member's table: serials (hex) of its revoked TLS certificates
//! # revoked_certificates = ["5f3a…"]
//!
//! [[services]]
//! name = "intake"
//! ca_certificate = "..."
//! rights = ["append"]
//! ```
//!
//! Unknown keys are refused, and every error names the file and the field
//! path (`members[1].signing_keys[0].valid_from`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::keys::{SealingPublicKey, VerifyingKey};
use crate::spiffe::{MemberId, PeerIdentity, is_valid_trust_domain};

/// The directory format version this code reads.
pub const DIRECTORY_VERSION: u32 = 1;

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May submit incidents.
    Submitter,
    /// May publish evaluation results.
    Evaluator,
    /// Verifies the log.
    Auditor,
    /// Cosigns other members' log checkpoints.
    Witness,
    /// May publish baselines and order erasures.
    Governance,
}

/// A right a service identity can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceRight {
    /// May append leaves to the audit log.
    Append,
}

/// One Ed25519 signing key of a member and when it is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyEntry {
    /// Key id, unique within the member.
    pub id: String,
    /// The public key.
    pub key: VerifyingKey,
    /// Valid from this instant (inclusive).
    pub valid_from: OffsetDateTime,
    /// Valid until this instant (exclusive); open-ended when `None`.
    /// Rotation ends a window: what the key signed inside it stays valid.
    pub valid_until: Option<OffsetDateTime>,
    /// Revoked for compromise, which began at this instant: under this
    /// directory the key signs nothing valid, whatever time is claimed.
    pub compromised_since: Option<OffsetDateTime>,
}

impl SigningKeyEntry {
    /// Whether the key is valid at `at` (never, once revoked).
    pub fn valid_at(&self, at: OffsetDateTime) -> bool {
        self.compromised_since.is_none()
            && at >= self.valid_from
            && self.valid_until.is_none_or(|until| at < until)
    }
}

/// A member's X25519 sealing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealingKeyEntry {
    /// Key id.
    pub id: String,
    /// The public key.
    pub key: SealingPublicKey,
}

/// A member of the network.
#[derive(Clone, Debug)]
pub struct Member {
    /// Member id.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 code or `EU`.
    pub jurisdiction: String,
    /// Roles held.
    pub roles: BTreeSet<Role>,
    /// The member's own certificate authority (DER).
    pub ca_certificate: CertificateDer<'static>,
    /// Signing keys, with validity windows.
    pub signing_keys: Vec<SigningKeyEntry>,
    /// The sealing key records are sealed to.
    pub sealing_key: SealingKeyEntry,
    /// Serial numbers ([`serial_hex`]) of TLS certificates issued by the
    /// member's CA and revoked: refused in every handshake, and an open
    /// connection presenting one is closed.
    pub revoked_certificates: BTreeSet<String>,
}

/// Why a signing key could not be used at a given time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLookupError {
    /// The member has no key with that id.
    #[error("member {member} has no signing key {key_id:?}")]
    UnknownKey {
        /// Member id.
        member: String,
        /// Key id asked for.
        key_id: String,
    },
    /// The key exists but is not valid at that time.
    #[error("signing key {key_id:?} of member {member} is not valid at {at}")]
    NotValidAt {
        /// Member id.
        member: String,
        /// Key id.
        key_id: String,
        /// The time asked about (RFC 3339).
        at: String,
    },
    /// The key is revoked for compromise: nothing it signs is accepted.
    #[error(
        "signing key {key_id:?} of member {member} is revoked: compromised since {compromised_since}"
    )]
    Revoked {
        /// Member id.
        member: String,
        /// Key id.
        key_id: String,
        /// When the compromise began (RFC 3339).
        compromised_since: String,
    },
}

impl Member {
    /// Whether the member holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The signing key `key_id`, if it is valid at `at`.
    pub fn signing_key_at(
        &self,
        key_id: &str,
        at: OffsetDateTime,
    ) -> Result<&VerifyingKey, KeyLookupError> {
        let entry = self
            .signing_keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| KeyLookupError::UnknownKey {
                member: self.id.to_string(),
                key_id: key_id.to_owned(),
            })?;
        if let Some(since) = entry.compromised_since {
            return Err(KeyLookupError::Revoked {
                member: self.id.to_string(),
                key_id: key_id.to_owned(),
                compromised_since: since.format(&Rfc3339).unwrap_or_default(),
            });
        }
        if entry.valid_at(at) {
            Ok(&entry.key)
        } else {
            Err(KeyLookupError::NotValidAt {
                member: self.id.to_string(),
                key_id: key_id.to_owned(),
                at: at.format(&Rfc3339).unwrap_or_default(),
            })
        }
    }
}

/// One of the network's services.
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    /// `intake`, `evals`, `audit`, …
    pub name: String,
    /// The CA that issues this service's certificates (DER).
    pub ca_certificate: CertificateDer<'static>,
    /// What the service may do.
    pub rights: BTreeSet<ServiceRight>,
}

/// A parsed, validated directory.
#[derive(Clone, Debug)]
pub struct Directory {
    trust_domain: String,
    members: BTreeMap<MemberId, Member>,
    services: BTreeMap<String, ServiceEntry>,
    digest: [u8; 32],
    quorum: Option<u32>,
}

mod document;
mod entries;
pub use document::{
    DirectoryDocument, KeyDocument, MemberDocument, ServiceDocument, SigningKeyDocument,
};
pub use entries::serial_hex;
use entries::{Problem, member_from, service_from};

/// ISO 3166-1 alpha-2 codes (officially assigned), plus `EU`.
const JURISDICTIONS: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW EU";

/// Whether `code` is an ISO 3166-1 alpha-2 code or `EU`.
pub fn is_valid_jurisdiction(code: &str) -> bool {
    code.len() == 2 && JURISDICTIONS.split(' ').any(|c| c == code)
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("not an RFC 3339 timestamp ({e})"))
}

fn parse_ca(pem: &str) -> Result<CertificateDer<'static>, String> {
    let certs = crate::pem::parse_certificates(pem.as_bytes()).map_err(|e| e.to_string())?;
    match certs.as_slice() {
        [one] => {
            let (_, cert) = x509_parser::parse_x509_certificate(one)
                .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
            if !cert.is_ca() {
                return Err("certificate is not a CA (basicConstraints cA is false)".into());
            }
            Ok(one.clone())
        }
        [] => Err("no certificate".into()),
        _ => Err("more than one certificate; give exactly the CA certificate".into()),
    }
}

impl Directory {
    /// Parses and validates a directory document. `source_name` (usually
    /// the file name) appears in every error.
    /// A network's signed genesis ([`crate::genesis`]) is accepted too,
    /// only when every founder has signed it.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, Error> {
        if let Ok(text) = std::str::from_utf8(bytes)
            && crate::genesis::is_genesis(text)
        {
            return crate::genesis::Genesis::parse(text, source_name)?
                .directory_in_force(source_name);
        }
        Self::parse_plain(bytes, source_name)
    }

    /// A bare directory document (never a genesis): what a genesis
    /// carries and what a directory change proposes.
    pub fn parse_plain(bytes: &[u8], source_name: &str) -> Result<Self, Error> {
        let err = |field: String, detail: String| Error::Directory {
            source_name: source_name.to_owned(),
            field,
            detail,
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| err("document".into(), format!("not UTF-8 ({e})")))?;
        let doc: DirectoryDocument = toml::from_str(text)
            .map_err(|e| err("document".into(), e.to_string().trim().replace('\n', " ")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut dir = Self::from_document(doc, source_name)?;
        dir.digest.copy_from_slice(digest.as_ref());
        Ok(dir)
    }

    /// Reads and validates a directory file; also returns its text (a
    /// genesis, for a service to follow the directory from).
    pub fn load_with_text(path: &Path) -> Result<(String, Self), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let dir = Self::parse(text.as_bytes(), &path.display().to_string())?;
        Ok((text, dir))
    }

    /// Reads and validates a directory file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Validates a document.
    pub fn from_document(doc: DirectoryDocument, source_name: &str) -> Result<Self, Error> {
        let err = |(field, detail): Problem| Error::Directory {
            source_name: source_name.to_owned(),
            field,
            detail,
        };
        if doc.version != DIRECTORY_VERSION {
            return Err(err((
                "version".into(),
                format!(
                    "unsupported version {}, this build reads {DIRECTORY_VERSION}",
                    doc.version
                ),
            )));
        }
        if !is_valid_trust_domain(&doc.trust_domain) {
            return Err(err((
                "trust_domain".into(),
                format!("{:?} is not a lowercase DNS name", doc.trust_domain),
            )));
        }
        let mut members = BTreeMap::new();
        for (i, m) in doc.members.into_iter().enumerate() {
            let member = member_from(i, m).map_err(err)?;
            let id = member.id.clone();
            if members.insert(id.clone(), member).is_some() {
                return Err(err((
                    format!("members[{i}].id"),
                    format!("duplicate member id {id}"),
                )));
            }
        }
        let mut services = BTreeMap::new();
        for (i, s) in doc.services.into_iter().enumerate() {
            let entry = service_from(i, s).map_err(err)?;
            let name = entry.name.clone();
            if services.insert(name.clone(), entry).is_some() {
                return Err(err((
                    format!("services[{i}].name"),
                    format!("duplicate service {name:?}"),
                )));
            }
        }
        Ok(Self {
            trust_domain: doc.trust_domain,
            members,
            services,
            digest: [0; 32],
            quorum: None,
        })
    }

    /// The quorum rule of a directory founded by a genesis: how many
    /// governance members must sign a change.
    pub fn quorum(&self) -> Option<u32> {
        self.quorum
    }

    /// The directory under the quorum rule `quorum` (set by a genesis or
    /// by the directory change that made this directory).
    pub fn with_quorum(mut self, quorum: u32) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// How many members hold the governance role.
    pub fn governance_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.has_role(Role::Governance))
            .count()
    }

    /// The network's trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// SHA-256 of the document bytes this directory was parsed from (zero
    /// when built from a document in memory).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// A member by id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        MemberId::parse(id)
            .ok()
            .and_then(|id| self.members.get(&id))
    }

    /// All members, ordered by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&ServiceEntry> {
        self.services.get(name)
    }

    /// All services, ordered by name.
    pub fn services(&self) -> impl Iterator<Item = &ServiceEntry> {
        self.services.values()
    }

    /// The CA that must have issued a certificate claiming `identity`, or
    /// `None` when the directory does not know the identity.
    pub fn ca_for(&self, identity: &PeerIdentity) -> Option<&CertificateDer<'static>> {
        match identity {
            PeerIdentity::Member { id, .. } => self.members.get(id).map(|m| &m.ca_certificate),
            PeerIdentity::Service { name } => self.services.get(name).map(|s| &s.ca_certificate),
        }
    }
}

/// A directory that can be replaced while services run (reload), shared by
/// the TLS verifiers and the handlers.
#[derive(Clone, Debug)]
pub struct DirectoryHandle {
    inner: Arc<RwLock<Arc<Directory>>>,
}

impl DirectoryHandle {
    /// Wraps `directory`.
    pub fn new(directory: Directory) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(directory))),
        }
    }

    /// The directory in force now.
    pub fn current(&self) -> Arc<Directory> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the directory; new connections and requests see the new one.
    /// The trust domain cannot change.
    pub fn replace(&self, directory: Directory) -> Result<(), Error> {
        let current = self.current();
        if current.trust_domain() != directory.trust_domain() {
            return Err(Error::Directory {
                source_name: "reload".into(),
                field: "trust_domain".into(),
                detail: format!(
                    "cannot change from {:?} to {:?} while running",
                    current.trust_domain(),
                    directory.trust_domain()
                ),
            });
        }
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(directory);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = Directory::parse(&bytes, "fuzz");
        }
    }
}
