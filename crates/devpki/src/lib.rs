//! A development PKI: one certificate authority per member (there is no
//! single root of trust), one for the network's services, leaf
//! certificates with SPIFFE URI SANs, member signing and sealing keys, and
//! the matching directory.
//!
//! For trying and testing cairn on one machine only. CA private keys are
//! written next to the certificates so more can be issued; a real member
//! keeps its CA key offline.
//!
//! This crate owns generating and writing a dev PKI (with rcgen) and the
//! dev layout's file names ([`layout`], [`MemberFiles`]); it must not be
//! linked by services, which only read identities (`cairn-identity`,
//! `cairn-mtls`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use cairn_identity::Error;
use cairn_identity::directory::{
    Directory, DirectoryDocument, KeyDocument, MemberDocument, Role, ServiceDocument, ServiceRight,
    SigningKeyDocument,
};
use cairn_identity::keys::{SealingKey, SigningKey};
use cairn_identity::spiffe::PeerIdentity;
use cairn_mtls::TlsIdentity;

mod files;
pub use files::{MemberFiles, layout, service_tls_identity};

/// The trust domain of development networks.
pub const DEV_TRUST_DOMAIN: &str = "cairn.example";

/// A member to create.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    /// Member id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 or `EU`.
    pub jurisdiction: String,
    /// Roles.
    pub roles: Vec<Role>,
}

/// What to create.
#[derive(Clone, Debug)]
pub struct DevPkiSpec {
    /// Trust domain.
    pub trust_domain: String,
    /// Members.
    pub members: Vec<MemberSpec>,
    /// Services and their rights.
    pub services: Vec<(String, Vec<ServiceRight>)>,
}

impl DevPkiSpec {
    /// Three example members in different jurisdictions with different
    /// roles (each publishes its jurisdiction's baselines, so all three
    /// hold `governance`), and the three services (intake and evals may
    /// append to the audit log).
    pub fn example() -> Self {
        let member = |id: &str, name: &str, jurisdiction: &str, roles: &[Role]| MemberSpec {
            id: id.into(),
            name: name.into(),
            jurisdiction: jurisdiction.into(),
            roles: roles.to_vec(),
        };
        Self {
            trust_domain: DEV_TRUST_DOMAIN.into(),
            members: vec![
                member(
                    "uk-aisi",
                    "UK AI Security Institute",
                    "GB",
                    &[
                        Role::Submitter,
                        Role::Evaluator,
                        Role::Auditor,
                        Role::Witness,
                        Role::Governance,
                    ],
                ),
                member(
                    "jp-aisi",
                    "Japan AI Safety Institute",
                    "JP",
                    &[
                        Role::Submitter,
                        Role::Evaluator,
                        Role::Witness,
                        Role::Governance,
                    ],
                ),
                member(
                    "eu-aio",
                    "European AI Office",
                    "EU",
                    &[Role::Submitter, Role::Auditor, Role::Governance],
                ),
            ],
            services: vec![
                ("intake".into(), vec![ServiceRight::Append]),
                ("evals".into(), vec![ServiceRight::Append]),
                ("audit".into(), vec![]),
            ],
        }
    }
}

/// A certificate authority of the development PKI.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert: Certificate,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A leaf certificate to issue.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// Common name.
    pub common_name: String,
    /// URI SANs.
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ips: Vec<IpAddr>,
    /// Validity start.
    pub not_before: OffsetDateTime,
    /// Validity end.
    pub not_after: OffsetDateTime,
    /// Usable for TLS client authentication.
    pub client: bool,
    /// Usable for TLS server authentication.
    pub server: bool,
}

impl LeafSpec {
    fn valid_now(common_name: String, uris: Vec<String>) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name,
            uris,
            dns_names: vec![],
            ips: vec![],
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(365),
            client: true,
            server: false,
        }
    }

    /// A client certificate for member `id`.
    pub fn member(trust_domain: &str, id: &str) -> Self {
        let uri = format!("spiffe://{trust_domain}/member/{id}");
        Self::valid_now(id.to_owned(), vec![uri])
    }

    /// A server-and-client certificate for service `name`, also valid for
    /// `localhost`, 127.0.0.1 and ::1.
    pub fn service(trust_domain: &str, name: &str) -> Self {
        let identity = PeerIdentity::Service {
            name: name.to_owned(),
        };
        let mut spec =
            Self::valid_now(format!("cairn-{name}"), vec![identity.to_uri(trust_domain)]);
        spec.dns_names = vec!["localhost".into()];
        spec.ips = vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        spec.server = true;
        spec
    }
}

/// An issued leaf certificate with its key.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM of the leaf certificate.
    pub cert_pem: String,
    /// PEM (PKCS#8) of its private key.
    pub key_pem: Zeroizing<String>,
}

impl IssuedCert {
    /// As a TLS identity.
    pub fn tls_identity(&self) -> Result<TlsIdentity, Error> {
        TlsIdentity::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// An rcgen failure as the identity error.
fn generation(e: rcgen::Error) -> Error {
    Error::CertificateGeneration {
        detail: e.to_string(),
    }
}

fn ia5(text: &str) -> Result<rcgen::string::Ia5String, Error> {
    rcgen::string::Ia5String::try_from(text).map_err(generation)
}

impl DevCa {
    /// A new self-signed CA (ECDSA P-256), valid for ten years.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generation)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "cairn development PKI");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        let cert = params.self_signed(&key).map_err(generation)?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert,
            key_pem,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a leaf certificate with a fresh ECDSA P-256 key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generation)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if spec.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if spec.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        for uri in &spec.uris {
            params.subject_alt_names.push(SanType::URI(ia5(uri)?));
        }
        for dns in &spec.dns_names {
            params.subject_alt_names.push(SanType::DnsName(ia5(dns)?));
        }
        for ip in &spec.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        let cert = params.signed_by(&key, &self.issuer).map_err(generation)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// Everything made for one member.
pub struct DevMember {
    /// What was asked for.
    pub spec: MemberSpec,
    /// The member's own CA.
    pub ca: DevCa,
    /// The member's TLS client certificate.
    pub tls: IssuedCert,
    /// The signing key.
    pub signing_key: SigningKey,
    /// Its PKCS#8 PEM.
    pub signing_key_pem: Zeroizing<String>,
    /// The sealing key.
    pub sealing_key: SealingKey,
    /// Its PKCS#8 PEM.
    pub sealing_key_pem: Zeroizing<String>,
    /// For members with the witness role: the Ed25519 cosigning key
    /// (PKCS#8 PEM) of their witness.
    pub witness_key_pem: Option<Zeroizing<String>>,
}

/// Everything made for one service.
pub struct DevService {
    /// Service name.
    pub name: String,
    /// Its TLS certificate (server and client).
    pub tls: IssuedCert,
}

/// The origin (and key name) of the dev network's audit log.
pub fn log_origin(trust_domain: &str) -> String {
    format!("{trust_domain}/audit")
}

/// The cosigner name of member `id`'s witness.
pub fn witness_name(trust_domain: &str, id: &str) -> String {
    format!("{trust_domain}/witness/{id}")
}

/// A generated development PKI.
pub struct DevPki {
    /// Trust domain.
    pub trust_domain: String,
    /// Members.
    pub members: Vec<DevMember>,
    /// The CA of the network's services.
    pub service_ca: DevCa,
    /// Services.
    pub services: Vec<DevService>,
    /// The audit log's Ed25519 checkpoint-signing key (PKCS#8 PEM).
    pub log_key_pem: Zeroizing<String>,
    /// The directory listing all of it.
    pub directory: DirectoryDocument,
}

/// One member's CA, TLS certificate and keys (and a witness key for a
/// witness), with its directory entry; its signing key is valid from
/// `valid_from` (RFC 3339).
fn generate_member(
    td: &str,
    m: &MemberSpec,
    valid_from: &str,
) -> Result<(DevMember, MemberDocument), Error> {
    let ca = DevCa::new(&format!("{} CA", m.name))?;
    let tls = ca.issue(&LeafSpec::member(td, &m.id))?;
    let (signing_key, signing_key_pem) = SigningKey::generate(format!("{}-sign-1", m.id))?;
    let (sealing_key, sealing_key_pem) = SealingKey::generate(format!("{}-seal-1", m.id))?;
    let witness_key_pem = if m.roles.contains(&Role::Witness) {
        Some(SigningKey::generate("witness")?.1)
    } else {
        None
    };
    let doc = MemberDocument {
        id: m.id.clone(),
        name: m.name.clone(),
        jurisdiction: m.jurisdiction.clone(),
        roles: m.roles.clone(),
        ca_certificate: ca.cert_pem(),
        sealing_key: KeyDocument {
            id: sealing_key.key_id().to_owned(),
            public_key: sealing_key.public_key().to_base64(),
        },
        signing_keys: vec![SigningKeyDocument {
            id: signing_key.key_id().to_owned(),
            public_key: signing_key.verifying_key().to_base64(),
            valid_from: valid_from.to_owned(),
            valid_until: None,
            compromised_since: None,
        }],
        revoked_certificates: Vec::new(),
    };
    let member = DevMember {
        spec: m.clone(),
        ca,
        tls,
        signing_key,
        signing_key_pem,
        sealing_key,
        sealing_key_pem,
        witness_key_pem,
    };
    Ok((member, doc))
}

impl DevPki {
    /// Creates CAs, certificates and keys for `spec`.
    pub fn generate(spec: &DevPkiSpec) -> Result<Self, Error> {
        let td = spec.trust_domain.as_str();
        let valid_from = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            - Duration::days(1);
        let valid_from_text = valid_from
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Directory {
                source_name: "dev pki".into(),
                field: "valid_from".into(),
                detail: e.to_string(),
            })?;
        let mut members = Vec::new();
        let mut member_docs = Vec::new();
        for m in &spec.members {
            let (member, doc) = generate_member(td, m, &valid_from_text)?;
            members.push(member);
            member_docs.push(doc);
        }
        let service_ca = DevCa::new("cairn services CA")?;
        let mut services = Vec::new();
        let mut service_docs = Vec::new();
        for (name, rights) in &spec.services {
            let tls = service_ca.issue(&LeafSpec::service(td, name))?;
            service_docs.push(ServiceDocument {
                name: name.clone(),
                ca_certificate: service_ca.cert_pem(),
                rights: rights.clone(),
            });
            services.push(DevService {
                name: name.clone(),
                tls,
            });
        }
        let directory = DirectoryDocument {
            version: 1,
            trust_domain: td.to_owned(),
            members: member_docs,
            services: service_docs,
        };
        let log_key_pem = SigningKey::generate("log")?.1;
        Ok(Self {
            trust_domain: td.to_owned(),
            members,
            service_ca,
            services,
            log_key_pem,
            directory,
        })
    }

    /// The parsed directory.
    pub fn directory(&self) -> Result<Directory, Error> {
        Directory::parse(self.directory.to_toml().as_bytes(), "generated directory")
    }

    /// A member by id.
    pub fn member(&self, id: &str) -> Option<&DevMember> {
        self.members.iter().find(|m| m.spec.id == id)
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&DevService> {
        self.services.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_pki_produces_a_valid_directory() {
        let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
        let dir = pki.directory().unwrap();
        assert_eq!(dir.members().count(), 3);
        let uk = dir.member("uk-aisi").unwrap();
        assert!(uk.has_role(Role::Submitter));
        let dev = pki.member("uk-aisi").unwrap();
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            uk.signing_key_at("uk-aisi-sign-1", now).unwrap(),
            &dev.signing_key.verifying_key()
        );
        assert_eq!(uk.sealing_key.key, dev.sealing_key.public_key());
        assert!(
            dir.service("intake")
                .unwrap()
                .rights
                .contains(&ServiceRight::Append)
        );
        assert!(dir.service("audit").unwrap().rights.is_empty());
    }

    #[test]
    fn written_pki_reads_back() {
        let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        pki.write_to(tmp.path()).unwrap();
        let dir = Directory::load(&tmp.path().join(layout::DIRECTORY)).unwrap();
        // The network is founded through a genesis every governance member
        // signed, a majority of them the quorum.
        let text = std::fs::read_to_string(tmp.path().join(layout::DIRECTORY)).unwrap();
        let genesis = cairn_identity::genesis::Genesis::parse(&text, "directory.toml").unwrap();
        assert!(genesis.missing("directory.toml").unwrap().is_empty());
        assert_eq!(genesis.quorum, 2, "2 of the example's 3 founders");
        assert_eq!(dir.quorum(), Some(2));
        for m in dir.members() {
            let files = MemberFiles::new(tmp.path(), m.id.as_str());
            let sk = files.signing_key().unwrap();
            assert_eq!(m.signing_keys[0].key, sk.verifying_key());
            assert_eq!(m.sealing_key.key, files.sealing_key().unwrap().public_key());
            files.tls_identity().unwrap();
        }
        service_tls_identity(tmp.path(), "audit").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(tmp.path().join("members/uk-aisi/signing.key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "private keys must not be group or world readable"
            );
        }
    }
}
