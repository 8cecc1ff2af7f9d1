//! `cairn directory propose|approve|show|history`: changing a running
//! network's directory through the log, and reading its history — always
//! replayed from the genesis here (`cairn_client::Client::directory_history`),
//! never taken on the audit service's word.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use cairn_client::{ChangeSubmitted, DirectoryHistory};
use cairn_identity::Role;
use cairn_identity::directory::DirectoryDocument;
use cairn_member::MemberCard;
use cairn_record::governance::Version;
use clap::Args;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::connect::ConnectArgs;
use crate::exit;

/// What `cairn directory propose` changes in the directory in force.
#[derive(Args, Debug)]
pub struct ProposeArgs {
    /// Admit the member of this card (from `cairn member init`); repeatable.
    #[arg(long = "add-member")]
    add: Vec<PathBuf>,
    /// Remove this member; repeatable.
    #[arg(long = "remove-member")]
    remove: Vec<String>,
    /// Set a member's roles: <id>=<role>[,<role>…]; repeatable.
    #[arg(long = "set-roles")]
    roles: Vec<String>,
    /// Take a member's keys from its updated card (`cairn member
    /// rotate-key`): new keys added, ended windows ended, the sealing key
    /// and CA certificate replaced; repeatable.
    #[arg(long = "update-keys")]
    update_keys: Vec<PathBuf>,
    /// Revoke a signing key for compromise: <member>/<key id>; repeatable.
    /// Nothing it signs is accepted from the change's place in the log on.
    #[arg(long = "revoke-key", requires = "compromised_since")]
    revoke: Vec<String>,
    /// When the compromise began (RFC 3339): records it signed claiming a
    /// later time are flagged by `cairn audit verify`.
    #[arg(long)]
    compromised_since: Option<String>,
    /// Revoke a member's TLS certificate: <member>=<certificate PEM file or
    /// serial in hex>; repeatable. Its handshakes are refused and its open
    /// connections closed as soon as the change is in force.
    #[arg(long = "revoke-certificate")]
    revoke_certificate: Vec<String>,
    /// Add or replace a service identity: <name>=<CA PEM file>[:append]
    /// (`:append` lets it append to the audit log); repeatable.
    #[arg(long = "set-service")]
    set_service: Vec<String>,
    /// Remove a service identity; repeatable.
    #[arg(long = "remove-service")]
    remove_service: Vec<String>,
    /// The quorum rule after the change (default: the one in force).
    #[arg(long)]
    quorum: Option<u32>,
    /// Or propose this whole directory document (bare TOML).
    #[arg(long, conflicts_with_all = [
        "add", "remove", "roles", "update_keys", "revoke", "revoke_certificate", "set_service",
        "remove_service"
    ])]
    document: Option<PathBuf>,
    /// What changes, for people (default: said from the edits).
    #[arg(long)]
    summary: Option<String>,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn edit(current: &str, a: &ProposeArgs, said: &mut Vec<String>) -> anyhow::Result<String> {
    if let Some(path) = &a.document {
        said.push(format!("replaced the directory with {}", path.display()));
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()));
    }
    let mut doc: DirectoryDocument =
        toml::from_str(current).context("the directory in force does not parse")?;
    for path in &a.add {
        let label = path.display().to_string();
        let card = card_of(path, &doc)?;
        if doc.members.iter().any(|m| m.id == card.member.id) {
            bail!("{label}: {} is already a member", card.member.id);
        }
        said.push(format!("added member {}", card.member.id));
        doc.members.push(card.member);
    }
    for id in &a.remove {
        let before = doc.members.len();
        doc.members.retain(|m| &m.id != id);
        if doc.members.len() == before {
            bail!("--remove-member {id}: no such member in the directory in force");
        }
        said.push(format!("removed member {id}"));
    }
    for spec in &a.roles {
        let (id, list) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("--set-roles {spec:?}: give <id>=<role>[,<role>…]"))?;
        let roles = list
            .split(',')
            .map(|r| {
                serde_json::from_value::<Role>(json!(r.trim()))
                    .map_err(|_| anyhow!("--set-roles {spec:?}: {r:?} is not a role"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let m = doc
            .members
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or_else(|| anyhow!("--set-roles {spec:?}: no member {id}"))?;
        m.roles = roles;
        said.push(format!("set the roles of {id} to {list}"));
    }
    for path in &a.update_keys {
        update_keys(&mut doc, path, said)?;
    }
    for spec in &a.revoke {
        let since = a.compromised_since.as_deref().unwrap_or_default();
        revoke(&mut doc, spec, since)?;
        said.push(format!("revoked key {spec} (compromised since {since})"));
    }
    for spec in &a.revoke_certificate {
        let serial = revoke_certificate(&mut doc, spec)?;
        said.push(format!("revoked certificate {serial}"));
    }
    edit_services(&mut doc, a, said)?;
    Ok(doc.to_toml())
}

/// `<member>=<certificate PEM file or serial>`: adds the serial to the
/// member's revoked certificates; the serial, as `member/serial`.
fn revoke_certificate(doc: &mut DirectoryDocument, spec: &str) -> anyhow::Result<String> {
    let (member, what) = spec.split_once('=').ok_or_else(|| {
        anyhow!("--revoke-certificate {spec:?}: give <member>=<certificate PEM file or serial>")
    })?;
    let serial = match std::fs::read_to_string(what) {
        Ok(pem) => cairn_member::ca::serial(&pem)
            .with_context(|| format!("--revoke-certificate {spec:?}: {what}"))?,
        Err(_) if what.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') && !what.is_empty() => {
            what.to_owned()
        }
        Err(e) => bail!(
            "--revoke-certificate {spec:?}: {what} is neither a readable file ({e}) nor a serial in hex"
        ),
    };
    let m = doc
        .members
        .iter_mut()
        .find(|m| m.id == member)
        .ok_or_else(|| anyhow!("--revoke-certificate {spec:?}: no member {member}"))?;
    m.revoked_certificates.push(serial.clone());
    Ok(format!("{member}/{serial}"))
}

fn edit_services(
    doc: &mut DirectoryDocument,
    a: &ProposeArgs,
    said: &mut Vec<String>,
) -> anyhow::Result<()> {
    for spec in &a.set_service {
        let service = crate::network::service(spec)?;
        match doc.services.iter_mut().find(|s| s.name == service.name) {
            Some(s) => {
                said.push(format!("replaced service {}", service.name));
                *s = service;
            }
            None => {
                said.push(format!("added service {}", service.name));
                doc.services.push(service);
            }
        }
    }
    for name in &a.remove_service {
        let before = doc.services.len();
        doc.services.retain(|s| &s.name != name);
        if doc.services.len() == before {
            bail!("--remove-service {name}: no such service in the directory in force");
        }
        said.push(format!("removed service {name}"));
    }
    Ok(())
}

fn card_of(path: &std::path::Path, doc: &DirectoryDocument) -> anyhow::Result<MemberCard> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {label}"))?;
    let card = MemberCard::parse(&text, &label)?;
    if card.trust_domain != doc.trust_domain {
        bail!(
            "{label} is for network {}, not {}",
            card.trust_domain,
            doc.trust_domain
        );
    }
    Ok(card)
}

fn update_keys(
    doc: &mut DirectoryDocument,
    path: &std::path::Path,
    said: &mut Vec<String>,
) -> anyhow::Result<()> {
    let card = card_of(path, doc)?;
    let id = card.member.id.clone();
    let m = doc.members.iter_mut().find(|m| m.id == id).ok_or_else(|| {
        anyhow!(
            "{}: {id} is not a member (admit it with --add-member)",
            path.display()
        )
    })?;
    for key in card.member.signing_keys {
        match m.signing_keys.iter_mut().find(|k| k.id == key.id) {
            Some(k) if k.valid_until != key.valid_until => {
                said.push(format!(
                    "{id}'s key {} valid until {}",
                    k.id,
                    key.valid_until.as_deref().unwrap_or("open")
                ));
                k.valid_until = key.valid_until;
            }
            Some(_) => {}
            None => {
                said.push(format!("added {id}'s signing key {}", key.id));
                m.signing_keys.push(key);
            }
        }
    }
    if m.sealing_key.id != card.member.sealing_key.id {
        said.push(format!(
            "{id}'s sealing key is now {}",
            card.member.sealing_key.id
        ));
    }
    m.sealing_key = card.member.sealing_key;
    m.ca_certificate = card.member.ca_certificate;
    Ok(())
}

fn revoke(doc: &mut DirectoryDocument, spec: &str, since: &str) -> anyhow::Result<()> {
    let (member, key_id) = spec
        .split_once('/')
        .ok_or_else(|| anyhow!("--revoke-key {spec:?}: give <member>/<key id>"))?;
    let key = doc
        .members
        .iter_mut()
        .find(|m| m.id == member)
        .ok_or_else(|| anyhow!("--revoke-key {spec:?}: no member {member}"))?
        .signing_keys
        .iter_mut()
        .find(|k| k.id == key_id)
        .ok_or_else(|| anyhow!("--revoke-key {spec:?}: {member} has no signing key {key_id:?}"))?;
    key.compromised_since = Some(since.to_owned());
    Ok(())
}

pub async fn propose(a: ProposeArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = a.connect.client().await?;
    let history = client.directory_history().await?;
    let now = history.governed.current();
    let mut said = Vec::new();
    let document = edit(&now.document, &a, &mut said)?;
    let quorum = match a.quorum {
        Some(q) => {
            said.push(format!("quorum {q}"));
            q
        }
        None => now.directory.quorum().unwrap_or(1),
    };
    let summary = a.summary.clone().unwrap_or_else(|| said.join("; "));
    let out = client
        .propose_directory_change(&history.governed, &document, quorum, &summary)
        .await?;
    print_submitted(&out, json_out);
    Ok(exit::OK)
}

pub async fn approve(proposal: String, connect: ConnectArgs, json_out: bool) -> anyhow::Result<u8> {
    let client = connect.client().await?;
    let history = client.directory_history().await?;
    let out = client
        .approve_directory_change(&history.governed, &proposal)
        .await?;
    print_submitted(&out, json_out);
    Ok(exit::OK)
}

fn print_submitted(out: &ChangeSubmitted, json_out: bool) {
    if json_out {
        println!(
            "{}",
            json!({
                "record_id": out.record_id,
                "proposal": out.proposal,
                "effective": out.effective,
                "approvals": out.approvals,
                "quorum": out.quorum,
                "version": out.version,
                "receipt_verified_in_tree_of": out.verified_in_tree_of,
            })
        );
    } else if out.effective {
        println!(
            "proposal {} is in force: directory version {} ({} of {} approvals)",
            out.proposal, out.version, out.approvals, out.quorum
        );
    } else {
        println!(
            "proposal {}: {} of {} approvals; other governance members approve it with: cairn directory approve {}",
            out.proposal, out.approvals, out.quorum, out.proposal
        );
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn version_json(v: &Version) -> serde_json::Value {
    json!({
        "version": v.version,
        "digest": hex(v.directory.digest()),
        "quorum": v.directory.quorum(),
        "effective_at_leaf": v.effective_at,
        "proposal": v.proposal.map(|p| p.hyphenated().to_string()),
        "members": v.directory.members().map(|m| json!({
            "id": m.id.to_string(),
            "name": m.name,
            "jurisdiction": m.jurisdiction,
            "roles": m.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect::<Vec<_>>(),
            "signing_keys": m.signing_keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "services": v.directory.services().map(|s| s.name.clone()).collect::<Vec<_>>(),
    })
}

/// Where in the history `cairn directory show --at` looks.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// The directory in force in a tree of this many leaves.
    TreeSize(u64),
    /// The directory in force at this time.
    Time(OffsetDateTime),
}

/// Parses `--at`: a tree size (digits) or an RFC 3339 time.
pub fn parse_at(text: &str) -> Result<At, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(At::TreeSize)
            .map_err(|e| format!("tree size {text:?}: {e}"));
    }
    OffsetDateTime::parse(text, &Rfc3339).map(At::Time).map_err(|e| {
        format!("{text:?} is neither a tree size nor an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): {e}")
    })
}

pub async fn show(at: Option<At>, connect: ConnectArgs, json_out: bool) -> anyhow::Result<u8> {
    let history = connect.client().await?.directory_history().await?;
    let g = &history.governed;
    let v = match at {
        Some(At::TreeSize(size)) => g.at_tree_size(size),
        Some(At::Time(when)) => history.at_time(when)?,
        None => g.current(),
    };
    if json_out {
        let mut out = version_json(v);
        out["document"] = json!(v.document.as_ref());
        println!("{out}");
        return Ok(exit::OK);
    }
    let when = v.effective_at.map_or("the genesis".to_owned(), |i| {
        format!("in force from leaf {i}")
    });
    println!(
        "directory version {} ({when}), quorum {} of {} governance members, sha256 {}",
        v.version,
        v.directory.quorum().unwrap_or(0),
        v.directory.governance_count(),
        hex(v.directory.digest())
    );
    for m in v.directory.members() {
        let roles: Vec<String> = m
            .roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        let keys: Vec<&str> = m.signing_keys.iter().map(|k| k.id.as_str()).collect();
        println!(
            "  {:<16} {}  {:<40} keys {}",
            m.id.to_string(),
            m.jurisdiction,
            roles.join(","),
            keys.join(",")
        );
    }
    for s in v.directory.services() {
        println!("  service {}", s.name);
    }
    print_pending(&history);
    Ok(exit::OK)
}

fn print_pending(history: &DirectoryHistory) {
    for p in history.governed.pending() {
        println!(
            "  pending proposal {} by {} ({} of {} approvals): {}",
            p.id.hyphenated(),
            p.proposer,
            p.approvers.len(),
            history.governed.current().directory.quorum().unwrap_or(0),
            p.summary
        );
    }
}

pub async fn history(connect: ConnectArgs, json_out: bool) -> anyhow::Result<u8> {
    let history = connect.client().await?.directory_history().await?;
    let g = &history.governed;
    if json_out {
        let proposals: Vec<_> = g
            .proposals()
            .map(|p| {
                json!({
                    "id": p.id.hyphenated().to_string(),
                    "proposer": p.proposer,
                    "approvers": p.approvers,
                    "summary": p.summary,
                    "proposed_at_leaf": p.leaf_index,
                    "against_version": p.base_version,
                    "made_version": p.made,
                })
            })
            .collect();
        let versions: Vec<_> = g.versions().iter().map(version_json).collect();
        println!("{}", json!({"versions": versions, "proposals": proposals}));
        return Ok(exit::OK);
    }
    println!(
        "version 0: the genesis (quorum {})",
        g.versions()[0].directory.quorum().unwrap_or(0)
    );
    for v in &g.versions()[1..] {
        let p = g.proposals().find(|p| Some(p.id) == v.proposal);
        if let Some(p) = p {
            println!(
                "version {} at leaf {}: proposed by {}, signed by {}: {}",
                v.version,
                v.effective_at.unwrap_or_default(),
                p.proposer,
                p.approvers.join(", "),
                p.summary
            );
        }
    }
    for p in g.proposals().filter(|p| p.made.is_none()) {
        let state = if p.base_version == g.current().version {
            "pending"
        } else {
            "stale (another change took effect first)"
        };
        println!(
            "proposal {} by {} against version {}: {state}; signed by {}: {}",
            p.id.hyphenated(),
            p.proposer,
            p.base_version,
            p.approvers.join(", "),
            p.summary
        );
    }
    Ok(exit::OK)
}
