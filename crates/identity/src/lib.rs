//! Who is who in a cairn network, and how they prove it.
//!
//! This crate owns the **directory** (members, their jurisdictions, roles,
//! certificate authorities, signing keys with validity windows and sealing
//! keys; the network's services and their rights), **key files** (Ed25519
//! signing keys and X25519 sealing keys as PKCS#8 PEM), the **SPIFFE-style
//! identities** carried in certificates, the **mutual-TLS configuration**
//! (TLS 1.3 only, ring provider only, client certificates required and
//! checked against the CA of the member the certificate names) and a
//! **development PKI** generator.
//!
//! It must not know about records, logs or storage: it answers "who is this
//! peer and which keys and rights does it have", nothing more.
//!
//! Every parser here is a plain function over bytes that names what is wrong
//! and never panics, ready for fuzzing: [`keys::SigningKey::from_pem`],
//! [`keys::SealingKey::from_pem`], [`directory::Directory::parse`],
//! [`tls::parse_certificates`], [`spiffe::PeerIdentity::parse_uri`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod devpki;
pub mod directory;
mod error;
pub mod keys;
mod pem;
pub mod spiffe;
pub mod tls;

pub use directory::{Directory, DirectoryHandle, Member, Role, ServiceEntry, ServiceRight};
pub use error::{Error, KeyProblem};
pub use keys::{SealingKey, SealingPublicKey, SigningKey, VerifyingKey};
pub use spiffe::{MemberId, PeerIdentity};
