//! The audit log engine: an RFC 9162 Merkle log kept as C2SP tiles — full
//! tiles and entry bundles as immutable files (or rows of a database), the
//! right edge and the leaf index in a [`cairn_store::Store`] — grown by a pipeline with named stages, and the
//! witness that cosigns other logs.
//!
//! - [`Log`]: appends go through **sequence** (assign indexes to a batch),
//!   **integrate** (extend the tree's right edge, complete tiles, compute the
//!   root) and **publish** (sign a C2SP checkpoint), then one atomic,
//!   durable store commit for the whole batch — appends arriving together
//!   share one fsync and one log signature — and every leaf gets its receipt
//!   (checkpoint plus inclusion proof) at once. Proofs read O(log n) tiles.
//! - [`witness::Witness`]: per-origin state of the last cosigned checkpoint,
//!   advanced only with a valid consistency proof, atomically.
//!
//! Modules follow the pipeline: `config`, `cache` (full tiles in memory),
//! `files` and `full` (where full tiles and bundles live),
//! `recovery` (the head and right edge read back at open), `sequencer` (the
//! batching task), `stages` (sequence, integrate, publish, commit,
//! receipts), `reads` (proofs, entries, tiles), `engine` (the handle).
//!
//! This crate must not know gRPC, TLS or what a leaf means: leaves are
//! bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
mod cache;
mod config;
mod engine;
mod error;
mod files;
mod full;
mod layout;
pub mod lease;
mod nodes;
mod reads;
mod recovery;
mod sequencer;
mod stages;
pub mod witness;

pub use config::{BatchObserver, LogConfig};
pub use engine::{Log, Receipt, Snapshot};
pub use error::LogError;
