//! Crash consistency of the record path: cairn-audit and cairn-intake run as
//! child processes; members submit concurrently; each cycle kills intake,
//! audit or both with SIGKILL mid-stream and restarts them. Afterwards every
//! acknowledged record is present, byte for byte, opens and verifies, and is
//! in the log (its receipt verifies); nothing is half-stored; and every
//! checkpoint ever seen is consistent with the final one.
//!
//! 5 cycles by default; `CAIRN_LONG_TESTS=1` for 20.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_devpki::{self as devpki, layout};
use cairn_identity::{Directory, DirectoryHandle};
use cairn_mtls as tls;
use cairn_proto::audit::v1 as audit;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::intake::v1 as intake;
use cairn_proto::intake::v1::incident_intake_client::IncidentIntakeClient;
use cairn_record::pb::{self, SharingLabel};
use cairn_tlog::checkpoint::{self, Checkpoint};
use cairn_tlog::note::VerifierKey;
use prost::Message as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use cairn_testkit::MEMBERS;

struct World {
    tmp: tempfile::TempDir,
    pki: PathBuf,
    directory: Directory,
    handle: DirectoryHandle,
}

/// The environment variable that turns [`audit_child`] into the audit
/// service: `<listen>|<data dir>|<pki dir>`.
const AUDIT_CHILD: &str = "CAIRN_CRASH_AUDIT_CHILD";

/// Not a test of its own: the crash test's audit service, as a child
/// process it can SIGKILL. The test binary runs itself with only this
/// test selected and [`AUDIT_CHILD`] set, so that `cargo test -p
/// cairn-intake` needs no other package's binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_child() {
    let Ok(spec) = std::env::var(AUDIT_CHILD) else {
        return;
    };
    let [listen, data, pki] = spec.split('|').collect::<Vec<_>>()[..] else {
        panic!("{AUDIT_CHILD}: expected <listen>|<data dir>|<pki dir>");
    };
    let pki = Path::new(pki);
    let svc = |file: &str| pki.join(layout::SERVICES).join("audit").join(file);
    let running = cairn_audit::start(cairn_audit::AuditConfig {
        listen: listen.parse().unwrap(),
        store: cairn_store::StoreLocation::embedded(data),
        directory: pki.join(layout::DIRECTORY),
        tls_cert: svc(layout::TLS_CERT),
        tls_key: svc(layout::TLS_KEY),
        log_key: svc(layout::LOG_KEY),
        origin: devpki::log_origin("cairn.example"),
        witness: None,
        cosigners: Vec::new(),
        metrics_listen: None,
        lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
    })
    .await
    .unwrap();
    println!("cairn-audit listening on {}", running.addr);
    println!("log verifier key {}", running.log_verifier);
    // Until the crash test kills this process.
    std::future::pending::<()>().await;
}

/// The address on the first line that holds `prefix` (the test harness of
/// the audit child prints its own text first).
async fn first_line(child: &mut Child, prefix: &str) -> (SocketAddr, Vec<String>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the service did not start")
            .unwrap()
            .expect("the service exited");
        // libtest prints `test audit_child ... ` before the child's line.
        if let Some(at) = line.find(prefix) {
            break line[at..].to_owned();
        }
    };
    let addr = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    let mut rest = Vec::new();
    if prefix.starts_with("cairn-audit") {
        rest.push(lines.next_line().await.unwrap().unwrap());
    }
    (addr, rest)
}

impl World {
    fn new() -> Self {
        let kit = cairn_testkit::Pki::example();
        Self {
            tmp: kit.tmp,
            pki: kit.dir,
            directory: kit.directory,
            handle: kit.handle,
        }
    }

    fn svc(&self, name: &str, file: &str) -> PathBuf {
        self.pki.join(layout::SERVICES).join(name).join(file)
    }

    async fn audit(&self, listen: SocketAddr) -> (Child, SocketAddr, VerifierKey) {
        let spec = format!(
            "{listen}|{}|{}",
            self.tmp.path().join("audit").display(),
            self.pki.display()
        );
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "audit_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(AUDIT_CHILD, spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (addr, rest) = first_line(&mut child, "cairn-audit listening on ").await;
        let key = VerifierKey::parse(rest[0].strip_prefix("log verifier key ").unwrap()).unwrap();
        (child, addr, key)
    }

    async fn intake(&self, listen: SocketAddr, audit: SocketAddr) -> (Child, SocketAddr) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn-intake"))
            .args([
                "--listen",
                &listen.to_string(),
                "--audit",
                &audit.to_string(),
                "--receipt-wait-ms",
                "300",
                "--log",
                "warn",
            ])
            .arg("--data-dir")
            .arg(self.tmp.path().join("intake"))
            .arg("--directory")
            .arg(self.pki.join(layout::DIRECTORY))
            .arg("--tls-cert")
            .arg(self.svc("intake", layout::TLS_CERT))
            .arg("--tls-key")
            .arg(self.svc("intake", layout::TLS_KEY))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (addr, _) = first_line(&mut child, "cairn-intake listening on ").await;
        (child, addr)
    }

    fn client(
        &self,
        member: &str,
        addr: SocketAddr,
    ) -> IncidentIntakeClient<tonic::transport::Channel> {
        let files = devpki::MemberFiles::new(&self.pki, member);
        IncidentIntakeClient::new(
            tls::channel(
                addr,
                tls::client_config(
                    &files.tls_identity().unwrap(),
                    self.handle.clone(),
                    "intake",
                )
                .unwrap(),
            )
            .unwrap(),
        )
    }
}

/// Builds records as one member, on demand (sealing is the slow part in a
/// debug build, so only what is submitted gets built).
#[derive(Clone)]
struct Author {
    member: String,
    key: Arc<cairn_identity::SigningKey>,
    recipients: Vec<cairn_record::Recipient>,
}

impl Author {
    fn new(w: &World, member: &str) -> Self {
        Self {
            member: member.to_owned(),
            key: Arc::new(
                devpki::MemberFiles::new(&w.pki, member)
                    .signing_key()
                    .unwrap(),
            ),
            recipients: MEMBERS
                .iter()
                .map(|m| cairn_record::Recipient::from_directory(&w.directory, m).unwrap())
                .collect(),
        }
    }

    fn record(&self, title: &str) -> pb::SignedRecord {
        let inc = cairn_tests::incident(title);
        let mut d = cairn_record::RecordDraft::new(
            pb::RecordKind::Incident,
            SharingLabel::TlpGreen,
            inc.encode_to_vec(),
        );
        d.recipients = self.recipients.clone();
        d.index = Some(cairn_record::content::incident_index(&inc));
        cairn_record::build(&d, &self.member, &self.key).unwrap()
    }
}

fn verify_receipt(r: &pb::Receipt, envelope: &[u8], key: &VerifierKey) -> Checkpoint {
    cairn_testkit::verify_receipt_of(r, envelope, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_of_intake_and_audit() {
    let cycles = if std::env::var("CAIRN_LONG_TESTS").as_deref() == Ok("1") {
        20
    } else {
        5
    };
    let w = World::new();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (mut audit_child, audit_addr, key) = w.audit(any).await;
    let (mut intake_child, intake_addr) = w.intake(any, audit_addr).await;
    // Acknowledged: (member, record) whose submission returned OK.
    let acked: Arc<Mutex<Vec<(String, pb::SignedRecord)>>> = Arc::default();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for cycle in 0..cycles {
        let target = 20 + (cycle * 37) % 60;
        let done = Arc::new(tokio::sync::Semaphore::new(0));
        let mut tasks = Vec::new();
        for (t, member) in MEMBERS.iter().enumerate() {
            let mut client = w.client(member, intake_addr);
            let acked = acked.clone();
            let done = done.clone();
            let author = Author::new(&w, member);
            let member = member.to_string();
            tasks.push(tokio::spawn(async move {
                // Bounded: the process is killed long before this ends.
                for n in 0..400 {
                    let r = author.record(&format!("cycle {cycle} task {t} #{n}"));
                    match client
                        .submit_incident(intake::SubmitIncidentRequest {
                            record: Some(r.clone()),
                        })
                        .await
                    {
                        Ok(_) => {
                            acked.lock().unwrap().push((member.clone(), r));
                            done.add_permits(1);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let _ = tokio::time::timeout(Duration::from_secs(120), done.acquire_many(target as u32))
            .await
            .expect("submissions stalled");
        // Kill intake, audit, or both, mid-stream.
        let (kill_intake, kill_audit) = match cycle % 3 {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        if kill_audit {
            audit_child.start_kill().unwrap();
            audit_child.wait().await.unwrap();
        }
        if kill_intake {
            intake_child.start_kill().unwrap();
            intake_child.wait().await.unwrap();
        } else {
            // Let the submitters see the audit outage for a moment.
            tokio::time::sleep(Duration::from_millis(400)).await;
            intake_child.start_kill().unwrap();
            intake_child.wait().await.unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
        if kill_audit {
            let (c, a, _) = w.audit(audit_addr).await;
            assert_eq!(a, audit_addr);
            audit_child = c;
        }
        let (c, a) = w.intake(intake_addr, audit_addr).await;
        assert_eq!(a, intake_addr);
        intake_child = c;
    }

    // Every acknowledged record: present byte for byte, and (once the outbox
    // has drained) in the log with a receipt that verifies.
    let all = acked.lock().unwrap().clone();
    assert!(all.len() >= 20 * cycles as usize / 2);
    for (member, rec) in &all {
        let mut client = w.client(member, intake_addr);
        let out = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let out = client
                    .submit_incident(intake::SubmitIncidentRequest {
                        record: Some(rec.clone()),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                if !out.receipt_pending {
                    return out;
                }
            }
        })
        .await
        .expect("an acknowledged record never got its receipt");
        assert!(
            out.duplicate,
            "an acknowledged record was lost and submitted anew"
        );
        let cp = verify_receipt(out.receipt.as_ref().unwrap(), &rec.envelope, &key);
        if !checkpoints.contains(&cp) {
            checkpoints.push(cp);
        }
        let got = client
            .get_incident(intake::GetIncidentRequest {
                record_id: out.record_id.clone(),
                include_latest_proof: false,
            })
            .await
            .unwrap()
            .into_inner()
            .record
            .unwrap();
        assert_eq!(got.record.as_ref().unwrap(), rec, "stored bytes differ");
        let v = cairn_record::verify(got.record.as_ref().unwrap(), &w.directory).unwrap();
        v.open(
            member,
            Some(
                &devpki::MemberFiles::new(&w.pki, member)
                    .sealing_key()
                    .unwrap(),
            ),
        )
        .unwrap();
    }
    // Nothing half-stored: every record the service holds is whole.
    let mut c = w.client("uk-aisi", intake_addr);
    let mut token = String::new();
    let mut held = 0;
    loop {
        let page = c
            .list_incidents(intake::ListIncidentsRequest {
                page_size: 200,
                page_token: token,
                filter: None,
            })
            .await
            .unwrap()
            .into_inner();
        for r in &page.records {
            cairn_record::verify(r.record.as_ref().unwrap(), &w.directory).unwrap();
            held += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(held >= all.len());
    // Every checkpoint is consistent with the final one.
    let mut a = AuditLogClient::new(
        tls::channel(
            audit_addr,
            tls::client_config(
                &devpki::MemberFiles::new(&w.pki, "eu-aio")
                    .tls_identity()
                    .unwrap(),
                w.handle.clone(),
                "audit",
            )
            .unwrap(),
        )
        .unwrap(),
    );
    let head = checkpoint::open(
        &a.get_checkpoint(audit::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner()
            .checkpoint,
        &key,
    )
    .unwrap()
    .checkpoint;
    for old in &checkpoints {
        if old.size == head.size {
            assert_eq!(old.root, head.root);
            continue;
        }
        let p = a
            .get_consistency_proof(audit::GetConsistencyProofRequest {
                from_size: old.size,
                to_size: head.size,
            })
            .await
            .unwrap()
            .into_inner();
        cairn_tlog::proof::verify_consistency(old.size, head.size, &p.proof, &old.root, &head.root)
            .unwrap();
    }
    intake_child.start_kill().unwrap();
    audit_child.start_kill().unwrap();
}
