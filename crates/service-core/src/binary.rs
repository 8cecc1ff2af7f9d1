//! What a record-service binary does at its edge, written once for
//! `cairn-intake` and `cairn-evals`: parse its flags (with environment
//! overrides), set up logging, start, print the bound address on stdout,
//! run until Ctrl-C, stop gracefully. Exit code 2 with a message naming
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
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Data directory (sled store).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The network directory file.
    #[arg(long, env = "CAIRN_DIRECTORY")]
    pub directory: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    pub tls_cert: PathBuf,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: PathBuf,
    /// The audit service's address.
    #[arg(long)]
    pub audit: SocketAddr,
    /// Largest record body in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: usize,
    /// How long a submission waits for its audit receipt (ms) before it is
    /// answered with a pending receipt.
    #[arg(long, default_value_t = 5000)]
    pub receipt_wait_ms: u64,
    /// Log filter.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(long, env = "CAIRN_LOG_FORMAT", default_value = "text")]
    pub log_format: cairn_telemetry::LogFormat,
}

/// Runs the record service `name` (its `about` shown by `--help`) with
/// `start` until Ctrl-C.
pub fn main<S, F>(name: &'static str, about: &'static str, start: S) -> ExitCode
where
    S: FnOnce(ServeConfig) -> F,
    F: Future<Output = Result<Running, ServeError>>,
{
    let matches = ServiceArgs::command()
        .name(name)
        .bin_name(name)
        .about(about)
        .get_matches();
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
    let running = start(ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        directory: args.directory,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        audit: args.audit,
        core,
    })
    .await?;
    let io = |e: std::io::Error| ServeError::Io(e.to_string());
    println!("{name} listening on {}", running.addr);
    std::io::stdout().flush().map_err(io)?;
    tokio::signal::ctrl_c().await.map_err(io)?;
    tracing::info!("stopping");
    running.stop().await
}
