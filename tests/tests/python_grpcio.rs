//! Interoperability with a client we did not write: Python grpcio (and
//! `cryptography`, `grpc_tools`) talking to cairn-intake over mTLS, signing
//! a record and verifying its receipt on its own. See
//! `tests/python/grpcio_client.py`.
//!
//! The first run creates a virtualenv under the target directory and
//! installs grpcio, grpcio-tools, grpcio-health-checking, grpcio-reflection
//! and cryptography from PyPI (about a minute); later runs reuse it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cairn_tests::Net;

const PACKAGES: &[&str] = &[
    "grpcio==1.76.0",
    "grpcio-tools==1.76.0",
    "grpcio-health-checking==1.76.0",
    "grpcio-reflection==1.76.0",
    "cryptography",
];

fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-grpcio-venv");
    let python = dir.join("bin/python");
    let marker = dir.join(".cairn-ready");
    if marker.exists() {
        return python;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 is needed for the grpcio interop test");
    assert!(status.success(), "creating the virtualenv failed");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES)
        .status()
        .unwrap();
    assert!(status.success(), "pip install of {PACKAGES:?} failed");
    std::fs::write(&marker, PACKAGES.join("\n")).unwrap();
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_submits_and_verifies() {
    let python = tokio::task::spawn_blocking(venv).await.unwrap();
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
