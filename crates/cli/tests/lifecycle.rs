//! The member workflow commands as a user runs them, against a running
//! `cairn devnet`: every lifecycle command of both kinds (`incident
//! retract|erase`, `eval publish --supersedes`, `eval retract|erase`),
//! incident threads, acknowledgements and the timeline, `alerts watch`,
//! and what each refuses.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Devnet, example, text};

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
    // jp-aisi saw it too; uk-aisi finds the sighting with the thread.
    let seen = dir.path().join("sighting.json");
    std::fs::write(
        &seen,
        r#"{"description": "same answer in our deployment", "observedAt": "2026-11-20T08:00:00Z", "jurisdiction": "JP"}"#,
    )
    .unwrap();
    let seen = seen.display().to_string();
    let sighted = net.ok(
        "jp-aisi",
        &[
            "incident", "sighting", &seen, "--about", &first, "--label", "amber", "--to", "uk-aisi",
        ],
    );
    let r = net.ok("uk-aisi", &["incident", "related", &sent[2]]);
    assert_eq!(r["thread"], first.as_str(), "{r}");
    assert_eq!(r["sightings"][0]["record_id"], sighted["record_id"], "{r}");
    assert_eq!(r["sightings"][0]["content"]["jurisdiction"], "JP", "{r}");
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

/// `cairn alerts watch` as `member` with `args` and the state file
/// `state`, in the background; returned once it says it is watching.
fn alerts_watch(net: &Devnet, member: &str, state: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--json", "alerts", "watch"])
        .args(args)
        .arg("--state")
        .arg(state)
        .arg("--devnet")
        .arg(&net.dir)
        .args(["--member", member])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("watching for alerts"), "{line:?}");
    child
}

/// The alerts a watcher printed before it stopped (within a minute).
fn alerts_of(mut child: Child) -> Vec<serde_json::Value> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect();
        let _ = tx.send(lines);
    });
    let lines = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the watcher printed no alert within a minute")
        });
    assert!(child.wait().unwrap().success());
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn alerts_fire_once_per_matching_incident_and_resume_after_a_restart() {
    let net = Devnet::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("alerts.json");
    let incident = example("incident.json");
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        std::fs::read_to_string(&incident)
            .unwrap()
            .replace("MedAssist", "OtherBot")
            .replace("example-med-2026-09", "other-1")
            .replace("sha256:5dc9", "sha256:0000"),
    )
    .unwrap();
    let other = other.display().to_string();
    let submit = |file: &str| {
        net.ok(
            "uk-aisi",
            &[
                "incident", "submit", file, "--label", "amber", "--to", "jp-aisi",
            ],
        )["record_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Only the incident about the model jp-aisi named alerts it.
    // jp-aisi watches for MedAssist at high severity.
    let medassist = [
        "--model",
        "MedAssist",
        "--min-severity",
        "high",
        "--count",
        "1",
    ];
    let watcher = alerts_watch(&net, "jp-aisi", &state, &medassist);
    submit(&other);
    let first = submit(&incident);
    let got = alerts_of(watcher);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["record_id"], first.as_str());
    assert_eq!(
        got[0]["title"],
        "Assistant gave lethal dosage advice to a patient"
    );

    // Restarted on its state: the next match only, never the first again;
    // --exec gets the match on its stdin.
    let out = dir.path().join("exec.json");
    let exec = format!("cat > {}", out.display());
    let with_exec = [&medassist[..], &["--exec", exec.as_str()]].concat();
    let watcher = alerts_watch(&net, "jp-aisi", &state, &with_exec);
    let second = submit(&incident);
    let got = alerts_of(watcher);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["record_id"], second.as_str());
    let piped: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(piped["record_id"], second.as_str());
}

#[test]
fn an_unacknowledged_report_alerts_its_author_once_per_recipient() {
    let net = Devnet::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("overdue.json");
    let incident = example("incident.json");
    let submit = || {
        net.ok(
            "uk-aisi",
            &[
                "incident", "submit", &incident, "--label", "amber", "--to", "jp-aisi",
            ],
        )["record_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let overdue = ["--overdue-acks", "0", "--count", "1"];
    let watch = || alerts_watch(&net, "uk-aisi", &state, &overdue);
    let first = submit();
    let got = alerts_of(watch());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["record_id"], first.as_str());
    assert_eq!(got[0]["awaiting"], "jp-aisi");
    // A report alerted before does not alert again (the first is still
    // unacknowledged)...
    let second = submit();
    let got = alerts_of(watch());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["record_id"], second.as_str(), "{got:?}");
    // ...nor does an acknowledged one.
    let third = submit();
    net.ok("jp-aisi", &["incident", "ack", &third]);
    let fourth = submit();
    let got = alerts_of(watch());
    assert_eq!(got[0]["record_id"], fourth.as_str(), "{got:?}");
}

#[test]
fn the_auditor_verifies_the_devnet_log_against_its_witnesses_by_default() {
    let net = Devnet::start();
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.dir.join("devnet.json")).unwrap()).unwrap();
    let witnesses = info["witnesses"].as_array().unwrap();
    let members: Vec<&str> = witnesses
        .iter()
        .map(|w| w["member"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["jp-aisi", "uk-aisi"], "{info}");
    let id = net.ok(
        "uk-aisi",
        &[
            "incident",
            "submit",
            &example("incident.json"),
            "--label",
            "green",
        ],
    )["record_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its receipt in the documented schema, then as a COSE Receipt.
    let stored = net.dir.join("stored.json");
    let got = net.run("jp-aisi", &["incident", "get", &id]);
    assert!(got.status.success(), "{}", text(&got));
    std::fs::write(&stored, &got.stdout).unwrap();
    let receipt = net.ok("jp-aisi", &["audit", "receipt", stored.to_str().unwrap()]);
    for field in ["leaf", "leafIndex", "checkpoint", "inclusionProof"] {
        assert!(receipt.get(field).is_some(), "{field} missing: {receipt}");
    }
    let cose = net.dir.join("receipt.cose");
    let args = [
        "audit",
        "receipt",
        stored.to_str().unwrap(),
        "--cose",
        "--out",
    ];
    let out = net.run("eu-aio", &[&args[..], &[cose.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("EdDSA signature by cairn.example/audit"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(&cose).unwrap()[0],
        0xd2,
        "a tagged COSE_Sign1"
    );
    // No --server, --log-key, --witness or --quorum: the devnet's log,
    // and every one of its witnesses must have cosigned the checkpoint.
    let v = net.ok("eu-aio", &["audit", "verify", "--full"]);
    assert_eq!(v["ok"], true, "{v}");
    let cosigners: Vec<&str> = v["cosigned_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert_eq!(cosigners.len(), 2, "{v}");
    assert!(cosigners.contains(&"cairn.example/witness/jp-aisi"), "{v}");
    assert!(
        v["steps"][1]
            .as_str()
            .unwrap()
            .contains("2 of 2 witnesses cosigned it (quorum 2)"),
        "{v}"
    );
    // The same log from its tiles alone, over HTTPS as a tile client
    // reads it (the served checkpoint carries the cosignatures).
    let url = format!("https://{}", info["audit"].as_str().unwrap());
    let v = net.ok("eu-aio", &["audit", "verify", "--tiles", &url]);
    let steps = v["steps"].to_string();
    assert!(steps.contains("2 witnesses cosigned it (quorum 2)"), "{v}");
    assert!(steps.contains("hash to their level-0 tiles"), "{v}");
    // A quorum beyond the witnesses is refused up front.
    let out = net.run("eu-aio", &["audit", "verify", "--quorum", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("quorum"), "{}", text(&out));
}
