//! Accepting connections: handshakes off the accept loop with a timeout,
//! and the authenticated peer attached to every connection for handlers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use cairn_identity::{DirectoryHandle, Error, PeerIdentity};

use crate::HANDSHAKE_TIMEOUT;
use crate::verify::claimed_identity;

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
