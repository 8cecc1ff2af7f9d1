//! The log: sequence → integrate → publish → one durable commit → receipts.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cairn_store::{Store, StoreError, WriteBatch};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::hash::{Hash, empty_root, leaf_hash, perfect_root};
use cairn_tlog::note::NoteSigner;
use cairn_tlog::proof::{self, NodeId, fold_range};
use cairn_tlog::tiles::{self, TILE_WIDTH, TilePath, tile_width};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LogError;
use crate::layout::*;
use crate::nodes::{NodeHasher, TileHashes, needed_tiles};

/// Settings of a [`Log`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Signs checkpoints; its name is the log's origin.
    pub signer: Arc<NoteSigner>,
    /// Largest leaf accepted (bytes).
    pub max_leaf_len: usize,
    /// Most leaves integrated in one batch (a single request may exceed it).
    pub max_batch: usize,
    /// Full tiles kept in memory for proofs.
    pub tile_cache: usize,
    /// Told the number of leaves of every integrated batch (for metrics).
    pub on_batch: Option<BatchObserver>,
    /// A precondition every commit of the log carries besides its own
    /// state: (namespace, key, value), e.g. a sequencer lease's epoch
    /// ([`crate::lease::Lease::fence`]). A commit that finds it changed is
    /// [`LogError::Fenced`].
    pub fence: Option<(&'static str, Vec<u8>, Vec<u8>)>,
}

/// A callback given the size of each integrated batch.
#[derive(Clone)]
pub struct BatchObserver(pub Arc<dyn Fn(usize) + Send + Sync>);

impl std::fmt::Debug for BatchObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchObserver")
    }
}

impl LogConfig {
    /// Defaults: leaves up to 4 KiB, batches up to 1024 leaves, 4096 cached tiles.
    pub fn new(signer: Arc<NoteSigner>) -> Self {
        Self {
            signer,
            max_leaf_len: 4096,
            max_batch: 1024,
            tile_cache: 4096,
            on_batch: None,
            fence: None,
        }
    }
}

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
struct EdgeTile {
    index: u64,
    hashes: Arc<Vec<Hash>>,
    segments: Vec<u16>,
}

#[derive(Clone, Debug)]
struct EdgeBundle {
    index: u64,
    entries: Vec<Arc<[u8]>>,
    segments: Vec<u16>,
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
    edge: Arc<Vec<EdgeTile>>,
    bundle: Arc<EdgeBundle>,
}

struct Request {
    leaves: Vec<Vec<u8>>,
    reply: oneshot::Sender<Result<Vec<Receipt>, LogError>>,
}

struct TileCache {
    cap: usize,
    map: HashMap<(u8, u64), TileHashes>,
    order: VecDeque<(u8, u64)>,
}

impl TileCache {
    fn get(&self, key: &(u8, u64)) -> Option<TileHashes> {
        self.map.get(key).cloned()
    }

    fn put(&mut self, key: (u8, u64), tile: TileHashes) {
        if self.cap == 0 || self.map.contains_key(&key) {
            return;
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(key);
        self.map.insert(key, tile);
    }
}

struct Inner {
    store: Arc<dyn Store>,
    config: LogConfig,
    snapshot: watch::Sender<Snapshot>,
    cache: Mutex<TileCache>,
    /// The state bytes last committed (the fencing precondition).
    committed: Mutex<Vec<u8>>,
}

/// An append-only Merkle log over a store. Cheap to clone.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Request>,
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

fn same_error(e: &LogError) -> LogError {
    match e {
        LogError::Fenced => LogError::Fenced,
        LogError::InvalidArgument(m) => LogError::InvalidArgument(m.clone()),
        LogError::Store(e) => LogError::Unavailable(format!("the batch was not stored: {e}")),
        other => LogError::Corrupt(format!("batch failed: {other}")),
    }
}

fn hashes_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.iter().copied()).collect()
}

impl Log {
    /// Opens the log in `store`, creating an empty one (with a signed
    /// checkpoint of size 0) if there is none, and starts its sequencer.
    pub async fn open(store: Arc<dyn Store>, config: LogConfig) -> Result<Self, LogError> {
        let (snapshot, committed) = load(&*store, &config).await?;
        let (snapshot_tx, _) = watch::channel(snapshot);
        let inner = Arc::new(Inner {
            store,
            cache: Mutex::new(TileCache {
                cap: config.tile_cache,
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            config,
            snapshot: snapshot_tx,
            committed: Mutex::new(committed),
        });
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(sequencer(inner.clone(), rx));
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
        self.inner.config.signer.verifier().name()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot.borrow().clone()
    }

    /// Notified on every new checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.inner.snapshot.subscribe()
    }

    /// Appends one leaf; returns its receipt once durably integrated.
    pub async fn append(&self, leaf: Vec<u8>) -> Result<Receipt, LogError> {
        let mut receipts = self.append_batch(vec![leaf]).await?;
        receipts.pop().ok_or(LogError::Stopped)
    }

    /// Appends leaves together; one receipt per leaf, in order.
    pub async fn append_batch(&self, leaves: Vec<Vec<u8>>) -> Result<Vec<Receipt>, LogError> {
        if leaves.is_empty() {
            return Ok(Vec::new());
        }
        for (i, leaf) in leaves.iter().enumerate() {
            if leaf.is_empty() || leaf.len() > self.inner.config.max_leaf_len {
                return Err(LogError::InvalidArgument(format!(
                    "leaves[{i}] is {} bytes; a leaf is 1 to {} bytes",
                    leaf.len(),
                    self.inner.config.max_leaf_len
                )));
            }
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { leaves, reply })
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
            return Err(LogError::InvalidArgument(
                "cosigned note is not the latest checkpoint".into(),
            ));
        }
        let mut b = WriteBatch::new();
        b.put(NS_COSIGNED, COSIGNED_KEY.to_vec(), note.as_bytes().to_vec());
        self.inner.store.commit(b).await?;
        Ok(())
    }

    fn check_size(snap: &Snapshot, size: u64) -> Result<u64, LogError> {
        let size = if size == 0 { snap.size } else { size };
        if size > snap.size {
            return Err(LogError::NotFound(format!(
                "tree size {size} is beyond the latest checkpoint ({})",
                snap.size
            )));
        }
        Ok(size)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` (0: latest).
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
    ) -> Result<(u64, Vec<Hash>), LogError> {
        let snap = self.snapshot();
        let size = Self::check_size(&snap, size)?;
        if index >= size {
            return Err(LogError::InvalidArgument(format!(
                "leaf index {index} is not below tree size {size}"
            )));
        }
        let plan = proof::inclusion_plan(index, size)?;
        let proof = self
            .assemble(&snap, &[plan], &HashMap::new())
            .await?
            .pop()
            .unwrap_or_default();
        Ok((size, proof))
    }

    /// The index of the leaf with `leaf_hash`.
    pub async fn index_of(&self, leaf_hash: &[u8]) -> Result<u64, LogError> {
        if leaf_hash.len() != 32 {
            return Err(LogError::InvalidArgument(format!(
                "leaf hash is {} bytes, expected 32",
                leaf_hash.len()
            )));
        }
        let snap = self.snapshot();
        let found = self.inner.store.get(NS_LEAF_INDEX, leaf_hash).await?;
        match found.as_deref().map(<[u8; 8]>::try_from) {
            Some(Ok(b)) if u64::from_be_bytes(b) < snap.size => Ok(u64::from_be_bytes(b)),
            Some(Err(_)) => Err(LogError::Corrupt("leaf index entry".into())),
            _ => Err(LogError::NotFound(
                "no leaf with that hash in the log".into(),
            )),
        }
    }

    /// The consistency proof between `old` and `new` (0: latest).
    pub async fn consistency_proof(
        &self,
        old: u64,
        new: u64,
    ) -> Result<(u64, Vec<Hash>), LogError> {
        let snap = self.snapshot();
        let new = Self::check_size(&snap, new)?;
        if old > new {
            return Err(LogError::InvalidArgument(format!(
                "from size {old} is larger than to size {new}"
            )));
        }
        let plan = proof::consistency_plan(old, new)?;
        let proof = self
            .assemble(&snap, &[plan], &HashMap::new())
            .await?
            .pop()
            .unwrap_or_default();
        Ok((new, proof))
    }

    /// The root hash of the tree of `size` (from stored tiles).
    pub async fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        let snap = self.snapshot();
        let size = Self::check_size(&snap, size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        let nodes = proof::root_nodes(size);
        let tiles = self
            .load_tiles(&snap, &needed_tiles(&nodes), &HashMap::new())
            .await?;
        let mut hasher = NodeHasher::new(&tiles);
        let hashes = nodes
            .iter()
            .map(|n| hasher.hash(*n))
            .collect::<Result<Vec<_>, _>>()?;
        fold_range(&hashes).ok_or_else(|| LogError::Corrupt("empty root plan".into()))
    }

    /// Leaves `[start, end)` (end 0: latest size), at most `limit`.
    pub async fn entries(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, Vec<u8>)>, u64), LogError> {
        let snap = self.snapshot();
        let end = if end == 0 { snap.size } else { end };
        if end > snap.size {
            return Err(LogError::NotFound(format!(
                "end {end} is beyond the latest checkpoint ({})",
                snap.size
            )));
        }
        if start > end {
            return Err(LogError::InvalidArgument(format!(
                "start {start} is after end {end}"
            )));
        }
        let stop = end.min(start.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((stop - start) as usize);
        let mut i = start;
        while i < stop {
            let bundle_index = i / TILE_WIDTH;
            let entries = self.bundle_entries(&snap, bundle_index).await?;
            let from = (i % TILE_WIDTH) as usize;
            let upto = ((stop - bundle_index * TILE_WIDTH).min(TILE_WIDTH)) as usize;
            for (k, e) in entries.iter().enumerate().take(upto).skip(from) {
                out.push((bundle_index * TILE_WIDTH + k as u64, e.to_vec()));
            }
            i = bundle_index * TILE_WIDTH + upto as u64;
        }
        Ok((out, stop))
    }

    /// The bytes of a C2SP tile path, if the log has it.
    pub async fn tile(&self, path: &TilePath) -> Result<Vec<u8>, LogError> {
        let snap = self.snapshot();
        match *path {
            TilePath::Checkpoint => Ok(self.checkpoint_note().await?.into_bytes()),
            TilePath::Hashes(t) => {
                if tile_width(t.level, t.index, snap.size) < t.width {
                    return Err(LogError::NotFound(format!(
                        "tile {} does not exist at size {}",
                        path.to_path(),
                        snap.size
                    )));
                }
                let mut wanted = BTreeSet::new();
                wanted.insert((t.level, t.index));
                let tiles = self.load_tiles(&snap, &wanted, &HashMap::new()).await?;
                let hashes = tiles
                    .get(&(t.level, t.index))
                    .ok_or_else(|| LogError::Corrupt("tile vanished".into()))?;
                Ok(hashes_bytes(&hashes[..usize::from(t.width)]))
            }
            TilePath::Entries { index, width } => {
                let available = snap
                    .size
                    .saturating_sub(index.saturating_mul(TILE_WIDTH))
                    .min(TILE_WIDTH);
                if available < u64::from(width) {
                    return Err(LogError::NotFound(format!(
                        "bundle {} does not exist at size {}",
                        path.to_path(),
                        snap.size
                    )));
                }
                let entries = self.bundle_entries(&snap, index).await?;
                Ok(tiles::encode_bundle(
                    entries.iter().take(usize::from(width)).map(|e| &e[..]),
                )?)
            }
        }
    }

    async fn bundle_entries(
        &self,
        snap: &Snapshot,
        index: u64,
    ) -> Result<Vec<Arc<[u8]>>, LogError> {
        if index == snap.bundle.index {
            return Ok(snap.bundle.entries.clone());
        }
        let bytes = self
            .inner
            .store
            .get(NS_ENTRIES, &bundle_key(index, 0))
            .await?
            .ok_or_else(|| LogError::Corrupt(format!("entry bundle {index} is missing")))?;
        Ok(tiles::decode_bundle(&bytes)?
            .into_iter()
            .map(Arc::from)
            .collect())
    }

    async fn load_tiles(
        &self,
        snap: &Snapshot,
        wanted: &BTreeSet<(u8, u64)>,
        fresh: &HashMap<(u8, u64), TileHashes>,
    ) -> Result<HashMap<(u8, u64), TileHashes>, LogError> {
        let mut out = HashMap::with_capacity(wanted.len());
        for &(level, index) in wanted {
            let tile = if let Some(edge) = snap
                .edge
                .get(usize::from(level))
                .filter(|e| e.index == index)
            {
                edge.hashes.clone()
            } else if let Some(t) = fresh.get(&(level, index)) {
                t.clone()
            } else if let Some(t) = self
                .inner
                .cache
                .lock()
                .map_err(|_| LogError::Stopped)?
                .get(&(level, index))
            {
                t
            } else {
                let bytes = self
                    .inner
                    .store
                    .get(NS_TILES, &tile_key(level, index, 0))
                    .await?
                    .ok_or_else(|| {
                        LogError::Corrupt(format!("full tile {level}/{index} is missing"))
                    })?;
                let hashes = tiles::tile_hashes(&bytes)?;
                if hashes.len() as u64 != TILE_WIDTH {
                    return Err(LogError::Corrupt(format!(
                        "tile {level}/{index} behind the edge is not full"
                    )));
                }
                let t = Arc::new(hashes);
                self.inner
                    .cache
                    .lock()
                    .map_err(|_| LogError::Stopped)?
                    .put((level, index), t.clone());
                t
            };
            out.insert((level, index), tile);
        }
        Ok(out)
    }

    async fn assemble(
        &self,
        snap: &Snapshot,
        plans: &[proof::ProofPlan],
        fresh: &HashMap<(u8, u64), TileHashes>,
    ) -> Result<Vec<Vec<Hash>>, LogError> {
        let nodes: Vec<NodeId> = plans.iter().flat_map(|p| p.nodes()).collect();
        let tiles = self.load_tiles(snap, &needed_tiles(&nodes), fresh).await?;
        let mut hasher = NodeHasher::new(&tiles);
        plans
            .iter()
            .map(|p| p.assemble(|n| hasher.hash(n)))
            .collect()
    }
}

async fn load(store: &dyn Store, config: &LogConfig) -> Result<(Snapshot, Vec<u8>), LogError> {
    let state = match store.get(NS_STATE, STATE_KEY).await? {
        Some(bytes) => StoredState::decode(&bytes)?,
        None => {
            let root = empty_root();
            let checkpoint = Checkpoint {
                origin: config.signer.verifier().name().to_owned(),
                size: 0,
                root,
                extensions: vec![],
            }
            .sign(&config.signer)?;
            let state = StoredState {
                size: 0,
                root,
                checkpoint,
            };
            let mut b = WriteBatch::new();
            b.expect_absent(NS_STATE, STATE_KEY.to_vec()).put(
                NS_STATE,
                STATE_KEY.to_vec(),
                state.encode(),
            );
            store.commit(b).await?;
            state
        }
    };
    let size = state.size;
    let mut edge = Vec::new();
    let mut level: u8 = 0;
    while tiles::stored_at_level(level, size) > 0 || level == 0 {
        let stored = tiles::stored_at_level(level, size);
        let index = stored / TILE_WIDTH;
        let len = (stored % TILE_WIDTH) as usize;
        let mut hashes = Vec::with_capacity(len);
        let mut segments = Vec::new();
        if len > 0 {
            let prefix = tile_prefix(level, index);
            for (key, value) in store
                .scan(NS_TILES, &prefix, Some(&prefix_end(&prefix)), 1024)
                .await?
            {
                let offset = u16::from_be_bytes([key[key.len() - 2], key[key.len() - 1]]);
                if usize::from(offset) != hashes.len() {
                    return Err(LogError::Corrupt(format!(
                        "tile {level}/{index} has a gap at {offset}"
                    )));
                }
                hashes.extend(tiles::tile_hashes(&value)?);
                segments.push(offset);
            }
            hashes.truncate(len);
            if hashes.len() != len {
                return Err(LogError::Corrupt(format!(
                    "tile {level}/{index} holds {} hashes, expected {len}",
                    hashes.len()
                )));
            }
        }
        edge.push(EdgeTile {
            index,
            hashes: Arc::new(hashes),
            segments,
        });
        level += 1;
        if level > 7 {
            break;
        }
    }
    let bundle_index = size / TILE_WIDTH;
    let bundle_len = (size % TILE_WIDTH) as usize;
    let mut entries = Vec::with_capacity(bundle_len);
    let mut segments = Vec::new();
    if bundle_len > 0 {
        let prefix = bundle_prefix(bundle_index);
        for (key, value) in store
            .scan(NS_ENTRIES, &prefix, Some(&prefix_end(&prefix)), 1024)
            .await?
        {
            let offset = u16::from_be_bytes([key[key.len() - 2], key[key.len() - 1]]);
            if usize::from(offset) != entries.len() {
                return Err(LogError::Corrupt(format!(
                    "bundle {bundle_index} has a gap at {offset}"
                )));
            }
            entries.extend(
                tiles::decode_bundle(&value)?
                    .into_iter()
                    .map(Arc::<[u8]>::from),
            );
            segments.push(offset);
        }
        entries.truncate(bundle_len);
        if entries.len() != bundle_len {
            return Err(LogError::Corrupt(format!(
                "bundle {bundle_index} holds {} entries, expected {bundle_len}",
                entries.len()
            )));
        }
    }
    let snapshot = Snapshot {
        size,
        root: state.root,
        checkpoint: Arc::from(state.checkpoint.as_str()),
        edge: Arc::new(edge),
        bundle: Arc::new(EdgeBundle {
            index: bundle_index,
            entries,
            segments,
        }),
    };
    // The stored edge must reproduce the stored root.
    let root = root_from_edge(&snapshot)?;
    if root != state.root {
        return Err(LogError::Corrupt(
            "tiles do not reproduce the checkpoint's root".into(),
        ));
    }
    Ok((snapshot, state.encode()))
}

fn root_from_edge(snap: &Snapshot) -> Result<Hash, LogError> {
    if snap.size == 0 {
        return Ok(empty_root());
    }
    let tiles: HashMap<(u8, u64), TileHashes> = snap
        .edge
        .iter()
        .enumerate()
        .map(|(l, e)| ((l as u8, e.index), e.hashes.clone()))
        .collect();
    let mut hasher = NodeHasher::new(&tiles);
    let hashes = proof::root_nodes(snap.size)
        .iter()
        .map(|n| hasher.hash(*n))
        .collect::<Result<Vec<_>, _>>()?;
    fold_range(&hashes).ok_or_else(|| LogError::Corrupt("empty root plan".into()))
}

async fn sequencer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Request>) {
    let log = Log {
        inner: inner.clone(),
        tx: mpsc::channel(1).0,
        task: Arc::new(Mutex::new(None)),
    };
    while let Some(first) = rx.recv().await {
        let mut count = first.leaves.len();
        let mut requests = vec![first];
        while count < inner.config.max_batch {
            match rx.try_recv() {
                Ok(r) => {
                    count += r.leaves.len();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }
        let leaves: Vec<&[u8]> = requests
            .iter()
            .flat_map(|r| r.leaves.iter().map(Vec::as_slice))
            .collect();
        match log.integrate_batch(&leaves).await {
            Ok(mut receipts) => {
                if let Some(observe) = &inner.config.on_batch {
                    (observe.0)(leaves.len());
                }
                for r in requests.into_iter().rev() {
                    let mine = receipts.split_off(receipts.len() - r.leaves.len());
                    let _ = r.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, leaves = leaves.len(), "batch not integrated");
                for r in requests {
                    let _ = r.reply.send(Err(same_error(&e)));
                }
            }
        }
    }
}

/// Stage 1, sequence: the batch takes the next indexes.
fn sequence(snap: &Snapshot, count: usize) -> std::ops::Range<u64> {
    snap.size..snap.size + count as u64
}

/// What integrating a batch produced.
struct Integrated {
    /// The new head, without its checkpoint yet.
    next: Snapshot,
    /// Tiles completed by this batch.
    fresh: HashMap<(u8, u64), TileHashes>,
}

/// Stage 2, integrate: extend the right edge of the tree with the batch's
/// leaf hashes level by level, complete tiles and entry bundles, compute the
/// new root, and add every write to `batch`.
fn integrate(
    snap: &Snapshot,
    indexes: std::ops::Range<u64>,
    leaves: &[&[u8]],
    batch: &mut WriteBatch,
) -> Result<Integrated, LogError> {
    let first_index = indexes.start;
    let new_size = indexes.end;
    let mut edge: Vec<EdgeTile> = (*snap.edge).clone();
    let mut fresh: HashMap<(u8, u64), TileHashes> = HashMap::new();
    let mut incoming: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let mut level: u8 = 0;
    while !incoming.is_empty() {
        if edge.len() <= usize::from(level) {
            edge.push(EdgeTile {
                index: 0,
                hashes: Arc::new(Vec::new()),
                segments: Vec::new(),
            });
        }
        let tile = &mut edge[usize::from(level)];
        let (growth, next) = grow(tile.index, &tile.hashes, &tile.segments, incoming);
        for (index, hashes) in growth.completed {
            batch.put(NS_TILES, tile_key(level, index, 0), hashes_bytes(&hashes));
            if index == tile.index {
                for seg in tile.segments.iter().filter(|s| **s != 0) {
                    batch.delete(NS_TILES, tile_key(level, index, *seg));
                }
            }
            fresh.insert((level, index), Arc::new(hashes));
        }
        let (new_index, new_hashes, new_segments, write) = next;
        if let Some((offset, part)) = write {
            batch.put(
                NS_TILES,
                tile_key(level, new_index, offset),
                hashes_bytes(&part),
            );
        }
        // Roots of the tiles completed at this level feed the next level.
        incoming = fresh
            .iter()
            .filter(|((l, _), _)| *l == level)
            .map(|((_, i), h)| (*i, perfect_root(h)))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        *tile = EdgeTile {
            index: new_index,
            hashes: Arc::new(new_hashes),
            segments: new_segments,
        };
        level += 1;
    }

    // Entry bundles grow the same way.
    let bundle = &snap.bundle;
    let entries: Vec<Arc<[u8]>> = leaves.iter().map(|l| Arc::<[u8]>::from(*l)).collect();
    let (growth, (bundle_index, bundle_entries, bundle_segments, write)) =
        grow(bundle.index, &bundle.entries, &bundle.segments, entries);
    for (index, content) in growth.completed {
        batch.put(
            NS_ENTRIES,
            bundle_key(index, 0),
            tiles::encode_bundle(content.iter().map(|e| &e[..]))?,
        );
        if index == bundle.index {
            for seg in bundle.segments.iter().filter(|s| **s != 0) {
                batch.delete(NS_ENTRIES, bundle_key(index, *seg));
            }
        }
    }
    if let Some((offset, part)) = write {
        batch.put(
            NS_ENTRIES,
            bundle_key(bundle_index, offset),
            tiles::encode_bundle(part.iter().map(|e| &e[..]))?,
        );
    }
    for (i, l) in leaves.iter().enumerate() {
        batch.put(
            NS_LEAF_INDEX,
            leaf_hash(l).to_vec(),
            (first_index + i as u64).to_be_bytes().to_vec(),
        );
    }
    let mut next = Snapshot {
        size: new_size,
        root: [0; 32],
        checkpoint: snap.checkpoint.clone(),
        edge: Arc::new(edge),
        bundle: Arc::new(EdgeBundle {
            index: bundle_index,
            entries: bundle_entries,
            segments: bundle_segments,
        }),
    };
    next.root = root_from_edge(&next)?;
    Ok(Integrated { next, fresh })
}

/// Stage 3, publish: sign the checkpoint of the new head (one signature per
/// batch).
fn publish(signer: &NoteSigner, origin: &str, next: &Snapshot) -> Result<String, LogError> {
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size: next.size,
        root: next.root,
        extensions: vec![],
    }
    .sign(signer)?)
}

/// The writes that extend a run of tiles (or bundles) by one batch.
struct Growth<T> {
    /// Completed (now full) units: index → content.
    completed: Vec<(u64, Vec<T>)>,
}

impl Log {
    /// The pipeline for one batch: sequence, integrate, publish, then one
    /// durable commit, then receipts.
    async fn integrate_batch(&self, leaves: &[&[u8]]) -> Result<Vec<Receipt>, LogError> {
        let inner = &self.inner;
        let snap = self.snapshot();
        let indexes = sequence(&snap, leaves.len());
        let (first_index, new_size) = (indexes.start, indexes.end);
        let mut batch = WriteBatch::new();
        let Integrated { mut next, fresh } = integrate(&snap, indexes, leaves, &mut batch)?;
        let checkpoint = publish(&inner.config.signer, self.origin(), &next)?;
        next.checkpoint = Arc::from(checkpoint.as_str());
        let state = StoredState {
            size: new_size,
            root: next.root,
            checkpoint,
        }
        .encode();
        let previous = inner
            .committed
            .lock()
            .map_err(|_| LogError::Stopped)?
            .clone();
        batch
            .expect(NS_STATE, STATE_KEY.to_vec(), Some(previous))
            .put(NS_STATE, STATE_KEY.to_vec(), state.clone());
        if let Some((ns, key, value)) = &inner.config.fence {
            batch.expect(ns, key.clone(), Some(value.clone()));
        }

        // One durable, atomic commit: sequence, tiles, entries and checkpoint.
        match inner.store.commit(batch).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => return Err(LogError::Fenced),
            Err(e) => return Err(e.into()),
        }
        *inner.committed.lock().map_err(|_| LogError::Stopped)? = state;
        {
            let mut cache = inner.cache.lock().map_err(|_| LogError::Stopped)?;
            for (k, t) in &fresh {
                cache.put(*k, t.clone());
            }
        }
        inner.snapshot.send_replace(next.clone());

        // Receipts: inclusion proofs in the new checkpoint, sharing hashes.
        let plans = (first_index..new_size)
            .map(|i| proof::inclusion_plan(i, new_size))
            .collect::<Result<Vec<_>, _>>()?;
        let proofs = self.assemble(&next, &plans, &fresh).await?;
        Ok(proofs
            .into_iter()
            .enumerate()
            .map(|(i, inclusion_proof)| Receipt {
                leaf_index: first_index + i as u64,
                checkpoint: next.checkpoint.clone(),
                inclusion_proof,
            })
            .collect())
    }
}

/// The new state of one partial unit after appending `items`: which units
/// completed, and (index, items, segments, segment to write) of the new
/// partial unit.
#[allow(clippy::type_complexity)]
fn grow<T: Clone>(
    index: u64,
    current: &[T],
    segments: &[u16],
    items: Vec<T>,
) -> (Growth<T>, (u64, Vec<T>, Vec<u16>, Option<(u16, Vec<T>)>)) {
    let width = TILE_WIDTH as usize;
    let mut completed = Vec::new();
    let mut unit_index = index;
    let mut unit: Vec<T> = current.to_vec();
    let mut start = unit.len();
    let mut segs = segments.to_vec();
    for item in items {
        unit.push(item);
        if unit.len() == width {
            completed.push((unit_index, std::mem::take(&mut unit)));
            unit_index += 1;
            start = 0;
            segs.clear();
        }
    }
    let write = if unit.len() > start {
        segs.push(start as u16);
        Some((start as u16, unit[start..].to_vec()))
    } else {
        None
    };
    (Growth { completed }, (unit_index, unit, segs, write))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_store::{SledStore, SledStoreConfig};
    use cairn_tlog::hash::naive_root;
    use cairn_tlog::note::ALG_ED25519;

    fn signer() -> Arc<NoteSigner> {
        Arc::new(NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap())
    }

    async fn open(dir: &std::path::Path) -> Log {
        let store: Arc<dyn Store> = Arc::new(SledStore::open(SledStoreConfig::new(dir)).unwrap());
        Log::open(store, LogConfig::new(signer())).await.unwrap()
    }

    fn leaf(i: u64) -> Vec<u8> {
        format!("leaf {i}").into_bytes()
    }

    #[tokio::test]
    async fn appends_give_verifiable_receipts_across_tile_boundaries_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut all: Vec<Hash> = Vec::new();
        let mut checkpoints = Vec::new();
        {
            let log = open(dir.path()).await;
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
        let log = open(dir.path()).await;
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
            Err(LogError::NotFound(_))
        ));
        // Out of range.
        assert!(matches!(
            log.inclusion_proof(snap.size, 0).await,
            Err(LogError::InvalidArgument(_))
        ));
        assert!(matches!(
            log.inclusion_proof(0, snap.size + 1).await,
            Err(LogError::NotFound(_))
        ));
        assert!(matches!(
            log.consistency_proof(5, 4).await,
            Err(LogError::InvalidArgument(_))
        ));
        assert!(matches!(
            log.append(vec![]).await,
            Err(LogError::InvalidArgument(_))
        ));
        assert!(matches!(
            log.append(vec![0; 5000]).await,
            Err(LogError::InvalidArgument(_))
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
        // Tile 0/0 complete (one write), tile 0/1 partial (44), tile 1/0 (1
        // hash), bundles 0 and 1, 300 index entries.
        assert!(out.fresh.contains_key(&(0, 0)));
        let puts = |ns: &str| {
            batch
                .ops()
                .iter()
                .filter(|o| matches!(o, cairn_store::Op::Put { namespace, .. } if *namespace == ns))
                .count()
        };
        assert_eq!(puts(NS_TILES), 3);
        assert_eq!(puts(NS_ENTRIES), 2);
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
