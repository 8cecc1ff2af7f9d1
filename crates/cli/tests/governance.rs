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
