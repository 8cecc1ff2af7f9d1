//! Every lifecycle command of both kinds as a user runs it, against a
//! running `cairn devnet`: `incident retract|erase`, `eval publish
//! --supersedes`, `eval retract|erase`, and what each refuses.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A devnet in the background, stopped when dropped.
struct Devnet {
    child: Child,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Devnet {
    /// Starts one on free ports; ready once it prints its addresses.
    fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devnet");
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["--json", "devnet", "--base-port", "0", "--dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("devnet did not start ({e}): {line:?}"));
        assert!(info["intake"].is_string(), "{info}");
        Self {
            child,
            dir,
            _tmp: tmp,
        }
    }

    fn run(&self, member: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("--json")
            .args(args)
            .arg("--devnet")
            .arg(&self.dir)
            .args(["--member", member])
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; its JSON answer.
    fn ok(&self, member: &str, args: &[&str]) -> serde_json::Value {
        let out = self.run(member, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    /// Runs a command that the service must refuse; its message.
    fn refused(&self, member: &str, args: &[&str]) -> String {
        let out = self.run(member, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        text(&out)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}

fn state(record: &serde_json::Value) -> &str {
    record["state"].as_str().unwrap_or("RECORD_STATE_ACTIVE")
}

#[test]
fn incidents_and_results_are_retracted_corrected_and_erased_from_the_cli() {
    let net = Devnet::start();
    let incident = example("incident.json");
    let submit = |label: &[&str]| {
        let mut args = vec!["incident", "submit", incident.as_str()];
        args.extend_from_slice(label);
        net.ok("uk-aisi", &args)["record_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Retract: only the author; shared as the incident; then marked.
    let id = submit(&["--label", "amber", "--to", "jp-aisi"]);
    let err = net.refused(
        "jp-aisi",
        &["incident", "retract", &id, "--reason", "not ours"],
    );
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let r = net.ok(
        "uk-aisi",
        &["incident", "retract", &id, "--reason", "filed twice"],
    );
    assert!(r["receipt_verified_in_tree_of"].is_u64(), "{r}");
    let got = net.ok("jp-aisi", &["incident", "get", &id]);
    assert_eq!(state(&got), "RECORD_STATE_RETRACTED", "{got}");
    let why = net.ok(
        "jp-aisi",
        &[
            "incident",
            "get",
            r["record_id"].as_str().unwrap(),
            "--open",
        ],
    );
    assert_eq!(why["content"]["reason"], "filed twice", "{why}");
    let err = net.refused(
        "uk-aisi",
        &["incident", "retract", &id, "--reason", "again"],
    );
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");

    // Erase: the order is logged and verified; the body is gone.
    let id = submit(&[]);
    let e = net.ok(
        "uk-aisi",
        &["incident", "erase", &id, "--reason", "court order 2026/17"],
    );
    assert_eq!(e["erased"], true, "{e}");
    assert!(e["receipt_verified_in_tree_of"].is_u64(), "{e}");
    let got = net.ok("eu-aio", &["incident", "get", &id]);
    assert_eq!(state(&got), "RECORD_STATE_ERASED", "{got}");
    assert!(got["erasureReceipt"].is_object(), "{got}");
    let err = net.refused("uk-aisi", &["incident", "erase", &id, "--reason", " "]);
    assert!(err.contains("reason: is required"), "{err}");

    // Results: publish, correct, retract the correction, erase the first.
    let result = example("result.json");
    let first = net.ok("jp-aisi", &["eval", "publish", &result])["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = net.ok(
        "jp-aisi",
        &["eval", "publish", &result, "--supersedes", &first],
    );
    let second = second["record_id"].as_str().unwrap().to_owned();
    let old = net.ok("jp-aisi", &["eval", "get", &first]);
    assert_eq!(state(&old), "RECORD_STATE_SUPERSEDED", "{old}");
    let err = net.refused(
        "uk-aisi",
        &["eval", "publish", &result, "--supersedes", &second],
    );
    assert!(err.contains("content.evaluator"), "{err}");
    net.ok(
        "jp-aisi",
        &["eval", "retract", &second, "--reason", "harness bug"],
    );
    let got = net.ok("jp-aisi", &["eval", "get", &second]);
    assert_eq!(state(&got), "RECORD_STATE_RETRACTED", "{got}");
    net.ok(
        "jp-aisi",
        &["eval", "erase", &first, "--reason", "licence withdrawn"],
    );
    let got = net.ok("uk-aisi", &["eval", "get", &first]);
    assert_eq!(state(&got), "RECORD_STATE_ERASED", "{got}");
}

#[test]
fn a_thread_is_followed_up_and_its_clock_is_printed() {
    let net = Devnet::start();
    let incident = example("incident.json");
    let first = net.ok(
        "uk-aisi",
        &[
            "incident", "submit", &incident, "--label", "amber", "--to", "jp-aisi",
        ],
    );
    let first = first["record_id"].as_str().unwrap().to_owned();
    // The same incident as an update, then as the final report.
    let json = std::fs::read_to_string(&incident).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sent = vec![first.clone()];
    for status in ["UPDATE", "FINAL"] {
        let path = dir.path().join(format!("{status}.json"));
        std::fs::write(
            &path,
            json.replace(
                "INCIDENT_STATUS_INITIAL",
                &format!("INCIDENT_STATUS_{status}"),
            ),
        )
        .unwrap();
        let path = path.display().to_string();
        let out = net.ok(
            "uk-aisi",
            &[
                "incident", "submit", &path, "--label", "amber", "--to", "jp-aisi", "--thread",
                &first,
            ],
        );
        sent.push(out["record_id"].as_str().unwrap().to_owned());
    }
    // jp-aisi cannot add to uk-aisi's thread.
    let update = dir.path().join("UPDATE.json").display().to_string();
    let err = net.refused(
        "jp-aisi",
        &["incident", "submit", &update, "--thread", &first],
    );
    assert!(err.contains("PERMISSION_DENIED"), "{err}");

    let t = net.ok("jp-aisi", &["incident", "timeline", &sent[1]]);
    assert_eq!(t["thread"], first.as_str(), "{t}");
    let ids: Vec<_> = t["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, sent, "{t}");
    assert_eq!(t["deadline"]["days"], 15, "{t}");
    assert!(
        t["completed"]
            .as_str()
            .unwrap()
            .contains(&format!("met by {}", sent[2])),
        "{t}"
    );
    // jp-aisi acknowledges the first report; uk-aisi sees how far it is.
    net.ok(
        "jp-aisi",
        &[
            "incident",
            "ack",
            &first,
            "--state",
            "action-taken",
            "--note",
            "patched",
        ],
    );
    let err = net.refused("jp-aisi", &["incident", "ack", &first, "--state", "maybe"]);
    assert!(err.contains("--state \"maybe\""), "{err}");
    let t = net.ok("uk-aisi", &["incident", "timeline", &first]);
    let acks = &t["reports"][0]["acknowledged"];
    assert_eq!(acks[0]["by"], "jp-aisi", "{t}");
    assert_eq!(acks[0]["state"], "action-taken", "{t}");
    assert_eq!(acks[0]["note"], "patched", "{t}");
    assert_eq!(t["reports"][1]["awaiting"][0], "jp-aisi", "{t}");
    // The list shows the clock under the first report.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["incident", "list", "--devnet"])
        .arg(&net.dir)
        .args(["--member", "jp-aisi"])
        .output()
        .unwrap();
    let listed = text(&out);
    assert!(
        listed.contains("Art. 73: 15-day period (general)"),
        "{listed}"
    );
    assert!(listed.contains("final report: "), "{listed}");
}
