//! The embedded default backend, on redb: one file, `cairn.redb`, and its
//! write-ahead log, `cairn.wal`, in the service's data directory.
//!
//! Durability: a batch is one redb write transaction committed without a
//! sync and a record in the write-ahead log; a commit returns only once the
//! log holding its record is synced, one sync shared by every commit
//! waiting (group commit), never one per record. redb's own durable commit
//! (a checkpoint) runs once the log has grown past
//! [`EmbeddedStoreConfig::checkpoint_bytes`]; redb keeps its last durable
//! commit intact through a crash or a power loss (its commit slots are
//! checksummed), and on open the log's records after it are applied again
//! (a record cut short by the crash fails its checksum: its commit never
//! returned).
//!
//! Memory: redb's cache is bounded ([`EmbeddedStoreConfig::cache_bytes`]);
//! what else it holds does not grow with the data (`bench/store-memory`
//! measures it; BENCHMARKS.md has the figures). The store it replaced,
//! sled 0.34, held memory in proportion to the data however small its
//! cache.
//!
//! **After an I/O failure** (a full disk, a failing device) redb refuses
//! every further operation until it is reopened. So the first I/O error
//! closes the database: that call and every call after it is refused with
//! [`StoreError::Unavailable`] until the store has reopened it, which it
//! tries at most every [`REOPEN_EVERY`] on the next call, once the old
//! handle is gone. redb recovers exactly what was durable: everything
//! whose commit returned `Ok`, nothing of a batch whose commit failed.

mod db;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use self::db::Db;
use crate::{Entry, Store, StoreError, WriteBatch, backend, check_namespace};

/// How often a closed store tries to reopen (on the next call).
pub const REOPEN_EVERY: Duration = Duration::from_millis(250);

/// The most memory the store's cache takes by default (redb's own
/// default, 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 1024 * 1024 * 1024;

/// Settings of a [`EmbeddedStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedStoreConfig {
    /// The directory the store keeps its file in.
    pub path: PathBuf,
    /// Largest value accepted (default 16 MiB).
    pub max_value_len: usize,
    /// The most memory redb's cache may take (default
    /// [`DEFAULT_CACHE_BYTES`]): what the store's resident memory grows to
    /// as it fills, and no further.
    pub cache_bytes: u64,
    /// The write-ahead log's size that triggers a checkpoint (redb's
    /// durable commit; default 1 MiB).
    pub checkpoint_bytes: u64,
}

impl EmbeddedStoreConfig {
    /// Defaults for a store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_value_len: 16 * 1024 * 1024,
            cache_bytes: DEFAULT_CACHE_BYTES,
            checkpoint_bytes: db::CHECKPOINT_BYTES,
        }
    }
}

/// A [`Store`] on redb, durable against process crashes and power loss,
/// that closes itself on an I/O failure and reopens once it can.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

struct Shared {
    config: EmbeddedStoreConfig,
    state: RwLock<State>,
    reopening: tokio::sync::Mutex<()>,
}

enum State {
    Open(Arc<Db>),
    /// Closed after an I/O failure; `old` is the handle being dropped
    /// (redb's lock on its file is released only when it is gone).
    Closed {
        reason: String,
        old: Weak<Db>,
        retry_at: Instant,
    },
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.shared.config.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) a store.
    pub fn open(config: EmbeddedStoreConfig) -> Result<Self, StoreError> {
        let db = Db::open(&config)?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                state: RwLock::new(State::Open(Arc::new(db))),
                reopening: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.config.path
    }

    /// The open database, reopening a closed one when it is time to try.
    async fn current(&self) -> Result<Arc<Db>, StoreError> {
        if let Some(db) = self.open_db()? {
            return Ok(db);
        }
        // One caller reopens; the others are told to retry, not queued
        // behind a reopen that may take a while.
        let Ok(_one) = self.shared.reopening.try_lock() else {
            return Err(StoreError::Unavailable {
                reason: "the store is reopening after an I/O failure".into(),
            });
        };
        if let Some(db) = self.open_db()? {
            return Ok(db);
        }
        let (reason, ready) = {
            let state = self.shared.state.read().map_err(|_| poisoned())?;
            match &*state {
                State::Open(db) => return Ok(db.clone()),
                State::Closed {
                    reason,
                    old,
                    retry_at,
                } => (
                    reason.clone(),
                    old.strong_count() == 0 && Instant::now() >= *retry_at,
                ),
            }
        };
        if !ready {
            return Err(StoreError::Unavailable { reason });
        }
        let config = self.shared.config.clone();
        let reopened = tokio::task::spawn_blocking(move || Db::open(&config))
            .await
            .map_err(backend)?;
        let mut state = self.shared.state.write().map_err(|_| poisoned())?;
        match reopened {
            Ok(db) => {
                tracing::info!(path = %self.path().display(), "store reopened after an I/O failure");
                let db = Arc::new(db);
                *state = State::Open(db.clone());
                Ok(db)
            }
            Err(e) => {
                let reason = format!("{reason}; reopening failed: {}", failure(&e));
                *state = State::Closed {
                    reason: reason.clone(),
                    old: Weak::new(),
                    retry_at: Instant::now() + REOPEN_EVERY,
                };
                Err(StoreError::Unavailable { reason })
            }
        }
    }

    fn open_db(&self) -> Result<Option<Arc<Db>>, StoreError> {
        match &*self.shared.state.read().map_err(|_| poisoned())? {
            State::Open(db) => Ok(Some(db.clone())),
            State::Closed { .. } => Ok(None),
        }
    }

    /// Passes `result` on; an I/O failure closes `db` (if it is still the
    /// open one) and becomes [`StoreError::Unavailable`].
    fn settle<T>(&self, db: &Arc<Db>, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let e = match result {
            Err(e @ StoreError::Io { .. }) => e,
            other => return other,
        };
        let reason = failure(&e);
        if let Ok(mut state) = self.shared.state.write()
            && matches!(&*state, State::Open(open) if Arc::ptr_eq(open, db))
        {
            tracing::error!(path = %self.path().display(), error = %e, "store closed after an I/O failure; it reopens once it can");
            *state = State::Closed {
                reason: reason.clone(),
                old: Arc::downgrade(db),
                retry_at: Instant::now(),
            };
        }
        Err(StoreError::Unavailable { reason })
    }
}

/// What an I/O failure was, for callers (without the server's paths).
fn failure(e: &StoreError) -> String {
    match e {
        StoreError::Io { source, .. } => source.to_string(),
        StoreError::Unavailable { reason } => reason.clone(),
        other => other.to_string(),
    }
}

fn poisoned() -> StoreError {
    StoreError::Stopped {
        what: "the store's state lock (poisoned)",
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(
        &self,
        namespace: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        check_namespace(namespace)?;
        let db = self.current().await?;
        let result = db.read(namespace, key);
        self.settle(&db, result)
    }

    async fn scan(
        &self,
        namespace: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        check_namespace(namespace)?;
        let db = self.current().await?;
        let result = db.scan(namespace, start, end, limit);
        self.settle(&db, result)
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let db = self.current().await?;
        let result = match db.apply(&batch).await {
            Ok(seq) => db.sync_through(seq).await,
            Err(e) => Err(e),
        };
        self.settle(&db, result)
    }

    async fn commit_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let db = self.current().await?;
        let result = match db.apply(&batch).await {
            // Unsynced commits alone (an outbox catching up) must not pile
            // up unwritten: past a checkpoint's worth, this one syncs.
            Ok(seq) if db.sync_due() => db.sync_through(seq).await,
            other => other.map(drop),
        };
        self.settle(&db, result)
    }

    fn max_value_len(&self) -> usize {
        self.shared.config.max_value_len
    }

    async fn size_on_disk(&self) -> Result<Option<u64>, StoreError> {
        let db = self.current().await?;
        let result = db.size_on_disk().map(Some);
        self.settle(&db, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Factory(tempfile::TempDir);

    impl crate::conformance::StoreFactory for Factory {
        type Store = EmbeddedStore;

        fn open(&self) -> EmbeddedStore {
            EmbeddedStore::open(EmbeddedStoreConfig::new(self.0.path().join("store")))
                .expect("open embedded store")
        }
    }

    crate::store_conformance_tests!(Factory(tempfile::tempdir().expect("temp dir")));

    #[tokio::test]
    async fn large_values_round_trip_and_count_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap();
        for i in 0..8u32 {
            let mut b = WriteBatch::new();
            b.put("big", i.to_be_bytes(), vec![i as u8; 1024 * 1024 + 7]);
            store.commit(b).await.unwrap();
        }
        let got = store.get("big", &7u32.to_be_bytes()).await.unwrap();
        assert_eq!(got, Some(vec![7u8; 1024 * 1024 + 7]));
        let size = store.size_on_disk().await.unwrap().unwrap();
        assert!(
            size >= 8 * 1024 * 1024,
            "{size} bytes on disk for 8 MiB of values"
        );
    }

    /// Unsynced commits alone are made durable once a checkpoint's worth
    /// waits, so they never pile up in memory.
    #[tokio::test]
    async fn unsynced_commits_alone_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmbeddedStoreConfig::new(dir.path());
        config.checkpoint_bytes = 64 * 1024;
        let store = EmbeddedStore::open(config.clone()).unwrap();
        for n in 0..100u32 {
            let mut b = WriteBatch::new();
            b.put("cache", n.to_be_bytes(), vec![1; 4096]);
            store.commit_unsynced(b).await.unwrap();
            let db = store.current().await.unwrap();
            assert!(
                !db.sync_due(),
                "at {n}: a checkpoint's worth waits unwritten"
            );
        }
        drop(store);
        // Most of them were made durable on the way.
        let store = EmbeddedStore::open(config).unwrap();
        let kept = store.scan("cache", &[], None, 1000).await.unwrap();
        assert!(kept.len() >= 90, "{} of 100 kept", kept.len());
    }

    /// Across checkpoints and reopenings without one (a dropped store
    /// does not checkpoint), everything committed is there: the log is
    /// written over from its start after each checkpoint, and the old
    /// records left beyond the new ones are skipped.
    #[tokio::test]
    async fn commits_survive_reopening_between_and_across_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = EmbeddedStoreConfig::new(dir.path());
        config.checkpoint_bytes = 64 * 1024;
        let mut next = 0u32;
        for (round, batches) in [40u32, 3, 1, 25, 0, 7].into_iter().enumerate() {
            let store = EmbeddedStore::open(config.clone()).unwrap();
            for n in 0..next {
                let v = store.get("vals", &n.to_be_bytes()).await.unwrap();
                assert_eq!(v, Some(vec![n as u8; 10_000]), "round {round}: {n} lost");
            }
            for _ in 0..batches {
                let mut b = WriteBatch::new();
                b.put("vals", next.to_be_bytes(), vec![next as u8; 10_000]);
                if next > 0 {
                    b.delete("gone", (next - 1).to_be_bytes());
                }
                b.put("gone", next.to_be_bytes(), vec![1]);
                store.commit(b).await.unwrap();
                next += 1;
            }
            let gone = store.scan("gone", &[], None, 100).await.unwrap();
            assert!(gone.len() <= 1, "round {round}: deletes replayed: {gone:?}");
        }
    }

    #[test]
    fn a_directory_with_a_sled_store_is_refused_not_opened_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"segment_size: 8388608").unwrap();
        std::fs::write(dir.path().join("db"), b"sled").unwrap();
        let refused = EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).unwrap_err();
        let StoreError::Config(crate::ConfigProblem::OldLayout { dir: named }) = &refused else {
            panic!("not refused for its layout: {refused}")
        };
        assert_eq!(named, &dir.path().display().to_string());
        assert!(refused.to_string().contains("sled's layout"), "{refused}");
        assert!(!dir.path().join(db::FILE_NAME).exists(), "nothing created");
    }
}
