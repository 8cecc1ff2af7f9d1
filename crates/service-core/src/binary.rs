//! What a record-service binary does at its edge, written once for
//! `cairn-intake` and `cairn-evals`: read its configuration (flags, their
//! environment variables, a versioned config file: `cairn_config`), set up
//! logging and metrics, start, print the bound address on stdout,
//! run until Ctrl-C or SIGTERM, stop gracefully. Exit code 2 with a message naming
//! the problem when any of that fails.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

use crate::RecordCoreConfig;
use crate::serve::{Running, ServeConfig, ServeError};

/// The flags every record service takes.
#[derive(Parser, Debug)]
#[command(version)]
pub struct ServiceArgs {
    /// A configuration file (TOML, `version = 1`, one key per flag);
    /// flags and environment variables override it.
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Data directory (embedded redb store; one process).
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// With --data-dir: the most memory the embedded store's cache takes (MiB;
    /// default 1024). The service's resident memory grows to about this
    /// plus its working memory as the store fills.
    #[arg(long, env = "CAIRN_STORE_CACHE_MIB")]
    pub store_cache_mib: Option<u64>,
    /// A PostgreSQL-wire database instead (PostgreSQL, CockroachDB,
    /// YugabyteDB), which replicas share: a connection string such as
    /// `host=db port=5432 user=cairn dbname=cairn` or a postgres:// URL.
    #[arg(long, env = "CAIRN_POSTGRES")]
    pub postgres: Option<String>,
    /// The CA certificate (PEM) of the database server: the connection is
    /// then TLS 1.3 and the server's name is verified. Without it the
    /// connection is not encrypted (loopback, or a network that encrypts).
    #[arg(long, env = "CAIRN_POSTGRES_CA")]
    pub postgres_ca: Option<PathBuf>,
    /// The network directory file.
    #[arg(long, env = "CAIRN_DIRECTORY")]
    pub directory: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long, env = "CAIRN_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    #[arg(long, env = "CAIRN_TLS_KEY")]
    pub tls_key: PathBuf,
    /// The audit service's address, `host:port` (a name is resolved once,
    /// at start: in Kubernetes, the audit Service's stable cluster IP).
    #[arg(long, env = "CAIRN_AUDIT")]
    pub audit: String,
    /// Largest record body in bytes.
    #[arg(long, env = "CAIRN_MAX_BODY", default_value_t = 1024 * 1024)]
    pub max_body: usize,
    /// How long a submission waits for its audit receipt (ms) before it is
    /// answered with a pending receipt.
    #[arg(long, env = "CAIRN_RECEIPT_WAIT_MS", default_value_t = 5000)]
    pub receipt_wait_ms: u64,
    /// Serve Prometheus metrics at http://<addr>/metrics (plain HTTP: bind
    /// it to a loopback or cluster-internal address).
    #[arg(long, env = "CAIRN_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log filter.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(long, env = "CAIRN_LOG_FORMAT", default_value = "text")]
    pub log_format: cairn_telemetry::LogFormat,
}

/// Runs the record service `name` (its `about` shown by `--help`) with
/// `start` until Ctrl-C or SIGTERM.
pub fn main<S, F>(name: &'static str, about: &'static str, start: S) -> ExitCode
where
    S: FnOnce(ServeConfig) -> F,
    F: Future<Output = Result<Running, ServeError>>,
{
    let command = ServiceArgs::command()
        .name(name)
        .bin_name(name)
        .about(about);
    let argv = match cairn_config::args_with_file(&command, std::env::args_os().collect()) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = command.get_matches_from(argv);
    let args = match ServiceArgs::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if let Err(e) = cairn_telemetry::init(&args.log, args.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(name, args, start)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run<S, F>(name: &str, args: ServiceArgs, start: S) -> Result<(), ServeError>
where
    S: FnOnce(ServeConfig) -> F,
    F: Future<Output = Result<Running, ServeError>>,
{
    let core = RecordCoreConfig {
        max_body: args.max_body,
        receipt_wait: Duration::from_millis(args.receipt_wait_ms),
        ..RecordCoreConfig::default()
    };
    // Checked once here so that a typo fails at start; connections resolve
    // the name again each time.
    if tokio::net::lookup_host(&args.audit)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .is_none()
    {
        return Err(ServeError::Io(format!(
            "--audit {}: not host:port, or the name does not resolve",
            args.audit
        )));
    }
    let running = start(ServeConfig {
        listen: args.listen,
        store: cairn_store::StoreLocation::from_flags(cairn_store::StoreFlags {
            data_dir: args.data_dir,
            store_cache_mib: args.store_cache_mib,
            postgres: args.postgres,
            postgres_ca: args.postgres_ca,
        })?,
        directory: args.directory,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        audit: args.audit,
        core,
        metrics_listen: args.metrics_listen,
    })
    .await?;
    let io = |e: std::io::Error| ServeError::Io(e.to_string());
    println!("{name} listening on {}", running.addr);
    if let Some(m) = running.metrics_addr {
        println!("{name} metrics on http://{m}/metrics");
    }
    std::io::stdout().flush().map_err(io)?;
    cairn_config::shutdown_signal().await.map_err(io)?;
    tracing::info!("stopping");
    running.stop().await
}
