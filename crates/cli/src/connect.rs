//! How the CLI finds its identity and the services: a dev PKI layout
//! (`--pki`, `--member`), and the service addresses from a running devnet
//! (`--devnet`, which writes `devnet.json`) or from flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use cairn_client::{Client, Credentials, Endpoints};
use cairn_devpki::layout;
use cairn_identity::{Directory, DirectoryHandle};
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_tlog::note::VerifierKey;
use clap::Args;

/// `host:port` to an address (a name is looked up once, now): service
/// flags take names as well as addresses, e.g. a Kubernetes Service.
pub fn resolve(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not host:port or does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// What `cairn devnet` writes so that other commands find the network.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct DevnetInfo {
    /// The dev PKI.
    pub pki: PathBuf,
    /// cairn-audit.
    pub audit: SocketAddr,
    /// cairn-intake.
    pub intake: SocketAddr,
    /// cairn-evals.
    pub evals: SocketAddr,
    /// The audit log's verifier key.
    pub log_key: String,
    /// Prometheus endpoints by service (plain HTTP on loopback).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, String>,
    /// The witnesses that cosign the log's checkpoints; `cairn audit
    /// verify` requires all of them by default.
    #[serde(default)]
    pub witnesses: Vec<DevnetWitness>,
}

/// One witness of a devnet.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
pub struct DevnetWitness {
    /// The member that runs it.
    pub member: String,
    /// Its C2SP tlog-witness submission prefix.
    pub url: String,
    /// Its cosigner verifier key.
    pub key: String,
}

/// The member identity and directory to connect with.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// A running `cairn devnet`'s data directory (its devnet.json gives the
    /// PKI, the service addresses and the log key).
    #[arg(long, env = "CAIRN_DEVNET", global = true)]
    pub devnet: Option<PathBuf>,
    /// A PKI directory in the dev layout (`members/<id>/...`).
    #[arg(long, env = "CAIRN_PKI", global = true)]
    pub pki: Option<PathBuf>,
    /// The member to act as.
    #[arg(long, env = "CAIRN_MEMBER", global = true)]
    pub member: Option<String>,
    /// The network directory file (default: the PKI's).
    #[arg(long, env = "CAIRN_DIRECTORY", global = true)]
    pub directory: Option<PathBuf>,
    /// TLS client certificate (PEM), instead of the PKI's.
    #[arg(long, env = "CAIRN_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// TLS client key (PEM), instead of the PKI's.
    #[arg(long, env = "CAIRN_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// cairn-intake's address.
    #[arg(long, env = "CAIRN_INTAKE", global = true, value_parser = resolve)]
    pub intake: Option<SocketAddr>,
    /// cairn-evals's address.
    #[arg(long, env = "CAIRN_EVALS", global = true, value_parser = resolve)]
    pub evals: Option<SocketAddr>,
}

impl ConnectArgs {
    /// The devnet description, if one is named (or found in the default place).
    pub fn devnet_info(&self) -> anyhow::Result<Option<DevnetInfo>> {
        let dir = match &self.devnet {
            Some(d) => d.clone(),
            None => {
                let d = PathBuf::from(crate::devnet::DEFAULT_DIR);
                if !d.join("devnet.json").exists() {
                    return Ok(None);
                }
                d
            }
        };
        let path = dir.join("devnet.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is `cairn devnet` running there?)",
                path.display()
            )
        })?;
        Ok(Some(serde_json::from_str(&text).with_context(|| {
            format!("{} is not a devnet description", path.display())
        })?))
    }

    fn pki(&self) -> anyhow::Result<Option<PathBuf>> {
        Ok(match &self.pki {
            Some(p) => Some(p.clone()),
            None => self.devnet_info()?.map(|d| d.pki),
        })
    }

    fn member_id(&self) -> anyhow::Result<String> {
        self.member
            .clone()
            .ok_or_else(|| anyhow!("say which member you are: --member <id> (or CAIRN_MEMBER)"))
    }

    fn paths(&self) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        if let (Some(pki), Ok(member)) = (self.pki()?, self.member_id()) {
            let m = pki.join(layout::MEMBERS).join(&member);
            if !m.exists() && self.cert.is_none() {
                anyhow::bail!(
                    "member {member:?} has no files in {} (members: {})",
                    pki.display(),
                    list_members(&pki)
                );
            }
            return Ok((
                self.directory
                    .clone()
                    .unwrap_or_else(|| pki.join(layout::DIRECTORY)),
                self.cert
                    .clone()
                    .unwrap_or_else(|| m.join(layout::TLS_CERT)),
                self.key.clone().unwrap_or_else(|| m.join(layout::TLS_KEY)),
            ));
        }
        match (&self.directory, &self.cert, &self.key) {
            (Some(d), Some(c), Some(k)) => Ok((d.clone(), c.clone(), k.clone())),
            _ => anyhow::bail!(
                "say who you are: --devnet <dir> or --pki <dir>, with --member <id>; or --directory, --cert and --key"
            ),
        }
    }

    /// The directory in force.
    pub fn directory(&self) -> anyhow::Result<DirectoryHandle> {
        let (d, _, _) = self.paths()?;
        Ok(DirectoryHandle::new(Directory::load(&d)?))
    }

    /// A gRPC channel to `service` at `addr`.
    pub fn channel(
        &self,
        addr: SocketAddr,
        service: &str,
    ) -> anyhow::Result<tonic::transport::Channel> {
        let (_, cert, key) = self.paths()?;
        let identity = TlsIdentity::load(&cert, &key)?;
        let config = tls::client_config(&identity, self.directory()?, service)?;
        tls::channel(addr, config).with_context(|| format!("connecting to {service} at {addr}"))
    }

    /// An HTTPS/1.1 target at `url`, presenting the member's certificate:
    /// the server is the directory's `service`, or with `ca` a server whose
    /// certificate chains to that PEM file and names the URL's host.
    pub fn https_target(
        &self,
        url: &str,
        service: &str,
        ca: Option<&std::path::Path>,
    ) -> anyhow::Result<cairn_mtls::https::HttpsTarget> {
        let (_, cert, key) = self.paths()?;
        let identity = TlsIdentity::load(&cert, &key)?;
        let config = match ca {
            Some(ca) => {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                tls::client_config_with_roots(&identity, &pem)?
            }
            None => tls::client_config(&identity, self.directory()?, service)?,
        };
        Ok(cairn_mtls::https::HttpsTarget::new(
            url,
            &config,
            ca.is_some(),
        )?)
    }

    /// An SDK client acting as the member.
    pub fn client(&self) -> anyhow::Result<Client> {
        let member = self.member_id()?;
        let pki = self
            .pki()?
            .ok_or_else(|| anyhow!("--devnet or --pki is needed to find {member}'s keys"))?;
        let creds = Credentials::from_dev_pki(&pki, &member)
            .with_context(|| format!("loading {member}'s keys from {}", pki.display()))?;
        let (directory, _, _) = self.paths()?;
        let devnet = self.devnet_info()?;
        let pick = |flag: Option<SocketAddr>, from: Option<SocketAddr>, what: &str| {
            flag.or(from)
                .ok_or_else(|| anyhow!("where is {what}? give --{what} <addr> or --devnet <dir>"))
        };
        let endpoints = Endpoints {
            intake: pick(self.intake, devnet.as_ref().map(|d| d.intake), "intake")?,
            evals: pick(self.evals, devnet.as_ref().map(|d| d.evals), "evals")?,
            audit: devnet
                .as_ref()
                .map(|d| d.audit)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7401))),
        };
        let log_key = devnet
            .as_ref()
            .map(|d| VerifierKey::parse(&d.log_key))
            .transpose()?;
        Ok(Client::connect(
            creds,
            Directory::load(&directory)?,
            endpoints,
            log_key,
        )?)
    }
}

fn list_members(pki: &std::path::Path) -> String {
    std::fs::read_dir(pki.join(layout::MEMBERS))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_flags_take_names_and_addresses() {
        assert_eq!(
            resolve("127.0.0.1:7402").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 7402))
        );
        assert!(resolve("localhost:7402").unwrap().ip().is_loopback());
        let e = resolve("no-port").unwrap_err();
        assert!(e.contains("no-port"), "{e}");
        assert!(resolve("name.invalid:7402").is_err());
    }
}
