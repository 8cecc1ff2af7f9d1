//! Mutual TLS for cairn: TLS 1.3 only, the ring provider only, client
//! certificates required.
//!
//! A peer certificate is accepted only when
//! 1. it carries exactly one `spiffe://` URI SAN, in the network's trust
//!    domain, naming a member (`member/<id>`) or a service (`service/<name>`)
//!    that the directory in force lists, and
//! 2. its chain ends at **that** member's (or service's) own CA, as listed
//!    in the directory — not at any other CA of the network.
//!
//! Both checks run inside the handshake, so a refused peer never reaches a
//! handler. Handlers read the result from [`PeerInfo`], which
//! [`TlsIncoming`] attaches to every connection (tonic puts it in each
//! request's extensions; see [`peer_info`]).
//!
//! This crate owns the rustls configurations, the verifiers, the accept
//! loop and the channel helpers; who is who (the directory, keys, names)
//! is `cairn-identity`'s, and it reports that crate's error. It must not
//! know records or generate certificates (that is `cairn-devpki`'s job,
//! and services never link it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub use cairn_identity::parse_certificates;
use cairn_identity::{DirectoryHandle, Error, PeerIdentity};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only crypto provider cairn uses: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

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

/// A certificate chain and its private key, as a member or service presents
/// them.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsIdentity {
    /// From PEM bytes of the chain and of the key.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let chain = parse_certificates(chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::Certificate {
            what: "private key".into(),
            detail: format!("no usable PRIVATE KEY block ({e})"),
        })?;
        Ok(Self { chain, key })
    }

    /// From a chain file and a key file.
    pub fn load(chain_path: &Path, key_path: &Path) -> Result<Self, Error> {
        let chain = std::fs::read(chain_path).map_err(|e| Error::io(chain_path, e))?;
        let key =
            zeroize::Zeroizing::new(std::fs::read(key_path).map_err(|e| Error::io(key_path, e))?);
        Self::from_pem(&chain, &key).map_err(|e| match e {
            Error::Certificate { detail, .. } => Error::Certificate {
                what: format!("{} / {}", chain_path.display(), key_path.display()),
                detail,
            },
            other => other,
        })
    }
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
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| {
                refuse(format!(
                    "certificate for {identity} does not chain to its CA in the directory ({e})"
                ))
            })
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

/// A TLS 1.3 server configuration that requires client certificates checked
/// against `directory`, and speaks HTTP/2 (gRPC) or HTTP/1.1 (plain HTTPS
/// readers such as tile clients).
pub fn server_config(
    identity: &TlsIdentity,
    directory: DirectoryHandle,
) -> Result<Arc<ServerConfig>, Error> {
    server_config_admitting(identity, directory, Peers::MembersAndServices)
}

/// [`server_config`] admitting only `accept`.
pub fn server_config_admitting(
    identity: &TlsIdentity,
    directory: DirectoryHandle,
    accept: Peers,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(DirectoryClientVerifier::admitting(
            directory, accept,
        )))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // No session resumption: a resumed TLS 1.3 session skips the client
    // verifier, so a member removed from the directory (or whose
    // certificate expired) could go on from a ticket. Every connection is
    // a full handshake checked against the directory in force (the
    // default ticketer already produces no stateless tickets).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A TLS 1.3 client configuration presenting `identity` and accepting only
/// the cairn service `service` as the server.
pub fn client_config(
    identity: &TlsIdentity,
    directory: DirectoryHandle,
    service: &str,
) -> Result<Arc<ClientConfig>, Error> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServiceServerVerifier::new(directory, service)))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What a handler knows about the peer of a connection.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The authenticated identity.
    pub identity: PeerIdentity,
    /// The peer's address.
    pub remote_addr: SocketAddr,
}

/// The authenticated identity of an established server-side connection.
pub fn authenticated_peer(
    conn: &rustls::ServerConnection,
    trust_domain: &str,
) -> Result<PeerIdentity, Error> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| Error::Certificate {
            what: "peer".into(),
            detail: "no client certificate".into(),
        })?;
    claimed_identity(leaf, trust_domain)
}

/// An accepted, authenticated TLS connection. Implements tonic's
/// `Connected`, so gRPC handlers get its [`PeerInfo`] through
/// [`peer_info`].
#[derive(Debug)]
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl TlsConnection {
    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.info
    }
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The [`PeerInfo`] of the connection a gRPC request arrived on. `None`
/// only when the server was not started on a [`TlsIncoming`].
pub fn peer_info<T>(request: &tonic::Request<T>) -> Option<&PeerInfo> {
    request.extensions().get::<PeerInfo>()
}

/// Accepts TCP connections, runs each TLS handshake concurrently (with
/// [`HANDSHAKE_TIMEOUT`]) and yields only authenticated connections; feed
/// it to tonic's `serve_with_incoming`.
pub struct TlsIncoming {
    rx: tokio::sync::mpsc::Receiver<io::Result<TlsConnection>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Starts accepting on `listener`.
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        directory: DirectoryHandle,
    ) -> Self {
        Self::with_handshake_timeout(listener, config, directory, HANDSHAKE_TIMEOUT)
    }

    /// [`TlsIncoming::new`] with another handshake timeout: a peer that has
    /// not completed its handshake by then (e.g. one trickling bytes) is
    /// dropped. Handshakes run concurrently, so slow peers never hold up
    /// others.
    pub fn with_handshake_timeout(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        directory: DirectoryHandle,
        handshake_timeout: Duration,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, remote_addr) = match listener.accept().await {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        // Transient (e.g. out of file descriptors): back off
                        // briefly instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let directory = directory.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let stream =
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::info!(%remote_addr, error = %e, "tls handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%remote_addr, "tls handshake timed out");
                                return;
                            }
                        };
                    let trust_domain = directory.current().trust_domain().to_owned();
                    match authenticated_peer(stream.get_ref().1, &trust_domain) {
                        Ok(identity) => {
                            tracing::debug!(%remote_addr, %identity, "peer authenticated");
                            let _ = tx
                                .send(Ok(TlsConnection {
                                    stream,
                                    info: PeerInfo {
                                        identity,
                                        remote_addr,
                                    },
                                }))
                                .await;
                        }
                        Err(e) => {
                            tracing::info!(%remote_addr, error = %e, "peer identity unreadable")
                        }
                    }
                });
            }
        });
        Self { rx, task }
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A gRPC channel to the cairn service at `addr` over mutual TLS with
/// `config` (see [`client_config`]); connects lazily and reconnects as
/// needed.
pub fn channel(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<tonic::transport::Channel, Error> {
    channel_to(&addr.to_string(), config)
}

/// Like [`channel`], to `host:port`, with the name resolved again at every
/// (re)connection: behind a name that moves (a Kubernetes Service, a
/// compose alias), a new connection follows it. The server is
/// authenticated by its certificate's identity in the directory, so the
/// name is only for finding it.
pub fn channel_to(
    target: &str,
    config: Arc<ClientConfig>,
) -> Result<tonic::transport::Channel, Error> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| Error::Connect {
            addr: target.to_owned(),
            detail: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(config);
    let target = target.to_owned();
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(
        move |_uri: tonic::transport::Uri| {
            let (connector, target) = (connector.clone(), target.clone());
            async move {
                let tcp = TcpStream::connect(target.as_str()).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::IpAddress(tcp.peer_addr()?.ip().into());
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        },
    )))
}
