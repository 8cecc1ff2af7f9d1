//! A member's certificate authority and the certificates it issues.
//!
//! The CA (ECDSA P-256) may issue end-entity certificates only
//! (`pathLenConstraint` 0); a certificate names one of the member's
//! programs or people as `spiffe://<trust-domain>/member/<id>/<name>`,
//! is usable for TLS client authentication (and, on request, server
//! authentication with the DNS and IP names stock clients check), and
//! lives 90 days unless told otherwise.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::MemberError;

/// How long a certificate lives by default.
pub const DEFAULT_DAYS: i64 = 90;
/// How long a member CA lives.
pub const CA_YEARS: i64 = 10;

fn rcgen_error(e: rcgen::Error) -> MemberError {
    MemberError::Certificate {
        detail: e.to_string(),
    }
}

/// What a certificate is for.
#[derive(Clone, Debug)]
pub struct LeafRequest {
    /// The network's trust domain.
    pub trust_domain: String,
    /// The member.
    pub member: String,
    /// The program or person (a path segment: `[a-z0-9-]`).
    pub name: String,
    /// Lifetime in days.
    pub days: i64,
    /// Also usable as a TLS server (with `dns` and `ips`).
    pub server: bool,
    /// DNS names (server certificates).
    pub dns: Vec<String>,
    /// IP addresses (server certificates).
    pub ips: Vec<IpAddr>,
}

impl LeafRequest {
    /// The SPIFFE URI the certificate carries.
    pub fn uri(&self) -> String {
        format!(
            "spiffe://{}/member/{}/{}",
            self.trust_domain, self.member, self.name
        )
    }

    fn check(&self) -> Result<(), MemberError> {
        let bad = |detail: String| MemberError::Request { detail };
        if !cairn_identity::spiffe::is_valid_trust_domain(&self.trust_domain) {
            return Err(bad(format!(
                "trust domain {:?} is not a DNS-style name",
                self.trust_domain
            )));
        }
        cairn_identity::MemberId::parse(&self.member)
            .map_err(|e| bad(format!("member id {:?}: {e}", self.member)))?;
        if !cairn_identity::spiffe::is_valid_name(&self.name) {
            return Err(bad(format!(
                "name {:?}: 2 to 32 characters of a-z, 0-9 and '-'",
                self.name
            )));
        }
        if !(1..=825).contains(&self.days) {
            return Err(bad(format!(
                "{} days: a certificate lives 1 to 825 days",
                self.days
            )));
        }
        let names = !(self.dns.is_empty() && self.ips.is_empty());
        if names && !self.server {
            return Err(bad(
                "DNS and IP names are for server certificates (--server)".into(),
            ));
        }
        Ok(())
    }

    fn params(&self) -> Result<CertificateParams, MemberError> {
        self.check()?;
        leaf_params(&Leaf {
            common_name: format!("{}/{}", self.member, self.name),
            uri: self.uri(),
            days: self.days,
            server: self.server,
            dns: &self.dns,
            ips: &self.ips,
        })
    }
}

/// A certificate for one of the network's services
/// (`spiffe://<trust-domain>/service/<name>`), client and server
/// authentication, with the DNS and IP names it is reached by.
#[derive(Clone, Debug)]
pub struct ServiceRequest {
    /// The network's trust domain.
    pub trust_domain: String,
    /// `audit`, `intake` or `evals` (a path segment).
    pub service: String,
    /// Lifetime in days.
    pub days: i64,
    /// DNS names.
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl ServiceRequest {
    fn params(&self) -> Result<CertificateParams, MemberError> {
        let bad = |detail: String| MemberError::Request { detail };
        if !cairn_identity::spiffe::is_valid_trust_domain(&self.trust_domain) {
            return Err(bad(format!(
                "trust domain {:?} is not a DNS-style name",
                self.trust_domain
            )));
        }
        if !cairn_identity::spiffe::is_valid_name(&self.service) {
            return Err(bad(format!(
                "service {:?}: 2 to 32 characters of a-z, 0-9 and '-'",
                self.service
            )));
        }
        if !(1..=825).contains(&self.days) {
            return Err(bad(format!(
                "{} days: a certificate lives 1 to 825 days",
                self.days
            )));
        }
        leaf_params(&Leaf {
            common_name: format!("cairn-{}", self.service),
            uri: format!("spiffe://{}/service/{}", self.trust_domain, self.service),
            days: self.days,
            server: true,
            dns: &self.dns,
            ips: &self.ips,
        })
    }
}

/// What an end-entity certificate says, whoever it is for.
struct Leaf<'a> {
    common_name: String,
    uri: String,
    days: i64,
    server: bool,
    dns: &'a [String],
    ips: &'a [IpAddr],
}

fn leaf_params(leaf: &Leaf<'_>) -> Result<CertificateParams, MemberError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, leaf.common_name.clone());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(leaf.days);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if leaf.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s).map_err(rcgen_error);
    params.subject_alt_names.push(SanType::URI(ia5(&leaf.uri)?));
    for d in leaf.dns {
        params.subject_alt_names.push(SanType::DnsName(ia5(d)?));
    }
    for ip in leaf.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    Ok(params)
}

/// An issued certificate (and its key, when the CA made it).
#[derive(Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM), when made here.
    pub key_pem: Option<Zeroizing<String>>,
}

/// A member's CA, with its key at hand.
pub struct MemberCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for MemberCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCa").finish_non_exhaustive()
    }
}

impl MemberCa {
    /// A new CA for the member named `display_name`; returns it and its
    /// key (PKCS#8 PEM) to keep offline.
    pub fn create(display_name: &str) -> Result<(Self, Zeroizing<String>), MemberError> {
        Self::create_named(display_name, &format!("{display_name} cairn member CA"))
    }

    /// A new CA for the network's services, held by the member
    /// `display_name` that runs them (same constraints as a member CA).
    pub fn create_for_services(
        display_name: &str,
    ) -> Result<(Self, Zeroizing<String>), MemberError> {
        Self::create_named(display_name, &format!("{display_name} cairn services CA"))
    }

    fn create_named(
        display_name: &str,
        common_name: &str,
    ) -> Result<(Self, Zeroizing<String>), MemberError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, display_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(365 * CA_YEARS);
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        let key_pem = Zeroizing::new(key.serialize_pem());
        Ok((
            Self {
                issuer: Issuer::new(params, key),
                cert_pem: cert.pem(),
            },
            key_pem,
        ))
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, MemberError> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_error)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(rcgen_error)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate with a fresh key.
    pub fn issue(&self, request: &LeafRequest) -> Result<Issued, MemberError> {
        self.issue_with_new_key(request.params()?)
    }

    /// Issues a service certificate with a fresh key.
    pub fn issue_service(&self, request: &ServiceRequest) -> Result<Issued, MemberError> {
        self.issue_with_new_key(request.params()?)
    }

    fn issue_with_new_key(&self, params: CertificateParams) -> Result<Issued, MemberError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rcgen_error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Some(Zeroizing::new(key.serialize_pem())),
        })
    }

    /// Issues a certificate for the key of a certificate signing request
    /// (PEM; its signature is checked). The names, usages and lifetime
    /// are the request's here, never the CSR's.
    pub fn issue_for_csr(
        &self,
        csr_pem: &str,
        request: &LeafRequest,
    ) -> Result<Issued, MemberError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            MemberError::Request {
                detail: format!("not a valid certificate signing request: {e}"),
            }
        })?;
        csr.params = request.params()?;
        let cert = csr.signed_by(&self.issuer).map_err(rcgen_error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: None,
        })
    }
}

/// A key and a certificate signing request for `request` (made where the
/// key is to stay; issued with [`MemberCa::issue_for_csr`] where the CA
/// key is).
pub fn csr(request: &LeafRequest) -> Result<(Zeroizing<String>, String), MemberError> {
    // A CSR carries the subject and the names asked for; the issuer sets
    // usages and lifetime.
    let full = request.params()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = full.distinguished_name;
    params.subject_alt_names = full.subject_alt_names;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_error)?;
    let csr = params.serialize_request(&key).map_err(rcgen_error)?;
    Ok((
        Zeroizing::new(key.serialize_pem()),
        csr.pem().map_err(rcgen_error)?,
    ))
}

/// Runs `f` on the first certificate of `cert_pem`.
fn with_certificate<T>(
    cert_pem: &str,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T, MemberError>,
) -> Result<T, MemberError> {
    let certs = cairn_identity::parse_certificates(cert_pem.as_bytes())?;
    let first = certs.first().ok_or_else(|| MemberError::Request {
        detail: "no certificate in the file".into(),
    })?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(first).map_err(|e| MemberError::Certificate {
            detail: e.to_string(),
        })?;
    f(&x509)
}

/// When a certificate (PEM) stops being valid.
pub fn not_after(cert_pem: &str) -> Result<OffsetDateTime, MemberError> {
    with_certificate(cert_pem, |x509| {
        OffsetDateTime::from_unix_timestamp(x509.validity().not_after.timestamp()).map_err(|e| {
            MemberError::Certificate {
                detail: e.to_string(),
            }
        })
    })
}

/// A certificate's (PEM) serial number as the directory lists revoked
/// ones ([`cairn_identity::directory::serial_hex`]).
pub fn serial(cert_pem: &str) -> Result<String, MemberError> {
    with_certificate(cert_pem, |x509| {
        Ok(cairn_identity::directory::serial_hex(x509.raw_serial()))
    })
}
