//! The Python virtualenv of the interop tests: stock clients and libraries
//! we did not write — grpcio (with grpcio-tools, -health-checking and
//! -reflection), cryptography, pycose (COSE, RFC 9052), jsonschema, and
//! OASIS's stix2-validator and taxii2-client.
//! Created under the target directory on first use (about a minute, from
//! PyPI); reused while its package list is unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the virtualenv holds.
pub const PACKAGES: &[&str] = &[
    "grpcio==1.76.0",
    "grpcio-tools==1.76.0",
    "grpcio-health-checking==1.76.0",
    "grpcio-reflection==1.76.0",
    "cryptography",
    "pycose==1.1.0",
    // cbor2 6 decodes arrays as tuples, which pycose 1.1 does not expect.
    "cbor2==5.6.5",
    "jsonschema==4.23.0",
    // OASIS's STIX 2.1 validator and TAXII 2.1 client.
    "stix2-validator==3.3.2",
    "taxii2-client==2.3.0",
];

/// The python of the virtualenv in `target_tmp` (a test's
/// `CARGO_TARGET_TMPDIR`), creating or updating the virtualenv first.
///
/// # Panics
///
/// When python3 or PyPI is not there: the interop tests cannot run.
#[allow(clippy::unwrap_used)]
pub fn venv(target_tmp: &Path) -> PathBuf {
    let dir = target_tmp.join("python-grpcio-venv");
    let python = dir.join("bin/python");
    let marker = dir.join(".cairn-ready");
    let wanted = PACKAGES.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return python;
    }
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 is needed for the interop tests");
        assert!(status.success(), "creating the virtualenv failed");
    }
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
    std::fs::write(&marker, wanted).unwrap();
    python
}
