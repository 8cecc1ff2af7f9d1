//! The `cairn` binary as a user runs it.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn dev_pki_creates_checks_and_reuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let out = cairn()
        .args(["dev", "pki", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok  pki: created"), "{text}");
    assert!(text.contains("ok  mtls: 9 TLS 1.3 handshakes"), "{text}");
    assert!(dir.join("members/uk-aisi/signing.key.pem").exists());

    let out = cairn()
        .args(["--json", "dev", "pki", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(
        v["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("reusing")
    );
}

#[test]
fn a_broken_directory_is_reported_with_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    assert!(
        cairn()
            .args(["dev", "pki", "--dir"])
            .arg(&dir)
            .output()
            .unwrap()
            .status
            .success()
    );
    let path = dir.join("directory.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "jurisdiction = \"JP\"",
        "jurisdiction = \"Japan\"",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let out = cairn()
        .args(["dev", "pki", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("directory.toml: members[1].jurisdiction: \"Japan\" is not an ISO 3166-1"),
        "{err}"
    );
}

#[test]
fn keys_generate_writes_pkcs8_files_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cairn()
        .args([
            "--json",
            "keys",
            "generate",
            "--member",
            "fr-inesia",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signing_key"]["id"], "fr-inesia-sign-1");
    let pem = std::fs::read(tmp.path().join("signing.key.pem")).unwrap();
    cairn_identity::SigningKey::from_pem("x", &pem).unwrap();
    let again = cairn()
        .args(["keys", "generate", "--member", "fr-inesia", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    let bad = cairn()
        .args(["keys", "generate", "--member", "FR", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
