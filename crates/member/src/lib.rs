//! A member's own credentials, outside any devnet: its certificate
//! authority (key kept apart, to be moved offline), certificates for its
//! programs and people (`spiffe://<trust-domain>/member/<id>/<name>`,
//! client-auth, 90 days by default), its Ed25519 signing and X25519
//! sealing keys, and the public member card it sends to the network's
//! governance members.
//!
//! - [`layout`]: the folder `cairn member init` writes, and reading it;
//! - [`ca`]: the member CA, issuing from it directly or for a CSR (a CA
//!   held on an offline machine or in an HSM), and making CSRs;
//! - [`card`]: the member card, checked as the directory checks a member;
//! - [`init`]: making a member, renewing a certificate;
//! - [`rotate`]: rotating the signing key;
//! - [`services`]: the network's service identities, for the member
//!   that runs the services.
//!
//! This crate writes files only under the folder it is given and never
//! overwrites a key; it knows nothing of services or records.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod ca;
pub mod card;
pub mod init;
pub mod layout;
pub mod rotate;
pub mod services;

pub use ca::{Issued, LeafRequest, MemberCa, ServiceRequest};
pub use card::MemberCard;
pub use init::{NewMember, init, renew};
pub use layout::{ConnectFiles, MemberDir, MemberFile};
pub use rotate::{Rotated, rotate_key};
pub use services::{NewServices, ServicesMade, init_services};

/// Why a member's credentials could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file would be overwritten.
    #[error("{} exists: cairn never overwrites a member's files", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A file in the folder is malformed.
    #[error("{}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The CA key is not in the folder.
    #[error("the CA key is not here ({}): make a key and CSR with `cairn member csr` and issue it where the CA key is (`cairn member issue`)", path.display())]
    CaOffline {
        /// Where it would be.
        path: PathBuf,
    },
    /// What was asked for is not possible.
    #[error("{detail}")]
    Request {
        /// Why.
        detail: String,
    },
    /// A certificate could not be made or read.
    #[error("certificate: {detail}")]
    Certificate {
        /// Why.
        detail: String,
    },
    /// A member card is malformed.
    #[error("member card {source_name}: {detail}")]
    Card {
        /// Where the card came from.
        source_name: String,
        /// The field at fault and why.
        detail: String,
    },
    /// Keys or certificates.
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
}
