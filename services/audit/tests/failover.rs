//! Two `cairn-audit` replicas on one PostgreSQL database: one sequences
//! under the lease, the other waits as a standby without listening. The
//! sequencer is killed with SIGKILL mid-stream; the standby takes over
//! with a new fencing epoch, and every receipt either replica gave is in
//! the log it continues, every checkpoint either signed is consistent with
//! the final one — the tree never forks. Needs `CAIRN_TEST_POSTGRES`
//! (skipped without it; `.ci/run` sets it and requires it).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::audit::v1 as pb;
use cairn_proto::common::v1::Receipt;
use cairn_store::StoreLocation;
use cairn_store::conformance::{fresh_postgres_database, postgres_test_ca, postgres_test_url};
use cairn_tlog::checkpoint::Checkpoint;
use common::{Net, check_everything, open, spawn_audit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_from_a_killed_sequencer_without_a_fork() {
    let Some(url) = postgres_test_url() else {
        return;
    };
    let store = StoreLocation::Postgres {
        url: fresh_postgres_database(&url, "failover").await,
        // Encrypted to the database when the test server offers TLS.
        ca_file: postgres_test_ca(),
    };
    let net = Net::new();
    // The default lifetime (10 s; renewed every 3.3 s): a loaded machine
    // keeps the lease while the sequencer lives, and the takeover after
    // the kill still comes within the test's patience.
    let ttl = ["--lease-ttl-ms", "10000"];
    let (mut leader, started) = spawn_audit(&net, &store, &ttl);
    let (addr_a, key) = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the first replica did not start")
        .unwrap();
    // The standby's operations port (health for probes) answers while it
    // waits; the port is picked free by the OS, then handed over.
    let ops: std::net::SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ops_flag = ops.to_string();
    let (mut standby, standby_started) = spawn_audit(
        &net,
        &store,
        &["--lease-ttl-ms", "10000", "--metrics-listen", &ops_flag],
    );
    assert_eq!(health(ops).await, NOT_SERVING);

    // Appenders on the sequencer until it is killed.
    let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
    let acked = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for t in 0..3u64 {
        let mut client = net.audit_client(&net.service_identity("intake"), addr_a);
        let (receipts, acked) = (receipts.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            // Bounded: the process is killed long before this ends.
            for n in 0..10_000u64 {
                let leaves =
                    cairn_testkit::log_leaves([format!("a {t} {n}"), format!("a {t} {n} bis")]);
                match client.append_batch(pb::AppendBatchRequest { leaves }).await {
                    Ok(r) => {
                        let rs = r.into_inner().receipts;
                        acked.add_permits(rs.len());
                        receipts.lock().unwrap().extend(rs);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), acked.acquire_many(200))
        .await
        .expect("appends stalled")
        .unwrap()
        .forget();
    assert!(
        !standby_started.is_finished(),
        "the standby serves while the sequencer holds the lease"
    );
    leader.start_kill().unwrap(); // SIGKILL, mid-stream
    leader.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }

    let (addr_b, key_b) = tokio::time::timeout(Duration::from_secs(60), standby_started)
        .await
        .expect("the standby never took over")
        .unwrap();
    assert_eq!(key, key_b);
    assert_eq!(health(ops).await, SERVING);
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for r in receipts.lock().unwrap().iter() {
        let cp = open(&r.checkpoint, &key);
        if !checkpoints.contains(&cp) {
            checkpoints.push(cp);
        }
    }
    let before = receipts.lock().unwrap().clone();
    let head = check_everything(&net, addr_b, &key, &before, &checkpoints).await;
    assert!(head.size as usize >= before.len());

    // The new sequencer appends on top of the old tree.
    let mut client = net.audit_client(&net.service_identity("evals"), addr_b);
    let more = client
        .append_batch(pb::AppendBatchRequest {
            leaves: vec![cairn_testkit::log_leaf("evals", "after the takeover")],
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(more[0].leaf_index, head.size);
    let mut all = before;
    all.extend(more.iter().cloned());
    checkpoints.push(head);
    checkpoints.push(open(&more[0].checkpoint, &key));
    let last = check_everything(&net, addr_b, &key, &all, &checkpoints).await;
    assert_eq!(last.size, head_size(&checkpoints));
    standby.start_kill().unwrap();
    standby.wait().await.unwrap();
}

fn head_size(checkpoints: &[Checkpoint]) -> u64 {
    checkpoints.iter().map(|c| c.size).max().unwrap_or(0)
}

const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

/// The AuditLog health status on a plaintext operations port, once it
/// answers (bounded wait: the process is starting).
async fn health(ops: std::net::SocketAddr) -> i32 {
    for _ in 0..600 {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{ops}"))
            .unwrap()
            .connect()
            .await
        {
            return tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "cairn.audit.v1.AuditLog".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answers on {ops}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_stopped_with_sigterm_hands_over_at_once() {
    let Some(url) = postgres_test_url() else {
        return;
    };
    let store = StoreLocation::Postgres {
        url: fresh_postgres_database(&url, "handover").await,
        // Encrypted to the database when the test server offers TLS.
        ca_file: postgres_test_ca(),
    };
    let net = Net::new();
    // A lease far longer than the test's patience: only a release on the
    // graceful stop lets the standby in in time.
    let ttl = ["--lease-ttl-ms", "600000"];
    let (mut leader, started) = spawn_audit(&net, &store, &ttl);
    let (addr_a, key) = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("the first replica did not start")
        .unwrap();
    let (mut standby, standby_started) = spawn_audit(&net, &store, &ttl);
    let mut client = net.audit_client(&net.service_identity("intake"), addr_a);
    let before = client
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves(["before the handover"]),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    let pid = leader.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), leader.wait())
        .await
        .expect("the sequencer did not stop on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let (addr_b, _) = tokio::time::timeout(Duration::from_secs(30), standby_started)
        .await
        .expect("the standby waited for the lease to expire")
        .unwrap();
    let checkpoints = vec![open(&before[0].checkpoint, &key)];
    let head = check_everything(&net, addr_b, &key, &before, &checkpoints).await;
    assert_eq!(head.size, 1);
    standby.start_kill().unwrap();
    standby.wait().await.unwrap();
}
