//! `cairn taxii serve`: the member-side TAXII 2.1 gateway (`cairn-taxii`)
//! on the member's own machine, with the member's credentials.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cairn_taxii::{Gateway, ServerIdentity, Store, Users};
use clap::{Args, Subcommand};

use crate::connect::ConnectArgs;

#[derive(Subcommand, Debug)]
pub enum TaxiiCommand {
    /// Serve the records you may open as STIX 2.1 over TAXII 2.1 (HTTPS,
    /// basic authentication) to your local tools, and share the incidents
    /// they add.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the gateway keeps its state (objects, cursors, users, TLS);
    /// default .cairn/taxii-<member>.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Address to listen on (loopback by default; port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// Users file (`name:password[:highest label]` per line, mode 0600);
    /// default <state>/users, created with one user if absent.
    #[arg(long)]
    users: Option<PathBuf>,
    /// HTTPS certificate chain (PEM) instead of the gateway's local CA.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub async fn run(cmd: TaxiiCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        TaxiiCommand::Serve(args) => serve(args, json_out).await,
    }
}

async fn serve(args: ServeArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = args.connect.client().await?;
    let member = client.member().to_owned();
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!(".cairn/taxii-{member}")));
    let store = Store::open(&state)?;
    let users_path = args.users.clone().unwrap_or_else(|| state.join("users"));
    let (users, password) = Users::load_or_create(&users_path)?;
    let identity = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => ServerIdentity::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => ServerIdentity::Local,
    };
    let (tls, ca) = cairn_taxii::tls::server_config(&state, &identity, args.listen.ip())?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let gw = Gateway::new(client, store, users)?;
    let url = format!("https://{addr}/taxii2/");
    if json_out {
        let ready = serde_json::json!({
            "member": member,
            "discovery": url,
            "ca": ca,
            "users": users_path,
            "user": password.as_ref().map(|_| "taxii"),
            "password": password,
        });
        println!("{ready}");
    } else {
        println!("TAXII 2.1 gateway of {member}: {url}");
        if let Some(ca) = &ca {
            println!("  trust this CA: {}", ca.display());
        }
        match &password {
            Some(p) => println!(
                "  user taxii, password {p} (shown once; kept in {})",
                users_path.display()
            ),
            None => println!("  users: {}", users_path.display()),
        }
    }
    tokio::select! {
        () = gw.clone().follow() => {}
        () = gw.serve(listener, tls) => {}
        r = tokio::signal::ctrl_c() => { r?; }
    }
    Ok(crate::exit::OK)
}
