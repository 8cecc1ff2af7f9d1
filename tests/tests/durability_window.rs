//! The window between a commit becoming visible and becoming durable.
//!
//! The embedded store applies a batch (readers see it) before its sync
//! returns. A record in that window may still be lost to a crash, so no
//! reader may be shown it and no duplicate submission may be told it is
//! stored. Here a store
//! holds every durable commit between its apply and its sync until the
//! test lets it go, and the record core (the one intake and evals run) is
//! driven directly.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_identity::{MemberId, PeerIdentity};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_record::pb::{self, SharingLabel};
use cairn_service_core::{RecordCore, RecordCoreConfig, SubmitKind};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Entry, Store, StoreError, WriteBatch};
use cairn_tests::Net;
use tokio::sync::watch;

/// The embedded store, whose durable commits stop between apply and sync while the gate
/// is shut.
struct GatedStore {
    inner: EmbeddedStore,
    open: watch::Sender<bool>,
    /// Commits applied so far (visible, perhaps not yet durable).
    applied: watch::Sender<u64>,
}

#[async_trait]
impl Store for GatedStore {
    async fn get(
        &self,
        namespace: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(namespace, key).await
    }

    async fn scan(
        &self,
        namespace: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        self.inner.scan(namespace, start, end, limit).await
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.commit_unsynced(batch).await?;
        self.applied.send_modify(|n| *n += 1);
        let mut open = self.open.subscribe();
        open.wait_for(|o| *o).await.unwrap();
        // The sync: a durable commit makes everything applied durable.
        let mut marker = WriteBatch::new();
        marker.put("gate", b"synced".to_vec(), vec![1]);
        self.inner.commit(marker).await
    }

    async fn commit_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.commit_unsynced(batch).await
    }

    fn max_value_len(&self) -> usize {
        self.inner.max_value_len()
    }
}

fn member(id: &str) -> PeerIdentity {
    PeerIdentity::Member {
        id: MemberId::parse(id).unwrap(),
        subpath: String::new(),
    }
}

/// Whether `task` is still running after a generous while.
async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(Duration::from_millis(500), task)
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_visible_but_not_durable_is_shown_or_acknowledged() {
    tokio::time::timeout(Duration::from_secs(120), scenario())
        .await
        .expect("the scenario finishes");
}

async fn scenario() {
    let net = Net::start(Duration::from_secs(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(GatedStore {
        inner: EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap(),
        open: watch::channel(true).0,
        applied: watch::channel(0).0,
    });
    let audit = AuditLogClient::new(net.channel("intake", net.audit_addr, "audit"));
    let core = RecordCore::open(
        store.clone(),
        net.handle.clone(),
        cairn_intake::policy(),
        RecordCoreConfig {
            receipt_wait: Duration::from_secs(10),
            ..RecordCoreConfig::default()
        },
        audit,
    )
    .await
    .unwrap();

    // Shut the gate; submit. The record is applied (visible) and waits
    // for its sync.
    store.open.send_replace(false);
    let before = *store.applied.borrow();
    let (_, rec) = net.incident(
        "uk-aisi",
        SharingLabel::TlpClear,
        &[],
        "Visible before durable",
    );
    let id = cairn_record::verify(&rec, &net.directory)
        .unwrap()
        .record_id_text();
    let mut first = tokio::spawn({
        let (core, rec) = (core.clone(), rec.clone());
        async move {
            core.submit(&member("uk-aisi"), rec, SubmitKind::SubmitOrCorrect)
                .await
        }
    });
    store
        .applied
        .subscribe()
        .wait_for(|n| *n > before)
        .await
        .unwrap();
    assert!(
        store.get("records", id.as_bytes()).await.unwrap().is_some(),
        "the record is visible in the store"
    );

    // A reader and a duplicate submission both wait for the sync.
    let record_id = pb::RecordId { uuid: id.clone() };
    let mut read = tokio::spawn({
        let (core, record_id) = (core.clone(), record_id.clone());
        async move { core.get(&member("jp-aisi"), Some(&record_id), false).await }
    });
    let mut again = tokio::spawn({
        let (core, rec) = (core.clone(), rec.clone());
        async move {
            core.submit(&member("uk-aisi"), rec, SubmitKind::SubmitOrCorrect)
                .await
        }
    });
    assert!(
        still_waiting(&mut first).await,
        "acknowledged before its sync"
    );
    assert!(
        still_waiting(&mut read).await,
        "a reader was shown a record that is not durable"
    );
    assert!(
        still_waiting(&mut again).await,
        "a duplicate was acknowledged before the original was durable"
    );
    // Nor has its leaf reached the audit log.
    let size = log_size(&net).await;
    assert_eq!(
        size, 0,
        "the audit log holds a leaf of a non-durable record"
    );

    // Open the gate: all three are answered, with the receipt.
    store.open.send_replace(true);
    let first = first.await.unwrap().unwrap();
    let again = again.await.unwrap().unwrap();
    let read = read.await.unwrap().unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.record_id, id);
    assert!(first.receipt.is_some() && again.receipt.is_some());
    assert_eq!(read.record.unwrap().envelope, rec.envelope);
    assert_eq!(log_size(&net).await, 1);
}

async fn log_size(net: &Net) -> u64 {
    let mut audit = AuditLogClient::new(net.channel("uk-aisi", net.audit_addr, "audit"));
    let note = audit
        .get_checkpoint(cairn_proto::audit::v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .checkpoint;
    cairn_tlog::checkpoint::open(&note, &net.log_key)
        .unwrap()
        .checkpoint
        .size
}
