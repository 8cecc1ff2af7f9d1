//! The soak mode of the load generator (`--soak MINUTES --rate R`): calls
//! paced at R/s for that long, and once a minute a line with that minute's
//! calls, receipt-latency percentiles, resident memory, open files and the
//! bytes the services' stores hold on disk. What must hold: they stay flat.
//!
//! A soak's records (R × 60 × MINUTES of them) do not fit in memory, and
//! building them while it runs would take the CPU the services need (a
//! record costs ~345 µs to sign and seal to three members, about half of
//! what the network spends on it). So they are built, signed and sealed
//! first, on every core, into files of a temporary directory, and the soak reads
//! them back in turn: the timed phase pays for reading them, not for
//! building them.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_record::pb::SignedRecord;
use hdrhistogram::Histogram;
use prost::Message as _;
use tonic::transport::Channel;

use super::{Outcome, call};

/// What the minute's calls gave.
struct Minute {
    latency: Histogram<u64>,
    receipted: usize,
    pending: usize,
    errors: usize,
    first_error: Option<String>,
}

impl Minute {
    fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram"),
            receipted: 0,
            pending: 0,
            errors: 0,
            first_error: None,
        }
    }
}

/// A paced call: when it was due, the record's number (which says the
/// connection of its author), and the record.
type Job = (Instant, usize, SignedRecord);

/// Runs the soak: `build(i)` makes record `i`, which goes on channel
/// `i % channels.len()` (its author's);
/// `stores` is where the services keep their data (its bytes are
/// reported).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    service: super::Service,
    channels: Vec<Channel>,
    in_flight: usize,
    rate: f64,
    minutes: u32,
    stores: PathBuf,
    build: impl Fn(usize) -> SignedRecord + Send + Sync + 'static,
) {
    let count = (rate * 60.0 * f64::from(minutes)).ceil() as usize;
    let records = tempfile::tempdir().expect("a directory for the records");
    let files = build_all(count, records.path(), build);
    let start = Instant::now();
    let end = start + Duration::from_secs(60 * u64::from(minutes));
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel::<Job>(in_flight);
    std::thread::spawn(move || pace(rate, start, end, &files, &jobs_tx));
    let jobs_rx = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let minute = Arc::new(Mutex::new(Minute::new()));
    let mut workers = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (jobs_rx, minute, channels) = (jobs_rx.clone(), minute.clone(), channels.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some((due, i, record)) = jobs_rx.lock().await.recv().await else {
                    return;
                };
                let outcome = call(service, channels[i % channels.len()].clone(), record).await;
                let micros = due.elapsed().as_micros() as u64;
                let Ok(mut m) = minute.lock() else { return };
                match outcome {
                    Ok(Outcome { receipt: true }) => {
                        m.receipted += 1;
                        m.latency.saturating_record(micros.max(1));
                    }
                    Ok(Outcome { receipt: false }) => m.pending += 1,
                    Err(e) => {
                        m.errors += 1;
                        m.first_error
                            .get_or_insert_with(|| format!("{} {}", e.code(), e.message()));
                    }
                }
            }
        }));
    }
    println!(
        "soak: {minutes} min paced at {rate}/s; per minute: calls (with receipt / pending / \
         refused), receipt latency ms p50 p90 p99 max, resident MiB, open files, store MiB"
    );
    report(minutes, &minute, &stores).await;
    for w in workers {
        w.await.expect("worker");
    }
}

/// Builds `count` records on every core into files in `dir` (one per
/// core, each record length-prefixed); returns the files.
fn build_all(
    count: usize,
    dir: &Path,
    build: impl Fn(usize) -> SignedRecord + Send + Sync + 'static,
) -> Vec<PathBuf> {
    let t = Instant::now();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let build = Arc::new(build);
    let files: Vec<PathBuf> = (0..cores)
        .map(|c| dir.join(format!("soak-records-{c}")))
        .collect();
    let threads: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(c, path)| {
            let (build, path) = (build.clone(), path.clone());
            std::thread::spawn(move || {
                let mut out = BufWriter::new(std::fs::File::create(&path).expect("records file"));
                for i in (c..count).step_by(cores) {
                    let bytes = build(i).encode_to_vec();
                    out.write_all(&(bytes.len() as u32).to_be_bytes())
                        .and_then(|()| out.write_all(&bytes))
                        .expect("write a record");
                }
                out.flush().expect("flush records");
            })
        })
        .collect();
    for th in threads {
        th.join().expect("builder");
    }
    println!(
        "built, signed and sealed {count} records on {cores} cores in {:.0} s, before the soak",
        t.elapsed().as_secs_f64()
    );
    files
}

/// Releases one record, read from `files` in turn, at each scheduled time
/// until `end` (or until the records run out).
fn pace(
    rate: f64,
    start: Instant,
    end: Instant,
    files: &[PathBuf],
    jobs: &tokio::sync::mpsc::Sender<Job>,
) {
    let mut readers: Vec<_> = files
        .iter()
        .map(|f| BufReader::new(std::fs::File::open(f).expect("records file")))
        .collect();
    for i in 0u64.. {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        if at >= end {
            return;
        }
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let n = readers.len();
        let Some(record) = read_record(&mut readers[i as usize % n]) else {
            return;
        };
        if jobs.blocking_send((at, i as usize, record)).is_err() {
            return;
        }
    }
}

/// The next length-prefixed record, if any.
fn read_record(r: &mut impl Read) -> Option<SignedRecord> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).ok()?;
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut bytes).ok()?;
    SignedRecord::decode(bytes.as_slice()).ok()
}

/// Prints one line a minute, `minutes` times.
async fn report(minutes: u32, minute: &Mutex<Minute>, store_dir: &Path) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    for n in 1..=minutes {
        tick.tick().await;
        let m = match minute.lock() {
            Ok(mut m) => std::mem::replace(&mut *m, Minute::new()),
            Err(_) => return,
        };
        let ms = |q: f64| m.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "  min {n:>3}: {:>6} ({} / {} / {}) p50 {:.2} p90 {:.2} p99 {:.2} max {:.1}; \
             RSS {:.0} MiB (heap {}); {} open files; store {:.0} MiB{}",
            m.receipted + m.pending + m.errors,
            m.receipted,
            m.pending,
            m.errors,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            m.latency.max() as f64 / 1000.0,
            resident_mib(),
            heap(),
            open_files(),
            dir_bytes(store_dir) as f64 / (1024.0 * 1024.0),
            m.first_error
                .map(|e| format!(" (first refusal: {e})"))
                .unwrap_or_default()
        );
    }
}

/// This process's resident set (VmRSS), MiB.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// jemalloc's own view of the heap, MiB: what is allocated, in active
/// pages, resident (with jemalloc's metadata), and mapped but returned to
/// the system. Growth in "allocated" is memory something still holds;
/// growth only in "resident" is fragmentation or pages not yet purged.
fn heap() -> String {
    use tikv_jemalloc_ctl::{epoch, stats};
    let mib = |r: Result<usize, tikv_jemalloc_ctl::Error>| match r {
        Ok(b) => format!("{:.0}", b as f64 / (1024.0 * 1024.0)),
        Err(_) => "?".to_string(),
    };
    if epoch::advance().is_err() {
        return "unavailable".to_string();
    }
    format!(
        "allocated {} active {} resident {} retained {}",
        mib(stats::allocated::read()),
        mib(stats::active::read()),
        mib(stats::resident::read()),
        mib(stats::retained::read()),
    )
}

/// File descriptors this process holds (sockets, store files, …).
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
