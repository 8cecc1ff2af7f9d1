//! Generated protobuf messages and gRPC stubs of the cairn v1 API.
//!
//! This crate owns the Rust form of `proto/` and nothing else: it must not
//! contain logic. The `.proto` files are the API's source of truth and its
//! documentation; read them there.
//!
//! Packages map to modules: `cairn.common.v1` is [`common::v1`] and so on.
//! [`FILE_DESCRIPTOR_SET`] holds the compiled descriptors for gRPC server
//! reflection.
#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// The encoded `google.protobuf.FileDescriptorSet` of every cairn proto file,
/// for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cairn_descriptor.bin"));

/// `cairn.common.v1`: identifiers, records, receipts, log leaves.
pub mod common {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cairn.common.v1.rs"));
    }
}

/// `cairn.intake.v1`: the incident-intake service and incident content.
pub mod intake {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cairn.intake.v1.rs"));
    }
}

/// `cairn.evals.v1`: the evaluation-results service and its content.
pub mod evals {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cairn.evals.v1.rs"));
    }
}

/// `cairn.audit.v1`: the audit log and witness services.
pub mod audit {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cairn.audit.v1.rs"));
    }
}
