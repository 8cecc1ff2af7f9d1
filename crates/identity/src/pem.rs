//! PEM (RFC 7468): encoding for the files keys and the dev PKI write, and
//! reading certificate blocks. Decoding goes through `rustls-pki-types`.

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::error::Error;

/// Encodes `der` as a PEM block with `label`, 64 characters per line.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Parses every `CERTIFICATE` block of a PEM document.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Certificate {
            what: "PEM".into(),
            detail: format!("malformed PEM ({e})"),
        })?;
    if certs.is_empty() {
        return Err(Error::Certificate {
            what: "PEM".into(),
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}
