use std::path::PathBuf;

/// Everything that can go wrong while reading identities, keys, directories
/// and certificates, or while setting up TLS.
///
/// Each variant names the thing (a file, a field path, a certificate) and
/// what is wrong with it, so that a person can fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key (file or inline value) is malformed.
    #[error("{what}: {problem}")]
    Key {
        /// Which key, e.g. a file name or `members[1].signing_keys[0].public_key`.
        what: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
    /// The directory document is malformed or inconsistent.
    #[error("{source_name}: {field}: {detail}")]
    Directory {
        /// The file (or other source) the directory came from.
        source_name: String,
        /// The field path, e.g. `members[2].jurisdiction`; `document` for
        /// syntax errors.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate is malformed or does not carry what cairn needs.
    #[error("certificate {what}: {detail}")]
    Certificate {
        /// Which certificate.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A URI SAN is not a valid cairn identity.
    #[error("identity {uri:?}: {detail}")]
    Identity {
        /// The URI as found.
        uri: String,
        /// What is wrong.
        detail: &'static str,
    },
    /// rustls refused a configuration.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Connecting to a service failed.
    #[error("connecting to {addr}: {detail}")]
    Connect {
        /// The address.
        addr: String,
        /// What went wrong.
        detail: String,
    },
    /// Certificate generation (the dev PKI's) failed.
    #[error("certificate generation: {detail}")]
    CertificateGeneration {
        /// The generator's complaint.
        detail: String,
    },
}

/// What is wrong with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The bytes are not PEM, or hold no block with the expected label.
    #[error("no PEM block labelled {0:?}")]
    NoPemBlock(&'static str),
    /// The DER is not a PKCS#8 PrivateKeyInfo.
    #[error("not a PKCS#8 private key")]
    NotPkcs8,
    /// The PKCS#8 key is of another algorithm.
    #[error("PKCS#8 key of algorithm {found}, expected {expected}")]
    WrongAlgorithm {
        /// The expected algorithm.
        expected: &'static str,
        /// The OID found.
        found: String,
    },
    /// The key material has the wrong length.
    #[error("key is {found} bytes, expected {expected}")]
    WrongLength {
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// ring refused the key (inconsistent public part, bad encoding).
    #[error("rejected by the crypto library: {0}")]
    Rejected(String),
    /// Base64 decoding failed.
    #[error("not valid base64")]
    Base64,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
}

impl Error {
    /// A failed file operation on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed key named `what`.
    pub fn key(what: impl Into<String>, problem: KeyProblem) -> Self {
        Error::Key {
            what: what.into(),
            problem,
        }
    }
}
