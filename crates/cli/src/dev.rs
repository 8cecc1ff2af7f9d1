//! `cairn dev`: a development PKI for trying cairn on one machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail, ensure};
use cairn_devpki::{self as devpki, DevPki, DevPkiSpec, MemberFiles};
use cairn_identity::keys::{SealingKey, SigningKey};
use cairn_identity::{Directory, DirectoryHandle, PeerIdentity};
use cairn_mtls::{self as tls, TlsIdentity};
use cairn_record::pb::{RecordKind, SharingLabel};
use cairn_record::{Recipient, RecordDraft, RecordError};
use clap::Subcommand;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Create a development PKI (or reuse the one in --dir), then prove it
    /// works: load every file back, run a real mutual-TLS 1.3 handshake on
    /// loopback for every member against every service, and seal, sign,
    /// verify and open a record.
    Pki {
        /// Where the PKI lives.
        #[arg(long, default_value = ".cairn/pki")]
        dir: PathBuf,
        /// Throw away an existing PKI in --dir and create a new one.
        #[arg(long)]
        regenerate: bool,
    },
}

struct Report {
    json: bool,
    steps: Vec<serde_json::Value>,
}

impl Report {
    fn step(&mut self, name: &str, detail: String) {
        if self.json {
            self.steps
                .push(serde_json::json!({"step": name, "ok": true, "detail": detail}));
        } else {
            println!("  ok  {name}: {detail}");
        }
    }
}

pub async fn run(cmd: DevCommand, json: bool) -> anyhow::Result<u8> {
    match cmd {
        DevCommand::Pki { dir, regenerate } => pki(&dir, regenerate, json).await,
    }
}

async fn pki(dir: &Path, regenerate: bool, json: bool) -> anyhow::Result<u8> {
    let mut report = Report {
        json,
        steps: Vec::new(),
    };
    let directory = ensure_pki(dir, regenerate, &mut report)?;
    let members = member_keys(dir, &directory)?;
    report.step(
        "keys",
        format!(
            "signing, sealing and TLS keys of {} members match the directory",
            members.len()
        ),
    );
    let handshakes = handshakes(dir, &directory, &members).await?;
    report.step("mtls", format!("{handshakes} TLS 1.3 handshakes with client certificates on loopback, each identity checked against its own CA"));
    report.step("record", sealed_record(&directory, &members)?);

    if json {
        println!(
            "{}",
            serde_json::json!({"ok": true, "dir": dir, "steps": report.steps})
        );
    } else {
        println!(
            "\nthe development PKI in {} works. Member files are in {}/members/<id>/.",
            dir.display(),
            dir.display()
        );
    }
    Ok(crate::exit::OK)
}

/// Creates the PKI in `dir` (anew with `regenerate`) unless one is there,
/// and loads its directory.
fn ensure_pki(dir: &Path, regenerate: bool, report: &mut Report) -> anyhow::Result<Directory> {
    let directory_path = dir.join(devpki::layout::DIRECTORY);
    if regenerate && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    if directory_path.exists() {
        report.step("pki", format!("reusing {}", dir.display()));
    } else {
        let pki = DevPki::generate(&DevPkiSpec::example())?;
        pki.write_to(dir)?;
        report.step(
            "pki",
            format!(
                "created {} ({} members, {} services)",
                dir.display(),
                pki.members.len(),
                pki.services.len()
            ),
        );
    }
    let directory = Directory::load(&directory_path)?;
    report.step(
        "directory",
        format!(
            "{} parses: trust domain {}, {} members, {} services",
            directory_path.display(),
            directory.trust_domain(),
            directory.members().count(),
            directory.services().count()
        ),
    );
    Ok(directory)
}

/// One member's files, loaded back.
struct MemberKeys {
    id: String,
    tls: TlsIdentity,
    signing: SigningKey,
    sealing: SealingKey,
}

/// Every member's files, each checked against its directory entry.
fn member_keys(dir: &Path, directory: &Directory) -> anyhow::Result<Vec<MemberKeys>> {
    let mut members = Vec::new();
    for m in directory.members() {
        let files = MemberFiles::new(dir, m.id.as_str());
        let signing = files.signing_key()?;
        let sealing = files.sealing_key()?;
        let listed = m
            .signing_keys
            .iter()
            .find(|k| k.id == signing.key_id())
            .ok_or_else(|| {
                anyhow!(
                    "{}: signing key {} is not in the directory",
                    m.id,
                    signing.key_id()
                )
            })?;
        ensure!(
            listed.key == signing.verifying_key(),
            "{}: signing key file does not match the directory",
            m.id
        );
        ensure!(
            m.sealing_key.key == sealing.public_key() && m.sealing_key.id == sealing.key_id(),
            "{}: sealing key file does not match the directory",
            m.id
        );
        members.push(MemberKeys {
            id: m.id.to_string(),
            tls: files.tls_identity()?,
            signing,
            sealing,
        });
    }
    Ok(members)
}

/// A real handshake on loopback of every member with every service, each
/// seeing the member it should; returns how many.
async fn handshakes(
    dir: &Path,
    directory: &Directory,
    members: &[MemberKeys],
) -> anyhow::Result<usize> {
    let handle = DirectoryHandle::new(directory.clone());
    let mut handshakes = 0;
    for service in directory.services() {
        let server_identity = devpki::service_tls_identity(dir, &service.name)?;
        for m in members {
            let seen = handshake(&handle, &server_identity, &m.tls, &service.name)
                .await
                .with_context(|| format!("{} -> {}", m.id, service.name))?;
            ensure!(
                seen.member().map(|id| id.as_str()) == Some(m.id.as_str()),
                "{} saw {seen} instead of member {}",
                service.name,
                m.id
            );
            handshakes += 1;
        }
    }
    Ok(handshakes)
}

/// A sealed record: the first member to itself and the second, who both
/// open it; the third cannot.
fn sealed_record(directory: &Directory, members: &[MemberKeys]) -> anyhow::Result<String> {
    let [author, second, outsider, ..] = members else {
        bail!("the check needs at least three members");
    };
    let mut draft = RecordDraft::new(
        RecordKind::Incident,
        SharingLabel::TlpAmber,
        b"dev pki check".to_vec(),
    );
    draft.recipients = [author, second]
        .iter()
        .map(|m| Recipient::from_directory(directory, &m.id))
        .collect::<Result<_, _>>()?;
    let signed = cairn_record::build(&draft, &author.id, &author.signing)?;
    let verified = cairn_record::verify(&signed, directory)?;
    for m in [author, second] {
        let opened = verified.open(&m.id, Some(&m.sealing))?;
        ensure!(
            opened.content.as_slice() == b"dev pki check",
            "{} opened different content",
            m.id
        );
    }
    match verified.open(&outsider.id, Some(&outsider.sealing)) {
        Err(RecordError::NotARecipient(_)) => {}
        other => bail!(
            "non-recipient {} should not open the record, got {other:?}",
            outsider.id
        ),
    }
    Ok(format!(
        "{} sealed a TLP:AMBER record to {} and {}; both opened it, {} could not",
        author.id, author.id, second.id, outsider.id
    ))
}

/// One mutual-TLS handshake on loopback; returns the identity the server
/// authenticated.
async fn handshake(
    directory: &DirectoryHandle,
    server: &TlsIdentity,
    client: &TlsIdentity,
    service: &str,
) -> anyhow::Result<PeerIdentity> {
    let server_config = tls::server_config(server, directory.clone())?;
    let client_config = tls::client_config(client, directory.clone(), service)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let trust_domain = directory.current().trust_domain().to_owned();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut stream = tokio_rustls::TlsAcceptor::from(server_config)
            .accept(tcp)
            .await?;
        let identity = tls::authenticated_peer(stream.get_ref().1, &trust_domain)?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await?;
        stream.shutdown().await?;
        anyhow::Ok(identity)
    });
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::clone(&client_config))
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    stream.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).await?;
    ensure!(&buf == b"ping", "echo mismatch");
    server_task.await?
}
