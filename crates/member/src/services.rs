//! `cairn network services`: the identities of the network's services,
//! made by the member that runs them, in a folder of their own:
//!
//! ```text
//! <dir>/ca.pem                      the services CA (goes into the genesis, `--service`)
//! <dir>/ca-offline/ca.key.pem       its key: move this folder offline
//! <dir>/<service>/tls.pem, tls.key.pem   spiffe://<td>/service/<service>, client and server auth
//! <dir>/audit/log.key.pem           the audit log's Ed25519 checkpoint key
//! ```
//!
//! Each service's folder holds only that service's keys, so a host or
//! container is given exactly one folder (and the genesis). Private files
//! are mode 0600 in 0700 folders; nothing is overwritten.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cairn_identity::SigningKey;

use crate::MemberError;
use crate::ca::{MemberCa, ServiceRequest};
use crate::layout::{CA_CERT, CA_KEY, CA_OFFLINE, private_dir, write_new};

/// The services a network runs.
pub const SERVICES: [&str; 3] = ["audit", "intake", "evals"];
/// The audit log's checkpoint key, in the audit service's folder.
pub const LOG_KEY: &str = "log.key.pem";
/// A service's certificate, in its folder.
pub const TLS_CERT: &str = "tls.pem";
/// Its key.
pub const TLS_KEY: &str = "tls.key.pem";

/// What to make.
#[derive(Clone, Debug)]
pub struct NewServices {
    /// Who runs them (the CA's organisation name).
    pub operator: String,
    /// The network's trust domain.
    pub trust_domain: String,
    /// The DNS names the services are reached by.
    pub dns: Vec<String>,
    /// The IP addresses they are reached at.
    pub ips: Vec<IpAddr>,
    /// The certificates' lifetime in days.
    pub days: i64,
}

/// What was made.
#[derive(Clone, Debug)]
pub struct ServicesMade {
    /// The services CA certificate file.
    pub ca_cert: PathBuf,
    /// Each service's folder, in [`SERVICES`] order.
    pub folders: Vec<(String, PathBuf)>,
    /// The log key file.
    pub log_key: PathBuf,
}

/// Makes the services CA, one certificate per service and the log key
/// in `dir`, which must not hold a services CA yet.
pub fn init_services(dir: &Path, new: &NewServices) -> Result<ServicesMade, MemberError> {
    let ca_cert = dir.join(CA_CERT);
    if ca_cert.exists() {
        return Err(MemberError::Exists { path: ca_cert });
    }
    // Issue everything before writing anything: a bad name refuses all.
    let (ca, ca_key) = MemberCa::create_for_services(&new.operator)?;
    let mut issued = Vec::new();
    for service in SERVICES {
        let request = ServiceRequest {
            trust_domain: new.trust_domain.clone(),
            service: service.to_owned(),
            days: new.days,
            dns: new.dns.clone(),
            ips: new.ips.clone(),
        };
        issued.push((service, ca.issue_service(&request)?));
    }
    let (_, log_pem) = SigningKey::generate("log")?;

    private_dir(dir)?;
    private_dir(&dir.join(CA_OFFLINE))?;
    write_new(&dir.join(CA_OFFLINE).join(CA_KEY), ca_key.as_bytes(), true)?;
    write_new(&ca_cert, ca.cert_pem().as_bytes(), false)?;
    let mut folders = Vec::new();
    for (service, leaf) in &issued {
        let folder = dir.join(service);
        private_dir(&folder)?;
        if let Some(key) = &leaf.key_pem {
            write_new(&folder.join(TLS_KEY), key.as_bytes(), true)?;
        }
        write_new(&folder.join(TLS_CERT), leaf.cert_pem.as_bytes(), false)?;
        folders.push(((*service).to_owned(), folder));
    }
    let log_key = dir.join("audit").join(LOG_KEY);
    write_new(&log_key, log_pem.as_bytes(), true)?;
    Ok(ServicesMade {
        ca_cert,
        folders,
        log_key,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn new() -> NewServices {
        NewServices {
            operator: "INESIA".into(),
            trust_domain: "net.example".into(),
            dns: vec!["services.net.example".into()],
            ips: vec!["127.0.0.2".parse().unwrap()],
            days: 90,
        }
    }

    #[test]
    fn each_service_gets_its_own_identity_and_only_audit_the_log_key() {
        let tmp = tempfile::tempdir().unwrap();
        let made = init_services(tmp.path(), &new()).unwrap();
        let ca = std::fs::read(&made.ca_cert).unwrap();
        let ca = cairn_identity::parse_certificates(&ca).unwrap();
        for (service, folder) in &made.folders {
            let pem = std::fs::read(folder.join(TLS_CERT)).unwrap();
            let certs = cairn_identity::parse_certificates(&pem).unwrap();
            let (_, x509) = x509_parser::parse_x509_certificate(&certs[0]).unwrap();
            let uris: Vec<String> = x509
                .subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert!(
                uris.iter()
                    .any(|u| u.contains(&format!("spiffe://net.example/service/{service}"))),
                "{uris:?}"
            );
            assert!(uris.iter().any(|u| u.contains("7f:00:00:02")), "{uris:?}");
            assert_eq!(
                x509.issuer(),
                x509_parser::parse_x509_certificate(&ca[0])
                    .unwrap()
                    .1
                    .subject()
            );
            assert_eq!(folder.join(LOG_KEY).exists(), service == "audit");
        }
        // Never overwritten.
        assert!(matches!(
            init_services(tmp.path(), &new()),
            Err(MemberError::Exists { .. })
        ));
    }

    #[test]
    fn a_bad_trust_domain_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ops");
        let mut bad = new();
        bad.trust_domain = "Not A Domain".into();
        assert!(init_services(&dir, &bad).is_err());
        assert!(!dir.exists());
    }
}
