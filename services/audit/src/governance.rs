//! `cairn.audit.v1.Governance`: the network's directory governed through
//! this log. A `directory_change` record is checked against the history
//! ([`cairn_record::governance::Governed`]), stored, appended to the log
//! like every record (service `audit`), and applied to the directory this
//! service runs on as soon as its proposal reaches the quorum.
//!
//! Storage, in the log's store:
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `directory_changes` | ordinal, 8 bytes big-endian | `DirectoryChangeEntry` (record, leaf, leaf index) |
//! | `directory_pending` | `in-flight` | `DirectoryChangeEntry` of the one change being appended (leaf index 0) |
//!
//! What a crash leaves: one change at a time is in flight (a mutex). Its
//! record and leaf are stored as pending before the leaf is appended; the
//! entry replaces the pending row once the log has answered. A crash
//! before the pending row is durable leaves nothing (the member was never
//! answered). A crash after it leaves a pending row that the next
//! submission (or the start of the service) completes: the leaf is looked
//! up in the log and appended if it is not there, then the entry is
//! written. So the history holds exactly the change records whose leaves
//! are in the log, in log order.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_identity::{DirectoryHandle, PeerIdentity};
use cairn_log::Log;
use cairn_mtls::peer_info;
use cairn_proto::audit::v1 as pb;
use cairn_proto::audit::v1::governance_server::Governance as GovernanceApi;
use cairn_proto::common::v1 as common;
use cairn_record::RecordError;
use cairn_record::clock::ClockBounds;
use cairn_record::governance::{ChangeProblem, Checked, Governed, Standing};
use cairn_record::leaf::{clear_subject, encode};
use cairn_store::{Store, WriteBatch};
use prost::Message as _;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use crate::error::AuditError;
use crate::grpc::ADMIT_WAIT;
use crate::guard::Gate;

/// The namespace of accepted change records.
pub const NS_CHANGES: &str = "directory_changes";
/// The namespace of the change in flight.
pub const NS_PENDING: &str = "directory_pending";
const PENDING_KEY: &[u8] = b"in-flight";
/// Most change records in one history page.
pub const MAX_HISTORY_PAGE: u32 = 100;

/// The governance service; cheap to clone.
#[derive(Clone)]
pub struct GovernanceService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    log: Log,
    gate: Gate,
    directory: DirectoryHandle,
    version: prometheus::IntGauge,
    state: Mutex<Option<State>>,
    /// How many change records are stored, for watchers.
    count: tokio::sync::watch::Sender<u64>,
    /// Set when the service stops: watch streams end, so that a graceful
    /// stop does not wait for followers forever.
    stopping: tokio::sync::watch::Sender<bool>,
}

struct State {
    governed: Governed,
    /// Record id → ordinal, for resubmissions.
    ordinals: HashMap<String, u64>,
}

fn key(ordinal: u64) -> [u8; 8] {
    ordinal.to_be_bytes()
}

fn decode_entry(bytes: &[u8], ordinal: u64) -> Result<pb::DirectoryChangeEntry, AuditError> {
    pb::DirectoryChangeEntry::decode(bytes).map_err(|e| AuditError::GovernanceCorrupt {
        ordinal,
        problem: format!("not a DirectoryChangeEntry ({e})"),
    })
}

impl GovernanceService {
    /// Rebuilds the history from `genesis` (the text of the directory file,
    /// `None` for a bare directory) and the stored change records, and puts
    /// the directory in force into `directory`.
    pub async fn open(
        store: Arc<dyn Store>,
        log: Log,
        gate: Gate,
        directory: DirectoryHandle,
        genesis: Option<&str>,
        version: prometheus::IntGauge,
    ) -> Result<Self, AuditError> {
        let state = match genesis {
            Some(text) => Some(load(store.as_ref(), text).await?),
            None => None,
        };
        let count = state.as_ref().map_or(0, |s| s.governed.len() as u64);
        let svc = Self {
            inner: Arc::new(Inner {
                store,
                log,
                gate,
                directory,
                version,
                state: Mutex::new(state),
                count: tokio::sync::watch::channel(count).0,
                stopping: tokio::sync::watch::channel(false).0,
            }),
        };
        if let Some(s) = svc.inner.state.lock().await.as_ref() {
            svc.put_in_force(&s.governed)?;
        }
        Ok(svc)
    }

    /// Ends every watch stream (the service is stopping).
    pub fn close(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Completes a change left in flight by a crash, once appends are
    /// admitted; a start runs it in the background.
    pub async fn recover(&self) -> Result<(), AuditError> {
        let mut guard = self.inner.state.lock().await;
        if let Some(state) = guard.as_mut() {
            self.finish_pending(state).await?;
        }
        Ok(())
    }

    fn put_in_force(&self, governed: &Governed) -> Result<(), AuditError> {
        let now = governed.current();
        let current = self.inner.directory.current();
        if current.digest() != now.directory.digest() || current.quorum() != now.directory.quorum()
        {
            self.inner.directory.replace((*now.directory).clone())?;
            tracing::info!(
                version = now.version,
                effective_at = now.effective_at,
                "directory version in force"
            );
        }
        self.inner
            .version
            .set(i64::try_from(now.version).unwrap_or(i64::MAX));
        Ok(())
    }

    async fn finish_pending(&self, state: &mut State) -> Result<(), AuditError> {
        let store = self.inner.store.as_ref();
        let Some(bytes) = store.get(NS_PENDING, PENDING_KEY).await? else {
            return Ok(());
        };
        let ordinal = state.governed.len() as u64;
        let mut entry = decode_entry(&bytes, ordinal)?;
        let record = entry.record.clone().unwrap_or_default();
        let checked = state
            .governed
            .check(&record)
            .map_err(|e| AuditError::GovernanceCorrupt {
                ordinal,
                problem: format!("the change in flight no longer checks: {e}"),
            })?;
        let hash = cairn_tlog::hash::leaf_hash(&entry.leaf);
        let index = match self.inner.log.index_of(&hash).await {
            Ok(index) => index,
            Err(cairn_log::LogError::UnknownLeaf) => {
                self.inner.gate.admit(ADMIT_WAIT).await?;
                self.inner.log.append(entry.leaf.clone()).await?.leaf_index
            }
            Err(e) => return Err(e.into()),
        };
        entry.leaf_index = index;
        self.commit_entry(state, entry, checked).await?;
        tracing::info!(
            ordinal,
            leaf_index = index,
            "completed the directory change left in flight"
        );
        Ok(())
    }

    async fn commit_entry(
        &self,
        state: &mut State,
        entry: pb::DirectoryChangeEntry,
        checked: cairn_record::governance::Checked,
    ) -> Result<Standing, AuditError> {
        let ordinal = state.governed.len() as u64;
        let mut batch = WriteBatch::new();
        batch
            .expect_absent(NS_CHANGES, key(ordinal))
            .put(NS_CHANGES, key(ordinal), entry.encode_to_vec())
            .delete(NS_PENDING, PENDING_KEY);
        self.inner.store.commit(batch).await?;
        state
            .ordinals
            .insert(checked.record_id.hyphenated().to_string(), ordinal);
        let standing = state.governed.apply(checked, entry.leaf_index);
        self.inner.count.send_replace(state.governed.len() as u64);
        self.put_in_force(&state.governed)?;
        Ok(standing)
    }

    async fn submit(
        &self,
        peer: &PeerIdentity,
        record: common::SignedRecord,
    ) -> Result<pb::SubmitDirectoryChangeResponse, AuditError> {
        let mut guard = self.inner.state.lock().await;
        let state = guard
            .as_mut()
            .ok_or(AuditError::Change(RecordError::Change(
                ChangeProblem::NoGenesis,
            )))?;
        self.finish_pending(state).await?;
        if let Some(id) = state.governed.resubmitted(&record) {
            return self.answer_again(state, &id.hyphenated().to_string()).await;
        }
        let checked = state.governed.check(&record).map_err(AuditError::Change)?;
        match peer {
            PeerIdentity::Member { id, .. } if id.as_str() == checked.author => {}
            other => {
                return Err(AuditError::SignerNotPeer {
                    signer: checked.author.clone(),
                    peer: other.to_string(),
                });
            }
        }
        let now = time::OffsetDateTime::now_utc();
        received_in_time(&state.governed, &checked, now)?;
        let leaf = encode(
            common::RecordKind::DirectoryChange,
            clear_subject(&checked.record_id.hyphenated().to_string(), &checked.author),
            now,
            &record.envelope,
            "audit",
        );
        self.inner.log.check_sizes(std::slice::from_ref(&leaf))?;
        self.inner.gate.admit(ADMIT_WAIT).await?;
        let mut entry = pb::DirectoryChangeEntry {
            record: Some(record),
            leaf: leaf.clone(),
            leaf_index: 0,
        };
        let mut batch = WriteBatch::new();
        batch.put(NS_PENDING, PENDING_KEY, entry.encode_to_vec());
        self.inner.store.commit(batch).await?;
        let receipt = self.inner.log.append(leaf.clone()).await?;
        entry.leaf_index = receipt.leaf_index;
        let standing = self.commit_entry(state, entry, checked).await?;
        Ok(response(
            crate::grpc::receipt(leaf, receipt),
            &standing,
            state.governed.current().version,
        ))
    }

    /// The answer to a record accepted before: where its proposal stands
    /// now, with a receipt against the latest checkpoint.
    async fn answer_again(
        &self,
        state: &State,
        record_id: &str,
    ) -> Result<pb::SubmitDirectoryChangeResponse, AuditError> {
        let ordinal = state.ordinals.get(record_id).copied().ok_or_else(|| {
            AuditError::GovernanceCorrupt {
                ordinal: state.governed.len() as u64,
                problem: format!("accepted record {record_id} has no stored entry"),
            }
        })?;
        let bytes = self
            .inner
            .store
            .get(NS_CHANGES, &key(ordinal))
            .await?
            .ok_or(AuditError::GovernanceCorrupt {
                ordinal,
                problem: "an accepted change record is not stored".into(),
            })?;
        let entry = decode_entry(&bytes, ordinal)?;
        let snap = self.inner.log.snapshot();
        let (_, proof) = self
            .inner
            .log
            .inclusion_proof(entry.leaf_index, snap.size)
            .await?;
        let receipt = common::Receipt {
            leaf: entry.leaf,
            leaf_index: entry.leaf_index,
            checkpoint: snap.checkpoint.to_string(),
            inclusion_proof: proof.iter().map(|h| h.to_vec()).collect(),
        };
        let id = cairn_record::header::parse_record_id(record_id).map_err(|detail| {
            AuditError::GovernanceCorrupt {
                ordinal,
                problem: detail.into(),
            }
        })?;
        let proposal = state.governed.proposal_of(&id).unwrap_or(id);
        let standing = state.governed.standing(&proposal).unwrap_or(Standing {
            proposal,
            approvals: 0,
            quorum: 0,
            effective: None,
        });
        Ok(response(
            receipt,
            &standing,
            state.governed.current().version,
        ))
    }

    async fn history(
        &self,
        from: u64,
        page_size: u32,
    ) -> Result<pb::GetDirectoryHistoryResponse, AuditError> {
        if page_size > MAX_HISTORY_PAGE {
            return Err(AuditError::PageSize {
                max: MAX_HISTORY_PAGE,
            });
        }
        let page = if page_size == 0 {
            MAX_HISTORY_PAGE
        } else {
            page_size
        };
        let (genesis, total) = {
            let guard = self.inner.state.lock().await;
            let state = guard
                .as_ref()
                .ok_or(AuditError::Change(RecordError::Change(
                    ChangeProblem::NoGenesis,
                )))?;
            (
                state.governed.genesis().to_owned(),
                state.governed.len() as u64,
            )
        };
        let from = from.min(total);
        let changes = read_entries(self.inner.store.as_ref(), from, total, page).await?;
        Ok(pb::GetDirectoryHistoryResponse {
            genesis: genesis.into_bytes(),
            next: from + changes.len() as u64,
            changes,
            total,
        })
    }
}

/// The stored entries with ordinals in `[from, end)`, at most `limit`.
async fn read_entries(
    store: &dyn Store,
    from: u64,
    end: u64,
    limit: u32,
) -> Result<Vec<pb::DirectoryChangeEntry>, AuditError> {
    let rows = store
        .scan(NS_CHANGES, &key(from), Some(&key(end)), limit as usize)
        .await?;
    let mut changes = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        changes.push(decode_entry(&row.1, from + i as u64)?);
    }
    Ok(changes)
}

/// Sends the entries from `next` on, then each new one, until the
/// watcher goes away or the service stops.
async fn feed(
    inner: Arc<Inner>,
    mut next: u64,
    tx: tokio::sync::mpsc::Sender<Result<pb::DirectoryChangeEntry, Status>>,
) {
    let mut count = inner.count.subscribe();
    let mut stopping = inner.stopping.subscribe();
    loop {
        if *stopping.borrow_and_update() {
            return;
        }
        let total = *count.borrow_and_update();
        while next < total {
            let page = match read_entries(inner.store.as_ref(), next, total, MAX_HISTORY_PAGE).await
            {
                Ok(page) if !page.is_empty() => page,
                Ok(_) => return,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            for entry in page {
                if tx.send(Ok(entry)).await.is_err() {
                    return;
                }
                next += 1;
            }
        }
        tokio::select! {
            changed = count.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            _ = stopping.changed() => return,
        }
    }
}

fn response(
    receipt: common::Receipt,
    s: &Standing,
    version: u64,
) -> pb::SubmitDirectoryChangeResponse {
    pb::SubmitDirectoryChangeResponse {
        receipt: Some(receipt),
        proposal: Some(common::RecordId {
            uuid: s.proposal.hyphenated().to_string(),
        }),
        standing: if s.effective.is_some() {
            pb::ChangeStanding::Effective
        } else {
            pb::ChangeStanding::Pending
        } as i32,
        approvals: s.approvals,
        quorum: s.quorum,
        version,
    }
}

/// Copies the accepted change records whose leaves lie in a tree of
/// `size` leaves from `from` into `to` (a backup or a restore: with the
/// log, the history it holds); returns how many.
pub async fn copy_history(from: &dyn Store, to: &dyn Store, size: u64) -> Result<u64, AuditError> {
    let mut next = 0u64;
    loop {
        let rows = from
            .scan(NS_CHANGES, &key(next), None, MAX_HISTORY_PAGE as usize)
            .await?;
        let mut batch = WriteBatch::new();
        let mut done = rows.is_empty();
        for (k, v) in rows {
            if decode_entry(&v, next)?.leaf_index >= size {
                done = true;
                break;
            }
            batch.put(NS_CHANGES, k, v);
            next += 1;
        }
        if !batch.is_empty() {
            to.commit(batch).await?;
        }
        if done {
            return Ok(next);
        }
    }
}

/// The history from `genesis` and the stored change records.
async fn load(store: &dyn Store, genesis: &str) -> Result<State, AuditError> {
    let mut governed = Governed::from_genesis(genesis, "genesis").map_err(AuditError::Change)?;
    let mut ordinals = HashMap::new();
    let mut next = 0u64;
    loop {
        let rows = store
            .scan(NS_CHANGES, &key(next), None, MAX_HISTORY_PAGE as usize)
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let entry = decode_entry(&row.1, next)?;
            let record = entry.record.unwrap_or_default();
            let checked = governed
                .check(&record)
                .map_err(|e| AuditError::GovernanceCorrupt {
                    ordinal: next,
                    problem: e.to_string(),
                })?;
            ordinals.insert(checked.record_id.hyphenated().to_string(), next);
            governed.apply(checked, entry.leaf_index);
            next += 1;
        }
    }
    Ok(State { governed, ordinals })
}

#[tonic::async_trait]
impl GovernanceApi for GovernanceService {
    async fn submit_directory_change(
        &self,
        request: Request<pb::SubmitDirectoryChangeRequest>,
    ) -> Result<Response<pb::SubmitDirectoryChangeResponse>, Status> {
        let peer = peer_info(&request)
            .ok_or(AuditError::NoPeer)?
            .identity
            .clone();
        let record = request.into_inner().record.ok_or(AuditError::NoRecord)?;
        Ok(Response::new(self.submit(&peer, record).await?))
    }

    type WatchDirectoryStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::DirectoryChangeEntry, Status>>;

    async fn watch_directory(
        &self,
        request: Request<pb::WatchDirectoryRequest>,
    ) -> Result<Response<Self::WatchDirectoryStream>, Status> {
        if self.inner.state.lock().await.is_none() {
            return Err(AuditError::Change(RecordError::Change(ChangeProblem::NoGenesis)).into());
        }
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(feed(self.inner.clone(), request.into_inner().from, tx));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn get_directory_history(
        &self,
        request: Request<pb::GetDirectoryHistoryRequest>,
    ) -> Result<Response<pb::GetDirectoryHistoryResponse>, Status> {
        let r = request.into_inner();
        Ok(Response::new(self.history(r.from, r.page_size).await?))
    }
}

/// A change's created-at lies within the clock bounds of the time it is
/// received, and its key is valid then too — what intake and evals require
/// of records: a key whose window has ended signs no change, however the
/// change is dated (a revoked key is refused by `Governed::check` already).
fn received_in_time(
    governed: &Governed,
    checked: &Checked,
    now: time::OffsetDateTime,
) -> Result<(), AuditError> {
    ClockBounds::default()
        .check(checked.created_at, now)
        .map_err(|skew| AuditError::ChangeClock { skew })?;
    if let Some(member) = governed.current().directory.member(&checked.author) {
        member
            .signing_key_at(&checked.signing_key_id, now)
            .map_err(AuditError::ChangeKeyNotCurrent)?;
    }
    Ok(())
}
