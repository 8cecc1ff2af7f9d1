//! A full disk under each service's store: writes are refused with
//! UNAVAILABLE naming the cause, nothing acknowledged is lost, nothing of a
//! refused write is visible, and the service carries on by itself once
//! space is freed. Each test runs in its own mount namespace on tmpfs
//! filesystems of a few MiB (see `cairn_tests::small_fs`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, SharingLabel};
use cairn_service_core::RecordCoreConfig;
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store, StoreError, WriteBatch};
use cairn_tests::{MEMBERS, Net, small_fs};
use tonic::Code;

const NO_SPACE: &str = "No space left on device";

/// How long a test waits for the store to reopen, or for a receipt.
const PATIENCE: Duration = Duration::from_secs(30);

fn value(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; 20_000]
}

async fn put(store: &EmbeddedStore, i: u32) -> Result<(), StoreError> {
    let mut b = WriteBatch::new();
    b.put("values", i.to_be_bytes(), value(i));
    store.commit(b).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_closes_the_embedded_store_and_it_reopens_with_exactly_what_was_acknowledged() {
    if !small_fs::inside(
        "a_full_disk_closes_the_embedded_store_and_it_reopens_with_exactly_what_was_acknowledged",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = small_fs::mount(&tmp.path().join("disk"), 24);
    let store = EmbeddedStore::open(EmbeddedStoreConfig::new(disk.join("store"))).unwrap();
    let filler = small_fs::fill(&disk);
    std::fs::remove_file(&filler).unwrap();
    // A little room, then none: some commits succeed, then one fails.
    let filler = {
        let mut f = std::fs::File::create(&filler).unwrap();
        let room = 2 * 1024 * 1024;
        let free = fs_free(&disk);
        std::io::Write::write_all(&mut f, &vec![0u8; (free - room) as usize]).unwrap();
        filler
    };
    let mut acked = 0u32;
    let refused = loop {
        match put(&store, acked).await {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the disk never filled up");
    };
    assert!(acked > 0, "some commits fit before the disk filled");
    assert!(
        matches!(&refused, StoreError::Unavailable { reason } if reason.contains(NO_SPACE)),
        "{refused:?}"
    );
    // Closed: reads and writes are refused too, never served from what the
    // failed commit left in memory.
    assert!(matches!(
        store.get("values", &acked.to_be_bytes()).await,
        Err(StoreError::Unavailable { .. }) | Ok(None)
    ));
    drop(filler);
    std::fs::remove_file(disk.join("filler")).unwrap();
    // Space is back: the store reopens by itself on a later call.
    let reopened = tokio::time::timeout(PATIENCE, async {
        loop {
            match put(&store, 1_000_000).await {
                Ok(()) => return,
                Err(StoreError::Unavailable { .. }) => tokio::task::yield_now().await,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    assert!(reopened.is_ok(), "the store never reopened");
    for i in 0..acked {
        assert_eq!(
            store.get("values", &i.to_be_bytes()).await.unwrap(),
            Some(value(i)),
            "acknowledged value {i}"
        );
    }
    assert_eq!(
        store.get("values", &acked.to_be_bytes()).await.unwrap(),
        None,
        "the refused write left nothing"
    );
}

/// Free bytes on `dir`'s filesystem.
fn fs_free(dir: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

async fn submit(
    net: &Net,
    record: &pb::SignedRecord,
) -> Result<intake::SubmitIncidentResponse, tonic::Status> {
    net.intake("uk-aisi")
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get(net: &Net, id: &str) -> Result<intake::GetIncidentResponse, tonic::Status> {
    net.intake("jp-aisi")
        .get_incident(intake::GetIncidentRequest {
            record_id: Some(pb::RecordId { uuid: id.into() }),
            include_latest_proof: false,
        })
        .await
        .map(|r| r.into_inner())
}

fn incident(net: &Net, i: usize) -> pb::SignedRecord {
    incident_with_id(net, i).1
}

fn incident_with_id(net: &Net, i: usize) -> (String, pb::SignedRecord) {
    let title = format!("incident {i} of the full-disk test");
    let (draft, rec) = net.incident("uk-aisi", SharingLabel::TlpGreen, &MEMBERS, &title);
    (draft.record_id.to_string(), rec)
}

/// Resubmits `record` until it has its receipt; checks the receipt.
async fn receipt_of(net: &Net, record: &pb::SignedRecord) {
    let out = tokio::time::timeout(PATIENCE, async {
        loop {
            match submit(net, record).await {
                Ok(out) if !out.receipt_pending => return out,
                Ok(_) => tokio::task::yield_now().await,
                Err(s) if s.code() == Code::Unavailable => tokio::task::yield_now().await,
                Err(s) => panic!("{s:?}"),
            }
        }
    })
    .await
    .expect("the receipt never came");
    cairn_tests::verify_receipt_of(&out.receipt.unwrap(), &record.envelope, &net.log_key);
}

fn core() -> RecordCoreConfig {
    RecordCoreConfig {
        receipt_wait: Duration::from_millis(500),
        ..RecordCoreConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_a_record_service_refuses_submissions_and_it_recovers_by_itself() {
    if !small_fs::inside(
        "a_full_disk_under_a_record_service_refuses_submissions_and_it_recovers_by_itself",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = small_fs::mount(&Net::data_dir(tmp.path(), "intake"), 32);
    let net = Net::start_in(tmp, core()).await;
    let mut acked = Vec::new();
    for i in 0..3 {
        let rec = incident(&net, i);
        submit(&net, &rec).await.unwrap();
        acked.push(rec);
    }
    let filler = small_fs::fill(&disk);
    let (refused_id, status) = {
        let mut i = acked.len();
        loop {
            let (id, rec) = incident_with_id(&net, i);
            match submit(&net, &rec).await {
                Ok(_) => acked.push(rec),
                Err(s) => break (id, s),
            }
            i += 1;
            assert!(i < 2_000, "the disk never filled up");
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(NO_SPACE), "{status:?}");
    std::fs::remove_file(filler).unwrap();
    // Recovers by itself; every acknowledged record is there and logged.
    for rec in &acked {
        receipt_of(&net, rec).await;
    }
    let err = get(&net, &refused_id).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "the refused record left nothing"
    );
    let rec = incident(&net, 10_000);
    submit(&net, &rec).await.unwrap();
    receipt_of(&net, &rec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_audit_log_holds_receipts_back_and_logs_everything_after() {
    if !small_fs::inside(
        "a_full_disk_under_the_audit_log_holds_receipts_back_and_logs_everything_after",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let disk = small_fs::mount(&Net::data_dir(tmp.path(), "audit"), 32);
    let net = Net::start_in(tmp, core()).await;
    let first = incident(&net, 0);
    assert!(!submit(&net, &first).await.unwrap().receipt_pending);
    let filler = small_fs::fill(&disk);
    // The record services still accept (their disks have room); the log
    // goes on while its write-ahead log fits in the blocks it already has,
    // then cannot store (a tile file, a checkpoint), so receipts stay
    // pending.
    let mut pending = Vec::new();
    for i in 1..600 {
        let rec = incident(&net, i);
        let out = submit(&net, &rec).await.unwrap();
        pending.push((out.receipt_pending, rec));
        if out.receipt_pending {
            break;
        }
    }
    assert!(
        pending.iter().any(|(p, _)| *p),
        "a full audit disk holds some receipt back"
    );
    std::fs::remove_file(filler).unwrap();
    receipt_of(&net, &first).await;
    for (_, rec) in &pending {
        receipt_of(&net, rec).await;
    }
}
