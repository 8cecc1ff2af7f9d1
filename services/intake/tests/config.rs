//! The example config file of the record services names only settings
//! `cairn-intake` has (an unknown key would stop it with exit code 2).
#![allow(clippy::unwrap_used)]

#[test]
fn the_example_config_file_has_only_known_keys() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/intake.toml"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn-intake"))
        .arg("--config")
        .arg(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
