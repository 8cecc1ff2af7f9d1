//! `--audit`, after a run: what an auditor and an operator pay for the
//! records now stored. Waits until every accepted record is in the log,
//! then times `cairn audit verify --full`'s work through the SDK (every
//! entry fetched over mTLS, parsed as a log leaf and hashed to the
//! checkpoint's root: `LogVerifier::recompute`), then the record service
//! stopped and started again on its store (`Net::reopen`), and prints the
//! process's resident memory.

use std::time::{Duration, Instant};

use cairn_client::audit::LogVerifier;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_tests::Net;

/// Resident and peak resident memory of this process (MiB).
pub(crate) fn resident_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Waits (bounded) until the log holds at least `size` leaves.
async fn wait_for_log(net: &Net, member: &str, size: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = net.log_size(member).await;
        if now >= size || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn run(net: &mut Net, service: &str, member: &str, records: u64) {
    let size = wait_for_log(net, member, records).await;
    let log = AuditLogClient::new(net.channel(member, net.audit_addr, "audit"));
    let mut v = LogVerifier::new(net.log_key.clone(), vec![], 0)
        .expect("verifier")
        .with_log(log);
    let start = Instant::now();
    let text = v.latest().await.expect("checkpoint");
    let head = v.head(&text).expect("head");
    let leaves = v.recompute(&head, |_| {}).await.expect("recompute");
    let took = start.elapsed();
    println!(
        "audit verify --full: {} entries fetched, parsed and hashed to the root in {:.1} s \
         ({:.0} entries/s; the log held {size})",
        leaves.len(),
        took.as_secs_f64(),
        leaves.len() as f64 / took.as_secs_f64()
    );
    drop(leaves);
    let open = net.reopen(service).await;
    println!(
        "{service} stopped and started again on its store of {records} records in {:.1} ms",
        open.as_secs_f64() * 1000.0
    );
}
