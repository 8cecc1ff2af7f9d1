//! End-to-end load generator (not run in CI): a whole network (audit,
//! intake, evals) in this process on loopback ports with a generated dev
//! PKI, driven over mTLS by N connections with M requests in flight.
//!
//! ```sh
//! cargo bench -p cairn-tests --bench load                      # intake, 20,000 records
//! cargo bench -p cairn-tests --bench load -- --service evals
//! cargo bench -p cairn-tests --bench load -- --connections 8 --in-flight 256 \
//!     --count 40000 --body 4096 --rate 2000 --duration 20
//! # every service on PostgreSQL (a fresh database on that server), and
//! # two intake replicas on it:
//! cargo bench -p cairn-tests --bench load -- --postgres "host=127.0.0.1 port=5432 user=postgres"
//! cargo bench -p cairn-tests --bench load -- --postgres "…" --replicas 2
//! ```
//!
//! Every record is built, signed (Ed25519, DSSE) and sealed (HPKE to the
//! three members, TLP:AMBER) **before** the timed phase; the timed phase is
//! only the gRPC call, which returns once the record is durably stored and
//! (within the 10 s receipt wait) its audit receipt is back. A call that
//! answers `receipt_pending` is counted apart.
//!
//! `--mode bulk --audit` then times what the stored records cost an
//! auditor (`cairn audit verify --full`'s recomputation of every entry)
//! and an operator (the record service reopened on its store), e.g.
//! `--mode bulk --count 1000000 --body 1024 --audit` (`load/audit.rs`).
//!
//! `--soak MINUTES --rate R` is the soak mode (`load/soak.rs`): R/s for
//! that long, records built before it starts, one line a minute with
//! latency percentiles, resident memory, open files and store size, e.g.
//! `--soak 30 --rate 3800 --body 1024` at half of a measured peak (redb,
//! this 2-core machine; it needs ~40 GB of temporary disk).
//! `--store-cache-mib N` bounds each embedded store's cache (as the services'
//! flag of that name does; default 1024).
//!
//! `--rate R` paces the calls open-loop at R/s and measures each latency
//! from the call's scheduled start (so a stalled server is charged for the
//! calls it delays); a pacer thread releases each call at its time, and how
//! late calls started is printed. Without it, M calls are kept in flight.
//!
//! CPU time is this process's user + system time (`/proc/self/stat`) over
//! the timed phase: the client *and* all three services, since they share
//! this process.
//!
//! After the timed phase the same run measures the floor: the work every
//! record must pay (one Ed25519 verification, SHA-256 over envelope and
//! body, one AES-256-GCM pass over the body, a checkpoint signature and an
//! fdatasync amortised per batch), and reports end-to-end throughput as a
//! fraction of the rate that work alone would allow.

// The services' allocator (their binaries use jemalloc too): the bench
// runs them in this process.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_service_core::RecordCoreConfig;
use cairn_tests::{MEMBERS, Net};
use hdrhistogram::Histogram;
use prost::Message as _;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[path = "load/audit.rs"]
mod audit;
#[path = "load/bulk.rs"]
mod bulk;
#[path = "load/floor.rs"]
mod floor;
#[path = "load/soak.rs"]
mod soak;
#[path = "load/transport.rs"]
mod transport;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Service {
    Intake,
    Evals,
}

#[derive(Debug)]
struct Args {
    service: Service,
    connections: usize,
    in_flight: usize,
    count: usize,
    duration: Option<Duration>,
    body: usize,
    rate: Option<f64>,
    postgres: Option<String>,
    replicas: usize,
    soak: Option<u32>,
    store_cache_mib: Option<u64>,
    bulk: bool,
    /// After a bulk run: time the auditor's full verification and the
    /// record service's reopening (`load/audit.rs`).
    audit: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        service: Service::Intake,
        connections: 8,
        in_flight: 128,
        count: 20_000,
        duration: None,
        body: 4096,
        rate: None,
        postgres: None,
        replicas: 1,
        soak: None,
        store_cache_mib: None,
        bulk: false,
        audit: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench`; ignore it.
        if flag == "--bench" {
            continue;
        }
        if flag == "--audit" {
            a.audit = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--service" => {
                a.service = match value.as_str() {
                    "intake" => Service::Intake,
                    "evals" => Service::Evals,
                    other => panic!("--service: {other:?} is not intake or evals"),
                }
            }
            "--connections" => a.connections = num(&value) as usize,
            "--in-flight" => a.in_flight = num(&value) as usize,
            "--count" => a.count = num(&value) as usize,
            "--duration" => a.duration = Some(Duration::from_secs_f64(num(&value))),
            "--body" => a.body = num(&value) as usize,
            "--rate" => a.rate = Some(num(&value)),
            "--postgres" => a.postgres = Some(value),
            "--replicas" => a.replicas = num(&value) as usize,
            "--soak" => a.soak = Some(num(&value) as u32),
            "--store-cache-mib" => a.store_cache_mib = Some(num(&value) as u64),
            "--mode" => {
                a.bulk = match value.as_str() {
                    "bulk" => true,
                    "unary" => false,
                    other => panic!("--mode: {other:?} is not unary or bulk"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(a.connections > 0 && a.in_flight > 0 && a.count > 0 && a.replicas > 0);
    assert!(
        a.replicas == 1 || a.postgres.is_some(),
        "--replicas needs --postgres: replicas share a database"
    );
    assert!(
        a.soak.is_none() || a.rate.is_some(),
        "--soak needs --rate: a soak runs paced (at half of a measured peak)"
    );
    a
}

fn cores_now() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn name_of(s: Service) -> &'static str {
    match s {
        Service::Intake => "intake",
        Service::Evals => "evals",
    }
}

/// Content of about `body` bytes: sealed, so the services never parse it,
/// but a valid message for its recipients all the same.
fn content(service: Service, author: &str, i: usize, body: usize) -> (Vec<u8>, pb::IndexFields) {
    let filler: String = std::iter::repeat_n('x', body.saturating_sub(300)).collect();
    match service {
        Service::Intake => {
            let mut inc = cairn_tests::incident(&format!("load {i}"));
            inc.summary = filler;
            let index = cairn_record::content::incident_index(&inc);
            (inc.encode_to_vec(), index)
        }
        Service::Evals => {
            let now = time::OffsetDateTime::now_utc();
            let r = evals::EvaluationResult {
                evaluator: Some(pb::MemberId { id: author.into() }),
                model: Some(evals::ModelUnderTest {
                    provider: "Example Labs".into(),
                    name: "Frontier-1".into(),
                    version: "2026-10".into(),
                    digest: String::new(),
                }),
                task: Some(evals::Task {
                    id: format!("load/{i}"),
                    version: "1".into(),
                    dataset_digest: String::new(),
                }),
                started_at: Some(cairn_record::header::time_to_timestamp(
                    now - time::Duration::hours(2),
                )),
                completed_at: Some(cairn_record::header::time_to_timestamp(
                    now - time::Duration::hours(1),
                )),
                risk_domain: pb::RiskDomain::Cyber as i32,
                summary_findings: filler,
                ..Default::default()
            };
            let index = cairn_record::content::evaluation_index(&r);
            (r.encode_to_vec(), index)
        }
    }
}

fn cpu_time() -> Duration {
    // utime and stime (fields 14 and 15) in USER_HZ ticks, which Linux
    // fixes at 100 for /proc. The name (field 2) may hold spaces: skip it.
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat (Linux only)");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks = |i: usize| -> u64 { fields[i - 3].parse().expect("stat field") };
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

/// CPU time of the whole machine (every process: the database server
/// too) from the first line of /proc/stat, in USER_HZ (100) ticks.
fn machine_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat (Linux only)");
    let line = stat.lines().next().expect("/proc/stat format");
    // cpu user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().expect("/proc/stat field"))
        .collect();
    let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0);
    Duration::from_millis(busy * 10)
}

/// What an accepted call gave back.
pub(crate) struct Outcome {
    /// Whether its receipt came with it (else `receipt_pending`).
    pub(crate) receipt: bool,
}

/// One submission of `record` to `service` on `ch`.
pub(crate) async fn call(
    service: Service,
    ch: Channel,
    record: pb::SignedRecord,
) -> Result<Outcome, tonic::Status> {
    let record = Some(record);
    let receipt = match service {
        Service::Intake => intake::incident_intake_client::IncidentIntakeClient::new(ch)
            .submit_incident(intake::SubmitIncidentRequest { record })
            .await?
            .get_ref()
            .receipt
            .is_some(),
        Service::Evals => evals::evaluation_results_client::EvaluationResultsClient::new(ch)
            .publish_result(evals::PublishResultRequest { record })
            .await?
            .get_ref()
            .receipt
            .is_some(),
    };
    Ok(Outcome { receipt })
}

#[derive(Default)]
struct Tally {
    hist: Option<Histogram<u64>>,
    receipted: usize,
    pending: usize,
    errors: usize,
    first_error: Option<String>,
}

async fn run(args: Args) {
    let core = RecordCoreConfig {
        receipt_wait: Duration::from_secs(10),
        // The per-member admission limit is a policy, not a capacity: lift it.
        rate_per_member: 1e9,
        burst_per_member: 1e9,
        ..RecordCoreConfig::default()
    };
    let mut net = match &args.postgres {
        None => match args.store_cache_mib {
            Some(mib) => {
                println!("store caches: {mib} MiB each");
                Net::start_store_cache(core, mib * 1024 * 1024).await
            }
            None => Net::start_with(core).await,
        },
        Some(url) => {
            let db = cairn_store::conformance::fresh_postgres_database(url, "load").await;
            println!("store: PostgreSQL, a fresh database ({db})");
            Net::start_postgres(core, &db).await
        }
    };
    // Replicas beyond the first, in this process, each with its own pool
    // and sequencer turn; connection c goes to replica c % R.
    let mut extra = Vec::new();
    for _ in 1..args.replicas {
        extra.push(net.start_replica(name_of(args.service)).await);
    }
    let mut targets = vec![match args.service {
        Service::Intake => net.intake.addr,
        Service::Evals => net.evals.addr,
    }];
    targets.extend(extra.iter().map(|r| r.addr));
    println!("{} replica(s) of {}", targets.len(), name_of(args.service));
    let authors: Vec<&str> = match args.service {
        Service::Intake => MEMBERS.to_vec(),
        Service::Evals => vec!["jp-aisi", "uk-aisi"], // the evaluators
    };
    let (kind, name) = match args.service {
        Service::Intake => (RecordKind::Incident, "intake"),
        Service::Evals => (RecordKind::EvaluationResult, "evals"),
    };

    // Connection c acts as authors[c % len]; record i travels on connection
    // i % N, so it is signed by that connection's member.
    let conn_author = |c: usize| authors[c % authors.len()];
    let channels: Vec<_> = (0..args.connections)
        .map(|c| net.channel(conn_author(c), targets[c % targets.len()], name))
        .collect();
    // Open every connection (TLS handshake) before timing.
    for ch in &channels {
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        h.check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health");
    }
    let build = {
        let keys: Vec<_> = authors.iter().map(|a| net.signing_key(a)).collect();
        let authors: Vec<String> = authors.iter().map(|a| a.to_string()).collect();
        let (directory, service, body, connections) = (
            net.directory.clone(),
            args.service,
            args.body,
            args.connections,
        );
        move |i: usize| {
            let a = (i % connections) % authors.len();
            let (content, index) = content(service, &authors[a], i, body);
            let d = cairn_testkit::draft(
                &directory,
                kind,
                SharingLabel::TlpAmber,
                &MEMBERS,
                content,
                Some(index),
            );
            cairn_record::build(&d, &authors[a], &keys[a]).expect("build")
        }
    };
    if let (Some(minutes), Some(rate)) = (args.soak, args.rate) {
        let stores = net.tmp.path().to_owned();
        soak::run(
            args.service,
            channels,
            args.in_flight,
            rate,
            minutes,
            stores,
            build,
        )
        .await;
        return;
    }
    let build_start = Instant::now();
    // Built on every core (in order: record i is the i-th).
    let records: Vec<pb::SignedRecord> = {
        let chunk = args.count.div_ceil(cores_now());
        std::thread::scope(|scope| {
            let parts: Vec<_> = (0..args.count)
                .step_by(chunk.max(1))
                .map(|from| {
                    let build = &build;
                    let to = (from + chunk).min(args.count);
                    scope.spawn(move || (from..to).map(build).collect::<Vec<_>>())
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("builder"))
                .collect()
        })
    };
    // One more, sent after the timed phase for a real receipt: the echo
    // service of the transport floor answers with one of that size.
    let probe = build(args.count);
    let built = build_start.elapsed();
    let body_len = records[0].body.len();
    println!(
        "built, signed and sealed {} records ({} B body, sealed to {} recipients) in {:.1} s, \
         before the timed phase",
        args.count,
        body_len,
        MEMBERS.len(),
        built.as_secs_f64()
    );

    let records = Arc::new(records);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.bulk {
        let cpu0 = cpu_time();
        let b = bulk::run(args.service, &channels, records.clone()).await;
        let cpu = cpu_time() - cpu0;
        let done = b.accepted;
        println!(
            "{name} bulk: {} records on {} streams in {:.2} s total: {} accepted, {} refused{}",
            records.len(),
            channels.len(),
            b.elapsed.as_secs_f64(),
            b.accepted,
            b.refused,
            b.first_refusal
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        let (rss, peak) = audit::resident_mib();
        println!(
            "  throughput {:.0} records/s; CPU {:.0} µs per record (client + three services); \
             resident {rss:.0} MiB, peak {peak:.0} MiB (this process: client and services)",
            done as f64 / b.elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / done.max(1) as f64
        );
        let rate = done as f64 / b.elapsed.as_secs_f64();
        report_floors(
            &net, &args, &authors, records, probe, &channels, rate, cores,
        )
        .await;
        if args.audit {
            audit::run(&mut net, name, authors[0], done as u64).await;
        }
        return;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let cpu0 = cpu_time();
    let machine0 = machine_cpu_time();
    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    // Paced runs: a pacer thread releases one call at each scheduled time.
    // tokio's timer wheel has a 1 ms tick (a paced call would start up to
    // 1 ms late, charged to the server); an OS thread's sleep is precise
    // to tens of µs. How late calls still start is measured and printed.
    let pacer = args.rate.map(|r| {
        let released = Arc::new(tokio::sync::Semaphore::new(0));
        let count = records.len();
        let gate = released.clone();
        let workers_n = args.in_flight;
        std::thread::spawn(move || {
            for i in 0..count {
                let at = start + Duration::from_secs_f64(i as f64 / r);
                if deadline.is_some_and(|d| at >= d) {
                    break;
                }
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                gate.add_permits(1);
            }
            // One more permit per worker: each then takes an index past
            // the end (or past the deadline) and stops.
            gate.add_permits(workers_n);
        });
        (r, released)
    });
    let late = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("hist"),
    ));
    let mut workers = Vec::with_capacity(args.in_flight);
    for _ in 0..args.in_flight {
        let (records, next, tally, channels, pacer, late) = (
            records.clone(),
            next.clone(),
            tally.clone(),
            channels.clone(),
            pacer.clone(),
            late.clone(),
        );
        let service = args.service;
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("hist");
            let (mut receipted, mut pending, mut errors) = (0, 0, 0);
            let mut first_error = None;
            loop {
                if let Some((_, released)) = &pacer {
                    match released.acquire().await {
                        Ok(permit) => permit.forget(),
                        Err(_) => break, // never closed; for completeness
                    }
                }
                // Taken after the permit: the i-th call is released no
                // earlier than the i-th scheduled time.
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= records.len() {
                    break;
                }
                let scheduled = match &pacer {
                    Some((r, _)) => {
                        let at = start + Duration::from_secs_f64(i as f64 / r);
                        let behind = at.elapsed().as_micros() as u64;
                        if let Ok(mut l) = late.lock() {
                            l.saturating_record(behind.max(1));
                        }
                        at
                    }
                    None => Instant::now(),
                };
                if deadline.is_some_and(|d| scheduled >= d) {
                    break;
                }
                let ch = channels[i % channels.len()].clone();
                let outcome = call(service, ch, records[i].clone()).await;
                let micros = scheduled.elapsed().as_micros() as u64;
                match outcome {
                    Ok(Outcome { receipt: true }) => {
                        receipted += 1;
                        hist.saturating_record(micros.max(1));
                    }
                    Ok(Outcome { receipt: false }) => pending += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{} {}", e.code(), e.message()));
                    }
                }
            }
            let mut t = tally.lock().await;
            match &mut t.hist {
                Some(h) => h.add(&hist).expect("merge"),
                None => t.hist = Some(hist),
            }
            t.receipted += receipted;
            t.pending += pending;
            t.errors += errors;
            if t.first_error.is_none() {
                t.first_error = first_error;
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time() - cpu0;
    let machine = machine_cpu_time() - machine0;
    let t = tally.lock().await;
    let done = t.receipted + t.pending;
    let h = t.hist.as_ref().expect("histogram");
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name}: {} connections, {} in flight{}, {:.1} s",
        args.connections,
        args.in_flight,
        args.rate
            .map(|r| format!(", paced at {r}/s"))
            .unwrap_or_default(),
        elapsed.as_secs_f64()
    );
    println!(
        "  {done} accepted ({} with receipt, {} receipt_pending), {} refused{}",
        t.receipted,
        t.pending,
        t.errors,
        t.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    let (rss, peak) = audit::resident_mib();
    println!(
        "  throughput {:.0} records/s; receipt latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; \
         resident {rss:.0} MiB, peak {peak:.0} MiB",
        done as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    if args.rate.is_some()
        && let Ok(l) = late.lock()
    {
        println!(
            "  calls started after their scheduled time by µs p50 {} p99 {} max {} \
             (the generator's own lag, included in the latencies above)",
            l.value_at_quantile(0.5),
            l.value_at_quantile(0.99),
            l.max()
        );
    }
    println!(
        "  CPU {:.1} s over the timed phase = {:.0} µs per record \
         (client + three services; {cores} cores {:.0}% busy)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / done.max(1) as f64,
        100.0 * cpu.as_secs_f64() / (cores as f64 * elapsed.as_secs_f64())
    );
    println!(
        "  machine CPU {:.1} s = {:.0} µs per record (every process, the database server too; {:.0}% busy)",
        machine.as_secs_f64(),
        machine.as_secs_f64() * 1e6 / done.max(1) as f64,
        100.0 * machine.as_secs_f64() / (cores as f64 * elapsed.as_secs_f64())
    );
    let end_to_end = done as f64 / elapsed.as_secs_f64();
    report_floors(
        &net, &args, &authors, records, probe, &channels, end_to_end, cores,
    )
    .await;
}

/// The floors of this run (cryptography and fsync; transport; both) and
/// `end_to_end` as a share of each.
#[allow(clippy::too_many_arguments)]
async fn report_floors(
    net: &Net,
    args: &Args,
    authors: &[&str],
    records: Arc<Vec<pb::SignedRecord>>,
    probe: pb::SignedRecord,
    channels: &[Channel],
    end_to_end: f64,
    cores: usize,
) {
    let f = floor::floor(net, &records[0], args.in_flight);
    let floor_rate = f.rate(cores);
    println!(
        "  floor {:.0} records/s on {cores} cores; end to end is {:.1}% of it",
        floor_rate,
        100.0 * end_to_end / floor_rate
    );
    let receipt = real_receipt(args.service, channels[0].clone(), probe).await;
    let t = transport::floor(
        net,
        authors,
        records,
        receipt,
        args.connections,
        args.in_flight,
    )
    .await;
    let combined = f.combined_rate(t.cpu, cores);
    println!(
        "  combined floor (transport + cryptography + fsync) {:.0} records/s; \
         end to end is {:.1}% of it",
        combined,
        100.0 * end_to_end / combined
    );
}

/// The receipt of one real submission.
async fn real_receipt(service: Service, ch: Channel, record: pb::SignedRecord) -> pb::Receipt {
    let record = Some(record);
    let receipt = match service {
        Service::Intake => intake::incident_intake_client::IncidentIntakeClient::new(ch)
            .submit_incident(intake::SubmitIncidentRequest { record })
            .await
            .map(|r| r.into_inner().receipt),
        Service::Evals => evals::evaluation_results_client::EvaluationResultsClient::new(ch)
            .publish_result(evals::PublishResultRequest { record })
            .await
            .map(|r| r.into_inner().receipt),
    };
    receipt.expect("the probe submission").expect("a receipt")
}

fn main() {
    let args = parse_args();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(args));
}
