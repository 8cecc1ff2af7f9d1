//! `cairn`: what a member of a cairn network does by hand.
//!
//! This binary parses arguments, calls the libraries and prints results; it
//! must not hold logic that belongs in a library crate. Commands available
//! now: `cairn dev pki` (create or reuse a development PKI and prove that it
//! works end to end), `cairn keys generate` and `cairn audit
//! checkpoint|prove|verify`.

mod alerts;
mod audit;
mod baseline;
mod bulk;
mod connect;
mod dev;
mod devnet;
mod governance;
mod keys;
mod lifecycle;
mod member;
mod network;
mod profile;
mod records;
mod related;
mod report;
mod show;
mod stix;
mod taxii;
mod timeline;

// jemalloc instead of the system allocator: the record path allocates per
// request on many threads, where glibc malloc cost 18% of the CPU
// (BENCHMARKS.md, "Allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// cairn: share AI-risk information as signed, encrypted records.
#[derive(Parser, Debug)]
#[command(
    name = "cairn",
    version,
    about,
    after_help = "Exit codes: 0 success; 1 a check failed (the command ran, the answer is no); \
2 bad usage or input, or the service refused the request; 3 a service did not answer \
(unreachable, overloaded, timed out): safe to retry."
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Log filter (e.g. `info`, `cairn=debug`).
    #[arg(long, global = true, env = "CAIRN_LOG", default_value = "warn")]
    log: String,
    /// Log format: `text`, or `json` for one JSON object per line.
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", default_value = "text")]
    log_format: cairn_telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Development tools: a local PKI for trying cairn.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Member keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// A member's own credentials: CA, certificates, keys, member card.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Named connection settings (credentials, addresses, keys).
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Found a network: its genesis from the founders' member cards.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// The network's directory: sign and verify its genesis.
    #[command(subcommand)]
    Directory(network::DirectoryCommand),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Incidents: submit (and follow up, correct), acknowledge, timeline,
    /// get, list, watch, retract, erase.
    #[command(subcommand)]
    Incident(records::IncidentCommand),
    /// Evaluation results: publish (and correct), get, list, retract, erase.
    #[command(subcommand)]
    Eval(records::EvalCommand),
    /// Any record: open (fetch, verify, decrypt).
    #[command(subcommand)]
    Record(records::RecordCommand),
    /// Baselines, assessments and the cross-border matrix.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Alerts: be told when an incident that concerns you arrives.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// A TAXII 2.1 gateway for your own tools (MISP, OpenCTI, taxii2-client).
    #[command(subcommand)]
    Taxii(taxii::TaxiiCommand),
    /// Run a whole local network (the main command); --demo runs a scenario.
    Devnet(devnet::DevnetArgs),
    /// Same as `cairn devnet --demo`.
    Demo(devnet::DevnetArgs),
}

/// Exit codes scripts can rely on.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A check failed (the command ran, the answer is "no").
    pub const CHECK_FAILED: u8 = 1;
    /// Bad usage or input (files, arguments), or a request the service
    /// refused.
    pub const USAGE: u8 = 2;
    /// A service did not answer (unreachable, overloaded, timed out): safe
    /// to retry.
    pub const UNAVAILABLE: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cairn_telemetry::init(&cli.log, cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(cmd) => dev::run(cmd, cli.json).await,
            Command::Keys(cmd) => keys::run(cmd, cli.json),
            Command::Member(cmd) => member::run(cmd, cli.json),
            Command::Profile(cmd) => profile::run(cmd, cli.json),
            Command::Network(network::NetworkCommand::Init(a)) => network::init(a, cli.json),
            Command::Network(network::NetworkCommand::Services(a)) => {
                network::services(a, cli.json)
            }
            Command::Directory(cmd) => network::directory(cmd, cli.json).await,
            Command::Audit(cmd) => audit::run(cmd, cli.json).await,
            Command::Incident(cmd) => records::incident(cmd, cli.json).await,
            Command::Eval(cmd) => records::eval(cmd, cli.json).await,
            Command::Record(cmd) => records::record(cmd, cli.json).await,
            Command::Baseline(cmd) => baseline::run(cmd, cli.json).await,
            Command::Alerts(cmd) => alerts::run(cmd, cli.json).await,
            Command::Taxii(cmd) => taxii::run(cmd, cli.json).await,
            Command::Devnet(args) => devnet::run(args, cli.json).await,
            Command::Demo(mut args) => {
                args.demo = true;
                devnet::run(args, cli.json).await
            }
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let report = report::report(&e);
            report.print();
            ExitCode::from(report.code)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every subcommand's arguments are well formed (no flag defined twice
    /// where the connection flags are flattened in).
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
