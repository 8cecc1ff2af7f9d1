//! The embedded default backend, on sled 0.34.
//!
//! Durability: sled's `flush()` writes its buffers and calls
//! `sync_file_range`, which survives a process crash but not a power loss.
//! So after every batch this backend also `fdatasync`s sled's data file —
//! batched: concurrent commits share one flush and one `fdatasync` (group
//! commit), never one per record. Values are stored in chunks of at most
//! 32 KiB so that sled never moves them to separate blob files, which its
//! flush would not sync; should a blob file appear anyway, it is synced too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::{Entry, Op, Store, StoreError, WriteBatch, backend, check_namespace};

/// Largest piece of a value stored under one sled key.
const CHUNK_LEN: usize = 32 * 1024;
const DATA: u8 = b'd';
const CHUNKS: u8 = b'c';
const INLINE: u8 = 0;
const CHUNKED: u8 = 1;
/// Commits up to this many bytes run on the calling task (see `commit`).
const INLINE_COMMIT_BYTES: usize = 64 * 1024;

/// Settings of a [`SledStore`].
#[derive(Clone, Debug)]
pub struct SledStoreConfig {
    /// The directory sled keeps its files in.
    pub path: PathBuf,
    /// Largest value accepted (default 16 MiB).
    pub max_value_len: usize,
}

impl SledStoreConfig {
    /// Defaults for a store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_value_len: 16 * 1024 * 1024,
        }
    }
}

/// A [`Store`] on sled, durable against process crashes and power loss.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    data_file: File,
    max_value_len: usize,
    written: AtomicU64,
    synced: AtomicU64,
    sync_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn data_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + namespace.len() + key.len());
    out.push(DATA);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

fn chunk_key(namespace: &str, key: &[u8], write_id: u64, index: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + namespace.len() + key.len());
    out.push(CHUNKS);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&write_id.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// A stored head: the value itself, or where its chunks are.
enum Head {
    Inline(Vec<u8>),
    Chunked {
        write_id: u64,
        chunks: u32,
        len: u64,
    },
}

fn decode_head(raw: &[u8]) -> Result<Head, StoreError> {
    match raw.split_first() {
        Some((&INLINE, rest)) => Ok(Head::Inline(rest.to_vec())),
        Some((&CHUNKED, rest)) if rest.len() == 20 => {
            let mut w = [0u8; 8];
            let mut c = [0u8; 4];
            let mut l = [0u8; 8];
            w.copy_from_slice(&rest[..8]);
            c.copy_from_slice(&rest[8..12]);
            l.copy_from_slice(&rest[12..20]);
            Ok(Head::Chunked {
                write_id: u64::from_be_bytes(w),
                chunks: u32::from_be_bytes(c),
                len: u64::from_be_bytes(l),
            })
        }
        _ => Err(StoreError::Backend("corrupt value head".into())),
    }
}

/// A value prepared for writing: its head and chunk entries.
struct Encoded {
    head: Vec<u8>,
    chunks: Vec<(Vec<u8>, Vec<u8>)>,
}

fn encode(namespace: &str, key: &[u8], value: &[u8], write_id: u64) -> Encoded {
    if value.len() <= CHUNK_LEN {
        let mut head = Vec::with_capacity(1 + value.len());
        head.push(INLINE);
        head.extend_from_slice(value);
        return Encoded {
            head,
            chunks: Vec::new(),
        };
    }
    let chunks: Vec<(Vec<u8>, Vec<u8>)> = value
        .chunks(CHUNK_LEN)
        .enumerate()
        .map(|(i, c)| (chunk_key(namespace, key, write_id, i as u32), c.to_vec()))
        .collect();
    let mut head = Vec::with_capacity(21);
    head.push(CHUNKED);
    head.extend_from_slice(&write_id.to_be_bytes());
    head.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    head.extend_from_slice(&(value.len() as u64).to_be_bytes());
    Encoded { head, chunks }
}

/// What a batch becomes once values are encoded.
enum Prepared {
    Put {
        namespace: &'static str,
        key: Vec<u8>,
        encoded: Encoded,
    },
    Delete {
        namespace: &'static str,
        key: Vec<u8>,
    },
    Expect {
        namespace: &'static str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
}

impl Prepared {
    /// Bytes this operation writes or compares.
    fn len(&self) -> usize {
        match self {
            Prepared::Put { key, encoded, .. } => {
                key.len()
                    + encoded.head.len()
                    + encoded
                        .chunks
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            Prepared::Delete { key, .. } => key.len(),
            Prepared::Expect { key, value, .. } => key.len() + value.as_ref().map_or(0, Vec::len),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn tx_read(tx: &TransactionalTree, namespace: &str, key: &[u8]) -> TxResult<Option<Vec<u8>>> {
    let Some(raw) = tx.get(data_key(namespace, key))? else {
        return Ok(None);
    };
    match decode_head(&raw).map_err(ConflictableTransactionError::Abort)? {
        Head::Inline(v) => Ok(Some(v)),
        Head::Chunked {
            write_id,
            chunks,
            len,
        } => {
            let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for i in 0..chunks {
                let part = tx
                    .get(chunk_key(namespace, key, write_id, i))?
                    .ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Backend(
                            "missing chunk".into(),
                        ))
                    })?;
                out.extend_from_slice(&part);
            }
            Ok(Some(out))
        }
    }
}

fn tx_remove(tx: &TransactionalTree, namespace: &str, key: &[u8]) -> TxResult<()> {
    if let Some(raw) = tx.remove(data_key(namespace, key))?
        && let Head::Chunked {
            write_id, chunks, ..
        } = decode_head(&raw).map_err(ConflictableTransactionError::Abort)?
    {
        for i in 0..chunks {
            tx.remove(chunk_key(namespace, key, write_id, i))?;
        }
    }
    Ok(())
}

impl SledStore {
    /// Opens (creating if needed) a store.
    pub fn open(config: SledStoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&config.path).map_err(|e| io(&config.path, e))?;
        let db = sled::Config::new()
            .path(&config.path)
            .segment_size(8 * 1024 * 1024)
            .flush_every_ms(Some(1000))
            .open()
            .map_err(backend)?;
        let tree = db.open_tree("cairn").map_err(backend)?;
        let data_path = config.path.join("db");
        let data_file = File::open(&data_path).map_err(|e| io(&data_path, e))?;
        // Make the files' directory entries durable once.
        File::open(&config.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&config.path, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                tree,
                path: config.path,
                data_file,
                max_value_len: config.max_value_len,
                written: AtomicU64::new(0),
                synced: AtomicU64::new(0),
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn read(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let tree = &self.inner.tree;
        // A concurrent overwrite may remove the chunks between reading the
        // head and the chunks; read again then.
        for _ in 0..8 {
            let Some(raw) = tree.get(data_key(namespace, key)).map_err(backend)? else {
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
                            .map_err(backend)?
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
        Err(StoreError::Backend(
            "value kept changing while being read".into(),
        ))
    }

    /// Waits until everything committed up to `seq` is on stable storage,
    /// sharing one flush and fdatasync among concurrent committers.
    async fn sync_through(&self, seq: u64) -> Result<(), StoreError> {
        let _turn = self.inner.sync_lock.lock().await;
        if self.inner.synced.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let target = self.inner.written.load(Ordering::Acquire);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.sync_files())
            .await
            .map_err(backend)??;
        self.inner.synced.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }
}

impl Inner {
    fn sync_files(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
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
}

#[async_trait]
impl Store for SledStore {
    async fn get(
        &self,
        namespace: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        check_namespace(namespace)?;
        self.read(namespace, key)
    }

    async fn scan(
        &self,
        namespace: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        check_namespace(namespace)?;
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
        for item in self.inner.tree.range(lo..hi) {
            if out.len() >= limit {
                break;
            }
            let (k, raw) = item.map_err(backend)?;
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

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let seq = self.apply(batch).await?;
        self.sync_through(seq).await
    }

    async fn commit_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.apply(batch).await.map(|_| ())
    }

    fn max_value_len(&self) -> usize {
        self.inner.max_value_len
    }

    async fn size_on_disk(&self) -> Result<Option<u64>, StoreError> {
        self.inner.db.size_on_disk().map(Some).map_err(backend)
    }
}

impl SledStore {
    /// Applies `batch` in one sled transaction; returns its write number
    /// (what [`SledStore::sync_through`] waits for).
    async fn apply(&self, batch: WriteBatch) -> Result<u64, StoreError> {
        let mut prepared = Vec::with_capacity(batch.ops().len());
        for op in batch.ops() {
            match op {
                Op::Put {
                    namespace,
                    key,
                    value,
                } => {
                    check_namespace(namespace)?;
                    if value.len() > self.inner.max_value_len {
                        return Err(StoreError::ValueTooLarge {
                            len: value.len(),
                            limit: self.inner.max_value_len,
                        });
                    }
                    let write_id = if value.len() > CHUNK_LEN {
                        self.inner.db.generate_id().map_err(backend)?
                    } else {
                        0
                    };
                    prepared.push(Prepared::Put {
                        namespace,
                        key: key.clone(),
                        encoded: encode(namespace, key, value, write_id),
                    });
                }
                Op::Delete { namespace, key } => {
                    check_namespace(namespace)?;
                    prepared.push(Prepared::Delete {
                        namespace,
                        key: key.clone(),
                    });
                }
                Op::Expect {
                    namespace,
                    key,
                    value,
                } => {
                    check_namespace(namespace)?;
                    prepared.push(Prepared::Expect {
                        namespace,
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        let inner = self.inner.clone();
        let bytes: usize = prepared.iter().map(Prepared::len).sum();
        let apply = move || {
            inner.tree.transaction(|tx| {
                for p in &prepared {
                    if let Prepared::Expect {
                        namespace,
                        key,
                        value,
                    } = p
                        && tx_read(tx, namespace, key)? != *value
                    {
                        return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                            namespace: (*namespace).to_owned(),
                            key: String::from_utf8_lossy(key).chars().take(120).collect(),
                        }));
                    }
                }
                for p in &prepared {
                    match p {
                        Prepared::Put {
                            namespace,
                            key,
                            encoded,
                        } => {
                            tx_remove(tx, namespace, key)?;
                            tx.insert(data_key(namespace, key), encoded.head.as_slice())?;
                            for (ck, cv) in &encoded.chunks {
                                tx.insert(ck.as_slice(), cv.as_slice())?;
                            }
                        }
                        Prepared::Delete { namespace, key } => tx_remove(tx, namespace, key)?,
                        Prepared::Expect { .. } => {}
                    }
                }
                Ok(())
            })
        };
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
            Err(TransactionError::Storage(e)) => return Err(backend(e)),
        }
        Ok(self.inner.written.fetch_add(1, Ordering::AcqRel) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Factory(tempfile::TempDir);

    impl crate::conformance::StoreFactory for Factory {
        type Store = SledStore;

        fn open(&self) -> SledStore {
            SledStore::open(SledStoreConfig::new(self.0.path().join("store")))
                .expect("open sled store")
        }
    }

    crate::store_conformance_tests!(Factory(tempfile::tempdir().expect("temp dir")));

    #[tokio::test]
    async fn large_values_never_become_sled_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(SledStoreConfig::new(dir.path())).unwrap();
        for i in 0..40u32 {
            let mut b = WriteBatch::new();
            b.put("big", i.to_be_bytes(), vec![i as u8; 1024 * 1024 + 7]);
            store.commit(b).await.unwrap();
        }
        store.inner.db.flush().unwrap();
        let blobs = std::fs::read_dir(dir.path().join("blobs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(blobs, 0, "values must stay inside sled's data file");
        assert_eq!(
            store
                .get("big", &7u32.to_be_bytes())
                .await
                .unwrap()
                .unwrap(),
            vec![7u8; 1024 * 1024 + 7]
        );
    }
}
