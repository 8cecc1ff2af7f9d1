//! What cairn-intake and cairn-evals share, built once, one module per job:
//!
//! - [`policy`]: what a service accepts and which roles each kind needs,
//!   and the [`ServiceSchema`] through which the service decodes its own
//!   messages (the core never decodes an incident or a result);
//! - [`labels`]: the label and recipient rules, as pure functions;
//! - `limiter`: the per-member rate limit;
//! - `frontier`: the committed frontier readers never look past;
//! - `leaves`: the audit-log leaves of records and erasures;
//! - `filter`: list and watch filters;
//! - `submit`, `reads`, `erase`: the operations, on [`RecordCore`];
//!   `thread`: what a follow-up report's thread must be; `ack`: what an
//!   acknowledgement's report and audience must be; `about`: sightings and
//!   mitigations seen only by those who may see their incident;
//! - `core`: the core's state and the one commit-and-retry path
//!   every change takes; `group` (numbered group commits), `outbox` (the
//!   audit append), `stored` (the store layout), `tokens` (page tokens);
//! - [`error`]: the error contract, one table to gRPC codes;
//! - [`serve`], [`binary`]: running a service and its process edge.
//!
//! This crate must not know one service's schema beyond what
//! `cairn-record` validates, must not hold plaintext of sealed bodies, and
//! must not build a `tonic::Status` anywhere but [`error`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod about;
mod ack;
pub mod binary;
pub mod bulk;
mod core;
mod erase;
pub mod error;
mod filter;
pub mod follow;
mod frontier;
mod group;
pub mod labels;
mod leaves;
mod limiter;
mod outbox;
pub mod policy;
mod reads;
pub mod serve;
mod stored;
mod submit;
#[cfg(test)]
mod tests;
mod thread;
mod tokens;

pub use crate::core::{RecordCore, RecordCoreConfig};
pub use error::ServiceError;
pub use policy::{ServicePolicy, ServiceSchema, SubmitKind};
pub use reads::WatchReceiver;
pub use submit::SubmitOutcome;
pub use tokens::Tokens;
