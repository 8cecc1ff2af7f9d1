//! How the CLI finds its identity and the services. Each setting comes
//! from its flag, else the profile (`--profile`, `cairn profile add`), else
//! a running devnet (`--devnet`, or one in the default place when no
//! profile is named): the member's files from a member folder
//! (`--member-dir`, `cairn member init`) or a dev PKI (`--pki`,
//! `--member`), each overridable (`--cert`, `--key`, `--signing-key`,
//! `--sealing-key`); the directory; the services' addresses; the log key.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use cairn_client::{Client, CredentialFiles, Endpoints, Settings};
use cairn_devpki::layout;
use cairn_identity::{Directory, DirectoryHandle};
use cairn_member::{ConnectFiles, MemberDir};
use cairn_mtls::{self as tls, TlsIdentity};
use clap::Args;

use crate::profile::Profile;

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
    /// cairn-audit's address.
    #[arg(long, env = "CAIRN_AUDIT", global = true, value_parser = resolve)]
    pub audit: Option<SocketAddr>,
    /// A profile (`cairn profile add`): credentials, directory, addresses,
    /// log and witness keys; flags override it.
    #[arg(long, env = "CAIRN_PROFILE", global = true)]
    pub profile: Option<String>,
    /// A member folder made by `cairn member init`.
    #[arg(long, env = "CAIRN_MEMBER_DIR", global = true)]
    pub member_dir: Option<PathBuf>,
    /// Which certificate of the member folder (default `cli`).
    #[arg(long, env = "CAIRN_CERT_NAME", global = true)]
    pub cert_name: Option<String>,
    /// Ed25519 signing key (PKCS#8 PEM), instead of the folder's.
    #[arg(long, global = true, requires = "signing_key_id")]
    pub signing_key: Option<PathBuf>,
    /// Its key id in the directory.
    #[arg(long, global = true)]
    pub signing_key_id: Option<String>,
    /// X25519 sealing key (PKCS#8 PEM), instead of the folder's.
    #[arg(long, global = true, requires = "sealing_key_id")]
    pub sealing_key: Option<PathBuf>,
    /// Its key id in the directory.
    #[arg(long, global = true)]
    pub sealing_key_id: Option<String>,
    /// The audit log's verifier key (or a file holding it): receipts are
    /// checked against it.
    #[arg(long, env = "CAIRN_LOG_KEY", global = true)]
    pub log_key: Option<String>,
    /// The local address to connect from (a host with several).
    #[arg(long, env = "CAIRN_SOURCE", global = true)]
    pub source: Option<IpAddr>,
}

/// Every setting, resolved from flags, the profile and the devnet.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The member's files.
    pub files: CredentialFiles,
    /// The directory file.
    pub directory: PathBuf,
    /// cairn-intake.
    pub intake: Option<SocketAddr>,
    /// cairn-evals.
    pub evals: Option<SocketAddr>,
    /// cairn-audit.
    pub audit: Option<SocketAddr>,
    /// The log's verifier key (text or file).
    pub log_key: Option<String>,
    /// Witness keys.
    pub witnesses: Vec<String>,
    /// Witness quorum.
    pub quorum: Option<usize>,
    /// The local address to connect from.
    pub source: Option<IpAddr>,
}

impl ConnectArgs {
    /// The devnet description: the one named, else (when no profile is)
    /// one in the default place.
    pub fn devnet_info(&self) -> anyhow::Result<Option<DevnetInfo>> {
        let dir = match &self.devnet {
            Some(d) => d.clone(),
            None if self.profile.is_some() => return Ok(None),
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

    fn profile(&self) -> anyhow::Result<Profile> {
        match &self.profile {
            Some(name) => crate::profile::load(name),
            None => Ok(Profile::default()),
        }
    }

    /// The log key: `--log-key`, else the profile's (callers fall back
    /// to the devnet's).
    pub fn log_key_setting(&self) -> anyhow::Result<Option<String>> {
        Ok(self.log_key.clone().or(self.profile()?.log_key))
    }

    /// The audit service: `--audit`, else the profile's.
    pub fn audit_setting(&self) -> anyhow::Result<Option<SocketAddr>> {
        match (self.audit, self.profile()?.audit) {
            (Some(a), _) => Ok(Some(a)),
            (None, Some(text)) => Ok(Some(resolve(&text).map_err(|e| anyhow!(e))?)),
            (None, None) => Ok(None),
        }
    }

    /// The profile's witness keys and quorum.
    pub fn profile_witnesses(&self) -> anyhow::Result<(Vec<String>, Option<usize>)> {
        let p = self.profile()?;
        Ok((p.witnesses, p.quorum))
    }

    /// Every setting, from the flags, else the profile, else the devnet.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        let p = self.profile()?;
        let devnet = self.devnet_info()?;
        let member_dir = self.member_dir.clone().or(p.member_dir.clone());
        let pki = self
            .pki
            .clone()
            .or(p.pki.clone())
            .or(devnet.as_ref().map(|d| d.pki.clone()));
        let member = self.member.clone().or(p.member.clone());
        let base = match (&member_dir, &pki) {
            (Some(dir), _) => {
                let name = self.cert_name.clone().or(p.cert_name.clone());
                let f = MemberDir::new(dir).connect_files(name.as_deref().unwrap_or("cli"))?;
                if member.as_ref().is_some_and(|m| *m != f.member) {
                    bail!(
                        "{} holds member {}, not {}",
                        dir.display(),
                        f.member,
                        member.unwrap_or_default()
                    );
                }
                Some(from_folder(f))
            }
            (None, Some(pki)) => match &member {
                Some(m) => Some(dev_files(pki, m)?),
                None => None,
            },
            (None, None) => None,
        };
        let files = credentials(base, member, self, &p)?;
        let directory = self
            .directory
            .clone()
            .or(p.directory.clone())
            .or(pki.map(|pki| pki.join(layout::DIRECTORY)))
            .ok_or_else(|| {
                anyhow!("which network? give --directory <file> (or a profile or --devnet)")
            })?;
        let addr = |flag: Option<SocketAddr>, prof: &Option<String>, dev: Option<SocketAddr>| {
            anyhow::Ok(match (flag, prof) {
                (Some(a), _) => Some(a),
                (None, Some(text)) => Some(resolve(text).map_err(|e| anyhow!(e))?),
                (None, None) => dev,
            })
        };
        let (witnesses, quorum) = match (&p.witnesses, &devnet) {
            (w, _) if !w.is_empty() => (w.clone(), p.quorum),
            (_, Some(d)) => (d.witnesses.iter().map(|w| w.key.clone()).collect(), None),
            _ => (Vec::new(), None),
        };
        Ok(Resolved {
            files,
            directory,
            intake: addr(self.intake, &p.intake, devnet.as_ref().map(|d| d.intake))?,
            evals: addr(self.evals, &p.evals, devnet.as_ref().map(|d| d.evals))?,
            audit: addr(self.audit, &p.audit, devnet.as_ref().map(|d| d.audit))?,
            log_key: self
                .log_key
                .clone()
                .or(p.log_key.clone())
                .or(devnet.map(|d| d.log_key)),
            witnesses,
            quorum,
            source: self.source.or(p.source),
        })
    }

    /// The directory in force.
    pub fn directory(&self) -> anyhow::Result<DirectoryHandle> {
        let r = self.resolve()?;
        Ok(DirectoryHandle::new(Directory::load(&r.directory)?))
    }

    fn tls_identity(&self) -> anyhow::Result<TlsIdentity> {
        let r = self.resolve()?;
        Ok(TlsIdentity::load(&r.files.cert, &r.files.key)?)
    }

    /// A gRPC channel to `service` at `addr`.
    pub fn channel(
        &self,
        addr: SocketAddr,
        service: &str,
    ) -> anyhow::Result<tonic::transport::Channel> {
        let config = tls::client_config(&self.tls_identity()?, self.directory()?, service)?;
        let source = self.resolve()?.source;
        tls::channel_from(&addr.to_string(), source, config)
            .with_context(|| format!("connecting to {service} at {addr}"))
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
        let identity = self.tls_identity()?;
        let config = match ca {
            Some(ca) => {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                tls::client_config_with_roots(&identity, &pem)?
            }
            None => tls::client_config(&identity, self.directory()?, service)?,
        };
        let source = self.resolve()?.source;
        Ok(cairn_mtls::https::HttpsTarget::new(url, &config, ca.is_some())?.with_source(source))
    }

    /// The SDK's settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let r = self.resolve()?;
        let need = |a: Option<SocketAddr>, what: &str| {
            a.ok_or_else(|| {
                anyhow!("where is {what}? give --{what} <addr>, a profile or --devnet <dir>")
            })
        };
        let log_key = r
            .log_key
            .as_deref()
            .map(|k| crate::audit::read_key(k).map(|k| k.to_string()))
            .transpose()?;
        Ok(Settings {
            endpoints: Endpoints {
                intake: need(r.intake, "intake")?,
                evals: need(r.evals, "evals")?,
                audit: need(r.audit, "audit")?,
                source: r.source,
            },
            credentials: r.files,
            directory: r.directory,
            log_key,
            witnesses: r.witnesses,
            quorum: r.quorum,
        })
    }

    /// An SDK client acting as the member, with the directory in force: on
    /// a network founded by a genesis, replayed from it through the log
    /// (so keys rotated, added or revoked since are known). A member the
    /// file lists still works on the file when the log cannot be read.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let settings = self.settings()?;
        let who = settings.credentials.member.clone();
        let directory = Directory::load(&settings.directory)?;
        let client = settings
            .connect()
            .with_context(|| format!("loading {who}'s credentials"))?;
        let listed = directory.member(&who).is_some();
        let not_in = || {
            anyhow!(
                "member {who} is not in the network's directory ({}): send your member card to its governance members, and connect once its addition is in force",
                settings.directory.display()
            )
        };
        if directory.quorum().is_none() {
            return if listed { Ok(client) } else { Err(not_in()) };
        }
        match client.directory_history().await {
            Ok(h) if h.governed.current().directory.member(&who).is_some() => {
                Ok(client.with_history(&h))
            }
            Ok(_) => Err(not_in()),
            Err(e) if listed => {
                tracing::warn!(error = %e, "the directory in force could not be read from the audit log; using {}", settings.directory.display());
                Ok(client)
            }
            Err(e) => Err(anyhow!(
                "{}; nor could the directory in force be read from the audit log as {who} ({e})",
                not_in()
            )),
        }
    }
}

/// The files of member `m` in the dev PKI `pki`.
fn dev_files(pki: &std::path::Path, m: &str) -> anyhow::Result<CredentialFiles> {
    let files = cairn_devpki::MemberFiles::new(pki, m);
    if !files.dir.exists() {
        bail!(
            "member {m:?} has no files in {} (members: {})",
            pki.display(),
            list_members(pki)
        );
    }
    let (sign, seal) = files.key_ids()?;
    Ok(CredentialFiles {
        member: m.to_owned(),
        cert: files.dir.join(layout::TLS_CERT),
        key: files.dir.join(layout::TLS_KEY),
        signing_key: files.dir.join(layout::SIGNING_KEY),
        signing_key_id: sign,
        sealing_key: files.dir.join(layout::SEALING_KEY),
        sealing_key_id: seal,
    })
}

fn from_folder(f: ConnectFiles) -> CredentialFiles {
    CredentialFiles {
        member: f.member,
        cert: f.cert,
        key: f.key,
        signing_key: f.signing_key.0,
        signing_key_id: f.signing_key.1,
        sealing_key: f.sealing_key.0,
        sealing_key_id: f.sealing_key.1,
    }
}

/// The member's files: a member folder's or a dev PKI's (`base`), each
/// overridden by its flag, else by the profile.
fn credentials(
    b: Option<CredentialFiles>,
    member: Option<String>,
    a: &ConnectArgs,
    p: &Profile,
) -> anyhow::Result<CredentialFiles> {
    let pick = |flag: &Option<PathBuf>, prof: &Option<PathBuf>| flag.clone().or(prof.clone());
    let id = |flag: &Option<String>, prof: &Option<String>| flag.clone().or(prof.clone());
    let missing = || {
        anyhow!(
            "say who you are: --profile <name>; --member-dir <dir>; --devnet <dir> or --pki <dir> with --member <id>; or --member, --cert, --key, --signing-key(-id), --sealing-key(-id)"
        )
    };
    let or_base = |v: Option<PathBuf>, f: fn(&CredentialFiles) -> PathBuf| {
        v.or_else(|| b.as_ref().map(f)).ok_or_else(missing)
    };
    Ok(CredentialFiles {
        member: member
            .or_else(|| b.as_ref().map(|b| b.member.clone()))
            .ok_or_else(missing)?,
        cert: or_base(pick(&a.cert, &p.cert), |b| b.cert.clone())?,
        key: or_base(pick(&a.key, &p.key), |b| b.key.clone())?,
        signing_key: or_base(pick(&a.signing_key, &p.signing_key), |b| {
            b.signing_key.clone()
        })?,
        signing_key_id: id(&a.signing_key_id, &p.signing_key_id)
            .or_else(|| b.as_ref().map(|b| b.signing_key_id.clone()))
            .ok_or_else(missing)?,
        sealing_key: or_base(pick(&a.sealing_key, &p.sealing_key), |b| {
            b.sealing_key.clone()
        })?,
        sealing_key_id: id(&a.sealing_key_id, &p.sealing_key_id)
            .or_else(|| b.as_ref().map(|b| b.sealing_key_id.clone()))
            .ok_or_else(missing)?,
    })
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
