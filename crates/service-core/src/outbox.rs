//! The audit outbox: leaves of accepted records wait here, durably, until
//! the audit log has integrated them; then their receipts are stored with
//! the records. Surviving restarts and audit outages is the point: a record
//! is acknowledged once it and its outbox item are committed, and the
//! worker keeps appending until the log has it.
//!
//! Delivery is at least once: if the process dies after the log accepted a
//! batch but before the receipts were stored, the leaves are appended
//! again on restart and the records keep the receipts of the second
//! append. Both log entries prove the same record.
//!
//! Only durable items are delivered: on a store where a commit is visible
//! before it is synced (the embedded store), the outbox reads no further than the
//! committed frontier, so that the log never holds the leaf of a record a
//! crash could still take away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_record::pb;
use cairn_store::{Store, WriteBatch};
use prost::Message as _;
use tokio::sync::{Notify, oneshot, watch};
use tonic::transport::Channel;

use crate::stored::{NS_OUTBOX, NS_RECEIPTS, OutboxItem, now_ms, receipt_key};

/// Why a batch of outbox items was not delivered (they stay in the
/// outbox and are tried again).
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// The audit service refused or did not answer.
    #[error("audit log: {}: {}", .0.code(), .0.message())]
    Audit(tonic::Status),
    /// The audit service answered with the wrong number of receipts.
    #[error("audit returned {receipts} receipts for {leaves} leaves")]
    ReceiptCount {
        /// Receipts returned.
        receipts: usize,
        /// Leaves sent.
        leaves: usize,
    },
    /// Storing the receipts failed.
    #[error("storing receipts: {0}")]
    Store(cairn_store::StoreError),
}

/// Most leaves per AppendBatch.
const MAX_BATCH: usize = 1000;

/// What the outbox reports to Prometheus.
#[derive(Clone)]
pub struct OutboxMetrics {
    /// Leaves per AppendBatch.
    pub batch_size: prometheus::Histogram,
    /// Items seen waiting at the last scan (up to one batch).
    pub pending: prometheus::IntGauge,
    /// Age of the oldest waiting item at the last scan.
    pub oldest_seconds: prometheus::Gauge,
    /// From commit to stored receipt, per item.
    pub lag_seconds: prometheus::Histogram,
}

impl OutboxMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        use prometheus::{Gauge, Histogram, HistogramOpts, IntGauge};
        Ok(Self {
            batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "audit_batch_size",
                    "Leaves per AppendBatch sent to the audit log",
                )
                .buckets(cairn_telemetry::metrics::BATCH_BUCKETS.to_vec()),
            )?,
            pending: IntGauge::new(
                "outbox_pending",
                "Accepted records waiting for the audit log at the last scan (counted up to one batch)",
            )?,
            oldest_seconds: Gauge::new(
                "outbox_oldest_seconds",
                "Age of the oldest record waiting for the audit log at the last scan",
            )?,
            lag_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "audit_lag_seconds",
                    "Time from a record's commit to its stored audit receipt",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ]),
            )?,
        })
    }

    /// Adds them to a service's registry.
    pub fn register(
        &self,
        m: &cairn_telemetry::metrics::Metrics,
    ) -> Result<(), cairn_telemetry::TelemetryError> {
        m.register(&self.batch_size)?;
        m.register(&self.pending)?;
        m.register(&self.oldest_seconds)?;
        m.register(&self.lag_seconds)
    }
}

/// A replica appends another replica's items only once they are this old
/// (that replica has probably stopped; if not, the leaf is appended twice,
/// which at-least-once delivery allows).
const ADOPT_AFTER_MS: u64 = 30_000;

pub struct Outbox {
    pub metrics: OutboxMetrics,
    /// This replica's tag on its items; empty when the store has one
    /// process.
    owner: String,
    store: Arc<dyn Store>,
    audit: AuditLogClient<Channel>,
    wake: Notify,
    waiters: Mutex<HashMap<u64, Vec<oneshot::Sender<pb::Receipt>>>>,
    /// The last durable item number, where the store shows commits before
    /// they are durable; `None` where what is visible is durable.
    durable: Option<watch::Receiver<u64>>,
}

impl Outbox {
    /// `durable` follows the last durable item number on a store that
    /// shows commits before they are synced (items beyond it wait).
    pub fn new(
        store: Arc<dyn Store>,
        audit: AuditLogClient<Channel>,
        owner: Option<String>,
        durable: Option<watch::Receiver<u64>>,
    ) -> Result<Arc<Self>, prometheus::Error> {
        Ok(Arc::new(Self {
            metrics: OutboxMetrics::new()?,
            owner: owner.unwrap_or_default(),
            store,
            audit,
            wake: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            durable,
        }))
    }

    /// The tag this replica puts on its items.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether this replica should append `item` now.
    fn is_mine(&self, item: &OutboxItem, now: u64) -> bool {
        self.owner.is_empty()
            || item.owner.is_empty()
            || item.owner == self.owner
            || now.saturating_sub(item.queued_at_ms) >= ADOPT_AFTER_MS
    }

    /// New items were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves with the receipt of outbox item `n` once it is stored.
    pub fn wait(&self, n: u64) -> oneshot::Receiver<pb::Receipt> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiters.lock() {
            w.entry(n).or_default().push(tx);
        }
        rx
    }

    /// Runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let items = match self.waiting().await {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox scan failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            self.metrics.pending.set(items.len() as i64);
            if items.is_empty() {
                self.metrics.oldest_seconds.set(0.0);
                woken.await;
                continue;
            }
            match self.deliver(items).await {
                Ok(true) => backoff = Duration::from_millis(50),
                Ok(false) => {
                    // Only other replicas' recent items: look again when
                    // woken, or in a while to adopt any left behind.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = &mut woken => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "audit append failed; records stay in the outbox");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut woken => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// The items waiting, in order, up to one batch: only durable ones.
    async fn waiting(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, cairn_store::StoreError> {
        // Items are keyed by their number: stop after the durable ones.
        let end = self
            .durable
            .as_ref()
            .map(|d| d.borrow().saturating_add(1).to_be_bytes());
        self.store
            .scan(NS_OUTBOX, &[], end.as_ref().map(|e| &e[..]), MAX_BATCH)
            .await
    }

    /// Appends `items` that are this replica's to deliver and stores their
    /// receipts; `Ok(false)` when none were.
    async fn deliver(&self, items: Vec<(Vec<u8>, Vec<u8>)>) -> Result<bool, DeliveryError> {
        let decoded: Vec<(Vec<u8>, OutboxItem)> = items
            .into_iter()
            .filter_map(|(k, v)| OutboxItem::decode(v.as_slice()).ok().map(|i| (k, i)))
            .collect();
        let now = now_ms();
        let decoded: Vec<(Vec<u8>, OutboxItem)> = decoded
            .into_iter()
            .filter(|(_, i)| self.is_mine(i, now))
            .collect();
        if decoded.is_empty() {
            return Ok(false);
        }
        let oldest = decoded
            .iter()
            .map(|(_, i)| i.queued_at_ms)
            .min()
            .unwrap_or(now);
        self.metrics
            .oldest_seconds
            .set(now.saturating_sub(oldest) as f64 / 1000.0);
        self.metrics.batch_size.observe(decoded.len() as f64);
        let leaves: Vec<Vec<u8>> = decoded.iter().map(|(_, i)| i.leaf.clone()).collect();
        let mut audit = self.audit.clone();
        let receipts = audit
            .append_batch(audit::AppendBatchRequest { leaves })
            .await
            .map_err(DeliveryError::Audit)?
            .into_inner()
            .receipts;
        if receipts.len() != decoded.len() {
            return Err(DeliveryError::ReceiptCount {
                receipts: receipts.len(),
                leaves: decoded.len(),
            });
        }
        // Store all receipts and clear the items in one commit. Receipts
        // live in their own namespace, so this never rewrites (or races
        // with changes to) the records themselves.
        let mut batch = WriteBatch::new();
        for ((key, item), receipt) in decoded.iter().zip(&receipts) {
            batch
                .put(
                    NS_RECEIPTS,
                    receipt_key(item.record_id.as_bytes(), item.erasure),
                    receipt.encode_to_vec(),
                )
                .delete(NS_OUTBOX, key.clone());
        }
        // Unsynced: the receipts are durable in the audit log already and
        // the records were durable before they were acknowledged. A crash
        // before the next durable commit loses this batch whole: its items
        // stay in the outbox and are appended again (at least once).
        self.store
            .commit_unsynced(batch)
            .await
            .map_err(DeliveryError::Store)?;
        let now = now_ms();
        for (_, item) in &decoded {
            self.metrics
                .lag_seconds
                .observe(now.saturating_sub(item.queued_at_ms) as f64 / 1000.0);
        }
        // Before anyone hears of these receipts, they are no longer pending.
        self.metrics.pending.sub(decoded.len() as i64);
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for ((key, _), receipt) in decoded.iter().zip(&receipts) {
            let n = key
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(u64::MAX);
            for tx in waiters.remove(&n).unwrap_or_default() {
                let _ = tx.send(receipt.clone());
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};

    #[tokio::test]
    async fn only_durable_items_are_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        let mut b = WriteBatch::new();
        for n in 1u64..=3 {
            b.put(NS_OUTBOX, n.to_be_bytes().to_vec(), vec![n as u8]);
        }
        store.commit(b).await.unwrap();
        // Never called: nothing here delivers.
        let audit = AuditLogClient::new(
            tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy(),
        );
        let numbers = |items: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<u8> {
            items.into_iter().map(|(_, v)| v[0]).collect()
        };

        let (durable, follows) = watch::channel(1u64);
        let outbox = Outbox::new(store.clone(), audit.clone(), None, Some(follows)).unwrap();
        assert_eq!(numbers(outbox.waiting().await.unwrap()), [1]);
        durable.send_replace(3);
        assert_eq!(numbers(outbox.waiting().await.unwrap()), [1, 2, 3]);

        // Where what is visible is durable: everything.
        let outbox = Outbox::new(store, audit, None, None).unwrap();
        assert_eq!(numbers(outbox.waiting().await.unwrap()), [1, 2, 3]);
    }
}
