//! The certificate verifiers: a client certificate is checked against the
//! directory in force (its single SPIFFE name, that identity's own CA, the
//! peers a listener admits); a server certificate against the cairn service
//! a client means to reach.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use cairn_identity::directory::serial_hex;
use cairn_identity::{Directory, DirectoryHandle, Error, PeerIdentity};

use crate::crypto_provider;

/// The cairn identity a certificate claims: its single `spiffe://` URI SAN,
/// parsed against `trust_domain`. Does not check the chain.
pub fn claimed_identity(
    cert: &CertificateDer<'_>,
    trust_domain: &str,
) -> Result<PeerIdentity, Error> {
    let bad = |detail: String| Error::Certificate {
        what: "peer".into(),
        detail,
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| bad(format!("not a valid X.509 certificate ({e})")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| bad(format!("malformed subjectAltName ({e})")))?
        .ok_or_else(|| bad("no subjectAltName extension".into()))?;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                Some(*uri)
            }
            _ => None,
        });
    let uri = uris
        .next()
        .ok_or_else(|| bad("no spiffe:// URI SAN".into()))?;
    if uris.next().is_some() {
        return Err(bad("more than one spiffe:// URI SAN".into()));
    }
    PeerIdentity::parse_uri(uri, trust_domain)
}

fn refuse(detail: impl Into<String>) -> rustls::Error {
    let detail = detail.into();
    tracing::debug!(%detail, "peer certificate refused");
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        io::Error::new(io::ErrorKind::PermissionDenied, detail),
    ))))
}

fn roots_of(ca: &CertificateDer<'static>) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| refuse(format!("directory CA unusable ({e})")))?;
    Ok(roots)
}

/// webpki applies no constraint of a trust anchor itself, so the path
/// length a member's (or the services') CA sets is enforced here: a CA
/// whose `pathLenConstraint` is `n` vouches for a certificate only through
/// at most `n` intermediate CAs (cairn member CAs set 0: they issue end
/// entities directly). The CA itself sent as an "intermediate" does not
/// count.
fn within_path_length(
    ca: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    identity: &PeerIdentity,
) -> Result<(), rustls::Error> {
    let extra = intermediates
        .iter()
        .filter(|c| c.as_ref() != ca.as_ref())
        .count();
    if extra == 0 {
        return Ok(());
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(ca)
        .map_err(|e| refuse(format!("directory CA of {identity} unreadable ({e})")))?;
    let limit = parsed
        .basic_constraints()
        .ok()
        .flatten()
        .and_then(|bc| bc.value.path_len_constraint);
    match limit {
        Some(n) if u32::try_from(extra).unwrap_or(u32::MAX) > n => Err(refuse(format!(
            "certificate for {identity} comes through {extra} intermediate CA(s), but its CA in the directory allows {n}"
        ))),
        _ => Ok(()),
    }
}

/// A member's certificate whose serial its directory entry lists as
/// revoked is refused (in the handshake, and by the sweeper that checks
/// open connections again when the directory changes).
fn not_revoked(
    directory: &Directory,
    identity: &PeerIdentity,
    end_entity: &CertificateDer<'_>,
) -> Result<(), rustls::Error> {
    let PeerIdentity::Member { id, .. } = identity else {
        return Ok(());
    };
    let Some(member) = directory.member(id.as_str()) else {
        return Ok(()); // refused as unknown before this is reached
    };
    if member.revoked_certificates.is_empty() {
        return Ok(());
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(end_entity)
        .map_err(|e| refuse(format!("certificate for {identity} unreadable ({e})")))?;
    let serial = serial_hex(parsed.raw_serial());
    if member.revoked_certificates.contains(&serial) {
        return Err(refuse(format!(
            "certificate {serial} of {identity} is revoked in the directory in force"
        )));
    }
    Ok(())
}

/// Server-side verifier of client certificates against the directory.
#[derive(Debug)]
pub struct DirectoryClientVerifier {
    directory: DirectoryHandle,
    provider: Arc<CryptoProvider>,
    accept: Peers,
}

/// Which kinds of identity a server admits at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peers {
    /// Members and services (the audit log: services append, members read).
    MembersAndServices,
    /// Members only (the record services: a service identity has no
    /// business there and is refused in the handshake).
    MembersOnly,
}

impl DirectoryClientVerifier {
    /// Verifies clients against whatever directory `directory` holds at
    /// handshake time (so a reload takes effect for new connections).
    pub fn new(directory: DirectoryHandle) -> Self {
        Self::admitting(directory, Peers::MembersAndServices)
    }

    /// As [`DirectoryClientVerifier::new`], admitting only `accept`.
    pub fn admitting(directory: DirectoryHandle, accept: Peers) -> Self {
        Self {
            directory,
            provider: crypto_provider(),
            accept,
        }
    }

    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ClientCertVerifier for DirectoryClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Every member has its own CA; clients pick their one certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let directory = self.directory.current();
        let identity = claimed_identity(end_entity, directory.trust_domain())
            .map_err(|e| refuse(e.to_string()))?;
        if self.accept == Peers::MembersOnly && identity.member().is_none() {
            return Err(refuse(format!(
                "{identity} may not connect here: this service admits members only"
            )));
        }
        let ca = directory
            .ca_for(&identity)
            .ok_or_else(|| refuse(format!("{identity} is not in the directory")))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots_of(ca)?),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| refuse(format!("verifier for {identity}: {e}")))?;
        let verified = verifier
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| {
                refuse(format!(
                    "certificate for {identity} does not chain to its CA in the directory ({e})"
                ))
            })?;
        within_path_length(ca, intermediates, &identity)?;
        not_revoked(&directory, &identity, end_entity)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// Client-side verifier of a cairn service's certificate: the service named
/// at construction, chained to that service's CA in the directory. The TLS
/// server name is not used; the SPIFFE identity is.
#[derive(Debug)]
pub struct ServiceServerVerifier {
    directory: DirectoryHandle,
    expected: PeerIdentity,
    provider: Arc<CryptoProvider>,
}

impl ServiceServerVerifier {
    /// Expects the service `name`.
    pub fn new(directory: DirectoryHandle, name: &str) -> Self {
        Self {
            directory,
            expected: PeerIdentity::Service {
                name: name.to_owned(),
            },
            provider: crypto_provider(),
        }
    }
}

impl ServerCertVerifier for ServiceServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let directory = self.directory.current();
        let identity = claimed_identity(end_entity, directory.trust_domain())
            .map_err(|e| refuse(e.to_string()))?;
        if identity != self.expected {
            return Err(refuse(format!(
                "server is {identity}, expected {}",
                self.expected
            )));
        }
        let ca = directory
            .ca_for(&identity)
            .ok_or_else(|| refuse(format!("{identity} is not in the directory")))?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots_of(ca)?,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        within_path_length(ca, intermediates, &identity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
