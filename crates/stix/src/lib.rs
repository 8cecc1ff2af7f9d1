//! cairn records as STIX 2.1 objects, and STIX 2.1 incidents as cairn
//! content — the mapping behind `cairn incident export|import --stix` and
//! the member-side TAXII gateway (`cairn-taxii`). The mapping is
//! documented, object by object, in `crates/stix/README.md`; the JSON
//! schemas of cairn's two extensions are in `crates/stix/schemas/`.
//!
//! - [`vocab`]: deterministic UUIDv5 identifiers derived from record ids,
//!   the official TLP 2.0 marking definitions, cairn's extension
//!   definitions, STIX timestamps;
//! - [`export`]: an opened record (and the objects already made from the
//!   records it names) to STIX objects — incidents with the Incident Core
//!   Extension and cairn's AI extension, a correction as a new version of
//!   the same object, a retraction as a revoked version, follow-up reports
//!   and mitigations as relationships, sightings as `sighting` objects,
//!   evaluation results as `x-cairn-evaluation-result` objects, members
//!   as `identity` objects;
//! - [`import`]: a STIX incident (with cairn's AI extension) to the
//!   incident content and the [`Share`](cairn_client::Share) its TLP
//!   marking and recipients name, refusing with the property at fault.
//!
//! This crate works on plaintext the member has opened; it must not talk
//! to any service, and must never be linked into one (the services never
//! hold plaintext of sealed records).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod export;
pub mod import;
pub mod vocab;

pub use export::{Exported, Lookup, objects_of};
pub use import::{Imported, incident_from_object};

/// Why a STIX object could not be mapped. Every refusal names the
/// property at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StixError {
    /// A property is missing or malformed.
    #[error("STIX property {property}: {detail}")]
    Property {
        /// The property, as a path (`extensions.<id>.recipients`).
        property: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The object is not of a type cairn takes.
    #[error("STIX object of type {ty:?}: only incident objects can be shared through cairn")]
    NotAnIncident {
        /// The object's `type`.
        ty: String,
    },
    /// The markings do not name one TLP 2.0 level cairn can enforce.
    #[error("markings: {detail}")]
    Marking {
        /// What is wrong.
        detail: String,
    },
    /// The recipients do not fit the label.
    #[error("recipients: {detail}")]
    Recipients {
        /// What is wrong.
        detail: String,
    },
    /// The incident content is not valid cairn content.
    #[error("incident content: {detail}")]
    Content {
        /// The validation failure.
        detail: String,
    },
    /// A record without a sharing label.
    #[error("the record has no sharing label")]
    NoLabel,
}

impl StixError {
    pub(crate) fn property(property: &str, detail: impl Into<String>) -> Self {
        StixError::Property {
            property: property.to_owned(),
            detail: detail.into(),
        }
    }
}
