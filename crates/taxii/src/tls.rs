//! The gateway's HTTPS identity for the local tools, and private files.
//!
//! Without `--tls-cert`, the gateway makes a local CA on first start,
//! issues itself a server certificate for `localhost`, 127.0.0.1, ::1 and
//! the address it listens on, keeps the leaf and writes the CA
//! certificate to `state/tls/ca.pem` for the tools to trust; the CA's key
//! is dropped at once, so nothing can issue another certificate under it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_devpki::{DevCa, LeafSpec};
use cairn_mtls::TlsIdentity;
use rustls::ServerConfig;

use crate::TaxiiError;

fn io(path: &Path, e: std::io::Error) -> TaxiiError {
    TaxiiError::Io {
        path: path.to_owned(),
        source: e,
    }
}

/// Creates `dir` (and parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<(), TaxiiError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    set_mode(dir, 0o700)
}

/// Makes `path` readable by its owner only.
pub fn restrict(path: &Path) -> Result<(), TaxiiError> {
    set_mode(path, 0o600)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), TaxiiError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))
}

/// Writes `bytes` to `path`, mode 0600 when `private`.
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TaxiiError> {
    std::fs::write(path, bytes).map_err(|e| io(path, e))?;
    if private {
        restrict(path)?;
    }
    Ok(())
}

/// Where the HTTPS identity comes from.
#[derive(Clone, Debug)]
pub enum ServerIdentity {
    /// Made (once) under the state directory.
    Local,
    /// Certificate chain and key files (PEM).
    Files {
        /// Chain.
        cert: PathBuf,
        /// Key.
        key: PathBuf,
    },
}

/// The TLS 1.3 server configuration for `listen`, and the CA file the
/// tools should trust when the identity is local.
pub fn server_config(
    state: &Path,
    identity: &ServerIdentity,
    listen: IpAddr,
) -> Result<(Arc<ServerConfig>, Option<PathBuf>), TaxiiError> {
    let (tls, ca) = match identity {
        ServerIdentity::Files { cert, key } => (TlsIdentity::load(cert, key)?, None),
        ServerIdentity::Local => {
            let (tls, ca) = local_identity(state, listen)?;
            (tls, Some(ca))
        }
    };
    let mut config = ServerConfig::builder_with_provider(cairn_mtls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TaxiiError::Tls {
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(|e| TaxiiError::Tls {
            detail: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca))
}

fn local_identity(state: &Path, listen: IpAddr) -> Result<(TlsIdentity, PathBuf), TaxiiError> {
    let dir = state.join("tls");
    let (cert, key, ca) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    if cert.exists() && key.exists() && ca.exists() {
        return Ok((TlsIdentity::load(&cert, &key)?, ca));
    }
    private_dir(&dir)?;
    let local = DevCa::new("cairn TAXII gateway local CA")?;
    let mut spec = LeafSpec::member("localhost", "taxii-gateway");
    spec.common_name = "cairn TAXII gateway".into();
    spec.uris.clear();
    spec.client = false;
    spec.server = true;
    spec.dns_names = vec!["localhost".into()];
    spec.ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if !spec.ips.contains(&listen) && !listen.is_unspecified() {
        spec.ips.push(listen);
    }
    let leaf = local.issue(&spec)?;
    write_file(&ca, local.cert_pem().as_bytes(), false)?;
    write_file(&key, leaf.key_pem.as_bytes(), true)?;
    write_file(&cert, leaf.cert_pem.as_bytes(), false)?;
    Ok((leaf.tls_identity()?, ca))
}
