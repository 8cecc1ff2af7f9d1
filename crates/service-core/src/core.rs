//! The record-service core: its state, how it opens, and the one way a
//! change reaches the store — [`RecordCore::commit_retrying`], which reads,
//! builds a numbered batch, commits it in a group, retries on conflicts
//! and waits for the audit receipt. Submitting ([`crate::submit`]), reading
//! ([`crate::reads`]) and erasing ([`crate::erase`]) are built on it.

use std::sync::Arc;
use std::time::Duration;

use cairn_identity::{DirectoryHandle, Member, PeerIdentity};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_record::pb;
use cairn_store::{Store, StoreError, WriteBatch};
use prost::Message as _;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::error::ServiceError;
use crate::frontier::CommittedFrontier;
use crate::group;
use crate::limiter::RateLimiter;
use crate::outbox::Outbox;
use crate::policy::ServicePolicy;
use crate::stored::*;
use crate::tokens::Tokens;

/// Limits and timings.
#[derive(Clone, Debug)]
pub struct RecordCoreConfig {
    /// Largest body (default 1 MiB).
    pub max_body: usize,
    /// Largest envelope (default 64 KiB).
    pub max_envelope: usize,
    /// How long a submission waits for its audit receipt before answering
    /// with `receipt_pending` (default 5 s).
    pub receipt_wait: Duration,
    /// How far in the future a record's created-at may be (default 5 min).
    pub max_future: time::Duration,
    /// How old a new record's created-at may be (default 7 days).
    pub max_age: time::Duration,
    /// Sustained submissions per second allowed per member (default 1000).
    pub rate_per_member: f64,
    /// Submissions a member may make in a burst (default 2000).
    pub burst_per_member: f64,
}

impl RecordCoreConfig {
    /// The bounds on claimed times, as `cairn_record::clock` applies them.
    pub fn clock(&self) -> cairn_record::clock::ClockBounds {
        cairn_record::clock::ClockBounds {
            max_future: self.max_future,
            max_age: self.max_age,
        }
    }
}

impl Default for RecordCoreConfig {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            max_envelope: 64 * 1024,
            receipt_wait: Duration::from_secs(5),
            max_future: cairn_record::clock::ClockBounds::default().max_future,
            max_age: cairn_record::clock::ClockBounds::default().max_age,
            rate_per_member: 1000.0,
            burst_per_member: 2000.0,
        }
    }
}

/// Attempts of a change that keeps conflicting (a changed record, or, on a
/// shared store, other replicas taking the next number first).
const MAX_ATTEMPTS: u32 = 32;

/// How often a replica on a shared store looks for numbers committed by
/// the others (its own it sees at once).
const SHARED_FRONTIER_POLL: Duration = Duration::from_millis(100);

/// Longest wait for a visible commit to become durable before a read or a
/// duplicate submission is answered `UNAVAILABLE`.
const DURABLE_WAIT: Duration = Duration::from_secs(10);

/// The core of a record service.
pub struct RecordCore {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) directory: DirectoryHandle,
    pub(crate) policy: ServicePolicy,
    pub(crate) config: RecordCoreConfig,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) tokens: Tokens,
    pub(crate) audit: AuditLogClient<Channel>,
    pub(crate) frontier: CommittedFrontier,
    /// Numbered commits go through this process's group committer
    /// ([`crate::group`]).
    group: tokio::sync::mpsc::Sender<group::Pending>,
    /// Other processes write the same store (replicas on a database).
    shared: bool,
    pub(crate) limiter: RateLimiter,
    /// The outbox's delivery task, which runs for as long as the core.
    outbox_task: tokio::task::AbortHandle,
}

/// A core that is gone (its service stopped) stops delivering its outbox,
/// so that nothing holds its store open any longer; what was not yet
/// delivered stays in the outbox for the next start.
impl Drop for RecordCore {
    fn drop(&mut self) {
        self.outbox_task.abort();
    }
}

impl std::fmt::Debug for RecordCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCore")
            .field("service", &self.policy.service)
            .finish_non_exhaustive()
    }
}

/// What one attempt at a change decided, from what it read.
pub(crate) enum Attempt<T> {
    /// Nothing to commit: answer with this (a duplicate submission, an
    /// erasure already done).
    Answer(T),
    /// Commit the batch this builds for its sequence number.
    Commit(group::Build),
}

/// How a change ended.
pub(crate) enum Committed<T> {
    /// It was already there: the attempt's answer.
    Answered(T),
    /// It committed; its outbox item's receipt, unless the audit log did
    /// not answer within `receipt_wait`.
    Receipt(Option<pb::Receipt>),
}

/// A change to the store that reads before it writes, and so is tried
/// again when a concurrent commit changed what it read.
pub(crate) trait Change: Sync {
    /// What an attempt answers without committing.
    type Answer: Send;
    /// Reads the current state and decides.
    async fn attempt(&self, core: &RecordCore) -> Result<Attempt<Self::Answer>, ServiceError>;
}

/// The connection's member id, if the peer is a member.
pub(crate) fn member_of(peer: &PeerIdentity) -> Result<&str, ServiceError> {
    peer.member()
        .map(|m| m.as_str())
        .ok_or_else(|| ServiceError::NotAMember {
            peer: peer.to_string(),
        })
}

/// The page-token key: made once per store, shared by its replicas.
async fn token_key(store: &dyn Store) -> Result<Vec<u8>, ServiceError> {
    if let Some(k) = store.get(NS_META, META_TOKEN_KEY).await? {
        return Ok(k);
    }
    let k = crate::leaves::random32()?.to_vec();
    let mut b = WriteBatch::new();
    b.expect_absent(NS_META, META_TOKEN_KEY.to_vec()).put(
        NS_META,
        META_TOKEN_KEY.to_vec(),
        k.clone(),
    );
    match store.commit(b).await {
        Ok(()) => Ok(k),
        Err(StoreError::Conflict { .. }) => {
            Ok(store.get(NS_META, META_TOKEN_KEY).await?.unwrap_or(k))
        }
        Err(e) => Err(e.into()),
    }
}

/// The last sequence number: the store's counter. A store written before
/// the counter existed is scanned once to seed it.
async fn last_number_or_seed(store: &dyn Store) -> Result<u64, ServiceError> {
    if let Some(n) = group::stored_number(store).await? {
        return Ok(n);
    }
    let scanned = last_used(store).await?;
    let mut b = WriteBatch::new();
    b.expect_absent(NS_META, META_SEQ_KEY.to_vec()).put(
        NS_META,
        META_SEQ_KEY.to_vec(),
        scanned.to_be_bytes().to_vec(),
    );
    match store.commit(b).await {
        // Another replica seeded it first.
        Ok(()) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(group::last_number(store).await?)
}

/// The last sequence number a store written before the counter existed
/// used: the larger of its last sequence entry and its last outbox item
/// (erasures take numbers too).
async fn last_used(store: &dyn Store) -> Result<u64, ServiceError> {
    let mut last = 0;
    for ns in [NS_SEQ, NS_OUTBOX] {
        let mut start = Vec::new();
        loop {
            let page = store.scan(ns, &start, None, 4096).await?;
            let Some((k, _)) = page.last() else { break };
            if let Ok(b) = <[u8; 8]>::try_from(k.as_slice()) {
                last = last.max(u64::from_be_bytes(b));
            }
            if page.len() < 4096 {
                break;
            }
            start = k.clone();
            start.push(0);
        }
    }
    Ok(last)
}

/// Follows the shared counter for watchers, until the core is dropped.
async fn follow_shared_counter(core: std::sync::Weak<RecordCore>) {
    loop {
        tokio::time::sleep(SHARED_FRONTIER_POLL).await;
        let Some(core) = core.upgrade() else { return };
        match group::last_number(&*core.store).await {
            Ok(n) => core.frontier.advance(n),
            Err(e) => tracing::warn!(error = %e, "reading the shared sequence counter"),
        }
    }
}

impl RecordCore {
    /// Opens the core over `store`, talking to the audit log through
    /// `audit`, and starts its outbox worker and group committer.
    pub async fn open(
        store: Arc<dyn Store>,
        directory: DirectoryHandle,
        policy: ServicePolicy,
        config: RecordCoreConfig,
        audit: AuditLogClient<Channel>,
    ) -> Result<Arc<Self>, ServiceError> {
        let key = token_key(&*store).await?;
        let frontier = CommittedFrontier::new(last_number_or_seed(&*store).await?);
        let shared = store.is_shared();
        // Replicas tag their outbox items, so that each appends its own
        // (and a stopped replica's, once they are old).
        let replica = shared.then(|| uuid::Uuid::new_v4().to_string());
        // A shared (SQL) store shows a commit only once it is durable; the embedded store
        // shows it before its sync, so the outbox follows the frontier,
        // which moves once a commit has returned.
        let durable = (!shared).then(|| frontier.subscribe());
        let outbox = Outbox::new(store.clone(), audit.clone(), replica, durable)
            .map_err(|e| ServiceError::Metrics(e.to_string()))?;
        let outbox_task = tokio::spawn(outbox.clone().run()).abort_handle();
        let limiter = RateLimiter::new(config.rate_per_member, config.burst_per_member);
        let (group_tx, group_rx) = tokio::sync::mpsc::channel(4096);
        let core = Arc::new(Self {
            store,
            directory,
            policy,
            config,
            outbox,
            tokens: Tokens::new(&key)?,
            audit,
            frontier,
            group: group_tx,
            shared,
            limiter,
            outbox_task,
        });
        let weak = Arc::downgrade(&core);
        tokio::spawn(group::run(
            core.store.clone(),
            core.outbox.clone(),
            move |n| {
                if let Some(c) = weak.upgrade() {
                    c.frontier.advance(n);
                }
            },
            group_rx,
        ));
        if shared {
            tokio::spawn(follow_shared_counter(Arc::downgrade(&core)));
        }
        Ok(core)
    }

    /// The member behind `peer`, if the directory in force lists it.
    pub(crate) fn member(&self, peer: &PeerIdentity) -> Result<Member, ServiceError> {
        let id = member_of(peer)?;
        self.directory
            .current()
            .member(id)
            .cloned()
            .ok_or_else(|| ServiceError::UnknownMember {
                member: id.to_owned(),
            })
    }

    /// Takes one request from member `id`'s budget, or says when to retry.
    pub(crate) fn within_rate(&self, id: &str) -> Result<(), ServiceError> {
        self.limiter
            .take(id)
            .map_err(|wait| ServiceError::RateLimited {
                member: id.to_owned(),
                rate: self.limiter.rate(),
                retry_ms: wait.as_millis().max(1),
            })
    }

    /// The one way a change is stored: `change` reads and decides; its
    /// batch commits under the next sequence number in a group; a conflict
    /// (something it read changed) pauses and tries again, at most
    /// [`MAX_ATTEMPTS`] times; a committed change waits up to
    /// `receipt_wait` for its audit receipt.
    pub(crate) async fn commit_retrying<C: Change>(
        &self,
        change: &C,
    ) -> Result<Committed<C::Answer>, ServiceError> {
        for attempt in 0..MAX_ATTEMPTS {
            let build = match change.attempt(self).await? {
                Attempt::Answer(a) => return Ok(Committed::Answered(a)),
                Attempt::Commit(build) => build,
            };
            match self.commit_numbered(build).await {
                Ok((_, waiter)) => {
                    return Ok(Committed::Receipt(self.receipt_within(waiter).await));
                }
                Err(StoreError::Conflict { .. }) => self.after_conflict(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflicting)
    }

    /// The receipt `waiter` resolves with, if it does within `receipt_wait`.
    pub(crate) async fn receipt_within(
        &self,
        waiter: oneshot::Receiver<pb::Receipt>,
    ) -> Option<pb::Receipt> {
        match tokio::time::timeout(self.config.receipt_wait, waiter).await {
            Ok(Ok(receipt)) => Some(receipt),
            _ => {
                tracing::warn!("audit log slow or down: answering with a pending receipt");
                None
            }
        }
    }

    /// Commits the batch that `build` makes for its sequence number, in a
    /// group with the other commits waiting (see [`crate::group`]).
    async fn commit_numbered(&self, build: group::Build) -> Result<group::Numbered, StoreError> {
        let stopped = || StoreError::Stopped {
            what: "the group committer",
        };
        let (reply, rx) = oneshot::channel();
        self.group
            .send(group::Pending { build, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A pause after a lost compare-and-swap race with another replica.
    async fn after_conflict(&self, attempt: u32) {
        if self.shared {
            let ms = 1u64 << attempt.min(6);
            let jitter = crate::stored::now_ms() % (ms + 1);
            tokio::time::sleep(Duration::from_millis(ms / 2 + jitter)).await;
        }
    }

    /// Waits until everything this process has read so far is durable. On
    /// the embedded store a commit is visible before its sync has returned; whatever a
    /// reader is shown or a submitter is told must survive a crash. Call
    /// it after the read: the store's counter then covers every commit the
    /// read could have seen (each moves it in the same transaction), and
    /// the frontier passes it once those commits have returned. A shared
    /// (SQL) store shows a commit only once it is durable: no wait there.
    pub(crate) async fn until_durable(
        &self,
        what: impl FnOnce() -> String,
    ) -> Result<(), ServiceError> {
        if self.shared {
            return Ok(());
        }
        let visible = group::last_number(&*self.store).await?;
        if self.frontier.wait_past(visible, DURABLE_WAIT).await {
            Ok(())
        } else {
            Err(ServiceError::NotDurable { what: what() })
        }
    }

    /// The committed frontier: from the store when replicas share it (so a
    /// read on one replica sees what another just committed).
    pub(crate) async fn frontier_now(&self) -> Result<u64, ServiceError> {
        let local = self.frontier.current();
        if !self.shared {
            return Ok(local);
        }
        Ok(local.max(group::last_number(&*self.store).await?))
    }

    /// The stored entry of record `id`, if any.
    pub(crate) async fn entry(&self, id: &str) -> Result<Option<(Vec<u8>, Entry)>, ServiceError> {
        match self.store.get(NS_RECORDS, id.as_bytes()).await? {
            Some(bytes) => {
                let e = Entry::decode(bytes.as_slice())
                    .map_err(|e| ServiceError::corrupt("record entry", e))?;
                Ok(Some((bytes, e)))
            }
            None => Ok(None),
        }
    }

    /// The record `id` a new record's header names (its thread, the report
    /// it acknowledges, the incident it is about), with `member`'s access
    /// to it under `op`. One that is absent or hidden from `member` is
    /// `TargetNotFound`: the same answer either way.
    pub(crate) async fn named(
        &self,
        id: &str,
        member: &Member,
        op: crate::labels::Operation,
    ) -> Result<
        (
            Entry,
            cairn_record::header::CheckedHeader,
            crate::labels::Decision,
        ),
        ServiceError,
    > {
        use crate::labels::{Decision, Reader, decide};
        let not_found = || ServiceError::TargetNotFound {
            record: id.to_owned(),
        };
        let (_, e) = self.entry(id).await?.ok_or_else(not_found)?;
        let (_, h) = header_of(&e.envelope)?;
        match decide(op, h.label, Reader::of(&h, member)) {
            Decision::Hidden => Err(not_found()),
            decision => Ok((e, h, decision)),
        }
    }

    /// The receipt stored for record `id`'s leaf (or its erasure's).
    pub(crate) async fn stored_receipt(
        &self,
        id: &[u8],
        erasure: bool,
    ) -> Result<Option<pb::Receipt>, ServiceError> {
        match self
            .store
            .get(NS_RECEIPTS, &receipt_key(id, erasure))
            .await?
        {
            Some(bytes) => pb::Receipt::decode(bytes.as_slice())
                .map(Some)
                .map_err(|e| ServiceError::corrupt("receipt", e)),
            None => Ok(None),
        }
    }

    /// `e` with the receipts the outbox has stored for it since.
    pub(crate) async fn with_receipts(
        &self,
        id: &[u8],
        mut e: Entry,
    ) -> Result<Entry, ServiceError> {
        if e.receipt.is_none() {
            e.receipt = self.stored_receipt(id, false).await?;
        }
        if e.erasure_receipt.is_none() && !e.erasure_leaf.is_empty() {
            e.erasure_receipt = self.stored_receipt(id, true).await?;
        }
        Ok(e)
    }

    /// Adds the service's own metrics to `m`: the outbox (batch sizes,
    /// pending items, audit lag), the committed sequence frontier and the
    /// store's size on disk.
    pub fn register_metrics(
        self: &Arc<Self>,
        m: &cairn_telemetry::metrics::Metrics,
    ) -> Result<(), cairn_telemetry::TelemetryError> {
        self.outbox.metrics.register(m)?;
        let core = Arc::downgrade(self);
        m.gauge_on_scrape(
            "records_sequenced",
            "Committed sequence number frontier (records and erasures accepted)",
            move || {
                let core = core.clone();
                async move { core.upgrade().map(|c| c.frontier.current() as i64) }
            },
        )?;
        m.store_size_gauge(self.store.clone())
    }

    /// The largest gRPC message the service should accept: beyond its own
    /// size limits (which answer RESOURCE_EXHAUSTED with the field named),
    /// the transport refuses outright.
    pub fn max_message_len(&self) -> usize {
        4 * (self.config.max_body + self.config.max_envelope)
    }
}
