//! `cairn-evals`: run the service.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_service_core::RecordCoreConfig;
use cairn_service_core::serve::ServeConfig;
use clap::Parser;

/// cairn-evals: a cairn record service.
#[derive(Parser, Debug)]
#[command(name = "cairn-evals", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Data directory (sled store).
    #[arg(long)]
    data_dir: PathBuf,
    /// The network directory file.
    #[arg(long, env = "CAIRN_DIRECTORY")]
    directory: PathBuf,
    /// TLS certificate chain (PEM).
    #[arg(long)]
    tls_cert: PathBuf,
    /// TLS private key (PEM).
    #[arg(long)]
    tls_key: PathBuf,
    /// The audit service's address.
    #[arg(long)]
    audit: SocketAddr,
    /// Largest record body in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: usize,
    /// How long a submission waits for its audit receipt (ms) before it is
    /// answered with a pending receipt.
    #[arg(long, default_value_t = 5000)]
    receipt_wait_ms: u64,
    /// Log filter.
    #[arg(long, env = "CAIRN_LOG", default_value = "info")]
    log: String,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(long, env = "CAIRN_LOG_FORMAT", default_value = "text")]
    log_format: cairn_telemetry::LogFormat,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = cairn_telemetry::init(&args.log, args.log_format) {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
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
    let core = RecordCoreConfig {
        max_body: args.max_body,
        receipt_wait: Duration::from_millis(args.receipt_wait_ms),
        ..RecordCoreConfig::default()
    };
    let running = cairn_evals::start(ServeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        directory: args.directory,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        audit: args.audit,
        core,
    })
    .await?;
    println!("cairn-evals listening on {}", running.addr);
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("stopping");
    running.stop().await?;
    Ok(())
}
