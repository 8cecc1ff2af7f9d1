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
        // The dev PKI's directory is a genesis: the directory inside it is
        // named as such.
        err.contains(
            "directory.toml: directory: members[1].jurisdiction: \"Japan\" is not an ISO 3166-1"
        ),
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

#[test]
fn devnet_demo_runs_end_to_end_and_reuses_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devnet");
    for round in 0..2 {
        let out = cairn()
            .args(["devnet", "--demo", "--base-port", "0", "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "round {round}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("the demo passed"), "{text}");
        assert!(
            text.contains("eu-aio, not a recipient, cannot fetch the incident"),
            "{text}"
        );
        assert!(
            text.contains("15-day Art. 73 period; final report on time: met by"),
            "{text}"
        );
        assert!(
            text.contains(
                "eu-aio's alert subscription on MedAssist (high severity or worse) fired"
            ),
            "{text}"
        );
        assert!(
            text.contains("uk-aisi finds it with the incident"),
            "{text}"
        );
        assert!(
            text.contains("is cosigned by 2 of 2 witnesses: cairn.example/witness/"),
            "{text}"
        );
    }
    // The second run reused the PKI and the log (4 entries now).
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("devnet.json")).unwrap()).unwrap();
    assert!(
        info["log_key"]
            .as_str()
            .unwrap()
            .starts_with("cairn.example/audit+")
    );
}

#[test]
fn devnet_says_plainly_when_it_cannot_write_or_bind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = cairn()
        .args(["devnet", "--demo", "--base-port", "0", "--dir"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create the data directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let out = cairn()
        .args([
            "devnet",
            "--demo",
            "--base-port",
            &port.to_string(),
            "--dir",
        ])
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("port {port} on 127.0.0.1 is not available"))
    );
}

#[test]
fn incident_files_are_validated_before_any_network_call() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    assert!(
        cairn()
            .args(["dev", "pki", "--dir"])
            .arg(&pki)
            .output()
            .unwrap()
            .status
            .success()
    );
    let bad = tmp.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"title": "x", "summary": "y", "severity": "SEVERITY_HUGE"}"#,
    )
    .unwrap();
    // No service runs at 127.0.0.1:9: the failure must come from the file.
    let out = cairn()
        .args(["incident", "submit"])
        .arg(&bad)
        .args([
            "--member",
            "uk-aisi",
            "--intake",
            "127.0.0.1:9",
            "--evals",
            "127.0.0.1:9",
            "--audit",
            "127.0.0.1:9",
            "--pki",
        ])
        .arg(&pki)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a valid incident") && err.contains("SEVERITY_HUGE"),
        "{err}"
    );
    let incomplete = tmp.path().join("incomplete.json");
    std::fs::write(&incomplete, r#"{"title": "x"}"#).unwrap();
    let out = cairn()
        .args(["incident", "submit"])
        .arg(&incomplete)
        .args([
            "--member",
            "uk-aisi",
            "--intake",
            "127.0.0.1:9",
            "--evals",
            "127.0.0.1:9",
            "--audit",
            "127.0.0.1:9",
            "--pki",
        ])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("content.summary: is required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
