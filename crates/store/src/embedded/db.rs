//! One open redb database: reads, transactions and the group-committed
//! sync that makes them durable. [`super::EmbeddedStore`] holds one at a
//! time and replaces it after an I/O failure.
//!
//! Each namespace is its own redb table of byte keys and values. A batch
//! is one redb write transaction committed without a sync
//! ([`redb::Durability::None`]: visible to readers at once) and logged in
//! the write-ahead log ([`super::wal`]); [`Db::sync_through`] makes it
//! durable by writing and syncing the log, one sync shared by every batch
//! waiting (group commit), never one per record, and without holding the
//! writer: batches go on being applied while the log syncs. redb's own
//! durable commit runs only at a checkpoint (when the log reaches
//! [`super::EmbeddedStoreConfig::checkpoint_bytes`]);
//! it also saves redb's allocator state (quick repair), so opening after a
//! crash reads it instead of walking every tree, then applies the log's
//! records after the checkpoint again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Durability, ReadableDatabase as _, ReadableTable as _, TableDefinition, TableError};

use super::EmbeddedStoreConfig;
use super::wal::{Logged, Wal};
use crate::{Entry, Op, StoreError, WriteBatch, backend, check_namespace};

/// The database file inside the store's directory.
pub(super) const FILE_NAME: &str = "cairn.redb";

/// A checkpoint (redb's durable commit) runs once the write-ahead log holds
/// this many bytes. The writer waits while it runs (it writes every page
/// dirtied since the last one), so larger means fewer, longer pauses: at
/// half of peak, 16 MiB gave a receipt p99 of 43 ms, 4 MiB 17–19 ms, 1 MiB
/// 10–11 ms, at the same throughput (BENCHMARKS.md). It also bounds the
/// log applied again at open.
pub(super) const CHECKPOINT_BYTES: u64 = 1024 * 1024;

/// The table holding the last write number a checkpoint covers (not a
/// namespace: those start with a letter).
const WAL_TABLE: TableDefinition<'static, &'static str, u64> = TableDefinition::new("_wal");
const CHECKPOINTED: &str = "through";

/// Batches of up to this many bytes are written on the calling task; larger
/// ones on the blocking pool (redb copies them into its pages).
const INLINE_COMMIT_BYTES: usize = 64 * 1024;

/// A namespace's table, open in a write transaction.
type WriteTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;

/// A namespace's table.
fn table(namespace: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(namespace)
}

/// An open redb database and the state of its syncs.
pub(super) struct Db {
    db: redb::Database,
    path: PathBuf,
    max_value_len: usize,
    /// One writer at a time, waited for without holding a thread (redb's
    /// own `begin_write` blocks the calling thread).
    writer: tokio::sync::Mutex<()>,
    /// The last write number applied (and logged).
    written: AtomicU64,
    /// The last write number durable (in the log or checkpointed).
    synced: AtomicU64,
    sync_lock: tokio::sync::Mutex<()>,
    wal: Wal,
    checkpoint_bytes: u64,
}

impl Db {
    /// Opens (creating if needed) the database `config` names; redb
    /// recovers the last durable commit (repairing its allocator state
    /// after an unclean stop).
    pub(super) fn open(config: &EmbeddedStoreConfig) -> Result<Self, StoreError> {
        let dir = config.path.clone();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        refuse_sled_layout(&dir)?;
        let path = dir.join(FILE_NAME);
        let db = redb::Database::builder()
            .set_cache_size(usize::try_from(config.cache_bytes).unwrap_or(usize::MAX))
            .create(&path)
            .map_err(|e| redb_error(&path, e.into()))?;
        let (wal, logged) = Wal::open(&dir)?;
        // Make the files' directory entries durable once.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&dir, e))?;
        let db = Self {
            db,
            path,
            max_value_len: config.max_value_len,
            writer: tokio::sync::Mutex::new(()),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
            wal,
            checkpoint_bytes: config.checkpoint_bytes,
        };
        db.recover(logged)?;
        Ok(db)
    }

    /// Applies the log's records after the last checkpoint again, then
    /// checkpoints them and empties the log.
    fn recover(&self, logged: Vec<Logged>) -> Result<(), StoreError> {
        let through = self.checkpointed()?;
        let mut last = through;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        for record in logged.iter().filter(|r| r.seq > through) {
            if record.seq != last + 1 {
                return Err(StoreError::Corrupt {
                    what: "write-ahead log (a record is missing after the checkpoint)",
                });
            }
            for op in &record.ops {
                let mut t = tx
                    .open_table(table(&op.namespace))
                    .map_err(|e| self.err(e))?;
                match &op.value {
                    Some(v) => t.insert(op.key.as_slice(), v.as_slice()).map(drop),
                    None => t.remove(op.key.as_slice()).map(drop),
                }
                .map_err(|e| self.err(e))?;
            }
            last = record.seq;
        }
        if last > through {
            tracing::info!(path = %self.path.display(), records = last - through, "store: applied the write-ahead log after a stop without a checkpoint");
        }
        self.checkpoint_in(tx, last)?;
        self.wal.reset(self.checkpoint_bytes)?;
        self.written.store(last, Ordering::Release);
        self.synced.store(last, Ordering::Release);
        Ok(())
    }

    /// The last write number a checkpoint covers (0 before any).
    fn checkpointed(&self) -> Result<u64, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match tx.open_table(WAL_TABLE) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(self.err(e)),
        };
        let through = t.get(CHECKPOINTED).map_err(|e| self.err(e))?;
        Ok(through.map(|v| v.value()).unwrap_or(0))
    }

    /// Commits `tx` durably, recording that it covers write `through`.
    fn checkpoint_in(
        &self,
        mut tx: redb::WriteTransaction,
        through: u64,
    ) -> Result<(), StoreError> {
        tx.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        // A durable commit also saves redb's allocator state (quick
        // repair), so a store reopened after a crash needs no walk of its
        // trees: without it, 5 s for a 2 GiB store (BENCHMARKS.md).
        tx.set_quick_repair(true);
        {
            let mut t = tx.open_table(WAL_TABLE).map_err(|e| self.err(e))?;
            t.insert(CHECKPOINTED, through).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        redb_error(&self.path, e.into())
    }

    pub(super) fn read(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match tx.open_table(table(namespace)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let value = t.get(key).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub(super) fn scan(
        &self,
        namespace: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if end.is_some_and(|end| start >= end) || limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match tx.open_table(table(namespace)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let range = match end {
            Some(end) => t.range::<&[u8]>(start..end),
            None => t.range::<&[u8]>(start..),
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in range.take(limit) {
            let (k, v) = item.map_err(|e| self.err(e))?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    pub(super) fn size_on_disk(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len() + self.wal.len())
            .map_err(|e| io(&self.path, e))
    }

    /// Applies `batch` in one redb transaction, visible but not yet
    /// durable; returns its write number (what [`Db::sync_through`] waits
    /// for).
    pub(super) async fn apply(self: &Arc<Self>, batch: &WriteBatch) -> Result<u64, StoreError> {
        let mut bytes = 0usize;
        for op in batch.ops() {
            let (Op::Put { namespace, .. }
            | Op::Delete { namespace, .. }
            | Op::Expect { namespace, .. }) = op;
            check_namespace(namespace)?;
            if let Op::Put { value, .. } = op {
                if value.len() > self.max_value_len {
                    return Err(StoreError::ValueTooLarge {
                        len: value.len(),
                        limit: self.max_value_len,
                    });
                }
                bytes += value.len();
            }
        }
        let _writer = self.writer.lock().await;
        // A small transaction only touches redb's cache: run it here rather
        // than pay a hand-off to the blocking pool (the profile of the
        // end-to-end load showed thread hand-offs, not the work,
        // dominating). Large ones may write pages out.
        if bytes <= INLINE_COMMIT_BYTES {
            self.write(batch.ops())?;
        } else {
            let db = self.clone();
            let ops = batch.ops().to_vec();
            tokio::task::spawn_blocking(move || db.write(&ops))
                .await
                .map_err(backend)??;
        }
        // Logged in apply order: the writer is still held.
        let seq = self.written.load(Ordering::Acquire) + 1;
        self.wal.append(seq, batch.ops());
        self.written.store(seq, Ordering::Release);
        Ok(seq)
    }

    /// Whether so much was applied without a sync that the next unsynced
    /// commit should sync after all (what waits for the log, and what redb
    /// holds until a checkpoint, stays bounded).
    pub(super) fn sync_due(&self) -> bool {
        self.wal.waiting_len() as u64 >= self.checkpoint_bytes
    }

    /// Waits until everything committed up to `seq` is on stable storage:
    /// one sync of the write-ahead log shared among concurrent committers,
    /// while batches go on being applied; a checkpoint when the log has
    /// grown past its threshold ([`EmbeddedStoreConfig::checkpoint_bytes`]).
    pub(super) async fn sync_through(self: &Arc<Self>, seq: u64) -> Result<(), StoreError> {
        let _turn = self.sync_lock.lock().await;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        // A checkpoint, when due, runs first and makes `seq` durable itself:
        // so a commit that fails (a checkpoint refused for a full disk) has
        // no record in the log either, and is not there after a reopen.
        if self.wal.len() >= self.checkpoint_bytes {
            return self.checkpoint().await;
        }
        let db = self.clone();
        let durable = tokio::task::spawn_blocking(move || db.wal.write_and_sync())
            .await
            .map_err(backend)??;
        if let Some(through) = durable {
            self.synced.fetch_max(through, Ordering::AcqRel);
        }
        Ok(())
    }

    /// redb's durable commit of everything applied, then an empty log.
    /// Called with the sync turn held (no log write in flight); holds the
    /// writer (no batch applied meanwhile).
    async fn checkpoint(self: &Arc<Self>) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let through = self.written.load(Ordering::Acquire);
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.db.begin_write().map_err(|e| db.err(e))?;
            db.checkpoint_in(tx, through)?;
            db.wal.reset(db.checkpoint_bytes)
        })
        .await
        .map_err(backend)??;
        self.synced.fetch_max(through, Ordering::AcqRel);
        Ok(())
    }

    /// One write transaction: every precondition checked against the state
    /// before it, then every write, then the commit (not durable: the
    /// write-ahead log makes it so).
    fn write(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(|e| self.err(e))?;
        tx.set_durability(Durability::None)
            .map_err(|e| self.err(e))?;
        for op in ops {
            if let Op::Expect {
                namespace,
                key,
                value,
            } = op
            {
                let t = tx.open_table(table(namespace)).map_err(|e| self.err(e))?;
                let current = t.get(key.as_slice()).map_err(|e| self.err(e))?;
                if current.as_ref().map(|v| v.value()) != value.as_deref() {
                    return Err(StoreError::Conflict {
                        namespace: (*namespace).to_owned(),
                        key: String::from_utf8_lossy(key).into_owned(),
                    });
                }
            }
        }
        // Consecutive writes to one namespace share its open table.
        let mut open: Option<(&str, WriteTable<'_>)> = None;
        for op in ops {
            let (namespace, key, value) = match op {
                Op::Put {
                    namespace,
                    key,
                    value,
                } => (*namespace, key, Some(value)),
                Op::Delete { namespace, key } => (*namespace, key, None),
                Op::Expect { .. } => continue,
            };
            if open.as_ref().is_none_or(|(n, _)| *n != namespace) {
                // A table may be open only once in a transaction.
                drop(open.take());
                let t = tx.open_table(table(namespace)).map_err(|e| self.err(e))?;
                open = Some((namespace, t));
            }
            let Some((_, t)) = open.as_mut() else {
                continue;
            };
            match value {
                Some(v) => t.insert(key.as_slice(), v.as_slice()).map(drop),
                None => t.remove(key.as_slice()).map(drop),
            }
            .map_err(|e| self.err(e))?;
        }
        drop(open);
        tx.commit().map_err(|e| self.err(e))
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A redb error: its I/O failures as [`StoreError::Io`] (which close the
/// store: see [`super::EmbeddedStore`]), anything else as a backend error.
fn redb_error(path: &Path, e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(source) => io(path, source),
        // redb refuses everything after a failed I/O until it is reopened.
        redb::Error::PreviousIo => io(
            path,
            std::io::Error::other("an earlier I/O failure left the database to be reopened"),
        ),
        other => backend(other),
    }
}

/// A directory that holds a sled store (written by cairn before it moved
/// to redb) is refused rather than silently opened as an empty store.
fn refuse_sled_layout(dir: &Path) -> Result<(), StoreError> {
    if dir.join("conf").is_file() && dir.join("db").is_file() && !dir.join(FILE_NAME).exists() {
        return Err(StoreError::Config(crate::ConfigProblem::OldLayout {
            dir: dir.display().to_string(),
        }));
    }
    Ok(())
}
