//! The example config files of the record services name only settings
//! `cairn-intake` has (an unknown key would stop it with exit code 2).
#![allow(clippy::unwrap_used)]

#[test]
fn the_example_config_files_have_only_known_keys() {
    // cairn-evals takes the same flags as cairn-intake.
    for file in [
        "deploy/config/intake.toml",
        "deploy/k8s/base/config/intake.toml",
        "deploy/k8s/base/config/evals.toml",
    ] {
        let path = format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-intake"))
            .arg("--config")
            .arg(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bad = std::env::temp_dir().join(format!("cairn-intake-{}.toml", std::process::id()));
    std::fs::write(&bad, "version = 1\nreceipt_wait = 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-intake"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key \"receipt_wait\""), "{err}");
}
