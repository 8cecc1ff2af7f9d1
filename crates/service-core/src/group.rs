//! Numbered commits: every accepted record (and erasure) takes the next
//! sequence number in the same commit that stores it.
//!
//! A number is taken *in* the commit: the batch moves the store's counter
//! from `last` to `last + k` by compare-and-swap. Numbers are then unique
//! and committed in order, without gaps — also across replicas sharing a
//! database, which could not hand numbers out from memory (each would
//! hand out the same ones, and none would know what the others have in
//! flight) — and the counter is the committed frontier that watchers
//! follow.
//!
//! One counter means one commit at a time per store, so each process
//! commits in groups: a single task takes every numbered batch waiting,
//! numbers them `last + 1 ..= last + k`, and commits them as one
//! transaction with one counter update. Batches that touch a key another
//! member of the group touches wait for the next group (two submissions of
//! one record id must not both pass "absent"). If the group's transaction
//! conflicts — another replica moved the counter, or one member's
//! precondition failed — each member is committed on its own, and only the
//! one that conflicts is told so (its caller re-reads and retries). A group
//! that only lost the counter to another replica is numbered again and
//! retried whole.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use cairn_record::pb;
use cairn_store::{Op, Store, StoreError, WriteBatch};
use tokio::sync::{mpsc, oneshot};

use crate::outbox::Outbox;
use crate::stored::{META_SEQ_KEY, NS_META};

/// Most batches in one group.
const MAX_GROUP: usize = 512;

/// Groups in a row renumbered after losing the counter to another
/// replica, before its members are committed one by one.
const MAX_LOST: u32 = 16;

/// A batch's writes given its sequence number.
pub type Build = Box<dyn FnMut(u64) -> WriteBatch + Send>;

/// What a numbered commit gives back: its number and the waiter for the
/// receipt of its outbox item.
pub type Numbered = (u64, oneshot::Receiver<pb::Receipt>);

/// A batch waiting for its group.
pub struct Pending {
    pub build: Build,
    pub reply: oneshot::Sender<Result<Numbered, StoreError>>,
}

/// The shared counter: the last number committed in `store`, if the
/// counter exists.
pub async fn stored_number(store: &dyn Store) -> Result<Option<u64>, StoreError> {
    store
        .get(NS_META, META_SEQ_KEY)
        .await?
        .map(|b| {
            <[u8; 8]>::try_from(b.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    what: "sequence counter (not 8 bytes)",
                })
        })
        .transpose()
}

/// The last number committed in `store` (0 before any).
pub async fn last_number(store: &dyn Store) -> Result<u64, StoreError> {
    Ok(stored_number(store).await?.unwrap_or(0))
}

/// Adds the counter's move from `last` (`None`: not there yet) to `to` to
/// `batch`.
fn fence(batch: &mut WriteBatch, last: Option<u64>, to: u64) {
    batch
        .expect(
            NS_META,
            META_SEQ_KEY.to_vec(),
            last.map(|n| n.to_be_bytes().to_vec()),
        )
        .put(NS_META, META_SEQ_KEY.to_vec(), to.to_be_bytes().to_vec());
}

fn keys(batch: &WriteBatch) -> impl Iterator<Item = (&'static str, &[u8])> {
    batch.ops().iter().map(|op| match op {
        Op::Put { namespace, key, .. }
        | Op::Delete { namespace, key }
        | Op::Expect { namespace, key, .. } => (*namespace, key.as_slice()),
    })
}

/// Commits numbered batches in groups until every sender is gone.
/// `advance` moves the replica's frontier to a committed number.
pub async fn run(
    store: Arc<dyn Store>,
    outbox: Arc<Outbox>,
    advance: impl Fn(u64) + Send + 'static,
    mut rx: mpsc::Receiver<Pending>,
) {
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    // Groups in a row that lost the counter to another replica.
    let mut lost = 0u32;
    while take_waiting(&mut rx, &mut waiting).await {
        let stored = match stored_number(&*store).await {
            Ok(n) => n,
            Err(e) => {
                fail_all(waiting.drain(..), &e);
                continue;
            }
        };
        let last = stored.unwrap_or(0);
        let (group, mut all) = form_group(&mut waiting, last);
        let to = last + group.len() as u64;
        fence(&mut all, stored, to);
        let waiters: Vec<_> = (last + 1..=to).map(|n| outbox.wait(n)).collect();
        match store.commit(all).await {
            Ok(()) => {
                lost = 0;
                advance(to);
                // Durable now: the outbox may take the group's items (it
                // reads no further than the frontier).
                outbox.wake();
                for (p, (i, waiter)) in group.into_iter().zip(waiters.into_iter().enumerate()) {
                    let _ = p.reply.send(Ok((last + 1 + i as u64, waiter)));
                }
            }
            // Another replica moved the counter first: number the same
            // group again from the new value (it committed nothing).
            Err(StoreError::Conflict { namespace, key })
                if namespace == NS_META && key.as_bytes() == META_SEQ_KEY && lost < MAX_LOST =>
            {
                drop(waiters);
                lost += 1;
                for p in group.into_iter().rev() {
                    waiting.push_front(p);
                }
            }
            Err(StoreError::Conflict { .. }) => {
                drop(waiters);
                lost = 0;
                each_alone(&*store, &outbox, &advance, group).await;
            }
            Err(e) => fail_all(group, &e),
        }
    }
}

/// Waits for a batch if none is waiting, then takes every other one
/// queued, up to a group's worth; `false` once every sender is gone.
async fn take_waiting(rx: &mut mpsc::Receiver<Pending>, waiting: &mut VecDeque<Pending>) -> bool {
    if waiting.is_empty() {
        match rx.recv().await {
            Some(p) => waiting.push_back(p),
            None => return false,
        }
    }
    while waiting.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(p) => waiting.push_back(p),
            Err(_) => break,
        }
    }
    true
}

/// The next group out of `waiting`, numbered from `last + 1`, and its
/// writes as one batch: the members whose keys no earlier member touches.
/// The others stay in `waiting` for a later group.
fn form_group(waiting: &mut VecDeque<Pending>, last: u64) -> (Vec<Pending>, WriteBatch) {
    let mut group: Vec<Pending> = Vec::new();
    let mut all = WriteBatch::new();
    let mut touched: HashSet<(&'static str, Vec<u8>)> = HashSet::new();
    let mut later = VecDeque::new();
    for mut p in waiting.drain(..) {
        let n = last + 1 + group.len() as u64;
        let batch = (p.build)(n);
        if keys(&batch).any(|(ns, k)| touched.contains(&(ns, k.to_vec()))) {
            later.push_back(p);
            continue;
        }
        touched.extend(keys(&batch).map(|(ns, k)| (ns, k.to_vec())));
        all.append(batch);
        group.push(p);
    }
    *waiting = later;
    (group, all)
}

/// After a group conflicted on a member's precondition: each member
/// committed on its own, so only the one that conflicts is told so.
async fn each_alone(
    store: &dyn Store,
    outbox: &Outbox,
    advance: &impl Fn(u64),
    group: Vec<Pending>,
) {
    for mut p in group {
        let result = alone(store, outbox, &mut p.build).await;
        if let Ok((n, _)) = &result {
            advance(*n);
            outbox.wake();
        }
        let _ = p.reply.send(result);
    }
}

/// Tells every member of a failed group.
fn fail_all(group: impl IntoIterator<Item = Pending>, e: &StoreError) {
    for p in group {
        let _ = p.reply.send(Err(e.clone()));
    }
}

/// One batch committed on its own, with the next number.
async fn alone(
    store: &dyn Store,
    outbox: &Outbox,
    build: &mut Build,
) -> Result<Numbered, StoreError> {
    let stored = stored_number(store).await?;
    let n = stored.unwrap_or(0) + 1;
    let mut batch = build(n);
    fence(&mut batch, stored, n);
    let waiter = outbox.wait(n);
    store.commit(batch).await?;
    Ok((n, waiter))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};

    fn world() -> (tempfile::TempDir, Arc<dyn Store>, Arc<Outbox>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap());
        // Never used: nothing here runs the outbox.
        let audit = AuditLogClient::new(
            tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy(),
        );
        let outbox = Outbox::new(store.clone(), audit, Some("r".into()), None).unwrap();
        (dir, store, outbox)
    }

    /// A record-like batch: insert `id` if absent, indexed by its number.
    fn insert(id: &str) -> Build {
        let id = id.as_bytes().to_vec();
        Box::new(move |n| {
            let mut b = WriteBatch::new();
            b.expect_absent("recs", id.clone())
                .put("recs", id.clone(), n.to_be_bytes().to_vec())
                .put("seqs", n.to_be_bytes().to_vec(), id.clone());
            b
        })
    }

    async fn submit(tx: &mpsc::Sender<Pending>, build: Build) -> Result<u64, StoreError> {
        let (reply, rx) = oneshot::channel();
        tx.send(Pending { build, reply }).await.unwrap();
        rx.await.unwrap().map(|(n, _)| n)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_get_consecutive_unique_numbers() {
        let (_dir, store, outbox) = world();
        let (tx, rx) = mpsc::channel(1024);
        let frontier = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let f = frontier.clone();
        tokio::spawn(run(
            store.clone(),
            outbox,
            move |n| {
                f.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
            },
            rx,
        ));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                submit(&tx, insert(&format!("id-{i}"))).await.unwrap()
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            numbers.push(t.await.unwrap());
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=200).collect::<Vec<u64>>());
        assert_eq!(last_number(&*store).await.unwrap(), 200);
        assert_eq!(frontier.load(std::sync::atomic::Ordering::SeqCst), 200);
        // Each number indexes the record that got it.
        for n in [1u64, 77, 200] {
            let id = store.get("seqs", &n.to_be_bytes()).await.unwrap().unwrap();
            let got = store.get("recs", &id).await.unwrap().unwrap();
            assert_eq!(got, n.to_be_bytes());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_id_twice_in_a_group_has_one_winner_and_no_gap() {
        let (_dir, store, outbox) = world();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run(store.clone(), outbox, |_| {}, rx));
        // Queue both before the committer runs, so they meet in one round.
        let (r1, rx1) = oneshot::channel();
        let (r2, rx2) = oneshot::channel();
        let (r3, rx3) = oneshot::channel();
        tx.send(Pending {
            build: insert("same"),
            reply: r1,
        })
        .await
        .unwrap();
        tx.send(Pending {
            build: insert("same"),
            reply: r2,
        })
        .await
        .unwrap();
        tx.send(Pending {
            build: insert("other"),
            reply: r3,
        })
        .await
        .unwrap();
        let results = [rx1.await.unwrap(), rx2.await.unwrap(), rx3.await.unwrap()];
        let won: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|(n, _)| *n))
            .collect();
        assert_eq!(won.len(), 2, "{results:?}");
        assert!(
            matches!(results[1], Err(StoreError::Conflict { .. }))
                || matches!(results[0], Err(StoreError::Conflict { .. }))
        );
        let mut won = won;
        won.sort_unstable();
        assert_eq!(won, [1, 2], "numbers stay consecutive");
        assert_eq!(last_number(&*store).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_counter_moved_by_another_replica_is_followed() {
        let (_dir, store, outbox) = world();
        // Another replica committed numbers 1..=5 meanwhile.
        let mut b = WriteBatch::new();
        b.put(NS_META, META_SEQ_KEY.to_vec(), 5u64.to_be_bytes().to_vec());
        store.commit(b).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(run(store.clone(), outbox, |_| {}, rx));
        assert_eq!(submit(&tx, insert("x")).await.unwrap(), 6);
        assert_eq!(last_number(&*store).await.unwrap(), 6);
    }
}
