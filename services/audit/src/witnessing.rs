//! The publish stage's last step: after each new checkpoint, ask the
//! configured witnesses to cosign it and keep the cosigned note, so that
//! GetCheckpoint and `/checkpoint` serve it. Receipts never wait for this.
//! Each answer also tells the fork guard ([`crate::guard`]) whether the
//! witness holds anything newer than this log.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_identity::DirectoryHandle;
use cairn_log::Log;
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::witness_client::WitnessClient;
use cairn_tlog::note::{self, NoteSignature, VerifierKey};
use tokio::sync::watch;

use crate::error::AuditError;
use crate::guard::Gate;
use crate::status::WITNESS_SIZE_METADATA;

/// A witness this log asks for cosignatures.
#[derive(Clone, Debug)]
pub struct WitnessPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The service name its TLS certificate carries.
    pub service: String,
    /// Its cosigner verifier key (type 0x04).
    pub key: VerifierKey,
}

impl WitnessPeer {
    /// Parses `<addr>,<verifier key>[,<tls service name>]`.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let bad = |problem: String| AuditError::CosignerSpec {
            text: text.to_owned(),
            problem,
        };
        let mut parts = text.splitn(3, ',');
        let (Some(addr), Some(key)) = (parts.next(), parts.next()) else {
            return Err(bad("expected <addr>,<verifier key>[,<service>]".into()));
        };
        Ok(Self {
            addr: addr
                .parse()
                .map_err(|e| bad(format!("address {addr:?}: {e}")))?,
            key: VerifierKey::parse(key).map_err(|e| bad(e.to_string()))?,
            service: parts.next().unwrap_or("audit").to_owned(),
        })
    }
}

struct Peer {
    config: WitnessPeer,
    client: WitnessClient<tonic::transport::Channel>,
    held: u64,
}

/// Runs until the log's snapshot channel closes.
pub async fn run(
    log: Log,
    peers: Vec<WitnessPeer>,
    identity: TlsIdentity,
    directory: DirectoryHandle,
    published: watch::Sender<Option<String>>,
    gate: Gate,
) {
    let mut peers: Vec<Peer> = peers
        .into_iter()
        .filter_map(|config| {
            let client = tls::client_config(&identity, directory.clone(), &config.service)
                .and_then(|tls| tls::channel(config.addr, tls));
            let client = match client {
                Ok(channel) => WitnessClient::new(channel),
                Err(e) => {
                    // The fork guard keeps waiting for it: appends say so.
                    tracing::error!(witness = %config.key.name(), error = %e, "cannot reach this witness");
                    return None;
                }
            };
            Some(Peer {
                config,
                client,
                held: 0,
            })
        })
        .collect();
    let mut snapshots = log.subscribe();
    loop {
        let snap = snapshots.borrow_and_update().clone();
        let mut lines = Vec::new();
        let mut all_ok = true;
        for peer in &mut peers {
            match cosign(&log, peer, &snap.checkpoint, snap.size).await {
                Ok(line) => {
                    gate.confirmed(peer.config.key.name());
                    lines.push(line);
                }
                Err(AuditError::BehindWitness {
                    witness,
                    held,
                    size,
                }) => {
                    // Nothing this task can do makes the log newer.
                    gate.behind(&witness, held, size);
                    return;
                }
                Err(e) => {
                    all_ok = false;
                    tracing::warn!(witness = %peer.config.key.name(), error = %e, "witness did not cosign");
                }
            }
        }
        if !lines.is_empty() {
            let mut cosigned = snap.checkpoint.to_string();
            for l in &lines {
                cosigned.push_str(l);
                cosigned.push('\n');
            }
            match log.store_cosigned(&cosigned).await {
                Ok(()) => {
                    published.send_replace(Some(cosigned));
                }
                Err(e) => tracing::warn!(error = %e, "could not keep cosignatures"),
            }
        }
        let wait = async {
            if all_ok {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(2)).await
            }
        };
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = wait => {}
        }
    }
}

async fn cosign(
    log: &Log,
    peer: &mut Peer,
    checkpoint: &str,
    size: u64,
) -> Result<String, AuditError> {
    for _ in 0..2 {
        let proof = if peer.held == 0 || peer.held >= size {
            Vec::new()
        } else {
            log.consistency_proof(peer.held, size)
                .await?
                .1
                .iter()
                .map(|h| h.to_vec())
                .collect()
        };
        let request = pb::AddCheckpointRequest {
            old_size: peer.held,
            consistency_proof: proof,
            checkpoint: checkpoint.to_owned(),
        };
        match peer.client.add_checkpoint(request).await {
            Ok(reply) => {
                peer.held = size;
                let line = reply
                    .into_inner()
                    .cosignatures
                    .into_iter()
                    .next()
                    .ok_or(AuditError::NoCosignature)?;
                // Keep only a cosignature that verifies.
                let mut n = note::parse(checkpoint)?;
                n.add_signature(NoteSignature::parse_line(&line)?);
                cairn_tlog::cosignature::verify(&n, &peer.config.key)?;
                return Ok(line);
            }
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                // The witness holds another size (e.g. after our restart).
                let held = status
                    .metadata()
                    .get(WITNESS_SIZE_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                match held {
                    Some(h) if h > size => {
                        return Err(AuditError::BehindWitness {
                            witness: peer.config.key.name().to_owned(),
                            held: h,
                            size,
                        });
                    }
                    Some(h) if h != peer.held => peer.held = h,
                    _ => return Err(refused(&status)),
                }
            }
            Err(status) => return Err(refused(&status)),
        }
    }
    Err(AuditError::WitnessSizeChanging)
}

fn refused(status: &tonic::Status) -> AuditError {
    AuditError::WitnessRefused {
        code: status.code(),
        message: status.message().to_owned(),
    }
}
