//! How the memory of an embedded store grows with what it holds, its cache
//! bounded to 128 MiB: sled 0.34 (cairn's store until 2026-12-02) against
//! redb (its store since), with the same writes as cairn's record path in
//! shape — a 1,400-byte incompressible value under a random-looking
//! 32-byte key and a 32-byte index entry under an ordered 8-byte key per
//! record, 32 records per batch, every batch made durable before the next.
//!
//! ```sh
//! cd bench/store-memory
//! cargo run --release -- sled 3000000 /tmp/store-memory-sled
//! cargo run --release -- redb 3000000 /tmp/store-memory-redb
//! ```
//!
//! `open <directory>` times how long redb takes to open what a run left
//! behind — after `kill -9` of a redb run, that includes redb's repair of
//! its allocator state:
//!
//! ```sh
//! cargo run --release -- redb 3000000 /tmp/store-memory-redb & sleep 120; kill -9 %1
//! cargo run --release -- open /tmp/store-memory-redb
//! ```
//!
//! Every 500,000 records it prints the process's resident memory, what
//! jemalloc counts as allocated (memory something still holds, not
//! fragmentation) and the bytes on disk. The directory is emptied first.

use std::path::Path;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CACHE_BYTES: usize = 128 << 20;
const BATCH: u64 = 32;
const REPORT_EVERY: u64 = 500_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(store), Some(n)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: store-memory sled|redb <records> <throwaway directory> | open <directory>"
        );
        std::process::exit(2);
    };
    let dir = args.next().unwrap_or_default();
    if store == "open" {
        return time_open(Path::new(&n));
    }
    let n: u64 = n.parse().expect("a number of records");
    let dir = Path::new(&dir);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("the directory");
    let start = Instant::now();
    let report = |i: u64| {
        println!(
            "{store} {i:>9} records {:>5.0} s: resident {:>5.0} MiB, allocated {:>5.0} MiB, on disk {:>6.0} MiB",
            start.elapsed().as_secs_f64(),
            resident_mib(),
            allocated_mib(),
            dir_bytes(dir) as f64 / 1048576.0
        )
    };
    match store.as_str() {
        "sled" => sled_writes(dir, n, report),
        "redb" => redb_writes(dir, n, report),
        other => panic!("{other}: not sled or redb"),
    }
}

fn time_open(dir: &Path) {
    let start = Instant::now();
    let repaired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = repaired.clone();
    let db = redb::Database::builder()
        .set_cache_size(CACHE_BYTES)
        .set_repair_callback(move |_| seen.store(true, std::sync::atomic::Ordering::Relaxed))
        .create(dir.join("cairn.redb"))
        .expect("redb");
    println!(
        "opened {:.0} MiB in {:.2} s ({})",
        dir_bytes(dir) as f64 / 1048576.0,
        start.elapsed().as_secs_f64(),
        if repaired.load(std::sync::atomic::Ordering::Relaxed) {
            "repaired: it was not closed cleanly"
        } else {
            "no repair needed"
        }
    );
    drop(db);
}

fn sled_writes(dir: &Path, n: u64, report: impl Fn(u64)) {
    // cairn's settings for sled: 8 MiB segments, a sync by flush().
    let db = sled::Config::new()
        .path(dir)
        .segment_size(8 << 20)
        .cache_capacity(CACHE_BYTES as u64)
        .flush_every_ms(Some(1000))
        .open()
        .expect("sled");
    let tree = db.open_tree("cairn").expect("tree");
    let mut i = 0;
    while i < n {
        for _ in 0..BATCH {
            let (k1, v1, k2, v2) = record(i);
            tree.insert(k1, v1).expect("insert");
            tree.insert(k2, v2).expect("insert");
            i += 1;
        }
        db.flush().expect("flush");
        if i % REPORT_EVERY == 0 {
            report(i);
        }
    }
}

fn redb_writes(dir: &Path, n: u64, report: impl Fn(u64)) {
    let db = redb::Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(dir.join("cairn.redb"))
        .expect("redb");
    let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("cairn");
    let mut i = 0;
    while i < n {
        let mut tx = db.begin_write().expect("write transaction");
        // QUICK_REPAIR=1: each commit saves redb's allocator state, so a
        // crash needs no repair walk at open (what `open` then measures).
        tx.set_quick_repair(std::env::var_os("QUICK_REPAIR").is_some());
        {
            let mut t = tx.open_table(table).expect("table");
            for _ in 0..BATCH {
                let (k1, v1, k2, v2) = record(i);
                t.insert(k1.as_slice(), v1.as_slice()).expect("insert");
                t.insert(k2.as_slice(), v2.as_slice()).expect("insert");
                i += 1;
            }
        }
        tx.commit().expect("durable commit");
        if i % REPORT_EVERY == 0 {
            report(i);
        }
    }
}

/// Record `i`'s two writes: its body under its id, and an index entry.
fn record(i: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let id = scatter(i);
    let mut body = Vec::with_capacity(1400);
    let mut x = i ^ 0x5851_F42D_4C95_7F2D;
    while body.len() < 1400 {
        x = splitmix(x);
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(1400);
    let mut k1 = b"records/".to_vec();
    k1.extend_from_slice(&id);
    let mut k2 = b"by_time/".to_vec();
    k2.extend_from_slice(&i.to_be_bytes());
    (k1, body, k2, id.to_vec())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 32 random-looking bytes, like a record id.
fn scatter(i: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut x = i;
    for chunk in out.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    out
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn allocated_mib() -> f64 {
    if tikv_jemalloc_ctl::epoch::advance().is_err() {
        return 0.0;
    }
    tikv_jemalloc_ctl::stats::allocated::read().map_or(0.0, |b| b as f64 / 1048576.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}
