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
//! This crate owns the rustls configurations and channel helpers (here),
//! the verifiers (`verify`) and the accept loop (`incoming`); who is who (the directory, keys, names)
//! is `cairn-identity`'s, and it reports that crate's error. It must not
//! know records or generate certificates (that is `cairn-devpki`'s job,
//! and services never link it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

pub use cairn_identity::parse_certificates;
pub use incoming::{PeerInfo, TlsConnection, TlsIncoming, authenticated_peer, peer_info};
pub use verify::{DirectoryClientVerifier, Peers, ServiceServerVerifier, claimed_identity};

pub mod https;
mod incoming;
mod verify;
use cairn_identity::{DirectoryHandle, Error};

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The only crypto provider cairn uses: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
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

/// A TLS 1.3 client configuration presenting `identity` to a server outside
/// the directory (a stock C2SP witness, say), whose certificate must chain
/// to one of the CA certificates in `roots_pem` and name the server it is
/// asked for (standard Web PKI checks). ALPN offers `http/1.1`.
pub fn client_config_with_roots(
    identity: &TlsIdentity,
    roots_pem: &[u8],
) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in parse_certificates(roots_pem)? {
        roots.add(cert).map_err(|e| Error::Certificate {
            what: "CA certificate".into(),
            detail: e.to_string(),
        })?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        crypto_provider(),
    )
    .build()
    .map_err(|e| Error::Certificate {
        what: "CA certificates".into(),
        detail: e.to_string(),
    })?;
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A gRPC channel to the cairn service at `addr` over mutual TLS with
/// `config` (see [`client_config`]); connects lazily and reconnects as
/// needed.
pub fn channel(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<tonic::transport::Channel, Error> {
    channel_from(&addr.to_string(), None, config)
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
    channel_from(target, None, config)
}

/// Like [`channel_to`], connecting from the local address `source` when
/// given (a host with several addresses, where the peer's firewall or the
/// service's logs expect one of them); the system chooses otherwise.
pub fn channel_from(
    target: &str,
    source: Option<IpAddr>,
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
                let tcp = connect_tcp(&target, source).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::IpAddress(tcp.peer_addr()?.ip().into());
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        },
    )))
}

/// A TCP connection to `target` (`host:port`), from `source` when given:
/// the first of the target's addresses in the source's family.
pub async fn connect_tcp(target: &str, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await;
    };
    let addr = tokio::net::lookup_host(target)
        .await?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{target} has no address of the family of the source address {source}"),
            )
        })?;
    let socket = if source.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("binding the source address {source}: {e}"),
        )
    })?;
    socket.connect(addr).await
}
