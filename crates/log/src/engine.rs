//! The log's handle: open, append, the latest snapshot. The stages of a
//! batch are in [`crate::stages`], the sequencer task that runs them in
//! [`crate::sequencer`], recovery at open in [`crate::recovery`], reads in
//! [`crate::reads`].

use std::sync::{Arc, Mutex};

use cairn_store::{Store, WriteBatch};
use cairn_tlog::hash::Hash;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cache::TileCache;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::layout::*;

/// The receipt of one appended leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Its index.
    pub leaf_index: u64,
    /// The signed checkpoint of the batch that integrated it.
    pub checkpoint: Arc<str>,
    /// Its inclusion proof in that checkpoint's tree.
    pub inclusion_proof: Vec<Hash>,
}

#[derive(Clone, Debug)]
pub(crate) struct EdgeTile {
    pub(crate) index: u64,
    pub(crate) hashes: Arc<Vec<Hash>>,
    pub(crate) segments: Vec<u16>,
}

#[derive(Clone, Debug)]
pub(crate) struct EdgeBundle {
    pub(crate) index: u64,
    pub(crate) entries: Vec<Arc<[u8]>>,
    pub(crate) segments: Vec<u16>,
}

/// The log as of one checkpoint: what readers work from.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The log-signed checkpoint note.
    pub checkpoint: Arc<str>,
    pub(crate) edge: Arc<Vec<EdgeTile>>,
    pub(crate) bundle: Arc<EdgeBundle>,
}

/// What the log's handles and its sequencer share.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: LogConfig,
    pub(crate) snapshot: watch::Sender<Snapshot>,
    pub(crate) cache: Mutex<TileCache>,
    /// Where full tiles and bundles are.
    pub(crate) full: crate::full::FullUnits,
    /// The state bytes last committed (the fencing precondition).
    pub(crate) committed: Mutex<Vec<u8>>,
    /// Held by the sequencer for each batch and by a backup while it
    /// copies: a backup sees no batch half-committed.
    pub(crate) batches: tokio::sync::Mutex<()>,
}

impl Inner {
    /// The log's origin (its name).
    pub(crate) fn origin(&self) -> &str {
        self.config.signer.verifier().name()
    }
}

/// An append-only Merkle log over a store. Cheap to clone.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
    tx: mpsc::Sender<crate::sequencer::Request>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("origin", &self.origin())
            .field("size", &self.snapshot().size)
            .finish()
    }
}

impl Log {
    /// Opens the log in `store`, creating an empty one (with a signed
    /// checkpoint of size 0) if there is none, and starts its sequencer.
    pub async fn open(store: Arc<dyn Store>, config: LogConfig) -> Result<Self, LogError> {
        let full = crate::full::from_config(config.tile_dir.as_deref())?;
        let (snapshot, committed) = crate::recovery::load(&*store, &config).await?;
        full.migrate(&*store, &snapshot).await?;
        crate::recovery::check_last_units(&*store, &full, &snapshot).await?;
        let (snapshot_tx, _) = watch::channel(snapshot);
        let inner = Arc::new(Inner {
            store,
            full,
            cache: Mutex::new(TileCache::new(config.tile_cache)),
            config,
            snapshot: snapshot_tx,
            committed: Mutex::new(committed),
            batches: tokio::sync::Mutex::new(()),
        });
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(crate::sequencer::run(inner.clone(), rx));
        Ok(Self {
            inner,
            tx,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// Stops the sequencer and waits for it. A batch in flight is either
    /// committed whole or not at all (its callers get an error). Other
    /// clones of this log can still read but no longer append.
    pub async fn close(self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// The log's origin (its name).
    pub fn origin(&self) -> &str {
        self.inner.origin()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot.borrow().clone()
    }

    /// Notified on every new checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.inner.snapshot.subscribe()
    }

    /// Copies the log, as of its latest checkpoint, into `to` (a store
    /// holding no log) while it keeps serving; appends wait for the copy.
    /// Returns the size of the tree copied.
    pub async fn backup(&self, to: &dyn Store) -> Result<u64, LogError> {
        let _between_batches = self.inner.batches.lock().await;
        let snap = self.snapshot();
        let size = snap.size;
        let files = Some((&self.inner.full, &snap));
        let keys = crate::backup::copy(self.inner.store.as_ref(), to, files).await?;
        tracing::info!(size, keys, "log backed up");
        Ok(size)
    }

    /// Appends one leaf; returns its receipt once durably integrated.
    pub async fn append(&self, leaf: Vec<u8>) -> Result<Receipt, LogError> {
        let mut receipts = self.append_batch(vec![leaf]).await?;
        receipts.pop().ok_or(LogError::Stopped)
    }

    /// Every leaf is 1 to `max_leaf_len` bytes (the first that is not is
    /// [`LogError::LeafSize`]); [`Log::append_batch`] checks this too.
    pub fn check_sizes(&self, leaves: &[Vec<u8>]) -> Result<(), LogError> {
        let max = self.inner.config.max_leaf_len;
        let bad = leaves.iter().enumerate();
        match bad.into_iter().find(|(_, l)| l.is_empty() || l.len() > max) {
            Some((index, l)) => Err(LogError::LeafSize {
                index,
                len: l.len(),
                max,
            }),
            None => Ok(()),
        }
    }

    /// Appends leaves together; one receipt per leaf, in order.
    pub async fn append_batch(&self, leaves: Vec<Vec<u8>>) -> Result<Vec<Receipt>, LogError> {
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        self.check_sizes(&leaves)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(crate::sequencer::Request { leaves, reply })
            .await
            .map_err(|_| LogError::Stopped)?;
        rx.await.map_err(|_| LogError::Stopped)?
    }

    /// The latest checkpoint note, with the witness cosignatures gathered
    /// for it if any.
    pub async fn checkpoint_note(&self) -> Result<String, LogError> {
        let snap = self.snapshot();
        if let Some(cosigned) = self.inner.store.get(NS_COSIGNED, COSIGNED_KEY).await? {
            let cosigned = String::from_utf8_lossy(&cosigned).into_owned();
            if let Ok(note) = cairn_tlog::note::parse(&cosigned)
                && snap.checkpoint.starts_with(&note.text)
            {
                return Ok(cosigned);
            }
        }
        Ok(snap.checkpoint.to_string())
    }

    /// Records witness cosignatures for the latest checkpoint (a note whose
    /// text is the latest checkpoint's, with every signature line gathered).
    pub async fn store_cosigned(&self, note: &str) -> Result<(), LogError> {
        let parsed = cairn_tlog::note::parse(note)?;
        let snap = self.snapshot();
        if !snap.checkpoint.starts_with(&parsed.text) {
            return Err(LogError::NotLatest);
        }
        let mut b = WriteBatch::new();
        b.put(NS_COSIGNED, COSIGNED_KEY.to_vec(), note.as_bytes().to_vec());
        self.inner.store.commit(b).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;
    use crate::stages::{hashes_bytes, integrate, publish, sequence};
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, WriteBatch};
    use cairn_tlog::hash::naive_root;
    use cairn_tlog::hash::{Hash, empty_root, leaf_hash};
    use cairn_tlog::note::ALG_ED25519;
    use cairn_tlog::note::NoteSigner;
    use cairn_tlog::proof;
    use cairn_tlog::tiles::{self, TilePath};

    fn signer() -> Arc<NoteSigner> {
        Arc::new(NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap())
    }

    async fn open(dir: &std::path::Path) -> Log {
        open_with(dir, false).await
    }

    /// A log in `dir`, its full tiles as files in `dir/tiles` or as rows.
    async fn open_with(dir: &std::path::Path, files: bool) -> Log {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir)).unwrap());
        let mut config = LogConfig::new(signer());
        config.tile_dir = files.then(|| dir.join("tiles"));
        Log::open(store, config).await.unwrap()
    }

    fn leaf(i: u64) -> Vec<u8> {
        format!("leaf {i}").into_bytes()
    }

    #[tokio::test]
    async fn appends_give_verifiable_receipts_across_tile_boundaries_and_reopen() {
        appends_and_reopen(true).await;
    }

    #[tokio::test]
    async fn the_same_with_full_tiles_as_rows_of_the_store() {
        appends_and_reopen(false).await;
    }

    async fn appends_and_reopen(files: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<Hash> = Vec::new();
        let mut checkpoints = Vec::new();
        {
            let log = open_with(dir.path(), files).await;
            let reader = log.clone();
            assert_eq!(log.snapshot().size, 0);
            // Sizes chosen to cross level-0 and level-1 tile boundaries.
            for (n, batch) in [1usize, 254, 3, 300, 65_000, 1, 600]
                .into_iter()
                .enumerate()
            {
                let leaves: Vec<Vec<u8>> = (0..batch)
                    .map(|k| leaf(all.len() as u64 + k as u64))
                    .collect();
                let receipts = log.append_batch(leaves.clone()).await.unwrap();
                all.extend(leaves.iter().map(|l| leaf_hash(l)));
                let root = naive_root(&all);
                let size = all.len() as u64;
                assert_eq!(log.snapshot().root, root, "batch {n}");
                for (r, l) in receipts.iter().zip(&leaves).step_by(97) {
                    let cp = cairn_tlog::checkpoint::open(&r.checkpoint, signer().verifier())
                        .unwrap()
                        .checkpoint;
                    assert_eq!((cp.size, cp.root), (size, root));
                    proof::verify_inclusion(
                        r.leaf_index,
                        size,
                        &leaf_hash(l),
                        &r.inclusion_proof,
                        &root,
                    )
                    .unwrap();
                }
                checkpoints.push((size, root));
            }
            log.close().await;
            drop(reader);
        }
        // Reopen: same head, proofs between every pair of checkpoints.
        let log = open_with(dir.path(), files).await;
        let snap = log.snapshot();
        assert_eq!(snap.size, all.len() as u64);
        assert_eq!(snap.root, naive_root(&all));
        for &(old, old_root) in &checkpoints {
            let (new, proof) = log.consistency_proof(old, 0).await.unwrap();
            if old < new {
                proof::verify_consistency(old, new, &proof, &old_root, &snap.root).unwrap();
            }
            assert_eq!(log.root_at(old).await.unwrap(), old_root);
        }
        for i in [0u64, 255, 256, 65_535, 65_536, snap.size - 1] {
            let (size, p) = log.inclusion_proof(i, 0).await.unwrap();
            proof::verify_inclusion(i, size, &all[i as usize], &p, &snap.root).unwrap();
            assert_eq!(log.index_of(&all[i as usize]).await.unwrap(), i);
        }
        let (entries, next) = log.entries(250, 262, 1000).await.unwrap();
        assert_eq!(next, 262);
        assert_eq!(
            entries
                .iter()
                .map(|(i, e)| (*i, e.clone()))
                .collect::<Vec<_>>(),
            (250..262).map(|i| (i, leaf(i))).collect::<Vec<_>>()
        );
        // Tiles: a full level-0 tile is 256 hashes; a partial one its width.
        let full = log
            .tile(&TilePath::Hashes(tiles::TileId {
                level: 0,
                index: 0,
                width: 256,
            }))
            .await
            .unwrap();
        assert_eq!(full, hashes_bytes(&all[..256]));
        let bundle = log
            .tile(&TilePath::Entries { index: 1, width: 3 })
            .await
            .unwrap();
        assert_eq!(
            tiles::decode_bundle(&bundle).unwrap(),
            vec![leaf(256), leaf(257), leaf(258)]
        );
        assert!(matches!(
            log.tile(&TilePath::Hashes(tiles::TileId {
                level: 2,
                index: 0,
                width: 256
            }))
            .await,
            Err(LogError::NoSuchTile { .. })
        ));
        // Out of range.
        assert!(matches!(
            log.inclusion_proof(snap.size, 0).await,
            Err(LogError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            log.inclusion_proof(0, snap.size + 1).await,
            Err(LogError::BeyondHead { .. })
        ));
        assert!(matches!(
            log.consistency_proof(5, 4).await,
            Err(LogError::Backwards { .. })
        ));
        assert!(matches!(
            log.append(vec![]).await,
            Err(LogError::LeafSize { .. })
        ));
        assert!(matches!(
            log.append(vec![0; 5000]).await,
            Err(LogError::LeafSize { .. })
        ));
    }

    #[test]
    fn integrate_alone_extends_the_edge_and_lists_its_writes() {
        let empty = Snapshot {
            size: 0,
            root: empty_root(),
            checkpoint: Arc::from(""),
            edge: Arc::new(Vec::new()),
            bundle: Arc::new(EdgeBundle {
                index: 0,
                entries: Vec::new(),
                segments: Vec::new(),
            }),
        };
        let leaves: Vec<Vec<u8>> = (0..300).map(leaf).collect();
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        let mut batch = WriteBatch::new();
        let indexes = sequence(&empty, refs.len());
        assert_eq!(indexes, 0..300);
        let out = integrate(&empty, indexes, &refs, &mut batch).unwrap();
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(out.next.root, naive_root(&hashes));
        assert_eq!(out.next.size, 300);
        // Tile 0/0 and bundle 0 complete (placed apart from the batch), tile
        // 0/1 partial (44), tile 1/0 (1 hash), bundle 1 partial, 300 index
        // entries.
        assert!(out.fresh.contains_key(&(0, 0)));
        let units: Vec<_> = out.completed.iter().map(|c| c.unit).collect();
        assert_eq!(
            units,
            [
                crate::files::Unit::Tile { level: 0, index: 0 },
                crate::files::Unit::Bundle { index: 0 }
            ]
        );
        let puts = |ns: &str| {
            batch
                .ops()
                .iter()
                .filter(|o| matches!(o, cairn_store::Op::Put { namespace, .. } if *namespace == ns))
                .count()
        };
        assert_eq!(puts(NS_TILES), 2);
        assert_eq!(puts(NS_ENTRIES), 1);
        assert_eq!(puts(NS_LEAF_INDEX), 300);
        // The checkpoint of the result is signed over exactly that head.
        let text = publish(&signer(), "test.example/log", &out.next).unwrap();
        let cp = cairn_tlog::checkpoint::open(&text, signer().verifier())
            .unwrap()
            .checkpoint;
        assert_eq!((cp.size, cp.root), (300, out.next.root));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path()).await;
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(
                async move { log.append(leaf(i)).await.unwrap() },
            ));
        }
        let mut checkpoints = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for t in tasks {
            let r = t.await.unwrap();
            checkpoints.insert(r.checkpoint.to_string());
            indexes.insert(r.leaf_index);
        }
        assert_eq!(indexes, (0..200).collect());
        assert!(
            checkpoints.len() < 200,
            "concurrent appends should share checkpoints"
        );
    }
}
