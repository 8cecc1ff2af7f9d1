//! Founding a network from the CLI: three organisations make their own
//! members, each in its own folder; a genesis is built from their cards
//! and a quorum rule; it is in force once every founder (governance
//! member) has signed it, and a changed genesis no longer verifies.
#![allow(clippy::unwrap_used)]

mod common;

use common::text;

use std::path::Path;
use std::process::{Command, Output};

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = cairn(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    text(&out)
}

fn member(root: &Path, id: &str, country: &str, roles: &str) -> String {
    let dir = root.join(id).display().to_string();
    ok(&[
        "member",
        "init",
        "--dir",
        &dir,
        "--id",
        id,
        "--name",
        id,
        "--jurisdiction",
        country,
        "--roles",
        roles,
        "--trust-domain",
        "net.example",
    ]);
    dir
}

#[test]
fn three_organisations_found_a_network() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fr = member(root, "fr-inesia", "FR", "submitter,governance");
    let de = member(root, "de-bsi", "DE", "submitter,auditor,governance");
    let nl = member(root, "nl-rdi", "NL", "submitter");
    // The services' CA, as an operator would hold it.
    let pki = root.join("ops").display().to_string();
    ok(&["dev", "pki", "--dir", &pki]);
    let service_ca = format!("{pki}/services/ca.pem");
    assert!(Path::new(&service_ca).exists(), "no {service_ca}");
    let genesis = root.join("genesis.toml").display().to_string();
    let card = |d: &str| format!("{d}/card.toml");
    let (cf, cd, cn) = (card(&fr), card(&de), card(&nl));
    let intake = format!("intake={service_ca}:append");
    let evals = format!("evals={service_ca}:append");
    let audit = format!("audit={service_ca}");
    let said = ok(&[
        "network",
        "init",
        "--trust-domain",
        "net.example",
        "--card",
        &cf,
        "--card",
        &cd,
        "--card",
        &cn,
        "--quorum",
        "2",
        "--service",
        &intake,
        "--service",
        &evals,
        "--service",
        &audit,
        "--out",
        &genesis,
    ]);
    assert!(said.contains("de-bsi, fr-inesia"), "{said}");

    let unsigned = cairn(&["directory", "verify", &genesis]);
    assert_eq!(unsigned.status.code(), Some(1), "{}", text(&unsigned));
    assert!(text(&unsigned).contains("de-bsi, fr-inesia must still sign"));
    // Not a founder: refused.
    let by_nl = cairn(&["directory", "sign", &genesis, "--member-dir", &nl]);
    assert_eq!(by_nl.status.code(), Some(2));
    assert!(
        text(&by_nl).contains("nl-rdi is not a founder"),
        "{}",
        text(&by_nl)
    );
    assert!(
        ok(&["directory", "sign", &genesis, "--member-dir", &fr]).contains("still to sign: de-bsi")
    );
    assert!(ok(&["directory", "sign", &genesis, "--member-dir", &de]).contains("in force"));
    assert!(ok(&["directory", "verify", &genesis]).contains("every founder has signed"));

    // The signed genesis is a directory every tool loads.
    let listed = cairn(&[
        "incident",
        "list",
        "--member-dir",
        &nl,
        "--directory",
        &genesis,
        "--intake",
        "127.0.0.1:9",
        "--evals",
        "127.0.0.1:9",
        "--audit",
        "127.0.0.1:9",
    ]);
    assert!(
        !text(&listed).contains("not in the network's directory"),
        "{}",
        text(&listed)
    );

    // A changed genesis is refused, naming the signature that fails.
    let forged = std::fs::read_to_string(&genesis)
        .unwrap()
        .replace("nl-rdi", "nl-rdx");
    std::fs::write(&genesis, forged).unwrap();
    let out = cairn(&["directory", "verify", &genesis]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("does not verify"), "{}", text(&out));
}
