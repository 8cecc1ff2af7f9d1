//! The record-service core.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_identity::{DirectoryHandle, PeerIdentity, Role};
use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_record::header::{CheckedHeader, time_to_timestamp, timestamp_to_time};
use cairn_record::pb::{self, RecordKind, RecordState, SharingLabel};
use cairn_record::{dsse, record};
use cairn_store::{Store, StoreError, WriteBatch};
use prost::Message as _;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

use crate::error::ServiceError;
use crate::outbox::Outbox;
use crate::stored::*;
use crate::tokens::Tokens;

/// What a service accepts.
#[derive(Clone, Debug)]
pub struct ServicePolicy {
    /// The service name written into log leaves (`intake`, `evals`).
    pub service: &'static str,
    /// Accepted record kinds, each with the roles allowed to submit it
    /// (any one suffices).
    pub kinds: Vec<(RecordKind, Vec<Role>)>,
}

impl ServicePolicy {
    fn roles_for(&self, kind: RecordKind) -> Option<&[Role]> {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, r)| r.as_slice())
    }

    fn any_role(&self) -> BTreeSet<Role> {
        self.kinds
            .iter()
            .flat_map(|(_, r)| r.iter().copied())
            .collect()
    }
}

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

impl Default for RecordCoreConfig {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            max_envelope: 64 * 1024,
            receipt_wait: Duration::from_secs(5),
            max_future: time::Duration::minutes(5),
            max_age: time::Duration::days(7),
            rate_per_member: 1000.0,
            burst_per_member: 2000.0,
        }
    }
}

/// Which submission call this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitKind {
    /// A new record or (intake) a correction that supersedes one.
    SubmitOrCorrect,
    /// A new record: neither `supersedes` nor `retracts`.
    Publish,
    /// `supersedes` must be set.
    Supersede,
    /// `retracts` must be set.
    Retract,
}

/// The answer to a submission.
#[derive(Clone, Debug)]
pub struct SubmitOutcome {
    /// The record id.
    pub record_id: String,
    /// Its audit receipt, unless pending.
    pub receipt: Option<pb::Receipt>,
    /// The record had already been accepted with the same bytes.
    pub duplicate: bool,
    /// The record is durable but the audit log has not integrated it yet.
    pub receipt_pending: bool,
    /// For TLP:CLEAR serious incidents: the Art. 73 deadline.
    pub reporting_deadline: Option<OffsetDateTime>,
}

/// The committed frontier: the last sequence number committed, every
/// smaller one committed too (numbers are taken in their commits: see
/// [`crate::group`]). Readers never look past it, and watchers wake when
/// it moves.
struct Sequencer {
    frontier: watch::Sender<u64>,
}

impl Sequencer {
    fn new(last: u64) -> Self {
        let (frontier, _) = watch::channel(last);
        Self { frontier }
    }
}

/// Moves the frontier up to `n` (never down).
fn advance(sequencer: &Sequencer, n: u64) {
    sequencer.frontier.send_if_modified(|f| {
        let moved = n > *f;
        *f = (*f).max(n);
        moved
    });
}

/// The last sequence number a store written before the counter existed
/// used: the larger of its last sequence entry and its last outbox item
/// (erasures take numbers too). Scans both namespaces; run once, to seed
/// the counter.
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

/// Attempts of a commit that keeps conflicting (a changed record, or, on a
/// shared store, other replicas taking the next number first).
const MAX_ATTEMPTS: u32 = 32;

/// How often a replica on a shared store looks for numbers committed by
/// the others (its own it sees at once).
const SHARED_FRONTIER_POLL: Duration = Duration::from_millis(100);

/// Longest wait for a visible commit to become durable before a read or a
/// duplicate submission is answered `UNAVAILABLE`.
const DURABLE_WAIT: Duration = Duration::from_secs(10);

/// Follows the shared counter for watchers, until the core is dropped.
async fn follow_shared_counter(core: std::sync::Weak<RecordCore>) {
    loop {
        tokio::time::sleep(SHARED_FRONTIER_POLL).await;
        let Some(core) = core.upgrade() else { return };
        match crate::group::last_number(&*core.store).await {
            Ok(n) => advance(&core.sequencer, n),
            Err(e) => tracing::warn!(error = %e, "reading the shared sequence counter"),
        }
    }
}

/// Token buckets, one per member.
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// Takes a token for `member`, or says how long until one is free.
    fn take(&self, member: &str) -> Result<(), Duration> {
        let now = std::time::Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = b.entry(member.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - *tokens) / self.rate.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

/// The core of a record service.
pub struct RecordCore {
    store: Arc<dyn Store>,
    directory: DirectoryHandle,
    policy: ServicePolicy,
    config: RecordCoreConfig,
    outbox: Arc<Outbox>,
    tokens: Tokens,
    audit: AuditLogClient<Channel>,
    sequencer: Sequencer,
    /// Numbered commits go through this process's group committer
    /// ([`crate::group`]).
    group: tokio::sync::mpsc::Sender<crate::group::Pending>,
    /// Other processes write the same store (replicas on a database).
    shared: bool,
    limiter: RateLimiter,
}

impl std::fmt::Debug for RecordCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCore")
            .field("service", &self.policy.service)
            .finish_non_exhaustive()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, b).as_ref());
    out
}

fn salted(salt: &[u8], text: &str) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(text.as_bytes());
    ctx.finish().as_ref().to_vec()
}

fn random32() -> Result<[u8; 32], ServiceError> {
    let mut out = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut out)
        .map_err(|_| ServiceError::Internal("random number generator failed".into()))?;
    Ok(out)
}

/// How much of a record a member may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Visibility {
    Full,
    HeaderOnly,
    Hidden,
}

fn visibility(h: &CheckedHeader, member: &str) -> Visibility {
    if h.author.as_str() == member {
        return Visibility::Full;
    }
    let recipient = h.recipients.iter().any(|r| r == member);
    match h.label {
        SharingLabel::TlpClear | SharingLabel::TlpGreen => Visibility::Full,
        SharingLabel::TlpAmber | SharingLabel::TlpAmberStrict => {
            if recipient {
                Visibility::Full
            } else {
                Visibility::HeaderOnly
            }
        }
        _ => {
            if recipient {
                Visibility::Full
            } else {
                Visibility::Hidden
            }
        }
    }
}

fn header_of(envelope: &[u8]) -> Result<(pb::RecordHeader, CheckedHeader), ServiceError> {
    let env = record::decode_envelope(envelope)
        .map_err(|e| ServiceError::Internal(format!("stored envelope: {e}")))?;
    let raw = record::decode_header(&env.payload)
        .map_err(|e| ServiceError::Internal(format!("stored header: {e}")))?;
    let checked = cairn_record::header::check(&raw)
        .map_err(|e| ServiceError::Internal(format!("stored header: {e}")))?;
    Ok((raw, checked))
}

fn matches_filter(
    raw: &pb::RecordHeader,
    h: &CheckedHeader,
    state: i32,
    f: &pb::RecordFilter,
) -> bool {
    if let Some(a) = &f.author
        && a.id != h.author.as_str()
    {
        return false;
    }
    if !f.kinds.is_empty() && !f.kinds.contains(&(h.kind as i32)) {
        return false;
    }
    if !f.labels.is_empty() && !f.labels.contains(&(h.label as i32)) {
        return false;
    }
    if let Some(after) = f
        .created_after
        .as_ref()
        .and_then(|t| timestamp_to_time(t).ok())
        && h.created_at <= after
    {
        return false;
    }
    if let Some(before) = f
        .created_before
        .as_ref()
        .and_then(|t| timestamp_to_time(t).ok())
        && h.created_at >= before
    {
        return false;
    }
    if !f.include_inactive && state != RecordState::Active as i32 {
        return false;
    }
    let index = raw.index.as_ref().and_then(|i| i.fields.as_ref());
    if let Some(inc) = &f.incident {
        let Some(pb::index_fields::Fields::Incident(i)) = index else {
            return false;
        };
        if !inc.statuses.is_empty() && !inc.statuses.contains(&i.status) {
            return false;
        }
        if inc.min_severity != 0 && i.severity < inc.min_severity {
            return false;
        }
        if !inc.sector.is_empty() && !i.sectors.contains(&inc.sector) {
            return false;
        }
        if !inc.jurisdiction.is_empty() && !i.jurisdictions.contains(&inc.jurisdiction) {
            return false;
        }
    }
    if let Some(ev) = &f.evaluation {
        let Some(pb::index_fields::Fields::Evaluation(e)) = index else {
            return false;
        };
        if !ev.model_name.is_empty() && ev.model_name != e.model_name {
            return false;
        }
        if !ev.model_provider.is_empty() && ev.model_provider != e.model_provider {
            return false;
        }
        if !ev.task_id.is_empty() && !e.task_ids.contains(&ev.task_id) {
            return false;
        }
        if let Some(m) = &ev.evaluator
            && e.evaluator.as_ref() != Some(m)
        {
            return false;
        }
        if ev.risk_domain != 0 && ev.risk_domain != e.risk_domain {
            return false;
        }
    }
    true
}

fn member_of(peer: &PeerIdentity) -> Result<&str, ServiceError> {
    peer.member().map(|m| m.as_str()).ok_or_else(|| {
        ServiceError::PermissionDenied(format!(
            "{peer} is not a member; records are submitted and read by members"
        ))
    })
}

impl RecordCore {
    /// Opens the core over `store`, talking to the audit log through
    /// `audit`, and starts its outbox worker.
    pub async fn open(
        store: Arc<dyn Store>,
        directory: DirectoryHandle,
        policy: ServicePolicy,
        config: RecordCoreConfig,
        audit: AuditLogClient<Channel>,
    ) -> Result<Arc<Self>, ServiceError> {
        let key = match store.get(NS_META, META_TOKEN_KEY).await? {
            Some(k) => k,
            None => {
                let k = random32()?.to_vec();
                let mut b = WriteBatch::new();
                b.expect_absent(NS_META, META_TOKEN_KEY.to_vec()).put(
                    NS_META,
                    META_TOKEN_KEY.to_vec(),
                    k.clone(),
                );
                match store.commit(b).await {
                    Ok(()) => k,
                    Err(StoreError::Conflict { .. }) => {
                        store.get(NS_META, META_TOKEN_KEY).await?.unwrap_or(k)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // The last sequence number: the store's counter. A store written
        // before the counter existed is scanned once to seed it.
        let last = match crate::group::stored_number(&*store).await? {
            Some(n) => n,
            None => {
                let scanned = last_used(&*store).await?;
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
                crate::group::last_number(&*store).await?
            }
        };
        let shared = store.is_shared();
        // Replicas tag their outbox items, so that each appends its own
        // (and a stopped replica's, once they are old).
        let replica = shared.then(|| uuid::Uuid::new_v4().to_string());
        let sequencer = Sequencer::new(last);
        // A shared (SQL) store shows a commit only once it is durable; sled
        // shows it before its sync, so the outbox follows the frontier,
        // which moves once a commit has returned.
        let durable = (!shared).then(|| sequencer.frontier.subscribe());
        let outbox = Outbox::new(store.clone(), audit.clone(), replica, durable)
            .map_err(|e| ServiceError::Internal(format!("metrics: {e}")))?;
        tokio::spawn(outbox.clone().run());
        let limiter = RateLimiter {
            rate: config.rate_per_member,
            burst: config.burst_per_member,
            buckets: Mutex::new(std::collections::HashMap::new()),
        };
        let (group_tx, group_rx) = tokio::sync::mpsc::channel(4096);
        let core = Arc::new(Self {
            store,
            directory,
            policy,
            config,
            outbox,
            tokens: Tokens::new(&key),
            audit,
            sequencer,
            group: group_tx,
            shared,
            limiter,
        });
        let weak = Arc::downgrade(&core);
        tokio::spawn(crate::group::run(
            core.store.clone(),
            core.outbox.clone(),
            move |n| {
                if let Some(c) = weak.upgrade() {
                    advance(&c.sequencer, n);
                }
            },
            group_rx,
        ));
        if shared {
            tokio::spawn(follow_shared_counter(Arc::downgrade(&core)));
        }
        Ok(core)
    }

    /// Commits the batch that `build` makes for its sequence number, in a
    /// group with the other commits waiting (see [`crate::group`]).
    /// Returns the number and the waiter for its outbox item's receipt; a
    /// conflict is [`StoreError::Conflict`] (the caller re-reads and
    /// retries).
    async fn commit_numbered(
        &self,
        build: crate::group::Build,
    ) -> Result<crate::group::Numbered, StoreError> {
        let stopped = || StoreError::Backend("the group committer stopped".into());
        let (reply, rx) = oneshot::channel();
        self.group
            .send(crate::group::Pending { build, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Waits until everything this process has read so far is durable. On
    /// sled a commit is visible before its sync has returned; whatever a
    /// reader is shown or a submitter is told must survive a crash. Call
    /// it after the read: the store's counter then covers every commit the
    /// read could have seen (each moves it in the same transaction), and
    /// the frontier passes it once those commits have returned. A shared
    /// (SQL) store shows a commit only once it is durable: no wait there.
    async fn until_durable(&self, what: &str) -> Result<(), ServiceError> {
        if self.shared {
            return Ok(());
        }
        let visible = crate::group::last_number(&*self.store).await?;
        let mut frontier = self.sequencer.frontier.subscribe();
        let durable = frontier.wait_for(|f| *f >= visible);
        match tokio::time::timeout(DURABLE_WAIT, durable).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ServiceError::Unavailable(format!(
                "{what} is stored but not yet durable (the store is not syncing); retry"
            ))),
        }
    }

    /// The committed frontier: from the store when replicas share it (so a
    /// read on one replica sees what another just committed).
    async fn frontier(&self) -> Result<u64, ServiceError> {
        let local = *self.sequencer.frontier.borrow();
        if !self.shared {
            return Ok(local);
        }
        let stored = crate::group::last_number(&*self.store).await?;
        Ok(local.max(stored))
    }

    /// A pause after a lost compare-and-swap race with another replica.
    async fn after_conflict(&self, attempt: u32) {
        if self.shared {
            let ms = 1u64 << attempt.min(6);
            let jitter = crate::stored::now_ms() % (ms + 1);
            tokio::time::sleep(Duration::from_millis(ms / 2 + jitter)).await;
        }
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
                async move {
                    core.upgrade()
                        .map(|c| *c.sequencer.frontier.borrow() as i64)
                }
            },
        )?;
        let store = self.store.clone();
        m.gauge_on_scrape("store_bytes", "Store size on disk", move || {
            let store = store.clone();
            async move { store.size_on_disk().await.ok().flatten().map(|n| n as i64) }
        })
    }

    /// The largest gRPC message the service should accept: beyond its own
    /// size limits (which answer RESOURCE_EXHAUSTED with the field named),
    /// the transport refuses outright.
    pub fn max_message_len(&self) -> usize {
        4 * (self.config.max_body + self.config.max_envelope)
    }

    /// Accepts a signed record from `peer`, in the order of checks the API
    /// documents; a refusal stores nothing.
    pub async fn submit(
        &self,
        peer: &PeerIdentity,
        signed: pb::SignedRecord,
        call: SubmitKind,
    ) -> Result<SubmitOutcome, ServiceError> {
        let directory = self.directory.current();
        // 1. The connection's member, with a role this service needs.
        let member_id = member_of(peer)?;
        let member = directory.member(member_id).ok_or_else(|| {
            ServiceError::PermissionDenied(format!("member {member_id} is not in the directory"))
        })?;
        if let Err(wait) = self.limiter.take(member_id) {
            return Err(ServiceError::ResourceExhausted(format!(
                "rate limit: member {member_id} is submitting faster than {}/s; retry in {} ms",
                self.config.rate_per_member,
                wait.as_millis().max(1)
            )));
        }
        let needed = self.policy.any_role();
        if !needed.iter().any(|r| member.has_role(*r)) {
            return Err(ServiceError::PermissionDenied(format!(
                "member {member_id} holds none of the roles this service needs ({needed:?})"
            )));
        }
        if signed.envelope.len() > self.config.max_envelope {
            return Err(ServiceError::ResourceExhausted(format!(
                "record.envelope is {} bytes, at most {}",
                signed.envelope.len(),
                self.config.max_envelope
            )));
        }
        if signed.body.len() > self.config.max_body {
            return Err(ServiceError::ResourceExhausted(format!(
                "record.body is {} bytes, at most {}",
                signed.body.len(),
                self.config.max_body
            )));
        }
        // The header names the signer: it must be the connection's member.
        let env = record::decode_envelope(&signed.envelope)?;
        let raw = record::decode_header(&env.payload)?;
        let author = raw
            .author
            .as_ref()
            .map(|a| a.id.as_str())
            .unwrap_or_default();
        if author != member_id {
            return Err(ServiceError::PermissionDenied(format!(
                "record signed by {author:?} arrived on member {member_id}'s connection; members submit their own records"
            )));
        }
        let kind = RecordKind::try_from(raw.kind).unwrap_or(RecordKind::Unspecified);
        let roles = self.policy.roles_for(kind).ok_or_else(|| {
            ServiceError::InvalidArgument(format!(
                "header.kind: {} records are not accepted by cairn-{}",
                kind.as_str_name(),
                self.policy.service
            ))
        })?;
        if !roles.iter().any(|r| member.has_role(*r)) {
            return Err(ServiceError::PermissionDenied(format!(
                "member {member_id} needs one of the roles {roles:?} to submit {} records",
                kind.as_str_name()
            )));
        }
        // 2. The signature, with a key of that member valid at created-at;
        // 3. the header's structure.
        let (raw, h) = record::verify_envelope(&signed.envelope, &directory)?;
        let now = OffsetDateTime::now_utc();
        if h.created_at > now + self.config.max_future {
            return Err(ServiceError::InvalidArgument(
                "header.created_at: is in the future".into(),
            ));
        }
        if h.created_at < now - self.config.max_age {
            return Err(ServiceError::InvalidArgument(format!(
                "header.created_at: is older than {} days",
                self.config.max_age.whole_days()
            )));
        }
        match call {
            SubmitKind::Publish if h.supersedes.is_some() || h.retracts.is_some() => {
                return Err(ServiceError::InvalidArgument("header: a new publication neither supersedes nor retracts; use SupersedeResult or RetractResult".into()));
            }
            SubmitKind::SubmitOrCorrect if h.retracts.is_some() => {
                return Err(ServiceError::InvalidArgument(
                    "header.retracts: incidents are corrected by superseding, not retracted".into(),
                ));
            }
            SubmitKind::Supersede if h.supersedes.is_none() => {
                return Err(ServiceError::InvalidArgument(
                    "header.supersedes: is required".into(),
                ));
            }
            SubmitKind::Retract if h.retracts.is_none() => {
                return Err(ServiceError::InvalidArgument(
                    "header.retracts: is required".into(),
                ));
            }
            _ => {}
        }
        let body = record::check_body(&raw, &h, &signed.body)?;
        // 4. The label rules, against the directory in force.
        self.check_recipients(&h, &body, &directory)?;
        let mut reporting_deadline = None;
        if let Some(pb::record_body::Body::Clear(clear)) = &body.body {
            let implied = cairn_record::content::validate_content(
                kind,
                h.retracts.is_some(),
                member_id,
                &clear.content,
                now,
            )?;
            if !cairn_record::content::index_matches(raw.index.as_ref(), implied.as_ref()) {
                return Err(ServiceError::InvalidArgument(
                    "header.index: does not match the content".into(),
                ));
            }
            if kind == RecordKind::Incident && h.retracts.is_none() {
                reporting_deadline =
                    cairn_proto::intake::v1::Incident::decode(clear.content.as_slice())
                        .ok()
                        .as_ref()
                        .and_then(cairn_record::content::art73_deadline);
            }
        }
        let id = h.record_id.hyphenated().to_string();
        let span = tracing::info_span!("submit", record_id = %id, member = %member_id, service = self.policy.service);
        let _enter = span.enter();

        // 5. Idempotency; 6. the durable store (record, sequence and outbox
        // item in one atomic batch).
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(existing) = self.store.get(NS_RECORDS, id.as_bytes()).await? {
                let e = Entry::decode(existing.as_slice())
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                let e = self.with_receipts(id.as_bytes(), e).await?;
                if e.envelope != signed.envelope
                    || (e.body != signed.body && e.state != RecordState::Erased as i32)
                {
                    return Err(ServiceError::AlreadyExists(format!(
                        "record id {id} is already used by another record"
                    )));
                }
                return self.outcome(id, e, true, reporting_deadline).await;
            }
            let (leaf, salt) = self.leaf_for(&h, &signed.envelope, now)?;
            let mut entry = Entry {
                envelope: signed.envelope.clone(),
                body: signed.body.clone(),
                seq: 0,
                receipt: None,
                leaf: leaf.clone(),
                state: RecordState::Active as i32,
                superseded_by: String::new(),
                leaf_salt: salt,
                received_at: Some(time_to_timestamp(now)),
                erasure_order: Vec::new(),
                erasure_leaf: Vec::new(),
                erasure_receipt: None,
            };
            let mut life = WriteBatch::new();
            if let Some(target) = h.supersedes.or(h.retracts) {
                self.lifecycle(&h, &target.hyphenated().to_string(), &id, &mut life)
                    .await?;
            }
            let item = OutboxItem {
                record_id: id.clone(),
                leaf,
                erasure: false,
                queued_at_ms: crate::stored::now_ms(),
                owner: self.outbox.owner().to_owned(),
            }
            .encode_to_vec();
            let key = id.as_bytes().to_vec();
            // Record, sequence entry, outbox item (and the superseded or
            // retracted record's new state) under the number it gets.
            let build = move |n: u64| {
                entry.seq = n;
                let mut batch = WriteBatch::new();
                batch
                    .expect_absent(NS_RECORDS, key.clone())
                    .put(NS_RECORDS, key.clone(), entry.encode_to_vec())
                    .put(NS_SEQ, n.to_be_bytes().to_vec(), key.clone())
                    .put(NS_OUTBOX, n.to_be_bytes().to_vec(), item.clone())
                    .append(life.clone());
                batch
            };
            match self.commit_numbered(Box::new(build)).await {
                Ok((_, waiter)) => {
                    tracing::info!("record accepted");
                    // 7. The audit append, by the outbox; 8. the receipt.
                    return match tokio::time::timeout(self.config.receipt_wait, waiter).await {
                        Ok(Ok(receipt)) => Ok(SubmitOutcome {
                            record_id: id,
                            receipt: Some(receipt),
                            duplicate: false,
                            receipt_pending: false,
                            reporting_deadline,
                        }),
                        _ => {
                            tracing::warn!(
                                "audit log slow or down: answering with a pending receipt"
                            );
                            Ok(SubmitOutcome {
                                record_id: id,
                                receipt: None,
                                duplicate: false,
                                receipt_pending: true,
                                reporting_deadline,
                            })
                        }
                    };
                }
                Err(StoreError::Conflict { .. }) => {
                    self.after_conflict(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Unavailable(
            "the record kept conflicting with concurrent changes; retry".into(),
        ))
    }

    /// The receipt stored for record `id`'s leaf (or its erasure's).
    async fn stored_receipt(
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
                .map_err(|e| {
                    ServiceError::Internal(format!(
                        "stored receipt of {}: {e}",
                        String::from_utf8_lossy(id)
                    ))
                }),
            None => Ok(None),
        }
    }

    /// `e` with the receipts the outbox has stored for it since.
    async fn with_receipts(&self, id: &[u8], mut e: Entry) -> Result<Entry, ServiceError> {
        if e.receipt.is_none() {
            e.receipt = self.stored_receipt(id, false).await?;
        }
        if e.erasure_receipt.is_none() && !e.erasure_leaf.is_empty() {
            e.erasure_receipt = self.stored_receipt(id, true).await?;
        }
        Ok(e)
    }

    /// The answer for an already stored record.
    async fn outcome(
        &self,
        id: String,
        e: Entry,
        duplicate: bool,
        reporting_deadline: Option<OffsetDateTime>,
    ) -> Result<SubmitOutcome, ServiceError> {
        self.until_durable(&format!("record {id}")).await?;
        if let Some(r) = e.receipt {
            return Ok(SubmitOutcome {
                record_id: id,
                receipt: Some(r),
                duplicate,
                receipt_pending: false,
                reporting_deadline,
            });
        }
        // Still in the outbox: wait for it like the first submission did.
        self.outbox.wake();
        let waiter = self.outbox.wait(e.seq);
        // It may have been stored between our read and the wait.
        if let Some(r) = self.stored_receipt(id.as_bytes(), false).await? {
            return Ok(SubmitOutcome {
                record_id: id,
                receipt: Some(r),
                duplicate,
                receipt_pending: false,
                reporting_deadline,
            });
        }
        match tokio::time::timeout(self.config.receipt_wait, waiter).await {
            Ok(Ok(r)) => Ok(SubmitOutcome {
                record_id: id,
                receipt: Some(r),
                duplicate,
                receipt_pending: false,
                reporting_deadline,
            }),
            _ => Ok(SubmitOutcome {
                record_id: id,
                receipt: None,
                duplicate,
                receipt_pending: true,
                reporting_deadline,
            }),
        }
    }

    fn check_recipients(
        &self,
        h: &CheckedHeader,
        body: &pb::RecordBody,
        directory: &cairn_identity::Directory,
    ) -> Result<(), ServiceError> {
        if h.label == SharingLabel::TlpClear {
            return Ok(());
        }
        for r in &h.recipients {
            if directory.member(r).is_none() {
                return Err(ServiceError::InvalidArgument(format!(
                    "header.recipients: {r:?} is not a member of the directory"
                )));
            }
        }
        if h.label == SharingLabel::TlpGreen {
            let all: Vec<String> = directory.members().map(|m| m.id.to_string()).collect();
            if h.recipients != all {
                return Err(ServiceError::InvalidArgument(format!(
                    "header.recipients: a TLP:GREEN record is sealed to every member of the network ({})",
                    all.join(", ")
                )));
            }
        }
        if let Some(pb::record_body::Body::Sealed(sealed)) = &body.body {
            for (i, w) in sealed.wrapped_keys.iter().enumerate() {
                let rid = w
                    .recipient
                    .as_ref()
                    .map(|r| r.id.as_str())
                    .unwrap_or_default();
                let listed = directory.member(rid).map(|m| m.sealing_key.id.as_str());
                if listed != Some(w.recipient_key_id.as_str()) {
                    return Err(ServiceError::InvalidArgument(format!(
                        "body.sealed.wrapped_keys[{i}]: sealed to key {:?} of {rid}, but the directory lists {:?}",
                        w.recipient_key_id,
                        listed.unwrap_or("none")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Marks the record a new one supersedes or retracts, in `batch`.
    async fn lifecycle(
        &self,
        h: &CheckedHeader,
        target: &str,
        new_id: &str,
        batch: &mut WriteBatch,
    ) -> Result<(), ServiceError> {
        let old = self
            .store
            .get(NS_RECORDS, target.as_bytes())
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound(format!(
                    "record {target} named by the header does not exist here"
                ))
            })?;
        let mut e =
            Entry::decode(old.as_slice()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let (_, th) = header_of(&e.envelope)?;
        if th.author != h.author {
            return Err(ServiceError::PermissionDenied(format!(
                "record {target} is {}'s; only its author may supersede or retract it",
                th.author
            )));
        }
        if th.kind != h.kind {
            return Err(ServiceError::InvalidArgument(format!(
                "header.kind: record {target} is a {} record",
                th.kind.as_str_name()
            )));
        }
        if e.state != RecordState::Active as i32 {
            return Err(ServiceError::FailedPrecondition(format!(
                "record {target} is no longer active (already superseded, retracted or erased)"
            )));
        }
        e.state = if h.retracts.is_some() {
            RecordState::Retracted as i32
        } else {
            RecordState::Superseded as i32
        };
        e.superseded_by = new_id.to_owned();
        batch
            .expect(NS_RECORDS, target.as_bytes().to_vec(), Some(old))
            .put(NS_RECORDS, target.as_bytes().to_vec(), e.encode_to_vec());
        Ok(())
    }

    fn leaf_for(
        &self,
        h: &CheckedHeader,
        envelope: &[u8],
        now: OffsetDateTime,
    ) -> Result<(Vec<u8>, Vec<u8>), ServiceError> {
        let id = h.record_id.hyphenated().to_string();
        let (subject, salt) = if h.label == SharingLabel::TlpRed {
            let salt = random32()?.to_vec();
            (
                pb::log_leaf::Subject::Salted(pb::SaltedLeafSubject {
                    record_id_digest: salted(&salt, &id),
                    author_digest: salted(&salt, h.author.as_str()),
                }),
                salt,
            )
        } else {
            (
                pb::log_leaf::Subject::Clear(pb::LeafSubject {
                    record_id: Some(pb::RecordId { uuid: id }),
                    author: Some(pb::MemberId {
                        id: h.author.to_string(),
                    }),
                }),
                Vec::new(),
            )
        };
        let leaf = pb::LogLeaf {
            kind: h.kind as i32,
            subject: Some(subject),
            received_at: Some(time_to_timestamp(now)),
            envelope_digest: sha256(envelope).to_vec(),
            service: self.policy.service.to_owned(),
        };
        Ok((leaf.encode_to_vec(), salt))
    }

    fn stored_record(&self, e: Entry, vis: Visibility) -> pb::StoredRecord {
        let erased = e.state == RecordState::Erased as i32;
        pb::StoredRecord {
            record: Some(pb::SignedRecord {
                envelope: e.envelope,
                body: if vis == Visibility::Full && !erased {
                    e.body
                } else {
                    Vec::new()
                },
            }),
            receipt_pending: e.receipt.is_none(),
            receipt: e.receipt,
            state: e.state,
            superseded_by: (!e.superseded_by.is_empty()).then_some(pb::RecordId {
                uuid: e.superseded_by,
            }),
            leaf_salt: if vis == Visibility::Full {
                e.leaf_salt
            } else {
                Vec::new()
            },
            received_at: e.received_at,
            erasure_order: e.erasure_order,
            erasure_receipt: e.erasure_receipt,
            latest_proof: None,
        }
    }

    /// Fetches a record `peer` may see.
    pub async fn get(
        &self,
        peer: &PeerIdentity,
        record_id: Option<&pb::RecordId>,
        latest_proof: bool,
    ) -> Result<pb::StoredRecord, ServiceError> {
        let member = self.reader(peer)?;
        let id = record_id
            .map(|r| r.uuid.as_str())
            .ok_or_else(|| ServiceError::InvalidArgument("record_id: is required".into()))?;
        cairn_record::header::parse_record_id(id)
            .map_err(|d| ServiceError::InvalidArgument(format!("record_id: {d}")))?;
        let not_found = || ServiceError::NotFound(format!("no record {id} here"));
        let bytes = self
            .store
            .get(NS_RECORDS, id.as_bytes())
            .await?
            .ok_or_else(not_found)?;
        let e =
            Entry::decode(bytes.as_slice()).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.until_durable(&format!("record {id}")).await?;
        let e = self.with_receipts(id.as_bytes(), e).await?;
        let (_, h) = header_of(&e.envelope)?;
        let vis = visibility(&h, &member);
        match vis {
            Visibility::Hidden => return Err(not_found()),
            Visibility::HeaderOnly => {
                return Err(ServiceError::PermissionDenied(format!(
                    "record {id} is {} and {member} is not among its recipients",
                    h.label.as_str_name()
                )));
            }
            Visibility::Full => {}
        }
        let leaf_index = e.receipt.as_ref().map(|r| r.leaf_index);
        let leaf = e.leaf.clone();
        let mut out = self.stored_record(e, vis);
        if latest_proof && let Some(index) = leaf_index {
            out.latest_proof = Some(self.latest_proof(leaf, index).await?);
        }
        Ok(out)
    }

    async fn latest_proof(&self, leaf: Vec<u8>, index: u64) -> Result<pb::Receipt, ServiceError> {
        let mut audit = self.audit.clone();
        let unavailable =
            |s: tonic::Status| ServiceError::Unavailable(format!("audit log: {}", s.message()));
        let checkpoint = audit
            .get_checkpoint(audit::GetCheckpointRequest {})
            .await
            .map_err(unavailable)?
            .into_inner()
            .checkpoint;
        let note = cairn_tlog::note::parse(&checkpoint)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let size = cairn_tlog::Checkpoint::parse_body(&note.text)
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .size;
        let p = audit
            .get_inclusion_proof(audit::GetInclusionProofRequest {
                leaf: Some(audit::get_inclusion_proof_request::Leaf::LeafIndex(index)),
                tree_size: size,
            })
            .await
            .map_err(unavailable)?
            .into_inner();
        Ok(pb::Receipt {
            leaf,
            leaf_index: index,
            checkpoint,
            inclusion_proof: p.proof,
        })
    }

    fn reader(&self, peer: &PeerIdentity) -> Result<String, ServiceError> {
        let member = member_of(peer)?;
        if self.directory.current().member(member).is_none() {
            return Err(ServiceError::PermissionDenied(format!(
                "member {member} is not in the directory"
            )));
        }
        Ok(member.to_owned())
    }

    /// One page of the records `peer` may see, oldest first.
    pub async fn list(
        &self,
        peer: &PeerIdentity,
        filter: &pb::RecordFilter,
        page_size: u32,
        token: &str,
    ) -> Result<(Vec<pb::StoredRecord>, String), ServiceError> {
        let member = self.reader(peer)?;
        let page_size = match page_size {
            0 => 50,
            n if n > 500 => {
                return Err(ServiceError::InvalidArgument(
                    "page_size: at most 500".into(),
                ));
            }
            n => n as usize,
        };
        let after = self.tokens.read(&member, token, "page_token")?;
        let frontier = self.frontier().await?;
        let (records, last, more) = self
            .scan(&member, filter, after, frontier, page_size, page_size * 20)
            .await?;
        let next = if more {
            self.tokens.make(&member, last)
        } else {
            String::new()
        };
        Ok((records.into_iter().map(|(_, r)| r).collect(), next))
    }

    /// Records after `after` up to `frontier` that `member` may see: at
    /// most `want` records, scanning at most `budget` entries. Returns the
    /// records with their sequence numbers, the last sequence number
    /// examined, and whether more may follow.
    async fn scan(
        &self,
        member: &str,
        filter: &pb::RecordFilter,
        after: u64,
        frontier: u64,
        want: usize,
        budget: usize,
    ) -> Result<(Vec<(u64, pb::StoredRecord)>, u64, bool), ServiceError> {
        let mut out = Vec::new();
        let mut last = after;
        let mut examined = 0;
        while out.len() < want && examined < budget && last < frontier {
            let start = (last + 1).to_be_bytes();
            let end = (frontier + 1).to_be_bytes();
            let batch = self
                .store
                .scan(NS_SEQ, &start, Some(&end), (budget - examined).min(256))
                .await?;
            if batch.is_empty() {
                last = frontier;
                break;
            }
            for (k, id) in batch {
                let seq = <[u8; 8]>::try_from(k.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| ServiceError::Internal("sequence key".into()))?;
                last = seq;
                examined += 1;
                let Some(bytes) = self.store.get(NS_RECORDS, &id).await? else {
                    continue;
                };
                let e = Entry::decode(bytes.as_slice())
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                let (raw, h) = header_of(&e.envelope)?;
                let vis = visibility(&h, member);
                if vis == Visibility::Hidden || !matches_filter(&raw, &h, e.state, filter) {
                    continue;
                }
                let e = self.with_receipts(&id, e).await?;
                out.push((seq, self.stored_record(e, vis)));
                if out.len() >= want {
                    break;
                }
            }
        }
        let more = last < frontier;
        // An entry read here may carry a later, not yet durable change (a
        // supersession, an erasure).
        if !out.is_empty() {
            self.until_durable("a listed record").await?;
        }
        Ok((out, last, more))
    }

    /// Streams the records `peer` may see after `cursor`, then new ones as
    /// they are accepted, until the receiver is dropped.
    pub fn watch(
        self: &Arc<Self>,
        peer: &PeerIdentity,
        filter: pb::RecordFilter,
        cursor: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<pb::WatchEvent, ServiceError>>, ServiceError>
    {
        let member = self.reader(peer)?;
        let mut after = self.tokens.read(&member, cursor, "cursor")?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let core = self.clone();
        tokio::spawn(async move {
            let mut frontier = core.sequencer.frontier.subscribe();
            loop {
                let f = *frontier.borrow_and_update();
                match core.scan(&member, &filter, after, f, 64, 4096).await {
                    Ok((records, last, more)) => {
                        for (seq, record) in records {
                            let event = pb::WatchEvent {
                                cursor: core.tokens.make(&member, seq),
                                record: Some(record),
                            };
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                        after = last;
                        if more {
                            continue;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                tokio::select! {
                    changed = frontier.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }

    /// Erases a record's body under a signed erasure order from its author
    /// or a governance member; the log entry stays and the order is logged.
    pub async fn erase(
        &self,
        peer: &PeerIdentity,
        order_bytes: &[u8],
    ) -> Result<(Option<pb::Receipt>, bool), ServiceError> {
        let member = self.reader(peer)?;
        let directory = self.directory.current();
        let env = record::decode_envelope(order_bytes)?;
        if env.payload_type != dsse::ERASURE_ORDER_TYPE {
            return Err(ServiceError::InvalidArgument(format!(
                "order.payload_type: expected {:?}",
                dsse::ERASURE_ORDER_TYPE
            )));
        }
        let order =
            cairn_proto::evals::v1::ErasureOrder::decode(env.payload.as_slice()).map_err(|e| {
                ServiceError::InvalidArgument(format!("order: not an ErasureOrder ({e})"))
            })?;
        let by = order
            .ordered_by
            .as_ref()
            .map(|m| m.id.as_str())
            .unwrap_or_default();
        if by != member {
            return Err(ServiceError::PermissionDenied(format!(
                "an erasure order by {by:?} arrived on member {member}'s connection"
            )));
        }
        if order.reason.trim().is_empty() {
            return Err(ServiceError::InvalidArgument(
                "order.reason: is required".into(),
            ));
        }
        let at = order
            .ordered_at
            .as_ref()
            .ok_or_else(|| ServiceError::InvalidArgument("order.ordered_at: is required".into()))
            .and_then(|t| {
                timestamp_to_time(t)
                    .map_err(|d| ServiceError::InvalidArgument(format!("order.ordered_at: {d}")))
            })?;
        let m = directory.member(by).ok_or_else(|| {
            ServiceError::PermissionDenied(format!("member {by} is not in the directory"))
        })?;
        let key = m
            .signing_key_at(&order.signing_key_id, at)
            .map_err(|e| ServiceError::PermissionDenied(e.to_string()))?;
        let [sig] = env.signatures.as_slice() else {
            return Err(ServiceError::InvalidArgument(
                "order.signatures: exactly one".into(),
            ));
        };
        if !dsse::verify(&env, sig, key) {
            return Err(ServiceError::PermissionDenied(
                "order: the signature does not verify".into(),
            ));
        }
        let id = order
            .record_id
            .as_ref()
            .map(|r| r.uuid.clone())
            .ok_or_else(|| ServiceError::InvalidArgument("order.record_id: is required".into()))?;
        for attempt in 0..MAX_ATTEMPTS {
            let old = self
                .store
                .get(NS_RECORDS, id.as_bytes())
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no record {id} here")))?;
            let mut e =
                Entry::decode(old.as_slice()).map_err(|e| ServiceError::Internal(e.to_string()))?;
            let (_, h) = header_of(&e.envelope)?;
            if h.author.as_str() != by && !m.has_role(Role::Governance) {
                return Err(ServiceError::PermissionDenied(format!(
                    "only the author ({}) or a governance member may erase record {id}",
                    h.author
                )));
            }
            if e.state == RecordState::Erased as i32 {
                self.until_durable(&format!("the erasure of record {id}"))
                    .await?;
                let e = self.with_receipts(id.as_bytes(), e).await?;
                return Ok((e.erasure_receipt.clone(), e.erasure_receipt.is_none()));
            }
            let now = OffsetDateTime::now_utc();
            let leaf = pb::LogLeaf {
                kind: h.kind as i32,
                subject: Some(pb::log_leaf::Subject::Clear(pb::LeafSubject {
                    record_id: Some(pb::RecordId { uuid: id.clone() }),
                    author: Some(pb::MemberId { id: by.to_owned() }),
                })),
                received_at: Some(time_to_timestamp(now)),
                envelope_digest: sha256(order_bytes).to_vec(),
                service: self.policy.service.to_owned(),
            }
            .encode_to_vec();
            e.body.clear();
            e.state = RecordState::Erased as i32;
            e.erasure_order = order_bytes.to_vec();
            e.erasure_leaf = leaf.clone();
            let item = OutboxItem {
                record_id: id.clone(),
                leaf,
                erasure: true,
                queued_at_ms: crate::stored::now_ms(),
                owner: self.outbox.owner().to_owned(),
            }
            .encode_to_vec();
            let (key, erased) = (id.as_bytes().to_vec(), e.encode_to_vec());
            let build = move |n: u64| {
                let mut batch = WriteBatch::new();
                batch
                    .expect(NS_RECORDS, key.clone(), Some(old.clone()))
                    .put(NS_RECORDS, key.clone(), erased.clone())
                    .put(NS_OUTBOX, n.to_be_bytes().to_vec(), item.clone());
                batch
            };
            match self.commit_numbered(Box::new(build)).await {
                Ok((_, waiter)) => {
                    tracing::info!(record_id = %id, by, "record erased");
                    return match tokio::time::timeout(self.config.receipt_wait, waiter).await {
                        Ok(Ok(r)) => Ok((Some(r), false)),
                        _ => Ok((None, true)),
                    };
                }
                Err(StoreError::Conflict { .. }) => {
                    self.after_conflict(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Unavailable(
            "the record kept changing; retry".into(),
        ))
    }
}
