//! Who is who in a cairn network.
//!
//! This crate owns the **directory** (members, their jurisdictions, roles,
//! certificate authorities, signing keys with validity windows and sealing
//! keys; the network's services and their rights), the network's signed
//! **genesis** (its first directory, the quorum rule, the founders'
//! signatures; [`genesis`]), **key files** (Ed25519
//! signing keys and X25519 sealing keys as PKCS#8 PEM), the **SPIFFE-style
//! identities** carried in certificates, and reading certificates from PEM.
//! Mutual TLS over these identities is `cairn-mtls`; the development PKI
//! that generates them is `cairn-devpki` (services link neither rcgen nor
//! that crate).
//!
//! It must not know about records, logs or storage, nor open connections:
//! it answers "who is this peer and which keys and rights does it have",
//! nothing more. [`Error`] is also the error of `cairn-mtls` and
//! `cairn-devpki`, whose failures are about these same files and names.
//!
//! Every parser here is a plain function over bytes that names what is wrong
//! and never panics, ready for fuzzing: [`keys::SigningKey::from_pem`],
//! [`keys::SealingKey::from_pem`], [`directory::Directory::parse`],
//! [`pem::parse_certificates`], [`spiffe::PeerIdentity::parse_uri`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod directory;
mod error;
pub mod genesis;
pub mod keys;
pub mod pem;
pub mod spiffe;

pub use directory::{Directory, DirectoryHandle, Member, Role, ServiceEntry, ServiceRight};
pub use error::{Error, KeyProblem};
pub use keys::{SealingKey, SealingPublicKey, SigningKey, VerifyingKey};
pub use pem::parse_certificates;
pub use spiffe::{MemberId, PeerIdentity};
