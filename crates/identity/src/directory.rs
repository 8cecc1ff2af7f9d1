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
use crate::spiffe::{MemberId, PeerIdentity, is_valid_name, is_valid_trust_domain};

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
pub use document::{
    DirectoryDocument, KeyDocument, MemberDocument, ServiceDocument, SigningKeyDocument,
};

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

/// A field of the directory document and what is wrong with it.
type Problem = (String, String);

/// Member `i` of the document, checked.
fn member_from(i: usize, m: MemberDocument) -> Result<Member, Problem> {
    let at = |f: &str| format!("members[{i}].{f}");
    let id = MemberId::parse(&m.id).map_err(|e| (at("id"), format!("{:?}: {e}", m.id)))?;
    if m.name.trim().is_empty() {
        return Err((at("name"), "must not be empty".into()));
    }
    if !is_valid_jurisdiction(&m.jurisdiction) {
        return Err((
            at("jurisdiction"),
            format!(
                "{:?} is not an ISO 3166-1 alpha-2 code or EU",
                m.jurisdiction
            ),
        ));
    }
    if m.roles.is_empty() {
        return Err((at("roles"), "a member needs at least one role".into()));
    }
    let ca_certificate = parse_ca(&m.ca_certificate).map_err(|d| (at("ca_certificate"), d))?;
    let sealing = SealingPublicKey::from_base64(&m.sealing_key.public_key)
        .map_err(|p| (at("sealing_key.public_key"), p.to_string()))?;
    if m.sealing_key.id.is_empty() {
        return Err((at("sealing_key.id"), "must not be empty".into()));
    }
    if m.signing_keys.is_empty() {
        return Err((
            at("signing_keys"),
            "a member needs at least one signing key".into(),
        ));
    }
    Ok(Member {
        id,
        name: m.name,
        jurisdiction: m.jurisdiction,
        roles: m.roles.into_iter().collect(),
        ca_certificate,
        signing_keys: signing_keys_from(i, m.signing_keys)?,
        sealing_key: SealingKeyEntry {
            id: m.sealing_key.id,
            key: sealing,
        },
    })
}

/// Member `i`'s signing keys, checked: ids present and unique, windows
/// that end after they start.
fn signing_keys_from(
    i: usize,
    keys: Vec<SigningKeyDocument>,
) -> Result<Vec<SigningKeyEntry>, Problem> {
    let mut out: Vec<SigningKeyEntry> = Vec::with_capacity(keys.len());
    for (j, k) in keys.into_iter().enumerate() {
        let at = |f: &str| format!("members[{i}].signing_keys[{j}].{f}");
        if k.id.is_empty() {
            return Err((at("id"), "must not be empty".into()));
        }
        if out.iter().any(|e| e.id == k.id) {
            return Err((at("id"), format!("duplicate key id {:?}", k.id)));
        }
        let key = VerifyingKey::from_base64(&k.public_key)
            .map_err(|p| (at("public_key"), p.to_string()))?;
        let valid_from = parse_time(&k.valid_from).map_err(|d| (at("valid_from"), d))?;
        let valid_until = k
            .valid_until
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|d| (at("valid_until"), d))?;
        if valid_until.is_some_and(|u| u <= valid_from) {
            return Err((at("valid_until"), "must be after valid_from".into()));
        }
        let compromised_since = k
            .compromised_since
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|d| (at("compromised_since"), d))?;
        if compromised_since.is_some_and(|c| c < valid_from) {
            return Err((
                at("compromised_since"),
                "is before valid_from: a key cannot be compromised before it exists".into(),
            ));
        }
        out.push(SigningKeyEntry {
            id: k.id,
            key,
            valid_from,
            valid_until,
            compromised_since,
        });
    }
    Ok(out)
}

/// Service `i` of the document, checked.
fn service_from(i: usize, s: ServiceDocument) -> Result<ServiceEntry, Problem> {
    let at = |f: &str| format!("services[{i}].{f}");
    if !is_valid_name(&s.name) {
        return Err((
            at("name"),
            format!("{:?} is not a valid service name", s.name),
        ));
    }
    let ca_certificate = parse_ca(&s.ca_certificate).map_err(|d| (at("ca_certificate"), d))?;
    Ok(ServiceEntry {
        name: s.name,
        ca_certificate,
        rights: s.rights.into_iter().collect(),
    })
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
