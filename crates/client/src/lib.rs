//! The cairn SDK: what a member's programs use to share and read AI-risk
//! records.
//!
//! - [`Credentials`]: a member's TLS identity, signing key and sealing key
//!   from files ([`CredentialFiles`]); [`Settings`]: credentials, directory,
//!   service addresses and log and witness keys in one struct, as a CLI
//!   profile holds them;
//! - [`Client`]: typed gRPC clients of intake, evals and audit over mutual
//!   TLS; [`Client::prepare_incident`] and [`Client::prepare_result`]
//!   validate content *before* sealing (the services cannot read sealed
//!   bodies), disclose the cleartext index fields, seal to the recipients
//!   the [`Share`] implies and sign; submit, get, list, watch; supersede,
//!   retract and erase (`Client::prepare_retraction`,
//!   `Client::prepare_erasure`) for both kinds;
//! - [`Client::open`]: verify and open what comes back — the envelope's
//!   signature, the body's commitment, the content against the disclosed
//!   index, and the audit receipt (checkpoint signature and inclusion
//!   proof);
//! - [`json`]: content from the protobuf JSON mapping;
//! - [`thread`]: an incident thread's reports and its Art. 73 clock;
//! - [`alerts`]: subscriptions matched against incidents as they arrive.
//!
//! This crate must not reach into the services; it speaks only the v1 API.
//!
//! Building and opening a record needs no network:
//!
//! ```
//! use cairn_client::{Share, prepare};
//! use cairn_devpki::{DevPki, DevPkiSpec};
//!
//! let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
//! let directory = pki.directory().unwrap();
//! let uk = pki.member("uk-aisi").unwrap();
//! let incident = cairn_client::json::incident_from_json(include_str!("../../../examples/incident.json")).unwrap();
//! let prepared = prepare::incident(&directory, "uk-aisi", &uk.signing_key, &incident, &Share::Amber(vec!["jp-aisi".into()])).unwrap();
//! assert!(prepared.reporting_deadline.is_some());
//! // jp-aisi opens it (and so would uk-aisi, which keeps access to its own record).
//! let jp = pki.member("jp-aisi").unwrap();
//! let opened = cairn_client::open_record(&directory, &prepared.record, "jp-aisi", Some(&jp.sealing_key)).unwrap();
//! assert_eq!(opened.incident().unwrap().title, incident.title);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alerts;
pub mod assess;
pub mod audit;
mod client;
mod error;
pub mod json;
pub mod prepare;
pub mod thread;
pub mod verify;

pub use client::{
    ChangeSubmitted, Client, CredentialFiles, Credentials, DirectoryHistory, Endpoints, Erased,
    Related, Settings, Submitted,
};
pub use error::{ClientError, ReceiptProblem};
pub use prepare::{Prepared, Share};
pub use verify::{Opened, open_record, verify_receipt};
