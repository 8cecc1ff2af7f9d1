//! Interoperability with a client we did not write: Python grpcio (and
//! `cryptography`, `grpc_tools`) talking to cairn-intake over mTLS, signing
//! a record and verifying its receipt on its own. See
//! `tests/python/grpcio_client.py`.
//!
//! The first run creates a virtualenv under the target directory (see
//! `cairn_tests::python`); later runs reuse it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use cairn_tests::Net;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_submits_and_verifies() {
    let python = tokio::task::spawn_blocking(|| {
        cairn_tests::python::venv(Path::new(env!("CARGO_TARGET_TMPDIR")))
    })
    .await
    .unwrap();
    let net = Net::start(Duration::from_secs(10)).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/python/grpcio_client.py"))
        .arg("--proto")
        .arg(root.join("proto"))
        .arg("--pki")
        .arg(&net.pki)
        .args([
            "--member",
            "jp-aisi",
            "--intake",
            &net.intake.addr.to_string(),
            "--log-key",
            &net.log_key.to_string(),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    for needle in [
        "ok health: SERVING",
        "ok reflection lists",
        "ok submitted",
        "ok receipt",
        "ok listed and fetched back",
        "ok erased by an order signed in Python",
        "ok malformed id refused: INVALID_ARGUMENT",
    ] {
        assert!(
            stdout.contains(needle),
            "missing {needle:?} in:\n{stdout}\n{stderr}"
        );
    }
}
