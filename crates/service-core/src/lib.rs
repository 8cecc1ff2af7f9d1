//! What cairn-intake and cairn-evals share, built once: the submission
//! chain (identity and role → signature by that member → header → label
//! rules → idempotency → durable store → audit append → receipt), label
//! enforcement on every read, the audit outbox, paging and watching, and
//! the lifecycle (supersede, retract, erase).
//!
//! A service supplies a [`ServicePolicy`] (which kinds it accepts and which
//! role each needs) and its gRPC handlers; [`serve::start`] runs it with
//! mTLS, health, reflection and a graceful stop. This crate must not know
//! one service's schema beyond what `cairn-record` validates. Errors map to
//! `tonic::Status` in one table, [`error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binary;
pub mod core;
pub mod error;
mod group;
mod outbox;
pub mod serve;
mod stored;
mod tokens;

pub use crate::core::{RecordCore, RecordCoreConfig, ServicePolicy, SubmitKind, SubmitOutcome};
pub use error::ServiceError;
