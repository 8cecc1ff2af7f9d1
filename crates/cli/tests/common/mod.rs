//! The running `cairn devnet` the CLI tests drive, and their helpers.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Starts `cmd` in the background and waits for the JSON line it prints
/// once it is ready (no sleeps); the child and that line.
pub fn spawn_ready(mut cmd: Command) -> (Child, serde_json::Value) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{cmd:?} did not start ({e}): {line:?}"));
    (child, ready)
}

/// A devnet in the background, stopped when dropped.
pub struct Devnet {
    child: Child,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Devnet {
    /// Starts one on free ports; ready once it prints its addresses.
    pub fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devnet");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["--json", "devnet", "--base-port", "0", "--dir"])
            .arg(&dir);
        let (child, info) = spawn_ready(cmd);
        assert!(info["intake"].is_string(), "{info}");
        Self {
            child,
            dir,
            _tmp: tmp,
        }
    }

    pub fn run(&self, member: &str, args: &[&str]) -> Output {
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
    pub fn ok(&self, member: &str, args: &[&str]) -> serde_json::Value {
        let out = self.run(member, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    /// Runs a command that the service must refuse; its message.
    pub fn refused(&self, member: &str, args: &[&str]) -> String {
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

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}
