//! `cairn network init` and `cairn directory sign|verify`: founding a
//! network from its founders' member cards — a genesis (the first
//! directory and the quorum rule for later changes) that is in force once
//! every founder has signed it (`cairn_identity::genesis`). Changes after
//! the genesis go through the log: [`crate::governance`].

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use cairn_identity::directory::{DirectoryDocument, ServiceDocument};
use cairn_identity::genesis::Genesis;
use cairn_identity::{ServiceRight, SigningKey};
use cairn_member::{MemberCard, MemberDir, layout};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::connect::ConnectArgs;
use crate::exit;

#[derive(Args, Debug)]
pub struct NetworkInit {
    /// The network's trust domain.
    #[arg(long)]
    trust_domain: String,
    /// A founder's (or another first member's) card; repeatable.
    #[arg(long = "card", required = true)]
    cards: Vec<PathBuf>,
    /// How many governance members must sign a later change.
    #[arg(long)]
    quorum: u32,
    /// A service: name=<CA certificate PEM>[:append]; repeatable (intake,
    /// evals and audit; `append` lets it append to the audit log).
    #[arg(long = "service")]
    services: Vec<String>,
    /// Where to write the genesis (not overwritten).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
pub struct NetworkServices {
    /// The folder to make (the services CA, one folder per service).
    #[arg(long)]
    dir: PathBuf,
    /// The network's trust domain.
    #[arg(long)]
    trust_domain: String,
    /// Who runs the services (the CA's organisation name).
    #[arg(long)]
    operator: String,
    /// A DNS name or IP address the services are reached by; repeatable.
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// The certificates' lifetime in days.
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// The audit log's origin (default `<trust domain>/audit`).
    #[arg(long)]
    origin: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Build a network's genesis from member cards and a quorum rule; each
    /// founder then signs it (`cairn directory sign`).
    Init(NetworkInit),
    /// Make the identities of the network's services (for the member that
    /// runs them): a services CA, a certificate per service, the log key.
    Services(NetworkServices),
}

/// `cairn network services`.
pub fn services(a: NetworkServices, json_out: bool) -> anyhow::Result<u8> {
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    for host in a.hosts {
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(host),
        }
    }
    let made = cairn_member::init_services(
        &a.dir,
        &cairn_member::NewServices {
            operator: a.operator,
            trust_domain: a.trust_domain.clone(),
            dns,
            ips,
            days: a.days,
        },
    )?;
    let origin = a
        .origin
        .unwrap_or_else(|| format!("{}/audit", a.trust_domain));
    let der = cairn_identity::keys::load_pkcs8_der(&made.log_key)?;
    let log_key =
        cairn_tlog::note::NoteSigner::from_pkcs8(&origin, cairn_tlog::note::ALG_ED25519, &der)
            .with_context(|| format!("the log key {}", made.log_key.display()))?
            .verifier()
            .to_string();
    let ca = made.ca_cert.display().to_string();
    let flags = [
        format!("--service intake={ca}:append"),
        format!("--service evals={ca}:append"),
        format!("--service audit={ca}"),
    ];
    if json_out {
        let folders: serde_json::Map<String, serde_json::Value> = made
            .folders
            .iter()
            .map(|(s, f)| (s.clone(), json!(f)))
            .collect();
        println!(
            "{}",
            json!({"ca": made.ca_cert, "folders": folders, "log_key_file": made.log_key,
                   "origin": origin, "log_key": log_key, "network_init": flags})
        );
    } else {
        println!("services CA {ca} (its key in ca-offline/: move it offline)");
        for (s, f) in &made.folders {
            println!("  {s}: {} (give this host only this folder)", f.display());
        }
        println!("the log's key, for members' profiles (--log-key): {log_key}");
        println!("for the genesis: cairn network init … {}", flags.join(" "));
    }
    Ok(exit::OK)
}

#[derive(Subcommand, Debug)]
pub enum DirectoryCommand {
    /// Sign a genesis as one of its founders.
    Sign {
        /// The genesis file (rewritten with the signature).
        genesis: PathBuf,
        /// Your member folder (its signing key signs).
        #[arg(long)]
        member_dir: Option<PathBuf>,
        /// Or: your member id…
        #[arg(long, requires_all = ["signing_key", "signing_key_id"])]
        member: Option<String>,
        /// …your signing key (PKCS#8 PEM)…
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// …and its id in the directory.
        #[arg(long)]
        signing_key_id: Option<String>,
    },
    /// Check a genesis: which founders signed, who is missing.
    Verify {
        /// The genesis file.
        genesis: PathBuf,
    },
    /// Propose a change of the directory in force (as a governance member);
    /// it takes effect once the quorum has signed it.
    Propose(Box<crate::governance::ProposeArgs>),
    /// Approve a pending proposal (as another governance member).
    Approve {
        /// The proposal's record id.
        proposal: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Print the directory in force (or as of a tree size), replayed from
    /// the genesis through the log.
    Show {
        /// The directory in force in the log's tree of this size, or at
        /// this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, value_parser = crate::governance::parse_at)]
        at: Option<crate::governance::At>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Print every version of the directory and every proposal.
    History {
        #[command(flatten)]
        connect: ConnectArgs,
    },
}

pub(crate) fn service(spec: &str) -> anyhow::Result<ServiceDocument> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--service {spec:?}: give name=<CA PEM file>[:append]"))?;
    let (file, rights) = match rest.rsplit_once(':') {
        Some((f, "append")) => (f, vec![ServiceRight::Append]),
        _ => (rest, Vec::new()),
    };
    let pem = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    Ok(ServiceDocument {
        name: name.to_owned(),
        ca_certificate: pem,
        rights,
    })
}

pub fn init(a: NetworkInit, json_out: bool) -> anyhow::Result<u8> {
    let mut members = Vec::new();
    for path in &a.cards {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {label}"))?;
        let card = MemberCard::parse(&text, &label)?;
        if card.trust_domain != a.trust_domain {
            bail!(
                "{label} is for network {}, not {}",
                card.trust_domain,
                a.trust_domain
            );
        }
        members.push(card.member);
    }
    let doc = DirectoryDocument {
        version: 1,
        trust_domain: a.trust_domain.clone(),
        members,
        services: a
            .services
            .iter()
            .map(|s| service(s))
            .collect::<anyhow::Result<_>>()?,
    };
    let out = a.out.display().to_string();
    let genesis = Genesis::new(doc.to_toml(), a.quorum, &out)?;
    let missing = genesis.missing(&out)?;
    layout::write_new(&a.out, genesis.to_toml().as_bytes(), false)?;
    if json_out {
        println!(
            "{}",
            json!({"genesis": a.out, "quorum": a.quorum, "founders": missing})
        );
    } else {
        println!("genesis of {} written to {out}", a.trust_domain);
        println!(
            "  every founder signs it: {} (cairn directory sign {out} --member-dir …)",
            missing.join(", ")
        );
    }
    Ok(exit::OK)
}

fn signer(
    member_dir: Option<PathBuf>,
    member: Option<String>,
    key: Option<PathBuf>,
    key_id: Option<String>,
) -> anyhow::Result<(String, SigningKey)> {
    match (member_dir, member, key, key_id) {
        (Some(d), _, _, _) => {
            let dir = MemberDir::new(d);
            let m = dir.member_file()?;
            let key = SigningKey::load(
                m.signing_key_id.clone(),
                &dir.signing_key(&m.signing_key_id),
            )?;
            Ok((m.id, key))
        }
        (None, Some(m), Some(k), Some(id)) => Ok((m, SigningKey::load(id, &k)?)),
        _ => bail!(
            "say who signs: --member-dir, or --member with --signing-key and --signing-key-id"
        ),
    }
}

pub async fn directory(cmd: DirectoryCommand, json_out: bool) -> anyhow::Result<u8> {
    use crate::governance as gov;
    match cmd {
        DirectoryCommand::Propose(a) => gov::propose(*a, json_out).await,
        DirectoryCommand::Approve { proposal, connect } => {
            gov::approve(proposal, connect, json_out).await
        }
        DirectoryCommand::Show { at, connect } => gov::show(at, connect, json_out).await,
        DirectoryCommand::History { connect } => gov::history(connect, json_out).await,
        DirectoryCommand::Sign {
            genesis,
            member_dir,
            member,
            signing_key,
            signing_key_id,
        } => {
            let label = genesis.display().to_string();
            let text =
                std::fs::read_to_string(&genesis).with_context(|| format!("reading {label}"))?;
            let mut g = Genesis::parse(&text, &label)?;
            let (who, key) = signer(member_dir, member, signing_key, signing_key_id)?;
            g.sign(&who, &key, &label)?;
            layout::replace(&genesis, g.to_toml().as_bytes(), false)?;
            let missing = g.missing(&label)?;
            if json_out {
                println!("{}", json!({"signed_by": who, "missing": missing}));
            } else if missing.is_empty() {
                println!("signed by {who}; every founder has signed: the genesis is in force");
            } else {
                println!("signed by {who}; still to sign: {}", missing.join(", "));
            }
            Ok(exit::OK)
        }
        DirectoryCommand::Verify { genesis } => {
            let label = genesis.display().to_string();
            let text =
                std::fs::read_to_string(&genesis).with_context(|| format!("reading {label}"))?;
            let g = Genesis::parse(&text, &label)?;
            let missing = g.missing(&label)?;
            let signed: Vec<&str> = g.signatures.iter().map(|s| s.member.as_str()).collect();
            if json_out {
                println!(
                    "{}",
                    json!({"quorum": g.quorum, "signed_by": signed, "missing": missing})
                );
            } else {
                println!(
                    "signed by: {} (quorum for changes: {})",
                    signed.join(", "),
                    g.quorum
                );
            }
            if missing.is_empty() {
                if !json_out {
                    println!("ok  every founder has signed: the genesis is in force");
                }
                Ok(exit::OK)
            } else {
                eprintln!("not in force: {} must still sign", missing.join(", "));
                Ok(exit::CHECK_FAILED)
            }
        }
    }
}
