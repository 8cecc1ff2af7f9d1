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
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::audit::v1 as pb;
use cairn_proto::common::v1::Receipt;
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::hash::leaf_hash;
use cairn_tlog::note::VerifierKey;
use cairn_tlog::proof;
use common::Net;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

async fn spawn(net: &Net) -> (Child, SocketAddr, VerifierKey) {
    let c = net.config("audit-data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-audit"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(match &c.store {
            cairn_store::StoreLocation::Sled(d) => d.as_os_str(),
            other => panic!("not a sled store: {other:?}"),
        })
        .arg("--directory")
        .arg(&c.directory)
        .arg("--tls-cert")
        .arg(&c.tls_cert)
        .arg("--tls-key")
        .arg(&c.tls_key)
        .arg("--log-key")
        .arg(&c.log_key)
        .arg("--origin")
        .arg(&c.origin)
        .arg("--log")
        .arg("warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("service did not start")
        .unwrap()
        .unwrap();
    let addr: SocketAddr = first
        .strip_prefix("cairn-audit listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let second = lines.next_line().await.unwrap().unwrap();
    let key = VerifierKey::parse(second.strip_prefix("log verifier key ").unwrap()).unwrap();
    (child, addr, key)
}

fn open(text: &str, key: &VerifierKey) -> Checkpoint {
    checkpoint::open(text, key).unwrap().checkpoint
}

/// Checks every receipt and every earlier checkpoint against the log now.
async fn check_everything(
    net: &Net,
    addr: SocketAddr,
    key: &VerifierKey,
    receipts: &[Receipt],
    checkpoints: &[Checkpoint],
) -> Checkpoint {
    let mut client = net.audit_client(&net.member_identity("eu-aio"), addr);
    let head = open(
        &client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint,
        key,
    );
    for old in checkpoints {
        assert!(
            old.size <= head.size,
            "the tree rewound from {} to {}",
            old.size,
            head.size
        );
        if old.size == 0 {
            continue;
        }
        let p = client
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                from_size: old.size,
                to_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        proof::verify_consistency(old.size, head.size, &p.proof, &old.root, &head.root)
            .unwrap_or_else(|e| {
                panic!(
                    "checkpoint {} is not consistent with the head {}: {e}",
                    old.size, head.size
                )
            });
    }
    for r in receipts {
        let cp = open(&r.checkpoint, key);
        proof::verify_inclusion(
            r.leaf_index,
            cp.size,
            &leaf_hash(&r.leaf),
            &r.inclusion_proof,
            &cp.root,
        )
        .unwrap();
        assert!(checkpoints.contains(&cp));
        let p = client
            .get_inclusion_proof(pb::GetInclusionProofRequest {
                leaf: Some(pb::get_inclusion_proof_request::Leaf::LeafIndex(
                    r.leaf_index,
                )),
                tree_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        proof::verify_inclusion(
            r.leaf_index,
            head.size,
            &leaf_hash(&r.leaf),
            &p.proof,
            &head.root,
        )
        .unwrap_or_else(|e| {
            panic!(
                "acknowledged leaf {} is not in the log after restart: {e}",
                r.leaf_index
            )
        });
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_survive_sigkill_and_the_tree_never_rewinds() {
    let cycles = if std::env::var_os("CAIRN_LONG_TESTS").is_some() {
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
            let client = net.audit_client(
                &net.service_identity(if t % 2 == 0 { "intake" } else { "evals" }),
                addr,
            );
            let receipts = receipts.clone();
            let acked = acked.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = client;
                // Bounded: the process is killed long before this ends.
                for n in 0..10_000u64 {
                    let leaf = format!("cycle {cycle} task {t} leaf {n}").into_bytes();
                    let result = if n % 3 == 0 {
                        let leaves = vec![leaf.clone(), [leaf.as_slice(), b" bis"].concat()];
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
