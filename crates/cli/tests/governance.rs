//! Changing a running network's directory from the CLI: a governance
//! member proposes admitting a new member by its card, a second approves,
//! and every member reads the directory as of any tree size and its
//! history, replayed from the genesis through the log.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Devnet, example, text};

fn new_member(root: &std::path::Path) -> String {
    let dir = root.join("fr-inesia").display().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["member", "init", "--dir", &dir, "--id", "fr-inesia"])
        .args([
            "--name",
            "INESIA",
            "--jurisdiction",
            "FR",
            "--roles",
            "submitter",
        ])
        .args(["--trust-domain", "cairn.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    format!("{dir}/card.toml")
}

#[test]
fn a_member_is_admitted_by_quorum_and_the_history_says_so() {
    let net = Devnet::start();
    let tmp = tempfile::tempdir().unwrap();
    let card = new_member(tmp.path());

    let proposed = net.ok("uk-aisi", &["directory", "propose", "--add-member", &card]);
    assert_eq!(proposed["effective"], false, "{proposed}");
    assert_eq!(
        (proposed["approvals"].as_u64(), proposed["quorum"].as_u64()),
        (Some(1), Some(2))
    );
    let id = proposed["proposal"].as_str().unwrap().to_owned();
    assert!(
        proposed["receipt_verified_in_tree_of"].is_u64(),
        "{proposed}"
    );

    // Under quorum the directory in force is still the genesis.
    let shown = net.ok("jp-aisi", &["directory", "show"]);
    assert_eq!(shown["version"], 0);
    // The proposer cannot approve its own proposal a second time.
    let twice = net.refused("uk-aisi", &["directory", "approve", &id]);
    assert!(twice.contains("uk-aisi has already signed"), "{twice}");

    let before_approval = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let approved = net.ok("eu-aio", &["directory", "approve", &id]);
    assert_eq!(
        (
            approved["effective"].as_bool(),
            approved["version"].as_u64()
        ),
        (Some(true), Some(1))
    );

    let shown = net.ok("jp-aisi", &["directory", "show"]);
    assert_eq!(shown["version"], 1);
    let ids: Vec<&str> = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"fr-inesia"), "{shown}");
    assert!(shown["document"].as_str().unwrap().contains("fr-inesia"));
    // As of a tree that does not hold the approval: the genesis.
    let leaf = shown["effective_at_leaf"].as_u64().unwrap();
    let before = net.ok("jp-aisi", &["directory", "show", "--at", &leaf.to_string()]);
    assert_eq!(before["version"], 0);
    // As of a time: before the approval reached the log, the genesis; now,
    // the new version.
    let then = net.ok("jp-aisi", &["directory", "show", "--at", &before_approval]);
    assert_eq!(then["version"], 0, "{then}");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let now = net.ok("jp-aisi", &["directory", "show", "--at", &now]);
    assert_eq!(now["version"], 1, "{now}");
    let bad = net.refused("jp-aisi", &["directory", "show", "--at", "yesterday"]);
    assert!(
        bad.contains("neither a tree size nor an RFC 3339 time"),
        "{bad}"
    );

    let history = net.ok("jp-aisi", &["directory", "history"]);
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        2,
        "{history}"
    );
    let p = &history["proposals"][0];
    assert_eq!(p["approvers"], serde_json::json!(["uk-aisi", "eu-aio"]));
    assert_eq!(p["summary"], "added member fr-inesia");

    // The new member, with its own folder and the genesis it was given,
    // submits an incident: its CLI reads the directory in force from the
    // log, and intake (following the log) admits it.
    let fr_dir = tmp.path().join("fr-inesia");
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--json", "incident", "submit", &example("incident.json")])
        .args(["--label", "amber", "--to", "uk-aisi", "--devnet"])
        .arg(&net.dir)
        .arg("--member-dir")
        .arg(&fr_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("record_id"), "{}", text(&out));

    // Approving it now is refused: it is in force already.
    let again = net.refused("jp-aisi", &["directory", "approve", &id]);
    assert!(again.contains("already took effect"), "{again}");
}

/// A service identity is added and a member's certificate revoked through
/// the log: the revoked certificate is refused from then on; a proposal
/// naming a service the directory lacks is refused before it is sent.
#[test]
fn a_service_is_added_and_a_certificate_revoked_by_quorum() {
    let net = Devnet::start();
    let ca = net.dir.join("pki/services/ca.pem").display().to_string();
    let spec = format!("gateway={ca}");
    let cert = net.dir.join("pki/members/eu-aio/tls.pem");
    let revoke = format!("eu-aio={}", cert.display());
    let proposed = net.ok(
        "uk-aisi",
        &[
            "directory",
            "propose",
            "--set-service",
            &spec,
            "--revoke-certificate",
            &revoke,
        ],
    );
    assert_eq!(proposed["effective"], false, "{proposed}");
    let id = proposed["proposal"].as_str().unwrap().to_owned();
    let approved = net.ok("eu-aio", &["directory", "approve", &id]);
    assert_eq!(approved["effective"], true, "{approved}");
    let shown = net.ok("jp-aisi", &["directory", "show"]);
    let services: Vec<&str> = shown["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(services.contains(&"gateway"), "{shown}");
    let history = net.ok("jp-aisi", &["directory", "history"]);
    let summary = history["proposals"][0]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("revoked certificate eu-aio/"),
        "{summary}"
    );
    assert!(summary.ends_with("; added service gateway"), "{summary}");
    // eu-aio's certificate (the one it approved with) is refused now.
    let out = net.run("eu-aio", &["incident", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("does not admit this certificate"),
        "{}",
        text(&out)
    );

    let missing = net.refused(
        "uk-aisi",
        &["directory", "propose", "--remove-service", "nonesuch"],
    );
    assert!(missing.contains("no such service"), "{missing}");
}

/// `cairn devnet --dir <relative>` prints hints that work as printed, from
/// the repository root (where `examples/` is), not only from where the
/// devnet was started.
#[test]
fn the_devnets_hints_work_as_printed_with_a_relative_dir() {
    use std::io::{BufRead as _, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["devnet", "--base-port", "0", "--dir", "here"])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut hints = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(hint) = line.strip_prefix("  cairn ") {
            hints.push(hint.to_owned());
            if hint.starts_with("audit verify") {
                break;
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ran: Vec<(String, std::process::Output)> = hints
        .iter()
        .map(|hint| {
            let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
                .args(hint.split_whitespace())
                .current_dir(&root)
                .output()
                .unwrap();
            (hint.clone(), out)
        })
        .collect();
    // Stopped before any assertion, so a failure leaves no devnet behind.
    let _ = child.kill();
    let _ = child.wait();
    for (hint, out) in &ran {
        assert!(out.status.success(), "cairn {hint}: {}", text(out));
    }
    let ran: Vec<&String> = ran.iter().map(|(h, _)| h).collect();
    assert!(ran.len() >= 5, "{ran:?}");
    assert!(ran.iter().all(|h| h.contains("--devnet /")), "{ran:?}");
}
