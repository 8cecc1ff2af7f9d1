//! The cairn record format, and everything that can be done to a record
//! without I/O: build it, seal it for its recipients, sign it, verify it,
//! open it.
//!
//! A record is a cleartext **header** (signed) and a **body** (sealed for
//! every label but TLP:CLEAR). The header travels as the payload of a
//! **DSSE envelope**; both the envelope and the body travel as their exact
//! encodings (`cairn.common.v1.SignedRecord`), so verification never
//! re-serializes:
//!
//! - [`dsse`]: PAE, Ed25519 signing and verification (ring);
//! - [`commitment`]: the salted commitment to the plaintext content;
//! - [`seal`]: the content AEAD (AES-256-GCM, ring) and the per-recipient
//!   HPKE key wrapping (RFC 9180 through the `hpke` crate);
//! - [`record`]: building, verifying and opening whole records;
//! - [`header`]: structural checks of a header;
//! - [`leaf`]: parsing and checking an audit log leaf;
//! - [`governance`]: the directory rebuilt from a genesis and the
//!   `directory_change` records after it (proposals, approvals, quorum).
//!
//! This crate must not do I/O, talk to services or know storage; its
//! parsing entry points ([`record::decode_envelope`],
//! [`record::decode_header`], [`record::decode_body`],
//! [`record::verify`]) are plain functions over bytes that return errors
//! naming the field, never panic, and are ready for fuzzing.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod commitment;
pub mod content;
pub mod dsse;
mod error;
pub mod governance;
pub mod header;
pub mod leaf;
pub mod record;
pub mod seal;

pub use error::RecordError;
pub use record::{Recipient, RecordDraft, VerifiedRecord, build, verify};

/// The protobuf types of records, re-exported for convenience.
pub use cairn_proto::common::v1 as pb;
