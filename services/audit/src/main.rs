//! `cairn-audit`: run the audit log (and optionally a witness).

// jemalloc instead of the system allocator: the record path allocates per
// request on many threads, where glibc malloc cost 18% of the CPU
// (BENCHMARKS.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cairn_audit::{AuditConfig, WitnessConfig, start};
use clap::{CommandFactory as _, Parser};

/// The cairn audit service: the verifiable append-only log, C2SP tiles, and
/// witness mode.
#[derive(Parser, Debug)]
#[command(name = "cairn-audit", version, about)]
struct Args {
    /// A configuration file (TOML, `version = 1`, one key per flag);
    /// flags and environment variables override it.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// Data directory (embedded redb store; one process).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// With --data-dir: the most memory the embedded store's cache takes (MiB;
    /// default 1024). The service's resident memory grows to about this
    /// plus its working memory as the log fills.
    #[arg(long, env = "CAIRN_STORE_CACHE_MIB")]
    store_cache_mib: Option<u64>,
    /// A PostgreSQL-wire database instead, which standby replicas share
    /// (one sequences at a time, under a lease).
    #[arg(long, env = "CAIRN_POSTGRES")]
    postgres: Option<String>,
    /// The CA certificate (PEM) of the database server: the connection is
    /// then TLS 1.3 and the server's name is verified. Without it the
    /// connection is not encrypted (loopback, or a network that encrypts).
    #[arg(long, env = "CAIRN_POSTGRES_CA")]
    postgres_ca: Option<PathBuf>,
    /// The network directory file.
    #[arg(long, env = "CAIRN_DIRECTORY")]
    directory: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "CAIRN_TLS_CERT")]
    tls_cert: PathBuf,
    /// TLS private key (PEM).
    #[arg(long, env = "CAIRN_TLS_KEY")]
    tls_key: PathBuf,
    /// The log's Ed25519 key (PKCS#8 PEM).
    #[arg(long, env = "CAIRN_LOG_KEY")]
    log_key: PathBuf,
    /// The log's origin, e.g. `cairn.example/audit`.
    #[arg(long, env = "CAIRN_ORIGIN")]
    origin: String,
    /// Witness mode: the cosigner's Ed25519 key (PKCS#8 PEM).
    #[arg(long, requires = "witness_name")]
    witness_key: Option<PathBuf>,
    /// Witness mode: the cosigner name.
    #[arg(long)]
    witness_name: Option<String>,
    /// Witness mode: the verifier key of a log to witness (repeatable).
    #[arg(long = "witness-log")]
    witness_logs: Vec<String>,
    /// A witness to ask for cosignatures (repeatable):
    /// `<addr>,<verifier key>[,<tls service name>]` for cairn's gRPC
    /// witness, or `https://<host>[:port][/prefix],<verifier key>[,<tls
    /// service name> | ca=<PEM file>]` for any C2SP tlog-witness (POST
    /// <prefix>/add-checkpoint). The server is the directory's service
    /// `audit` unless another service, or a CA file to check it against
    /// (and the URL's host), is named.
    #[arg(long = "cosigner")]
    cosigners: Vec<String>,
    /// Serve Prometheus metrics at http://<addr>/metrics (plain HTTP: bind
    /// it to a loopback or cluster-internal address).
    #[arg(long, env = "CAIRN_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// With --postgres: how long the sequencer lease lasts (ms); a standby
    /// replica takes over this long after the sequencer stops.
    #[arg(long, env = "CAIRN_LEASE_TTL_MS", default_value_t = 10_000)]
    lease_ttl_ms: u64,
    /// Where SIGUSR1 writes a consistent backup of the log while it keeps
    /// serving: a new embedded store `<dir>/backup-<unix seconds>`.
    #[arg(long, env = "CAIRN_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    /// Restore the backup in this directory into the store (--data-dir or
    /// --postgres, which must hold no log yet), then exit.
    #[arg(long)]
    restore_from: Option<PathBuf>,
    /// Log filter.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    log: String,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(long, env = "CAIRN_LOG_FORMAT", default_value = "text")]
    log_format: cairn_telemetry::LogFormat,
}

fn main() -> std::process::ExitCode {
    let argv = match cairn_config::args_with_file(&Args::command(), std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let args = Args::parse_from(argv);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    cairn_telemetry::init(&args.log, args.log_format)?;
    let witness = match (args.witness_key, args.witness_name) {
        (Some(key), Some(name)) => Some(WitnessConfig {
            key,
            name,
            logs: args.witness_logs,
        }),
        _ => None,
    };
    let store = cairn_store::StoreLocation::from_flags(cairn_store::StoreFlags {
        data_dir: args.data_dir,
        store_cache_mib: args.store_cache_mib,
        postgres: args.postgres,
        postgres_ca: args.postgres_ca,
    })?;
    if let Some(from) = &args.restore_from {
        let keys = cairn_audit::restore(from, &store).await?;
        println!("restored {keys} keys from {}", from.display());
        return Ok(());
    }
    let running = start(AuditConfig {
        listen: args.listen,
        store,
        directory: args.directory,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        log_key: args.log_key,
        origin: args.origin,
        witness,
        cosigners: args
            .cosigners
            .iter()
            .map(|c| cairn_audit::witnessing::WitnessPeer::parse(c))
            .collect::<Result<_, _>>()?,
        metrics_listen: args.metrics_listen,
        lease_ttl: std::time::Duration::from_millis(args.lease_ttl_ms),
    })
    .await?;
    // The first stdout line tells supervisors and tests where we listen.
    println!("cairn-audit listening on {}", running.addr);
    println!("log verifier key {}", running.log_verifier);
    if let Some(m) = running.metrics_addr {
        println!("metrics on http://{m}/metrics");
    }
    if let Some(w) = &running.witness_verifier {
        println!("witness verifier key {w}");
    }
    std::io::stdout().flush().context("stdout")?;
    let mut backups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        .context("listening for SIGUSR1")?;
    loop {
        tokio::select! {
            r = cairn_config::shutdown_signal() => {
                r.context("waiting for a stop signal")?;
                break;
            }
            () = running.lease_lost() => {
                anyhow::bail!("lost the sequencer lease to another replica; exiting to come back as a standby");
            }
            _ = backups.recv() => backup(&running, args.backup_dir.as_deref()).await,
        }
    }
    Ok(running.stop().await?)
}

/// SIGUSR1: a backup into `--backup-dir`, said on stdout; a failure is
/// logged and the service keeps running.
async fn backup(running: &cairn_audit::RunningAudit, dir: Option<&std::path::Path>) {
    let Some(dir) = dir else {
        tracing::warn!("SIGUSR1: no --backup-dir given, no backup written");
        return;
    };
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("backup-{secs}"));
    match running.backup(&path).await {
        Ok(size) => {
            println!("backup of size {size} written to {}", path.display());
            let _ = std::io::stdout().flush();
        }
        Err(e) => tracing::error!(error = %e, path = %path.display(), "backup failed"),
    }
}
