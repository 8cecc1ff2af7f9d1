//! The `cairn-audit` binary reads a versioned config file, lets the
//! environment override it, and refuses a file it does not understand
//! with the key named and exit code 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Net;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

fn file(net: &Net, extra: &str) -> std::path::PathBuf {
    let c = net.config("audit-data");
    let text = format!(
        "version = 1\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\ndirectory = {:?}\ntls_cert = {:?}\ntls_key = {:?}\nlog_key = {:?}\norigin = {:?}\nlog = \"warn\"\n{extra}",
        match &c.store {
            cairn_store::StoreLocation::Embedded(c) => &c.path,
            other => panic!("not an embedded store: {other:?}"),
        },
        c.directory,
        c.tls_cert,
        c.tls_key,
        c.log_key,
        c.origin
    );
    let path = net.tmp.path().join(format!("audit-{}.toml", extra.len()));
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_runs_the_service_and_the_environment_overrides_it() {
    let net = Net::new();
    // The file says no metrics endpoint port; the environment adds one.
    let path = file(&net, "log_format = \"json\"\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-audit"))
        .arg("--config")
        .arg(&path)
        .env("CAIRN_METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("CAIRN_LISTEN")
        .env_remove("CAIRN_DATA_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("service did not start")
            .unwrap()
            .expect("service exited");
        seen.push(line);
    }
    assert!(
        seen[0].starts_with("cairn-audit listening on 127.0.0.1:"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("metrics on http://127.0.0.1:")),
        "{seen:?}"
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_an_unknown_key_or_version_is_refused() {
    let net = Net::new();
    for (extra, expect) in [
        ("witness_nmae = \"x\"\n", "unknown key \"witness_nmae\""),
        ("metrics_listen = 9090\n", "--metrics-listen"),
        (
            "store_cache_mib = 1\n",
            "--store-cache-mib 1: give at least 8 MiB",
        ),
    ] {
        let path = file(&net, extra);
        let out = Command::new(env!("CARGO_BIN_EXE_cairn-audit"))
            .arg("--config")
            .arg(&path)
            .env_remove("CAIRN_METRICS_LISTEN")
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{extra}: {err}");
    }
    let path = net.tmp.path().join("v2.toml");
    std::fs::write(&path, "version = 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-audit"))
        .env("CAIRN_CONFIG", &path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("version 2 is not supported"), "{err}");
}

#[tokio::test]
async fn the_example_config_file_has_only_known_keys() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/audit.toml"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cairn-audit"))
        .arg("--config")
        .arg(path)
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
