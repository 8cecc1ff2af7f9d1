//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so building
//! never needs a `protoc` on the machine.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "cairn/common/v1/common.proto",
    "cairn/intake/v1/intake.proto",
    "cairn/evals/v1/evals.proto",
    "cairn/audit/v1/audit.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(FILES, [&root])?;

    // The descriptor set is kept for gRPC server reflection.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("cairn_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        // Malformed requests are INVALID_ARGUMENT (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
