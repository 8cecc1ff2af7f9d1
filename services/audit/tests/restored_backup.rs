//! The fork guard: a log started on an older copy of its store (here a
//! copy of its data directory taken while it was stopped, as a restored
//! backup would be) refuses to sequence once its witness says it has
//! cosigned a larger checkpoint, and signs nothing new; on its newest state
//! it sequences again.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use cairn_audit::guard::Standing;
use cairn_audit::witnessing::WitnessPeer;
use cairn_proto::audit::v1 as pb;
use common::Net;
use tonic::Code;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Starts the log on `data` with `witness` as cosigner.
async fn start_log(net: &Net, data: &str, witness: &WitnessPeer) -> cairn_audit::RunningAudit {
    let mut config = net.config(data);
    config.cosigners = vec![witness.clone()];
    cairn_audit::start(config).await.unwrap()
}

/// Appends `n` leaves and waits (bounded) until the witness has cosigned
/// the checkpoint that holds them.
async fn append_cosigned(net: &Net, log: &cairn_audit::RunningAudit, label: &str, n: usize) {
    let mut intake = net.audit_client(&net.service_identity("intake"), log.addr);
    let r = intake
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((0..n).map(|i| format!("{label} {i}"))),
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    let cp = r[0].checkpoint.clone();
    let mut cosigned = log.cosigned.clone();
    tokio::time::timeout(
        Duration::from_secs(30),
        cosigned.wait_for(|c| c.as_deref().is_some_and(|c| c.starts_with(&cp))),
    )
    .await
    .expect("no cosignature within 30 s")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_older_than_its_witness_refuses_to_sequence() {
    let net = Net::new();
    let (witness, peer) = common::start_witness(&net, "jp-aisi").await;

    // Two leaves, cosigned; a copy of the stopped log's store; three more,
    // cosigned at size 5.
    let log = start_log(&net, "log", &peer).await;
    append_cosigned(&net, &log, "early", 2).await;
    log.stop().await.unwrap();
    copy_dir(&net.tmp.path().join("log"), &net.tmp.path().join("backup"));
    let log = start_log(&net, "log", &peer).await;
    append_cosigned(&net, &log, "later", 3).await;
    log.stop().await.unwrap();

    // Started on the copy (size 2), the log learns that its witness holds
    // size 5, and refuses to append, saying exactly why.
    let old = start_log(&net, "backup", &peer).await;
    let mut intake = net.audit_client(&net.service_identity("intake"), old.addr);
    let err = intake
        .append(pb::AppendRequest {
            leaf: cairn_testkit::log_leaf("intake", "a second history"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    for says in [
        "sequencing stopped",
        "this log holds 2 leaves",
        "has cosigned its checkpoint of size 5",
        "older copy of its store",
        "restore the newest copy",
    ] {
        assert!(
            err.message().contains(says),
            "{says:?} in {}",
            err.message()
        );
    }
    assert!(matches!(
        old.gate.standing(),
        Standing::Behind {
            held: 5,
            size: 2,
            ..
        }
    ));
    // It signed nothing new: its checkpoint is still the one of size 2.
    assert_eq!(old.log.snapshot().size, 2);
    old.stop().await.unwrap();

    // On its newest state it sequences again.
    let log = start_log(&net, "log", &peer).await;
    append_cosigned(&net, &log, "resumed", 1).await;
    assert_eq!(log.log.snapshot().size, 6);
    assert_eq!(log.gate.standing(), Standing::Open);
    log.stop().await.unwrap();
    witness.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_to_the_log_at_one_checkpoint() {
    let net = Net::new();
    let log = cairn_audit::start(net.config("live")).await.unwrap();
    let mut intake = net.audit_client(&net.service_identity("intake"), log.addr);
    intake
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((0..300).map(|i| format!("first {i}"))),
        })
        .await
        .unwrap();
    // Appends keep arriving while the backup is taken.
    let appender = tokio::spawn({
        let mut intake = intake.clone();
        async move {
            for i in 0..40 {
                intake
                    .append(pb::AppendRequest {
                        leaf: cairn_testkit::log_leaf("intake", &format!("during {i}")),
                    })
                    .await
                    .unwrap();
            }
        }
    });
    let backup = net.tmp.path().join("backup");
    let size = log.backup(&backup).await.unwrap();
    appender.await.unwrap();
    assert!((300..=340).contains(&size), "{size}");
    let live = log.log.snapshot();
    let (_, proof) = log.log.consistency_proof(size, live.size).await.unwrap();
    // A second backup into the same place is refused: it holds a log.
    assert!(log.backup(&backup).await.is_err());
    log.stop().await.unwrap();

    // `cairn-audit --restore-from` copies it into an empty store and exits.
    let restored = net.tmp.path().join("restored");
    let run = |to: &Path| {
        common::audit_command(&net)
            .arg("--restore-from")
            .arg(&backup)
            .arg("--data-dir")
            .arg(to)
            .output()
            .unwrap()
    };
    let out = run(&restored);
    assert!(out.status.success(), "{out:?}");
    // Restoring over a log is refused, saying so.
    let again = run(&restored);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a log"),
        "{again:?}"
    );

    // The restored log is the live one as of one checkpoint: its size is
    // the backup's and the live log's later tree extends it.
    let mut config = net.config("restored");
    config.store = cairn_store::StoreLocation::embedded(restored);
    let old = cairn_audit::start(config).await.unwrap();
    let snap = old.log.snapshot();
    assert_eq!(snap.size, size);
    cairn_tlog::proof::verify_consistency(size, live.size, &proof, &snap.root, &live.root).unwrap();
    old.stop().await.unwrap();
}

/// What an operator does: SIGUSR1 to the running `cairn-audit` process
/// writes a backup into `--backup-dir` and says where; the service keeps
/// serving; the backup restores to the log of that size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_to_the_running_process_writes_a_backup_it_says_where() {
    let net = Net::new();
    let c = net.config("signalled");
    let backups = net.tmp.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let (mut child, started, mut out) = common::spawn_audit_with_output(
        &net,
        &c.store,
        &["--backup-dir", backups.to_str().unwrap()],
    );
    let (addr, _) = tokio::time::timeout(Duration::from_secs(60), started)
        .await
        .expect("service did not start")
        .unwrap();
    let mut intake = net.audit_client(&net.service_identity("intake"), addr);
    intake
        .append_batch(pb::AppendBatchRequest {
            leaves: cairn_testkit::log_leaves((0..25).map(|i| format!("before {i}"))),
        })
        .await
        .unwrap();

    let pid = child.id().expect("the service is running");
    let signalled = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -USR1 {pid}"))
        .status()
        .unwrap();
    assert!(signalled.success());
    let line = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = out.recv().await.expect("the service exited");
            if line.starts_with("backup of size ") {
                break line;
            }
        }
    })
    .await
    .expect("no backup line within 60 s");
    let path = line
        .strip_prefix("backup of size 25 written to ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"));
    assert!(Path::new(path).starts_with(&backups), "{path}");

    // Still serving after the backup.
    intake
        .append(pb::AppendRequest {
            leaf: cairn_testkit::log_leaf("intake", "after"),
        })
        .await
        .unwrap();
    child.kill().await.unwrap();

    let restored = net.tmp.path().join("restored-signalled");
    let done = common::audit_command(&net)
        .arg("--restore-from")
        .arg(path)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(done.status.success(), "{done:?}");
    let mut config = net.config("restored-signalled");
    config.store = cairn_store::StoreLocation::embedded(restored);
    let old = cairn_audit::start(config).await.unwrap();
    assert_eq!(old.log.snapshot().size, 25);
    old.stop().await.unwrap();
}
