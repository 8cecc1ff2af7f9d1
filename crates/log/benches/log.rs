//! Audit log benchmarks (not run in CI): append throughput with durability
//! at batch sizes 1, 64 and 1024 and with many concurrent single appends;
//! inclusion and consistency proof latency at large tree sizes (cold and
//! warm tile cache); bytes on disk per leaf.
//!
//! cargo bench -p cairn-log --bench log                 # up to 10^6 leaves
//! cargo bench -p cairn-log --bench log -- --big        # also 10^7 leaves
//! # append throughput on PostgreSQL (a fresh database on that server),
//! # with the sequencer lease's fence on every commit as in a replicated
//! # deployment: the single sequencer's ceiling
//! cargo bench -p cairn-log --bench log -- --postgres "host=127.0.0.1 port=5432 user=postgres"
//!
//! Leaves are 128 random-looking bytes (a cairn LogLeaf is ~120 bytes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_log::{Log, LogConfig};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store};
use cairn_tlog::note::{ALG_ED25519, NoteSigner};
use hdrhistogram::Histogram;

const LEAF_LEN: usize = 128;

fn leaf(i: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEAF_LEN);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
    while out.len() < LEAF_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(LEAF_LEN);
    out
}

static POSTGRES: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

async fn open(dir: &std::path::Path) -> Log {
    open_with_store(dir).await.0
}

async fn open_with_store(dir: &std::path::Path) -> (Log, Arc<dyn Store>) {
    let signer =
        Arc::new(NoteSigner::from_seed("bench.example/log", ALG_ED25519, &[9; 32]).expect("key"));
    let mut config = LogConfig::new(signer);
    let store: Arc<dyn Store> = match POSTGRES.get().and_then(Option::as_ref) {
        None => {
            // The embedded default, as the audit service runs it: full
            // tiles and bundles as files beside the store.
            config.tile_dir = Some(dir.join("tiles"));
            Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir)).expect("store"))
        }
        Some(url) => {
            let db = cairn_store::conformance::fresh_postgres_database(url, "logbench").await;
            let store: Arc<dyn Store> = Arc::new(
                cairn_store::PostgresStore::open(&cairn_store::PostgresConfig::new(db, "audit"))
                    .await
                    .expect("postgres"),
            );
            let lease =
                cairn_log::lease::Lease::acquire(store.clone(), "bench", Duration::from_secs(60))
                    .await
                    .expect("lease");
            config.fence = Some(lease.fence());
            // Held (and renewed) for the rest of the run.
            std::mem::forget(lease);
            store
        }
    };
    (Log::open(store.clone(), config).await.expect("log"), store)
}

/// PostgreSQL: bytes per leaf after `size` appends in batches of 1024
/// (table, index and TOAST: `pg_total_relation_size`; not the WAL).
async fn disk_per_leaf(size: u64) {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, store) = open_with_store(dir.path()).await;
    let start = Instant::now();
    let mut n = 0u64;
    while n < size {
        let k = 1024.min(size - n);
        let leaves: Vec<Vec<u8>> = (n..n + k).map(leaf).collect();
        log.append_batch(leaves).await.expect("append");
        n += k;
    }
    let secs = start.elapsed().as_secs_f64();
    let on_disk = store
        .size_on_disk()
        .await
        .expect("size")
        .expect("PostgreSQL reports its size");
    println!(
        "== tree of {size} leaves on PostgreSQL: built in {secs:.1} s ({:.0} appends/s); {:.1} MiB = {:.1} bytes/leaf, {:.1} beyond the {LEAF_LEN}-byte leaf",
        size as f64 / secs,
        on_disk as f64 / (1 << 20) as f64,
        on_disk as f64 / size as f64,
        on_disk as f64 / size as f64 - LEAF_LEN as f64
    );
    log.close().await;
}

/// Bytes the files under `path` take on the disk (allocated blocks, not
/// their apparent length: redb grows its file ahead of use).
fn dir_size(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.blocks() * 512).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn report(name: &str, h: &Histogram<u64>) {
    println!(
        "{name}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

async fn throughput() {
    println!(
        "== append throughput (every acknowledged append is durable: one fdatasync per batch)"
    );
    for (batch, batches) in [(1usize, 300usize), (64, 200), (1024, 200)] {
        let dir = tempfile::tempdir().expect("tmp");
        let log = open(dir.path()).await;
        let mut n = 0u64;
        let start = Instant::now();
        for _ in 0..batches {
            let leaves: Vec<Vec<u8>> = (0..batch)
                .map(|_| {
                    n += 1;
                    leaf(n)
                })
                .collect();
            log.append_batch(leaves).await.expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "batch {batch:>5}: {:>9.0} appends/s ({} leaves in {secs:.2} s)",
            n as f64 / secs,
            n
        );
        log.close().await;
    }
    // The service path: many clients appending one leaf each, batched by
    // the sequencer as they arrive.
    let dir = tempfile::tempdir().expect("tmp");
    let log = open(dir.path()).await;
    let per_task = 400u64;
    let tasks = 256u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("hist");
                for i in 0..per_task {
                    let s = Instant::now();
                    log.append(leaf(t * 1_000_000 + i)).await.expect("append");
                    h.record(s.elapsed().as_micros() as u64).expect("record");
                }
                h
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("hist");
    for h in handles {
        all.add(h.await.expect("task")).expect("add");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{tasks} concurrent single appends: {:.0} appends/s",
        (tasks * per_task) as f64 / secs
    );
    report("  receipt latency", &all);
    log.close().await;
}

async fn proofs(size: u64) {
    println!("== tree of {size} leaves");
    let dir = tempfile::tempdir().expect("tmp");
    let log = open(dir.path()).await;
    let start = Instant::now();
    let mut n = 0u64;
    while n < size {
        let k = 1024.min(size - n);
        let leaves: Vec<Vec<u8>> = (n..n + k).map(leaf).collect();
        log.append_batch(leaves).await.expect("append");
        n += k;
    }
    let build = start.elapsed().as_secs_f64();
    println!(
        "built in {build:.1} s ({:.0} appends/s in batches of 1024)",
        size as f64 / build
    );
    log.close().await;
    let on_disk = dir_size(dir.path());
    println!(
        "on disk: {:.1} MiB = {:.1} bytes/leaf, {:.1} bytes/leaf beyond the {LEAF_LEN}-byte leaf itself (allocated blocks of the data directory)",
        on_disk as f64 / (1 << 20) as f64,
        on_disk as f64 / size as f64,
        on_disk as f64 / size as f64 - LEAF_LEN as f64
    );

    for cache in ["cold", "warm"] {
        // Cold: a freshly opened log, no tiles in memory but the right edge.
        let log = open(dir.path()).await;
        let mut inc = Histogram::<u64>::new(3).expect("hist");
        let mut con = Histogram::<u64>::new(3).expect("hist");
        let mut x = 12345u64;
        let samples = 2000;
        if cache == "warm" {
            for i in 0..samples {
                let _ = log.inclusion_proof((i * 7919) % size, 0).await;
            }
        }
        for i in 0..samples {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let idx = if cache == "warm" {
                (i * 7919) % size
            } else {
                x % size
            };
            let s = Instant::now();
            let (_, p) = log.inclusion_proof(idx, 0).await.expect("proof");
            inc.record(s.elapsed().as_micros().max(1) as u64)
                .expect("record");
            assert!(!p.is_empty());
            let old = 1 + x % (size - 1);
            let s = Instant::now();
            log.consistency_proof(old, 0).await.expect("proof");
            con.record(s.elapsed().as_micros().max(1) as u64)
                .expect("record");
        }
        let mut by_hash = Histogram::<u64>::new(3).expect("hist");
        for i in 0..500u64 {
            let idx = (i * 104_729) % size;
            let hash = cairn_tlog::hash::leaf_hash(&leaf(idx));
            let s = Instant::now();
            assert_eq!(log.index_of(&hash).await.expect("index"), idx);
            by_hash
                .record(s.elapsed().as_micros().max(1) as u64)
                .expect("record");
        }
        report(&format!("inclusion proof ({cache} tile cache)"), &inc);
        report(
            &format!("leaf index by hash ({cache} tile cache)"),
            &by_hash,
        );
        report(&format!("consistency proof ({cache} tile cache)"), &con);
        log.close().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let big = args.iter().any(|a| a == "--big");
    let postgres = args.iter().position(|a| a == "--postgres").map(|i| {
        args.get(i + 1)
            .expect("--postgres needs a connection string")
            .clone()
    });
    let on_postgres = postgres.is_some();
    POSTGRES.set(postgres).expect("once");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        throughput().await;
        if on_postgres {
            // Proof latency is the embedded-store figures' business; disk per leaf
            // is the comparison the disk target asks for.
            disk_per_leaf(1_000_000).await;
            return;
        }
        proofs(1_000_000).await;
        if big {
            proofs(10_000_000).await;
        }
    });
}
