//! `cairn incident submit` with a stream of JSON lines on standard input:
//! the valid ones go on one stream and come back with verified receipts,
//! in order; an invalid one is reported by name and not sent; results from
//! a member the service refuses are refused record by record.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Devnet, example, text};

fn submit_lines(net: &Devnet, member: &str, cmd: [&str; 2], lines: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--json")
        .args(cmd)
        .args(["-", "--label", "green", "--member", member])
        .arg("--devnet")
        .arg(&net.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn json_lines_on_stdin_are_sent_on_one_stream() {
    let net = Devnet::start();
    let one: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("incident.json")).unwrap()).unwrap();
    let mut bad = one.clone();
    bad["severity"] = "SEVERITY_HUGE".into();
    let lines = format!("{one}\n{bad}\n{one}\n{one}\n");
    let out = submit_lines(&net, "uk-aisi", ["incident", "submit"], &lines);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 4, "{answers:?}");
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a["refused"].is_string())
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["source"], "-#2");
    assert!(
        refused[0]["refused"]
            .as_str()
            .unwrap()
            .contains("SEVERITY_HUGE")
    );
    let accepted: Vec<_> = answers
        .iter()
        .filter(|a| a["record_id"].is_string())
        .collect();
    assert_eq!(accepted.len(), 3);
    for a in &accepted {
        assert!(a["receipt_verified_in_tree_of"].is_u64(), "{a}");
    }
    let sources: Vec<&str> = accepted
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["-#1", "-#3", "-#4"], "answers in the order sent");

    // eu-aio is no evaluator: each result is refused by the service.
    let mut result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("result.json")).unwrap()).unwrap();
    result["evaluator"]["id"] = "eu-aio".into();
    let out = submit_lines(
        &net,
        "eu-aio",
        ["eval", "publish"],
        &format!("{result}\n{result}\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let refusals = String::from_utf8_lossy(&out.stdout);
    assert_eq!(refusals.lines().count(), 2, "{refusals}");
    assert!(refusals.contains("PermissionDenied"), "{refusals}");
}
