//! An acknowledged commit survives `kill -9`: a child process commits
//! batches and reports each acknowledgement on stdout; the parent kills it
//! with SIGKILL mid-stream, reopens the store and finds every acknowledged
//! batch complete (and no batch half-written), whether it was durable in
//! the write-ahead log only or checkpointed.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store as _, WriteBatch};

const CHILD_ENV: &str = "CAIRN_STORE_CRASH_CHILD_DIR";
/// The child stops by itself after this many batches if never killed.
const MAX_BATCHES: u64 = 50_000;

/// In the child: commit batches of two keys (one large) forever, printing
/// each acknowledged batch number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by `acknowledged_commits_survive_sigkill`
    };
    // Checkpoints every few batches, so kills land before, in and after
    // them, and reopening applies the write-ahead log after one.
    let mut config = EmbeddedStoreConfig::new(dir);
    config.checkpoint_bytes = 150_000;
    let store = EmbeddedStore::open(config).unwrap();
    for n in 0..MAX_BATCHES {
        let mut b = WriteBatch::new();
        b.put(
            "crash",
            n.to_be_bytes().to_vec(),
            vec![(n % 256) as u8; 40_000],
        )
        .put("crash_mirror", n.to_be_bytes().to_vec(), b"pair".to_vec());
        store.commit(b).await.unwrap();
        println!("acked {n}");
    }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &store_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked: Option<u64> = None;
        // Kill after a number of acknowledgements that differs per round.
        let kill_after = 40 + round * 37;
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = Some(n.trim().parse().unwrap());
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let last = acked.expect("the child acknowledged nothing");

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = EmbeddedStore::open(EmbeddedStoreConfig::new(&store_dir)).unwrap();
            for n in 0..=last {
                let big = store.get("crash", &n.to_be_bytes()).await.unwrap();
                assert_eq!(
                    big,
                    Some(vec![(n % 256) as u8; 40_000]),
                    "round {round}: acknowledged batch {n} lost"
                );
            }
            // Atomicity: whatever is there beyond the last ack is whole.
            let firsts = store.scan("crash", &[], None, usize::MAX).await.unwrap();
            let mirrors = store
                .scan("crash_mirror", &[], None, usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                firsts.len(),
                mirrors.len(),
                "round {round}: a batch was half applied"
            );
        });
    }
}
