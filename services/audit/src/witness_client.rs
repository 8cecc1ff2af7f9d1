//! Asking one witness to cosign: over cairn's gRPC `Witness` service, or
//! over C2SP tlog-witness HTTPS (`POST <prefix>/add-checkpoint`), so that
//! a stock witness and a cairn witness are interchangeable. Either way the
//! connection is TLS 1.3 and presents this service's certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_identity::DirectoryHandle;
use cairn_mtls::https::HttpsTarget;
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::witness_client::WitnessClient;
use cairn_tlog::witness_wire::{AddCheckpoint, parse_size_body};
use tonic::codegen::http::Uri;

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
    target: HttpsTarget,
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
            Endpoint::Https(uri) => Ok(Self::Https(HttpsWitness::new(uri, auth, &config)?)),
        }
    }

    /// Sends one checkpoint with its consistency proof.
    pub(crate) async fn add(&mut self, request: AddCheckpoint) -> Result<Answer, AuditError> {
        match self {
            Self::Grpc(client) => grpc_add(client, request).await,
            Self::Https(w) => w.add(request).await,
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
        config: &rustls::ClientConfig,
    ) -> Result<Self, AuditError> {
        // With a CA file the certificate must name the URL's host; with a
        // directory service the directory names it.
        let check_name = matches!(auth, ServerAuth::Ca(_));
        let target = HttpsTarget::new(&uri.to_string(), config, check_name).map_err(|e| {
            AuditError::CosignerSpec {
                text: e.url,
                problem: e.detail,
            }
        })?;
        Ok(Self { target })
    }

    fn unreachable(&self, detail: impl std::fmt::Display) -> AuditError {
        AuditError::WitnessUnreachable {
            url: self.target.url.clone(),
            detail: detail.to_string(),
        }
    }

    async fn add(&self, request: AddCheckpoint) -> Result<Answer, AuditError> {
        let (status, body) = self
            .target
            .request(
                "add-checkpoint",
                Some(request.encode()),
                MAX_ANSWER,
                HTTP_TIMEOUT,
            )
            .await
            .map_err(|e| self.unreachable(e.detail))?;
        match status.as_u16() {
            200 => Ok(Answer::Cosigned(
                String::from_utf8_lossy(&body)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            409 => parse_size_body(&body)
                .map(Answer::Holds)
                .ok_or_else(|| self.unreachable("409 without a size body")),
            other => Err(AuditError::WitnessHttp {
                url: self.target.url.clone(),
                status: other,
                message: String::from_utf8_lossy(&body).trim().to_owned(),
            }),
        }
    }
}
