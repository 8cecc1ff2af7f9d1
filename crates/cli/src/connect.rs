//! How the CLI finds its identity and the services.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cairn_identity::devpki::layout;
use cairn_identity::tls::{self, TlsIdentity};
use cairn_identity::{Directory, DirectoryHandle};
use clap::Args;

/// The member identity and directory to connect with.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// A dev PKI directory (from `cairn dev pki`); with --member, fills in
    /// --directory, --cert and --key.
    #[arg(long, env = "CAIRN_PKI", global = true)]
    pub pki: Option<PathBuf>,
    /// The member to act as (with --pki).
    #[arg(long, env = "CAIRN_MEMBER", global = true)]
    pub member: Option<String>,
    /// The network directory file.
    #[arg(long, env = "CAIRN_DIRECTORY", global = true)]
    pub directory: Option<PathBuf>,
    /// TLS client certificate (PEM).
    #[arg(long, env = "CAIRN_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// TLS client key (PEM).
    #[arg(long, env = "CAIRN_KEY", global = true)]
    pub key: Option<PathBuf>,
}

impl ConnectArgs {
    fn paths(&self) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
        if let (Some(pki), Some(member)) = (&self.pki, &self.member) {
            let m = pki.join(layout::MEMBERS).join(member);
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
                "say who you are: --pki <dir> --member <id>, or --directory, --cert and --key"
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
}
