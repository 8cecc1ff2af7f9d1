//! Accepting connections: handshakes off the accept loop with a timeout,
//! the authenticated peer attached to every connection for handlers, and
//! open connections closed when the directory in force no longer admits
//! their certificate (a member removed, its CA replaced, the certificate
//! expired): within [`SWEEP_INTERVAL`] of the change.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustls::server::danger::ClientCertVerifier as _;
use rustls_pki_types::{CertificateDer, UnixTime};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use cairn_identity::{DirectoryHandle, Error, PeerIdentity};

use crate::HANDSHAKE_TIMEOUT;
use crate::verify::{DirectoryClientVerifier, claimed_identity};

/// How often open connections are checked against the directory once it
/// has changed (and, every [`EXPIRY_SWEEPS`] sweeps, for expiry).
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Sweeps between checks of every connection when the directory has not
/// changed (certificates that expired while connected).
const EXPIRY_SWEEPS: u32 = 60;

/// Whether a connection may go on; closed by the sweeper.
#[derive(Debug, Default)]
struct Liveness {
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Liveness {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let waker = match self.waker.lock() {
            Ok(mut w) => w.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// An error once closed; otherwise remembers who to wake.
    fn poll_open(&self, cx: &Context<'_>) -> io::Result<()> {
        if let Ok(mut w) = self.waker.lock()
            && !w.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            *w = Some(cx.waker().clone());
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the directory in force no longer admits this peer",
            ));
        }
        Ok(())
    }
}

/// An open connection the sweeper checks.
struct Tracked {
    live: Weak<Liveness>,
    chain: Vec<CertificateDer<'static>>,
    info: PeerInfo,
}

type Registry = Arc<Mutex<Vec<Tracked>>>;

/// Closes every open connection whose certificate chain the directory in
/// force no longer admits; runs until aborted.
async fn sweep(registry: Registry, directory: DirectoryHandle) {
    let verifier = DirectoryClientVerifier::new(directory.clone());
    let mut last = directory.current();
    let mut ticks = 0u32;
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        ticks = ticks.wrapping_add(1);
        let now = directory.current();
        let changed = !Arc::ptr_eq(&now, &last);
        last = now;
        if !changed && !ticks.is_multiple_of(EXPIRY_SWEEPS) {
            continue;
        }
        let mut tracked = match registry.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tracked.retain(|t| {
            let Some(live) = t.live.upgrade() else {
                return false;
            };
            let Some((leaf, intermediates)) = t.chain.split_first() else {
                return false;
            };
            match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
                Ok(_) => true,
                Err(e) => {
                    tracing::info!(
                        remote_addr = %t.info.remote_addr,
                        identity = %t.info.identity,
                        error = %e,
                        "closing a connection the directory in force no longer admits"
                    );
                    live.close();
                    false
                }
            }
        });
    }
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
    live: Arc<Liveness>,
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
        if let Err(e) = self.live.poll_open(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.live.poll_open(cx) {
            return Poll::Ready(Err(e));
        }
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
        if let Err(e) = self.live.poll_open(cx) {
            return Poll::Ready(Err(e));
        }
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
    sweeper: tokio::task::JoinHandle<()>,
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
        let registry = Registry::default();
        let sweeper = tokio::spawn(sweep(registry.clone(), directory.clone()));
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
                let registry = registry.clone();
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
                            let conn = track(&registry, stream, identity, remote_addr);
                            let _ = tx.send(Ok(conn)).await;
                        }
                        Err(e) => {
                            tracing::info!(%remote_addr, error = %e, "peer identity unreadable")
                        }
                    }
                });
            }
        });
        Self { rx, task, sweeper }
    }
}

/// The connection, registered with the sweeper.
fn track(
    registry: &Registry,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    identity: PeerIdentity,
    remote_addr: SocketAddr,
) -> TlsConnection {
    let chain: Vec<CertificateDer<'static>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let info = PeerInfo {
        identity,
        remote_addr,
    };
    let live = Arc::new(Liveness::default());
    if let Ok(mut t) = registry.lock() {
        t.push(Tracked {
            live: Arc::downgrade(&live),
            chain,
            info: info.clone(),
        });
    }
    TlsConnection { stream, info, live }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.sweeper.abort();
        self.task.abort();
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = io::Result<TlsConnection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
