//! The devnet's witness network: every member holding the `witness` role
//! runs a witness (cairn-audit in witness mode, with that member's
//! cosigning key and its own store), and the network's audit service asks
//! each of them over C2SP tlog-witness HTTPS to cosign every checkpoint.
//!
//! In the devnet a witness presents the dev PKI's `audit` service
//! certificate; only its cosigning key is the member's.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use cairn_audit::witnessing::{Endpoint, ServerAuth, WitnessPeer};
use cairn_audit::{AuditConfig, RunningAudit, WitnessConfig};
use cairn_devpki::{self as devpki, layout};
use cairn_identity::{Directory, Role};
use cairn_store::StoreLocation;
use cairn_tlog::note::{ALG_ED25519, NoteSigner};

use crate::connect::DevnetWitness;

/// The members of the dev PKI that hold the witness role and have a
/// cosigning key, in directory order.
pub fn witness_members(pki: &Path) -> anyhow::Result<Vec<String>> {
    let directory = Directory::load(&pki.join(layout::DIRECTORY))?;
    Ok(directory
        .members()
        .filter(|m| m.has_role(Role::Witness))
        .map(|m| m.id.to_string())
        .filter(|id| member_witness_key(pki, id).exists())
        .collect())
}

fn member_witness_key(pki: &Path, id: &str) -> std::path::PathBuf {
    pki.join(layout::MEMBERS).join(id).join(layout::WITNESS_KEY)
}

/// The verifier key of the log that `audit` will run (from its key file),
/// so that witnesses can start before it.
fn log_verifier(audit: &AuditConfig) -> anyhow::Result<String> {
    let der = cairn_identity::keys::load_pkcs8_der(&audit.log_key)?;
    let signer = NoteSigner::from_pkcs8(&audit.origin, ALG_ED25519, &der)
        .with_context(|| format!("the log key {}", audit.log_key.display()))?;
    Ok(signer.verifier().to_string())
}

/// Starts one witness per member in `members`, the i-th listening on
/// `listen(i)`, following the log `audit` will run; returns them and what
/// `audit` must be given as its cosigners.
pub async fn start(
    dir: &Path,
    audit: &AuditConfig,
    members: &[String],
    listen: impl Fn(u16) -> SocketAddr,
) -> anyhow::Result<(Vec<RunningAudit>, Vec<WitnessPeer>, Vec<DevnetWitness>)> {
    let log_key = log_verifier(audit)?;
    let pki = audit
        .directory
        .parent()
        .context("the directory file has no folder")?;
    let (mut running, mut peers, mut info) = (Vec::new(), Vec::new(), Vec::new());
    for (i, id) in (0u16..).zip(members) {
        let mut config = audit.clone();
        config.listen = listen(i);
        config.store = StoreLocation::embedded(dir.join(format!("witness-{id}")));
        // The witness's own (empty) log needs an origin of its own.
        config.origin = format!("{}/witness-log", devpki::witness_name("cairn.example", id));
        config.metrics_listen = None;
        config.cosigners = vec![];
        config.witness = Some(WitnessConfig {
            key: member_witness_key(pki, id),
            name: devpki::witness_name("cairn.example", id),
            logs: vec![log_key.clone()],
        });
        let w = cairn_audit::start(config)
            .await
            .with_context(|| format!("starting {id}'s witness"))?;
        let key = w
            .witness_verifier
            .clone()
            .context("a witness without a cosigning key")?;
        let url = format!("https://{}", w.addr);
        peers.push(WitnessPeer {
            endpoint: Endpoint::Https(url.parse().context("witness URL")?),
            auth: ServerAuth::Service("audit".into()),
            key: key.clone(),
        });
        info.push(DevnetWitness {
            member: id.clone(),
            url,
            key: key.to_string(),
        });
        running.push(w);
    }
    Ok((running, peers, info))
}
