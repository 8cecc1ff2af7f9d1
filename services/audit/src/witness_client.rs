//! Asking one witness to cosign: over cairn's gRPC `Witness` service, or
//! over C2SP tlog-witness HTTPS (`POST <prefix>/add-checkpoint`), so that
//! a stock witness and a cairn witness are interchangeable. Either way the
//! connection is TLS 1.3 and presents this service's certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_identity::DirectoryHandle;
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::witness_client::WitnessClient;
use cairn_tlog::witness_wire::{AddCheckpoint, parse_size_body};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::error::AuditError;
use crate::status::WITNESS_SIZE_METADATA;

/// How long one HTTPS request to a witness may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from a witness.
const MAX_ANSWER: usize = 64 * 1024;

/// Where a witness listens.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// cairn's gRPC `Witness` service at this address.
    Grpc(SocketAddr),
    /// A C2SP tlog-witness submission prefix (`https://host[:port][/path]`).
    Https(Uri),
}

/// How the witness's TLS certificate is checked.
#[derive(Clone, Debug)]
pub enum ServerAuth {
    /// It is this service of the network's directory.
    Service(String),
    /// It chains to one of the CA certificates in this PEM file and names
    /// the URL's host (a witness outside the directory).
    Ca(PathBuf),
}

/// What a witness answered.
pub(crate) enum Answer {
    /// Its cosignature lines.
    Cosigned(Vec<String>),
    /// It holds another size (gRPC FAILED_PRECONDITION with the size, or
    /// HTTP 409 with a `text/x.tlog.size` body).
    Holds(u64),
}

/// A connection to one witness.
pub(crate) enum Transport {
    Grpc(WitnessClient<tonic::transport::Channel>),
    Https(HttpsWitness),
}

pub(crate) struct HttpsWitness {
    url: String,
    authority: String,
    host: String,
    path: String,
    name: Option<ServerName<'static>>,
    connector: tokio_rustls::TlsConnector,
}

impl Transport {
    /// Sets up the connection (lazily: nothing is dialled yet).
    pub(crate) fn new(
        endpoint: &Endpoint,
        auth: &ServerAuth,
        identity: &TlsIdentity,
        directory: &DirectoryHandle,
    ) -> Result<Self, AuditError> {
        let config = match auth {
            ServerAuth::Service(name) => tls::client_config(identity, directory.clone(), name)?,
            ServerAuth::Ca(path) => {
                let pem = std::fs::read(path).map_err(|e| cairn_identity::Error::io(path, e))?;
                tls::client_config_with_roots(identity, &pem)?
            }
        };
        match endpoint {
            Endpoint::Grpc(addr) => {
                Ok(Self::Grpc(WitnessClient::new(tls::channel(*addr, config)?)))
            }
            Endpoint::Https(uri) => Ok(Self::Https(HttpsWitness::new(uri, auth, config)?)),
        }
    }

    /// Sends one checkpoint with its consistency proof.
    pub(crate) async fn add(&mut self, request: AddCheckpoint) -> Result<Answer, AuditError> {
        match self {
            Self::Grpc(client) => grpc_add(client, request).await,
            Self::Https(w) => tokio::time::timeout(HTTP_TIMEOUT, w.add(request))
                .await
                .unwrap_or_else(|_| Err(w.unreachable("no answer within 10 s"))),
        }
    }
}

async fn grpc_add(
    client: &mut WitnessClient<tonic::transport::Channel>,
    request: AddCheckpoint,
) -> Result<Answer, AuditError> {
    let request = pb::AddCheckpointRequest {
        old_size: request.old_size,
        consistency_proof: request.proof.iter().map(|h| h.to_vec()).collect(),
        checkpoint: request.checkpoint,
    };
    match client.add_checkpoint(request).await {
        Ok(reply) => Ok(Answer::Cosigned(reply.into_inner().cosignatures)),
        Err(status) => {
            let held = (status.code() == tonic::Code::FailedPrecondition)
                .then(|| status.metadata().get(WITNESS_SIZE_METADATA))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            match held {
                Some(h) => Ok(Answer::Holds(h)),
                None => Err(AuditError::WitnessRefused {
                    code: status.code(),
                    message: status.message().to_owned(),
                }),
            }
        }
    }
}

impl HttpsWitness {
    fn new(
        uri: &Uri,
        auth: &ServerAuth,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, AuditError> {
        let url = uri.to_string();
        let bad = |problem: &str| AuditError::CosignerSpec {
            text: url.clone(),
            problem: problem.to_owned(),
        };
        if uri.scheme_str() != Some("https") {
            return Err(bad("a witness URL must be https://"));
        }
        let host = uri.host().ok_or_else(|| bad("the URL has no host"))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = match auth {
            // The directory names the service; the host only finds it.
            ServerAuth::Service(_) => None,
            ServerAuth::Ca(_) => Some(
                ServerName::try_from(bare.to_owned())
                    .map_err(|e| bad(&format!("host {host:?}: {e}")))?,
            ),
        };
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            authority: format!("{host}:{port}"),
            host: uri.authority().map_or(host, |a| a.as_str()).to_owned(),
            path: format!("{}/add-checkpoint", uri.path().trim_end_matches('/')),
            name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            url,
        })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> AuditError {
        AuditError::WitnessUnreachable {
            url: self.url.clone(),
            detail: detail.to_string(),
        }
    }

    async fn add(&self, request: AddCheckpoint) -> Result<Answer, AuditError> {
        let (status, body) = self.post(request.encode()).await?;
        match status {
            StatusCode::OK => Ok(Answer::Cosigned(
                String::from_utf8_lossy(&body)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            StatusCode::CONFLICT => parse_size_body(&body)
                .map(Answer::Holds)
                .ok_or_else(|| self.unreachable("409 without a size body")),
            other => Err(AuditError::WitnessHttp {
                url: self.url.clone(),
                status: other.as_u16(),
                message: String::from_utf8_lossy(&body).trim().to_owned(),
            }),
        }
    }

    async fn post(&self, body: String) -> Result<(StatusCode, Bytes), AuditError> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| self.unreachable(format!("connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| self.unreachable(format!("connect: {e}")))?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => ServerName::IpAddress(
                tcp.peer_addr()
                    .map_err(|e| self.unreachable(format!("connect: {e}")))?
                    .ip()
                    .into(),
            ),
        };
        let stream = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.unreachable(format!("HTTP: {e}")))?;
        let connection = tokio::spawn(connection);
        let request = Request::post(self.path.as_str())
            .header(header::HOST, self.host.as_str())
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unreachable(format!("HTTP: {e}")))?;
        let answer = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        }
        .await
        .map_err(|e| self.unreachable(format!("HTTP: {e}")));
        connection.abort();
        answer
    }
}
