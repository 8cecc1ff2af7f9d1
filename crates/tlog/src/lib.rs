//! Transparency-log primitives for cairn's audit log, each exactly as its
//! public specification defines it so that other implementations interoperate:
//!
//! - [`hash`]: RFC 9162 leaf and node hashes;
//! - [`proof`]: RFC 9162 section 2.1 inclusion and consistency proofs —
//!   planning which subtree hashes a proof needs (O(log n) of them),
//!   assembling it, and verifying it;
//! - [`tiles`]: C2SP tlog-tiles paths, tile arithmetic and entry bundles;
//! - [`note`]: C2SP signed notes (Ed25519 signatures, key ids, verifier keys);
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies;
//! - [`cosignature`]: C2SP tlog-cosignature (timestamped Ed25519, type 0x04);
//! - [`witness_wire`]: the C2SP tlog-witness `add-checkpoint` request body;
//! - [`cose`]: RFC 9942 COSE Receipts of inclusion (RFC9162_SHA256).
//!
//! This crate must not know about gRPC, storage or cairn records: it is
//! pure functions and small value types. Every parser is a plain function
//! over bytes or text that returns an error saying what is wrong and never
//! panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
pub mod cose;
pub mod cosignature;
mod error;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tiles;
pub mod witness_wire;

pub use checkpoint::Checkpoint;
pub use error::TlogError;
pub use hash::{HASH_LEN, Hash};
