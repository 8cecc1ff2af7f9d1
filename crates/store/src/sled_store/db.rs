//! One open sled database: reads, transactions and the group-committed
//! sync that makes them durable. [`super::SledStore`] holds one at a time
//! and replaces it after an I/O failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::transaction::TransactionError;

use super::SledStoreConfig;
use super::encoding::{
    DATA, Head, Prepared, apply_prepared, chunk_key, data_key, decode_head, prepare,
};
use crate::{Entry, StoreError, WriteBatch, backend};

/// Commits up to this many bytes run on the calling task (see `apply`).
const INLINE_COMMIT_BYTES: usize = 64 * 1024;

/// An open sled database and the state of its syncs.
pub(super) struct Db {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    data_file: File,
    max_value_len: usize,
    written: AtomicU64,
    synced: AtomicU64,
    sync_lock: tokio::sync::Mutex<()>,
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Db {
    /// Opens (creating if needed) the database `config` names; sled
    /// recovers what was durable.
    pub(super) fn open(config: &SledStoreConfig) -> Result<Self, StoreError> {
        let path = config.path.clone();
        std::fs::create_dir_all(&path).map_err(|e| io(&path, e))?;
        let db = sled::Config::new()
            .path(&path)
            .segment_size(8 * 1024 * 1024)
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| sled_error(&path, e))?;
        let tree = db.open_tree("cairn").map_err(|e| sled_error(&path, e))?;
        let data_path = path.join("db");
        let data_file = File::open(&data_path).map_err(|e| io(&data_path, e))?;
        // Make the files' directory entries durable once.
        File::open(&path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&path, e))?;
        Ok(Self {
            db,
            tree,
            path,
            data_file,
            max_value_len: config.max_value_len,
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            sync_lock: tokio::sync::Mutex::new(()),
        })
    }

    fn sled(&self, e: sled::Error) -> StoreError {
        sled_error(&self.path, e)
    }

    pub(super) fn read(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tree = &self.tree;
        // A concurrent overwrite may remove the chunks between reading the
        // head and the chunks; read again then.
        for _ in 0..8 {
            let Some(raw) = tree
                .get(data_key(namespace, key))
                .map_err(|e| self.sled(e))?
            else {
                return Ok(None);
            };
            match decode_head(&raw)? {
                Head::Inline(v) => return Ok(Some(v)),
                Head::Chunked {
                    write_id,
                    chunks,
                    len,
                } => {
                    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                    let mut complete = true;
                    for i in 0..chunks {
                        match tree
                            .get(chunk_key(namespace, key, write_id, i))
                            .map_err(|e| self.sled(e))?
                        {
                            Some(part) => out.extend_from_slice(&part),
                            None => {
                                complete = false;
                                break;
                            }
                        }
                    }
                    if complete {
                        return Ok(Some(out));
                    }
                }
            }
        }
        Err(StoreError::Contended(crate::Contention::Read))
    }

    pub(super) fn scan(
        &self,
        namespace: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let lo = data_key(namespace, start);
        let hi = match end {
            Some(end) => data_key(namespace, end),
            None => {
                let mut hi = vec![DATA];
                hi.extend_from_slice(namespace.as_bytes());
                hi.push(1);
                hi
            }
        };
        if lo >= hi {
            return Ok(Vec::new());
        }
        let prefix_len = 2 + namespace.len();
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.tree.range(lo..hi) {
            if out.len() >= limit {
                break;
            }
            let (k, raw) = item.map_err(|e| self.sled(e))?;
            let key = k[prefix_len..].to_vec();
            let value = match decode_head(&raw)? {
                Head::Inline(v) => v,
                Head::Chunked { .. } => match self.read(namespace, &key)? {
                    Some(v) => v,
                    None => continue,
                },
            };
            out.push((key, value));
        }
        Ok(out)
    }

    pub(super) fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| self.sled(e))
    }

    /// Applies `batch` in one sled transaction; returns its write number
    /// (what [`Db::sync_through`] waits for).
    pub(super) async fn apply(self: &Arc<Self>, batch: &WriteBatch) -> Result<u64, StoreError> {
        let prepared: Vec<Prepared> = prepare(batch, self.max_value_len, || {
            self.db.generate_id().map_err(|e| self.sled(e))
        })?;
        let db = self.clone();
        let bytes: usize = prepared.iter().map(Prepared::len).sum();
        let apply = move || db.tree.transaction(|tx| apply_prepared(tx, &prepared));
        // A small transaction only touches sled's in-memory tree and log
        // buffer: run it here rather than pay a hand-off to the blocking
        // pool (the profile of the end-to-end load showed thread hand-offs,
        // not the work, dominating). Large ones may wait on log I/O.
        let outcome = if bytes <= INLINE_COMMIT_BYTES {
            apply()
        } else {
            tokio::task::spawn_blocking(apply).await.map_err(backend)?
        };
        match outcome {
            Ok(()) => {}
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(self.sled(e)),
        }
        Ok(self.written.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Waits until everything committed up to `seq` is on stable storage,
    /// sharing one flush and fdatasync among concurrent committers.
    pub(super) async fn sync_through(self: &Arc<Self>, seq: u64) -> Result<(), StoreError> {
        let _turn = self.sync_lock.lock().await;
        if self.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let target = self.written.load(Ordering::Acquire);
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.sync_files())
            .await
            .map_err(backend)??;
        self.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    fn sync_files(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.sled(e))?;
        self.data_file
            .sync_data()
            .map_err(|e| io(&self.path.join("db"), e))?;
        let blobs = self.path.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            let mut any = false;
            for entry in entries.flatten() {
                any = true;
                let p = entry.path();
                File::open(&p)
                    .and_then(|f| f.sync_data())
                    .map_err(|e| io(&p, e))?;
            }
            if any {
                tracing::warn!(path = %blobs.display(), "sled wrote blob files; synced them too");
                File::open(&blobs)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io(&blobs, e))?;
            }
        }
        Ok(())
    }

    /// Makes sled write its buffers (tests).
    #[cfg(test)]
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.sled(e))
    }
}

/// A sled error: its I/O failures as [`StoreError::Io`] (which close the
/// store: see [`super::SledStore`]), anything else as a backend error.
fn sled_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(source) => io(path, source),
        other => backend(other),
    }
}
