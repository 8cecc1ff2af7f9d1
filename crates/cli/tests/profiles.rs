//! Tools that work outside the devnet's layout: a profile in the user's
//! config directory names credentials, directory, addresses and the log
//! key (`--profile` or `CAIRN_PROFILE`), and `--cert`, `--key` and
//! `--log-key` are honoured — shown by what the network answers when they
//! name someone else or a wrong key. A member made with `cairn member
//! init` connects with its own folder, and is refused until the network's
//! directory lists it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Devnet, example, text};
use serde_json::Value;

fn cairn(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_CONFIG_DIR", config)
        .env_remove("CAIRN_PROFILE")
        .env_remove("CAIRN_DEVNET")
        .current_dir(config)
        .args(args)
        .output()
        .unwrap()
}

/// `incident submit <file> --label green --profile jp` with `extra`.
fn submit_as_jp(config: &Path, file: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "incident",
        "submit",
        file,
        "--label",
        "green",
        "--profile",
        "jp",
    ];
    args.extend_from_slice(extra);
    cairn(config, &args)
}

#[test]
fn a_profile_names_everything_and_flags_override_it() {
    let net = Devnet::start();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(net.dir.join("devnet.json")).unwrap())
            .unwrap();
    let s = |k: &str| info[k].as_str().unwrap().to_owned();
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let pki = s("pki");
    let directory = format!("{pki}/directory.toml");
    let add = cairn(
        cfg,
        &[
            "profile",
            "add",
            "jp",
            "--pki",
            &pki,
            "--member",
            "jp-aisi",
            "--directory",
            &directory,
            "--intake",
            &s("intake"),
            "--evals",
            &s("evals"),
            "--audit",
            &s("audit"),
            "--log-key",
            &s("log_key"),
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let again = cairn(
        cfg,
        &["profile", "add", "jp", "--pki", &pki, "--member", "jp-aisi"],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("exists"), "{}", text(&again));
    let listed = cairn(cfg, &["profile", "list"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "jp");

    // The profile alone (no devnet anywhere): submit, receipt verified.
    let file = example("incident.json");
    let sent = submit_as_jp(cfg, &file, &["--json"]);
    assert!(sent.status.success(), "{}", text(&sent));
    assert!(text(&sent).contains("verified"), "{}", text(&sent));
    let by_env = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_CONFIG_DIR", cfg)
        .env("CAIRN_PROFILE", "jp")
        .current_dir(cfg)
        .args(["incident", "list"])
        .output()
        .unwrap();
    assert!(by_env.status.success(), "{}", text(&by_env));

    // --cert and --key are honoured: uk-aisi's certificate with jp-aisi's
    // signing key is refused by the service (author is not the connection).
    let uk = format!("{pki}/members/uk-aisi");
    let (cert, key) = (format!("{uk}/tls.pem"), format!("{uk}/tls.key.pem"));
    let crossed = submit_as_jp(cfg, &file, &["--cert", &cert, "--key", &key]);
    assert_eq!(crossed.status.code(), Some(2), "{}", text(&crossed));
    assert!(text(&crossed).contains("uk-aisi"), "{}", text(&crossed));

    // --log-key is honoured: another key, and the receipt does not verify.
    let other = "cairn.example/audit+6c304353+AYOlWrZfch+9Kg+xKhukdzbTt1unfUGF2qgAh0Q+xWb1";
    let wrong = submit_as_jp(cfg, &file, &["--log-key", other]);
    assert_ne!(wrong.status.code(), Some(0), "{}", text(&wrong));
    assert!(
        text(&wrong).to_lowercase().contains("receipt"),
        "{}",
        text(&wrong)
    );

    // An unknown profile names the file and the profiles there.
    let unknown = cairn(cfg, &["incident", "list", "--profile", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("no profile \"nope\""),
        "{}",
        text(&unknown)
    );
}

#[test]
fn a_member_folder_connects_as_its_own_member() {
    let net = Devnet::start();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(net.dir.join("devnet.json")).unwrap())
            .unwrap();
    let config = tempfile::tempdir().unwrap();
    let cfg = config.path();
    let folder = cfg.join("inesia");
    let folder = folder.to_str().unwrap();
    let made = cairn(
        cfg,
        &[
            "member",
            "init",
            "--dir",
            folder,
            "--id",
            "fr-inesia",
            "--name",
            "INESIA",
            "--jurisdiction",
            "FR",
            "--trust-domain",
            "cairn.example",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let directory = format!("{}/directory.toml", info["pki"].as_str().unwrap());
    let listed = cairn(
        cfg,
        &[
            "incident",
            "list",
            "--member-dir",
            folder,
            "--directory",
            &directory,
            "--intake",
            info["intake"].as_str().unwrap(),
            "--evals",
            info["evals"].as_str().unwrap(),
            "--audit",
            info["audit"].as_str().unwrap(),
        ],
    );
    // Its own folder was read: the network does not list it yet.
    assert_eq!(listed.status.code(), Some(2), "{}", text(&listed));
    let out = text(&listed);
    assert!(
        out.contains("member fr-inesia is not in the network's directory"),
        "{out}"
    );
    assert!(out.contains("member card"), "{out}");
}
