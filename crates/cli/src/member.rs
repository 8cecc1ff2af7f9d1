//! `cairn member init|csr|issue|renew|card`: a member's own credentials
//! (`cairn-member`), outside any devnet.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use cairn_identity::Role;
use cairn_member::{LeafRequest, MemberCard, MemberDir, NewMember, ca, layout};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::exit;

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Make a member's credentials in a folder of its own: a CA (its key in
    /// ca-offline/, to move offline), a first certificate, signing and
    /// sealing keys, and the member card to send to governance members.
    Init(InitArgs),
    /// Make a key and a certificate signing request where the key is to
    /// stay (a CA held elsewhere issues it with `cairn member issue`).
    Csr(CsrArgs),
    /// Issue a certificate for a CSR from the CA key in a member folder.
    Issue(IssueArgs),
    /// Issue a certificate with a fresh key (or renew one before it
    /// expires) from the CA key in the member folder.
    Renew(RenewArgs),
    /// Make a new signing key and end the current one's window after an
    /// overlap; send the updated card to the governance members
    /// (`cairn directory propose --update-keys <card>`).
    RotateKey(RotateArgs),
    /// Print the member card, or check a card someone sent.
    Card(CardArgs),
}

/// What a certificate is for.
#[derive(Args, Debug, Clone)]
pub struct CertArgs {
    /// The program or person it is for (a path segment: a-z, 0-9, '-').
    #[arg(long, default_value = "cli")]
    cert_name: String,
    /// Lifetime in days.
    #[arg(long, default_value_t = ca::DEFAULT_DAYS)]
    days: i64,
    /// Also usable as a TLS server (then give --dns and --ip).
    #[arg(long)]
    server: bool,
    /// A DNS name for a server certificate; repeatable.
    #[arg(long = "dns")]
    dns: Vec<String>,
    /// An IP address for a server certificate; repeatable.
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
}

impl CertArgs {
    fn request(&self, trust_domain: &str, member: &str) -> LeafRequest {
        LeafRequest {
            trust_domain: trust_domain.to_owned(),
            member: member.to_owned(),
            name: self.cert_name.clone(),
            days: self.days,
            server: self.server,
            dns: self.dns.clone(),
            ips: self.ips.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The member's folder (must not hold a member yet).
    #[arg(long)]
    dir: PathBuf,
    /// Member id (2 to 32 of a-z, 0-9, '-').
    #[arg(long)]
    id: String,
    /// Display name, e.g. "French AI evaluation institute".
    #[arg(long)]
    name: String,
    /// ISO 3166-1 alpha-2 code, or EU.
    #[arg(long)]
    jurisdiction: String,
    /// Roles asked for: submitter, evaluator, auditor, witness, governance.
    #[arg(long, value_delimiter = ',', default_value = "submitter")]
    roles: Vec<String>,
    /// The network's trust domain.
    #[arg(long)]
    trust_domain: String,
    #[command(flatten)]
    cert: CertArgs,
}

#[derive(Args, Debug)]
pub struct CsrArgs {
    /// Where to write <cert-name>.key.pem (0600) and <cert-name>.csr.pem.
    #[arg(long)]
    out: PathBuf,
    /// Member id.
    #[arg(long)]
    id: String,
    /// The network's trust domain.
    #[arg(long)]
    trust_domain: String,
    #[command(flatten)]
    cert: CertArgs,
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The member folder holding the CA (ca.pem and ca-offline/ca.key.pem).
    #[arg(long)]
    dir: PathBuf,
    /// The certificate signing request (PEM).
    #[arg(long)]
    csr: PathBuf,
    /// Where to write the certificate.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    cert: CertArgs,
}

#[derive(Args, Debug)]
pub struct RenewArgs {
    /// The member folder.
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    cert: CertArgs,
}

#[derive(Args, Debug)]
pub struct CardArgs {
    /// The member folder whose card to print.
    #[arg(long, conflicts_with = "check")]
    dir: Option<PathBuf>,
    /// A card file to check instead.
    #[arg(long)]
    check: Option<PathBuf>,
}

pub fn run(cmd: MemberCommand, json_out: bool) -> anyhow::Result<u8> {
    match cmd {
        MemberCommand::Init(a) => init(a, json_out),
        MemberCommand::Csr(a) => csr(a, json_out),
        MemberCommand::Issue(a) => issue(a, json_out),
        MemberCommand::Renew(a) => renew(a, json_out),
        MemberCommand::Card(a) => card(a, json_out),
        MemberCommand::RotateKey(a) => rotate(a, json_out),
    }
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The member folder.
    #[arg(long)]
    dir: PathBuf,
    /// Hours the old key stays valid, for the change to be approved and
    /// every tool to move to the new key.
    #[arg(long, default_value_t = 24 * 7)]
    overlap_hours: u32,
}

fn rotate(a: RotateArgs, json_out: bool) -> anyhow::Result<u8> {
    let dir = MemberDir::new(&a.dir);
    let overlap = time::Duration::hours(i64::from(a.overlap_hours));
    let r = cairn_member::rotate_key(&dir, overlap)?;
    let card = dir.path(layout::CARD_FILE);
    if json_out {
        println!(
            "{}",
            json!({"old_key": r.old_key_id, "old_valid_until": r.old_valid_until,
                "new_key": r.new_key_id, "card": card})
        );
    } else {
        println!(
            "new signing key {}; {} is valid until {}",
            r.new_key_id, r.old_key_id, r.old_valid_until
        );
        println!(
            "  send the updated card to a governance member: {} (cairn directory propose --update-keys …); the tools sign with the new key from now on, which the services accept once the change is in force",
            card.display()
        );
    }
    Ok(exit::OK)
}

fn roles(names: &[String]) -> anyhow::Result<Vec<Role>> {
    names
        .iter()
        .map(|r| {
            toml::Value::String(r.trim().to_owned())
                .try_into::<Role>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--roles {r:?}: use submitter, evaluator, auditor, witness or governance"
                    )
                })
        })
        .collect()
}

fn init(a: InitArgs, json_out: bool) -> anyhow::Result<u8> {
    let dir = MemberDir::new(&a.dir);
    let new = NewMember {
        id: a.id.clone(),
        name: a.name,
        jurisdiction: a.jurisdiction,
        roles: roles(&a.roles)?,
        first: a.cert.request(&a.trust_domain, &a.id),
        trust_domain: a.trust_domain,
    };
    cairn_member::init(&dir, &new)?;
    let (cert, _) = dir.tls(&a.cert.cert_name);
    if json_out {
        println!(
            "{}",
            json!({"member": a.id, "dir": a.dir, "card": dir.path(layout::CARD_FILE),
                "ca_key": dir.ca_key(), "certificate": cert})
        );
    } else {
        println!("member {} made in {}", a.id, a.dir.display());
        println!(
            "  send this card to the network's governance members: {}",
            dir.path(layout::CARD_FILE).display()
        );
        println!(
            "  move this folder to an offline machine: {}",
            dir.path(layout::CA_OFFLINE).display()
        );
        println!("  certificate for {}: {}", a.cert.cert_name, cert.display());
    }
    Ok(exit::OK)
}

fn csr(a: CsrArgs, json_out: bool) -> anyhow::Result<u8> {
    let request = a.cert.request(&a.trust_domain, &a.id);
    let (key, csr) = ca::csr(&request)?;
    layout::private_dir(&a.out)?;
    let key_path = a.out.join(format!("{}.key.pem", a.cert.cert_name));
    let csr_path = a.out.join(format!("{}.csr.pem", a.cert.cert_name));
    layout::write_new(&key_path, key.as_bytes(), true)?;
    layout::write_new(&csr_path, csr.as_bytes(), false)?;
    if json_out {
        println!(
            "{}",
            json!({"key": key_path, "csr": csr_path, "uri": request.uri()})
        );
    } else {
        println!("key: {} (stays here)", key_path.display());
        println!("CSR for {}: {}", request.uri(), csr_path.display());
    }
    Ok(exit::OK)
}

fn issue(a: IssueArgs, json_out: bool) -> anyhow::Result<u8> {
    let dir = MemberDir::new(&a.dir);
    let m = dir.member_file()?;
    let request = a.cert.request(&m.trust_domain, &m.id);
    let csr =
        std::fs::read_to_string(&a.csr).with_context(|| format!("reading {}", a.csr.display()))?;
    let issued = cairn_member::init::ca_of(&dir)?.issue_for_csr(&csr, &request)?;
    layout::write_new(&a.out, issued.cert_pem.as_bytes(), false)?;
    print_issued(&request, &a.out, &issued.cert_pem, json_out)
}

fn renew(a: RenewArgs, json_out: bool) -> anyhow::Result<u8> {
    let dir = MemberDir::new(&a.dir);
    let m = dir.member_file()?;
    let request = a.cert.request(&m.trust_domain, &m.id);
    let issued = cairn_member::renew(&dir, &request)?;
    let (cert, _) = dir.tls(&a.cert.cert_name);
    print_issued(&request, &cert, &issued.cert_pem, json_out)
}

fn print_issued(
    request: &LeafRequest,
    path: &std::path::Path,
    pem: &str,
    json_out: bool,
) -> anyhow::Result<u8> {
    let until = ca::not_after(pem)?;
    if json_out {
        println!(
            "{}",
            json!({"certificate": path, "uri": request.uri(), "not_after": until.to_string()})
        );
    } else {
        println!(
            "certificate for {}: {} (valid until {until})",
            request.uri(),
            path.display()
        );
    }
    Ok(exit::OK)
}

fn card(a: CardArgs, json_out: bool) -> anyhow::Result<u8> {
    let (path, label) = match (&a.dir, &a.check) {
        (_, Some(file)) => (file.clone(), file.display().to_string()),
        (Some(d), None) => (
            MemberDir::new(d).path(layout::CARD_FILE),
            d.display().to_string(),
        ),
        (None, None) => anyhow::bail!("give --dir <member folder> or --check <card file>"),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let card = MemberCard::parse(&text, &label)?;
    if json_out {
        println!("{}", serde_json::to_value(&card)?);
    } else if a.check.is_some() {
        println!(
            "ok  member card of {} for {}",
            card.member.id, card.trust_domain
        );
    } else {
        print!("{}", card.to_toml());
    }
    Ok(exit::OK)
}
