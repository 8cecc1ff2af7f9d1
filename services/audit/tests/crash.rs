//! Crash safety of the audit log: the service runs as a child process,
//! concurrent appenders collect receipts, and the process is killed with
//! SIGKILL at a varying point of each cycle. After every restart, every
//! receipt ever given must still hold (its leaf is in the log, at its index)
//! and the new checkpoint must be consistent with every earlier one: the
//! tree never loses an acknowledged leaf and never rewinds.
//!
//! 5 cycles by default; set `CAIRN_LONG_TESTS=1` for 20.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::audit::v1 as pb;
use cairn_proto::common::v1::Receipt;
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::note::VerifierKey;
use common::{Net, check_everything, open, spawn_audit};
use tokio::process::Child;

async fn spawn(net: &Net) -> (Child, SocketAddr, VerifierKey) {
    let c = net.config("audit-data");
    let (child, started) = spawn_audit(net, &c.store, &[]);
    let (addr, key) = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("service did not start")
        .unwrap();
    (child, addr, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_survive_sigkill_and_the_tree_never_rewinds() {
    let cycles = if std::env::var("CAIRN_LONG_TESTS").as_deref() == Ok("1") {
        20
    } else {
        5
    };
    let net = Net::new();
    let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for cycle in 0..cycles {
        let (mut child, addr, key) = spawn(&net).await;
        let so_far = receipts.lock().unwrap().clone();
        let head = check_everything(&net, addr, &key, &so_far, &checkpoints).await;
        checkpoints.push(head);

        // Kill after a number of acknowledged appends that varies per cycle.
        let target = 40 + (cycle * 53) % 150;
        let acked = Arc::new(tokio::sync::Semaphore::new(0));
        let mut tasks = Vec::new();
        for t in 0..4u64 {
            let service = if t % 2 == 0 { "intake" } else { "evals" };
            let client = net.audit_client(&net.service_identity(service), addr);
            let receipts = receipts.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = client;
                // Bounded: the process is killed long before this ends.
                for n in 0..10_000u64 {
                    let label = format!("cycle {cycle} task {t} leaf {n}");
                    let leaf = cairn_testkit::log_leaf(service, &label);
                    let result = if n % 3 == 0 {
                        let bis = cairn_testkit::log_leaf(service, &format!("{label} bis"));
                        let leaves = vec![leaf.clone(), bis];
                        client
                            .append_batch(pb::AppendBatchRequest { leaves })
                            .await
                            .map(|r| r.into_inner().receipts)
                    } else {
                        client
                            .append(pb::AppendRequest { leaf })
                            .await
                            .map(|r| vec![r.into_inner().receipt.unwrap()])
                    };
                    match result {
                        Ok(rs) => {
                            let k = rs.len() as u32;
                            receipts.lock().unwrap().extend(rs);
                            acked.add_permits(k as usize);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let _ = tokio::time::timeout(Duration::from_secs(120), acked.acquire_many(target as u32))
            .await
            .expect("appends stalled");
        child.start_kill().unwrap(); // SIGKILL, mid-stream
        child.wait().await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        for r in receipts.lock().unwrap().iter() {
            let cp = open(&r.checkpoint, &key);
            if !checkpoints.contains(&cp) {
                checkpoints.push(cp);
            }
        }
    }
    let (mut child, addr, key) = spawn(&net).await;
    let all = receipts.lock().unwrap().clone();
    assert!(all.len() >= 40 * cycles as usize / 2);
    let head = check_everything(&net, addr, &key, &all, &checkpoints).await;
    assert!(head.size as usize >= all.len());
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
