//! The publish stage's last step: after each new checkpoint, ask the
//! configured witnesses to cosign it and keep the cosigned note, so that
//! GetCheckpoint and `/checkpoint` serve it. Receipts never wait for this.
//! Each answer also tells the fork guard ([`crate::guard`]) whether the
//! witness holds anything newer than this log.

use std::time::Duration;

use cairn_identity::DirectoryHandle;
use cairn_log::Log;
use cairn_mtls::TlsIdentity;
use cairn_tlog::note::{self, NoteSignature, VerifierKey};
use cairn_tlog::witness_wire::AddCheckpoint;
use tokio::sync::watch;

use crate::error::AuditError;
use crate::guard::Gate;
use crate::witness_client::{Answer, Transport};
pub use crate::witness_client::{Endpoint, ServerAuth};

/// A witness this log asks for cosignatures.
#[derive(Clone, Debug)]
pub struct WitnessPeer {
    /// Where it listens.
    pub endpoint: Endpoint,
    /// How its TLS certificate is checked.
    pub auth: ServerAuth,
    /// Its cosigner verifier key (type 0x04).
    pub key: VerifierKey,
}

impl WitnessPeer {
    /// Parses `<addr or https URL>,<verifier key>[,<tls service name> or
    /// ca=<PEM file>]`: a gRPC address is cairn's `Witness` service; an
    /// `https://` URL is a C2SP tlog-witness submission prefix. The
    /// server is the directory's service `audit` unless another service
    /// or a CA file is named.
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let bad = |problem: String| AuditError::CosignerSpec {
            text: text.to_owned(),
            problem,
        };
        let mut parts = text.splitn(3, ',');
        let (Some(at), Some(key)) = (parts.next(), parts.next()) else {
            return Err(bad(
                "expected <addr or https URL>,<verifier key>[,<service> or ca=<file>]".into(),
            ));
        };
        let endpoint = if at.contains("://") {
            Endpoint::Https(at.parse().map_err(|e| bad(format!("URL {at:?}: {e}")))?)
        } else {
            Endpoint::Grpc(
                at.parse()
                    .map_err(|e| bad(format!("address {at:?}: {e}")))?,
            )
        };
        let auth = match parts.next() {
            Some(ca) if ca.starts_with("ca=") => ServerAuth::Ca(ca[3..].into()),
            Some(service) => ServerAuth::Service(service.to_owned()),
            None => ServerAuth::Service("audit".into()),
        };
        Ok(Self {
            endpoint,
            auth,
            key: VerifierKey::parse(key).map_err(|e| bad(e.to_string()))?,
        })
    }
}

struct Peer {
    config: WitnessPeer,
    transport: Transport,
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
            let transport = Transport::new(&config.endpoint, &config.auth, &identity, &directory);
            let transport = match transport {
                Ok(t) => t,
                Err(e) => {
                    // The fork guard keeps waiting for it: appends say so.
                    tracing::error!(witness = %config.key.name(), error = %e, "cannot reach this witness");
                    return None;
                }
            };
            Some(Peer {
                config,
                transport,
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
            log.consistency_proof(peer.held, size).await?.1
        };
        let request = AddCheckpoint {
            old_size: peer.held,
            proof,
            checkpoint: checkpoint.to_owned(),
        };
        match peer.transport.add(request).await? {
            Answer::Cosigned(lines) => {
                peer.held = size;
                // Keep only a cosignature of this witness that verifies
                // (others in the answer are ignored, as C2SP says).
                return lines
                    .iter()
                    .find(|line| verifies(checkpoint, line, &peer.config.key))
                    .cloned()
                    .ok_or(AuditError::NoCosignature);
            }
            // The witness holds another size (e.g. after our restart).
            Answer::Holds(h) if h > size => {
                return Err(AuditError::BehindWitness {
                    witness: peer.config.key.name().to_owned(),
                    held: h,
                    size,
                });
            }
            Answer::Holds(h) if h != peer.held => peer.held = h,
            Answer::Holds(_) => return Err(AuditError::WitnessSizeChanging),
        }
    }
    Err(AuditError::WitnessSizeChanging)
}

fn verifies(checkpoint: &str, line: &str, key: &VerifierKey) -> bool {
    let Ok(mut n) = note::parse(checkpoint) else {
        return false;
    };
    let Ok(sig) = NoteSignature::parse_line(line.trim_end_matches('\n')) else {
        return false;
    };
    n.add_signature(sig);
    cairn_tlog::cosignature::verify(&n, key).is_ok()
}
