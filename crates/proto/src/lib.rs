//! Generated protobuf messages and gRPC stubs of the cairn v1 API.
//!
//! This crate owns the Rust form of `proto/` and nothing else: it must not
//! contain logic (beyond registering its descriptors for server
//! reflection). The `.proto` files are the API's source of truth and its
//! documentation; read them there.
//!
//! The one exception to "no logic" is [`codec`], the wire codec the
//! generated stubs use: prost's, except that a malformed message is the
//! caller's `INVALID_ARGUMENT` (DESIGN.md section 5), not `INTERNAL`.
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

/// The gRPC name of standard health checking, served on every port.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Adds standard gRPC server reflection (both `grpc.reflection.v1` and
/// `v1alpha`, so that stock clients of either generation work) to `routes`,
/// listing exactly the services in `served` (plus reflection itself): a
/// port must not advertise a service it does not serve. Descriptors of
/// every cairn file are registered so that message types resolve.
pub fn with_reflection(
    routes: tonic::service::Routes,
    served: &[&str],
) -> Result<tonic::service::Routes, tonic_reflection::server::Error> {
    let builder = || {
        let b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        served.iter().fold(b, |b, name| b.with_service_name(*name))
    };
    Ok(routes
        .add_service(builder().build_v1()?)
        .add_service(builder().build_v1alpha()?))
}

pub mod codec;

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
