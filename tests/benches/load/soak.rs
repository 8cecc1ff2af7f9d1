//! The soak mode of the load generator (`--soak MINUTES --rate R`): calls
//! paced at R/s for that long, with records built, signed and sealed while
//! it runs (a soak's records do not fit in memory beforehand) on a thread
//! of their own, and once a minute a line with that minute's calls,
//! receipt-latency percentiles, resident memory, open files and the bytes
//! the services' stores hold on disk. What must hold: they stay flat.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
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

/// A paced call: when it was due, and its record.
type Job = (Instant, cairn_record::pb::SignedRecord);

/// Runs the soak: `build(i)` makes record `i`; calls go round `channels`.
pub(crate) async fn run(
    service: super::Service,
    channels: Vec<Channel>,
    in_flight: usize,
    rate: f64,
    minutes: u32,
    store_dir: std::path::PathBuf,
    build: impl Fn(usize) -> cairn_record::pb::SignedRecord + Send + 'static,
) {
    let start = Instant::now();
    let end = start + Duration::from_secs(60 * u64::from(minutes));
    // Records are built ahead, at most a few seconds' worth.
    let (built_tx, built_rx) = std::sync::mpsc::sync_channel(((rate * 4.0) as usize).max(64));
    std::thread::spawn(move || {
        for i in 0.. {
            if built_tx.send(build(i)).is_err() {
                return;
            }
        }
    });
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::channel::<Job>(in_flight);
    std::thread::spawn(move || pace(rate, start, end, &built_rx, &jobs_tx));
    let jobs_rx = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let minute = Arc::new(Mutex::new(Minute::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (jobs_rx, minute, channels, next) = (
            jobs_rx.clone(),
            minute.clone(),
            channels.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some((due, record)) = jobs_rx.lock().await.recv().await else {
                    return;
                };
                let i = next.fetch_add(1, Ordering::Relaxed);
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
    report(minutes, &minute, &store_dir).await;
    for w in workers {
        w.await.expect("worker");
    }
}

/// Releases one job at each scheduled time until `end`.
fn pace(
    rate: f64,
    start: Instant,
    end: Instant,
    built: &std::sync::mpsc::Receiver<cairn_record::pb::SignedRecord>,
    jobs: &tokio::sync::mpsc::Sender<Job>,
) {
    for i in 0u64.. {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        if at >= end {
            return;
        }
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let Ok(record) = built.recv() else { return };
        if jobs.blocking_send((at, record)).is_err() {
            return;
        }
    }
}

/// Prints one line a minute, `minutes` times.
async fn report(minutes: u32, minute: &Mutex<Minute>, store_dir: &std::path::Path) {
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
             RSS {:.0} MiB; {} open files; store {:.0} MiB{}",
            m.receipted + m.pending + m.errors,
            m.receipted,
            m.pending,
            m.errors,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            m.latency.max() as f64 / 1000.0,
            resident_mib(),
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

/// File descriptors this process holds (sockets, store files, …).
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
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
