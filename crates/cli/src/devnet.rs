//! `cairn devnet`: a whole local network — a dev PKI, audit, intake and
//! evals on loopback with mTLS and embedded (redb) stores under one data directory —
//! and `--demo`, a scripted scenario end to end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};
use cairn_audit::{AuditConfig, RunningAudit};
use cairn_client::audit::LogVerifier;
use cairn_client::{Client, Credentials, Endpoints, Prepared, Share, Submitted, json};
use cairn_devpki::{self as devpki, DevPki, DevPkiSpec, layout};
use cairn_identity::Directory;
use cairn_service_core::RecordCoreConfig;
use cairn_service_core::serve::{Running, ServeConfig};
use cairn_store::StoreLocation;
use cairn_tlog::note::VerifierKey;
use clap::Args;

use crate::connect::DevnetInfo;
use crate::exit;

mod response;
mod witnesses;

/// Where a devnet lives unless `--dir` says otherwise (and where other
/// commands look for one).
pub const DEFAULT_DIR: &str = ".cairn/devnet";

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Where the network keeps its PKI and data (reused when it exists).
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
    /// First of the consecutive ports used: audit, intake, evals, their
    /// Prometheus /metrics in the same order, then one witness per member
    /// holding the witness role (two in the example network: eight ports
    /// in all); 0 picks free ports.
    #[arg(long, default_value_t = 7401)]
    pub base_port: u16,
    /// Run the scripted scenario, then stop.
    #[arg(long)]
    pub demo: bool,
}

struct Network {
    audit: RunningAudit,
    witnesses: Vec<RunningAudit>,
    intake: Running,
    evals: Running,
    info: DevnetInfo,
}

fn addr(base: u16, offset: u16) -> SocketAddr {
    let port = if base == 0 { 0 } else { base + offset };
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn check_port(a: SocketAddr) -> anyhow::Result<()> {
    if a.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(a).map(drop).map_err(|e| anyhow!("port {} on 127.0.0.1 is not available ({e}); stop what uses it or pass --base-port <port> (0 picks free ports)", a.port()))
}

async fn start(dir: &Path, base: u16) -> anyhow::Result<Network> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("the data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    let pki = dir.join("pki");
    if !pki.join(layout::DIRECTORY).exists() {
        DevPki::generate(&DevPkiSpec::example())?.write_to(&pki)?;
    }
    let witness_members = witnesses::witness_members(&pki)?;
    let ports = 6 + u16::try_from(witness_members.len())?;
    for i in 0..ports {
        check_port(addr(base, i))?;
    }
    let svc = |name: &str| pki.join(layout::SERVICES).join(name);
    let mut audit_config = AuditConfig {
        listen: addr(base, 0),
        store: StoreLocation::embedded(dir.join("audit")),
        directory: pki.join(layout::DIRECTORY),
        tls_cert: svc("audit").join(layout::TLS_CERT),
        tls_key: svc("audit").join(layout::TLS_KEY),
        log_key: svc("audit").join(layout::LOG_KEY),
        origin: devpki::log_origin("cairn.example"),
        witness: None,
        cosigners: vec![],
        metrics_listen: Some(addr(base, 3)),
        lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
    };
    let (witnesses, peers, witness_info) =
        witnesses::start(dir, &audit_config, &witness_members, |i| addr(base, 6 + i)).await?;
    audit_config.cosigners = peers;
    let audit = cairn_audit::start(audit_config)
        .await
        .context("starting cairn-audit")?;
    let record = |name: &str, offset: u16| ServeConfig {
        listen: addr(base, offset),
        store: StoreLocation::embedded(dir.join(name)),
        directory: pki.join(layout::DIRECTORY),
        tls_cert: svc(name).join(layout::TLS_CERT),
        tls_key: svc(name).join(layout::TLS_KEY),
        audit: audit.addr.to_string(),
        core: RecordCoreConfig::default(),
        metrics_listen: Some(addr(base, offset + 3)),
    };
    let intake = cairn_intake::start(record("intake", 1))
        .await
        .context("starting cairn-intake")?;
    let evals = cairn_evals::start(record("evals", 2))
        .await
        .context("starting cairn-evals")?;
    let info = DevnetInfo {
        pki: pki.clone(),
        audit: audit.addr,
        intake: intake.addr,
        evals: evals.addr,
        log_key: audit.log_verifier.to_string(),
        metrics: [
            ("audit", audit.metrics_addr),
            ("intake", intake.metrics_addr),
            ("evals", evals.metrics_addr),
        ]
        .into_iter()
        .filter_map(|(k, a)| a.map(|a| (k.to_owned(), format!("http://{a}/metrics"))))
        .collect(),
        witnesses: witness_info,
    };
    std::fs::write(dir.join("devnet.json"), serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("writing {}", dir.join("devnet.json").display()))?;
    Ok(Network {
        audit,
        witnesses,
        intake,
        evals,
        info,
    })
}

impl Network {
    async fn stop(self) -> anyhow::Result<()> {
        self.intake.stop().await?;
        self.evals.stop().await?;
        self.audit.stop().await?;
        for w in self.witnesses {
            w.stop().await?;
        }
        Ok(())
    }

    fn client(&self, member: &str) -> anyhow::Result<Client> {
        let creds = Credentials::from_dev_pki(&self.info.pki, member)?;
        let directory = Directory::load(&self.info.pki.join(layout::DIRECTORY))?;
        let endpoints = Endpoints {
            intake: self.info.intake,
            evals: self.info.evals,
            audit: self.info.audit,
            source: None,
        };
        Ok(Client::connect(
            creds,
            directory,
            endpoints,
            Some(VerifierKey::parse(&self.info.log_key)?),
        )?)
    }
}

pub async fn run(args: DevnetArgs, json: bool) -> anyhow::Result<u8> {
    // Absolute, so that devnet.json and the hints work from any directory.
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let net = start(&dir, args.base_port).await?;
    if args.demo {
        let result = demo(&net, json).await;
        net.stop().await?;
        return match result {
            Ok(()) => Ok(exit::OK),
            Err(e) => {
                eprintln!("demo FAILED: {e:#}");
                Ok(exit::CHECK_FAILED)
            }
        };
    }
    let d = dir.display();
    // Other commands find a devnet in the default place by themselves.
    let devnet = if args.dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --devnet {d}")
    };
    if json {
        println!("{}", serde_json::to_string(&net.info)?);
    } else {
        println!("cairn devnet is running (data in {d}); Ctrl-C stops it.\n");
        println!(
            "  audit   {}   log key {}",
            net.info.audit, net.info.log_key
        );
        println!("  intake  {}", net.info.intake);
        println!("  evals   {}", net.info.evals);
        for w in &net.info.witnesses {
            println!("  witness {}   run by {}, key {}", w.url, w.member, w.key);
        }
        for (service, url) in &net.info.metrics {
            println!("  metrics {service:<7} {url}");
        }
        println!();
        println!(
            "members (keys in {d}/pki/members/<id>/): uk-aisi (GB: submitter, evaluator, auditor, witness, governance), jp-aisi (JP: submitter, evaluator, witness, governance), eu-aio (EU: submitter, auditor, governance)\n"
        );
        println!("try, in another terminal:");
        println!(
            "  cairn incident submit examples/incident.json --label amber --to jp-aisi --member uk-aisi{devnet}"
        );
        println!("  cairn incident list --member jp-aisi{devnet}");
        println!("  cairn eval publish examples/result.json --member jp-aisi{devnet}");
        println!("  cairn directory show --member eu-aio{devnet}");
        println!("  cairn audit verify --full --member eu-aio{devnet}");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    if !json {
        println!("\nstopping…");
    }
    net.stop().await?;
    Ok(exit::OK)
}

/// A numbered, printed step.
struct Steps {
    n: usize,
    json: bool,
}

impl Steps {
    fn ok(&mut self, text: String) {
        self.n += 1;
        if self.json {
            println!(
                "{}",
                serde_json::json!({"step": self.n, "ok": true, "what": text})
            );
        } else {
            println!("{:>2}. ok  {text}", self.n);
        }
    }
}

async fn demo(net: &Network, json_out: bool) -> anyhow::Result<()> {
    let mut steps = Steps {
        n: 0,
        json: json_out,
    };
    let uk = net.client("uk-aisi")?;
    let jp = net.client("jp-aisi")?;
    let eu = net.client("eu-aio")?;
    let shared = share_demo(&uk, &jp, &mut steps).await?;
    outsider_demo(&eu, &shared, &mut steps).await?;
    response::response_demo(&uk, &jp, &eu, &mut steps).await?;
    auditor_demo(net, &eu, &shared, &mut steps).await?;
    baselines_demo(net, &mut steps, json_out).await?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    if !json_out {
        println!("\nthe demo passed.");
    }
    Ok(())
}

/// What the demo's first members shared: the AMBER incident as sent and
/// as acknowledged, and the GREEN result as acknowledged.
struct Shared {
    prepared: Prepared,
    incident: Submitted,
    result: Submitted,
}

/// uk-aisi submits an AMBER incident to jp-aisi, jp-aisi publishes a GREEN
/// result and opens both.
async fn share_demo(uk: &Client, jp: &Client, steps: &mut Steps) -> anyhow::Result<Shared> {
    let incident = json::incident_from_json(include_str!("../../../examples/incident.json"))?;
    let prepared = uk.prepare_incident(&incident, &Share::Amber(vec!["jp-aisi".into()]))?;
    let submitted = uk.submit_incident(&prepared).await?;
    let size = submitted
        .verified_in_tree_of
        .ok_or_else(|| anyhow!("no verified receipt for the incident"))?;
    steps.ok(format!("uk-aisi submitted a TLP:AMBER incident to jp-aisi (and itself): record {}, receipt verified in a tree of {size}", submitted.record_id));
    if let Some(d) = submitted.reporting_deadline {
        steps.ok(format!(
            "its EU AI Act Art. 73 deadline: {}",
            d.format(&time::format_description::well_known::Rfc3339)?
        ));
    }

    let result = json::result_from_json(include_str!("../../../examples/result.json"))?;
    let published = jp
        .publish_result(&jp.prepare_result(&result, &Share::Green)?)
        .await?;
    ensure!(
        published.verified_in_tree_of.is_some(),
        "no verified receipt for the result"
    );
    steps.ok(format!(
        "jp-aisi published a TLP:GREEN evaluation result: record {}",
        published.record_id
    ));

    let inc = jp.open(&jp.get_incident(&submitted.record_id, true).await?)?;
    ensure!(
        inc.incident().map(|i| i.title.as_str()) == Some(incident.title.as_str()),
        "jp-aisi opened different content"
    );
    let res = jp.open(&jp.get_result(&published.record_id, false).await?)?;
    ensure!(
        res.result().is_some(),
        "the result did not open as a result"
    );
    steps.ok("jp-aisi fetched both records and verified signatures, receipts, inclusion and commitments, and decrypted them".into());
    Ok(Shared {
        prepared,
        incident: submitted,
        result: published,
    })
}

/// eu-aio, not a recipient of the AMBER incident, is refused its body.
async fn outsider_demo(eu: &Client, shared: &Shared, steps: &mut Steps) -> anyhow::Result<()> {
    match eu.get_incident(&shared.incident.record_id, false).await {
        Err(cairn_client::ClientError::Status(s)) if s.code() == tonic::Code::PermissionDenied => {
            steps.ok(format!(
                "eu-aio, not a recipient, cannot fetch the incident: {}",
                s.message()
            ))
        }
        other => bail!("eu-aio should be refused the AMBER incident, got {other:?}"),
    }
    let (listed, _) = eu
        .list_incidents(Default::default(), 50, String::new())
        .await?;
    let mine = listed
        .iter()
        .find(|r| {
            r.record
                .as_ref()
                .is_some_and(|rec| rec.envelope == shared.prepared.record.envelope)
        })
        .ok_or_else(|| anyhow!("eu-aio does not see the AMBER header"))?;
    ensure!(
        mine.record.as_ref().is_some_and(|r| r.body.is_empty()),
        "eu-aio received the sealed body"
    );
    ensure!(eu.open(mine).is_err(), "eu-aio could open the record");
    steps.ok("eu-aio sees the header in lists but gets no body and cannot open it".into());
    Ok(())
}

/// The auditor, through the SDK's [`LogVerifier`]: the checkpoint's
/// signature, consistency from the first receipt, every entry parsed and
/// recomputed to the root, both receipts included.
async fn auditor_demo(
    net: &Network,
    eu: &Client,
    shared: &Shared,
    steps: &mut Steps,
) -> anyhow::Result<()> {
    let key = VerifierKey::parse(&net.info.log_key)?;
    let witnesses = net
        .info
        .witnesses
        .iter()
        .map(|w| VerifierKey::parse(&w.key))
        .collect::<Result<Vec<_>, _>>()?;
    let quorum = witnesses.len();
    let mut log = LogVerifier::new(key, witnesses, quorum)?.with_log(eu.audit());
    let head = log.latest_witnessed(Duration::from_secs(10)).await?;
    let cosigners: Vec<&str> = head.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
    steps.ok(format!(
        "the log's checkpoint of size {} is cosigned by {quorum} of {quorum} witnesses: {}",
        head.checkpoint.size,
        cosigners.join(", ")
    ));
    let receipts: Vec<_> = [&shared.incident.receipt, &shared.result.receipt]
        .into_iter()
        .map(|r| r.as_ref().ok_or_else(|| anyhow!("no receipt")))
        .collect::<anyhow::Result<_>>()?;
    let first = log.extends(&receipts[0].checkpoint, &head).await?;
    log.recompute(&head, |_| {}).await?;
    for r in receipts {
        log.includes(r, &head).await?;
    }
    steps.ok(format!("eu-aio, as auditor, verified the log: checkpoint signature and witness quorum, consistency since size {first}, both records included, all {} entries recomputed to the root", head.checkpoint.size));
    Ok(())
}

const BASELINES: [(&str, &str); 3] = [
    (
        "uk-aisi",
        include_str!("../../../examples/baselines/gb.json"),
    ),
    (
        "eu-aio",
        include_str!("../../../examples/baselines/eu.json"),
    ),
    (
        "jp-aisi",
        include_str!("../../../examples/baselines/jp.json"),
    ),
];

const RESULTS: [&str; 6] = [
    include_str!("../../../examples/results/frontier-1-cyber.json"),
    include_str!("../../../examples/results/frontier-1-cbrn.json"),
    include_str!("../../../examples/results/frontier-1-safeguards.json"),
    include_str!("../../../examples/results/frontier-2-cyber.json"),
    include_str!("../../../examples/results/frontier-2-cbrn.json"),
    include_str!("../../../examples/results/frontier-2-safeguards.json"),
];

/// Baselines of three jurisdictions, results for two models, the matrix,
/// and a published assessment verified by another member.
async fn baselines_demo(net: &Network, steps: &mut Steps, json_out: bool) -> anyhow::Result<()> {
    use cairn_client::assess::ModelRef;
    let now = time::OffsetDateTime::now_utc();
    let eu = net.client("eu-aio")?;
    let existing = eu.current_baselines(now).await?;
    for (member, text) in BASELINES {
        let b: cairn_proto::evals::v1::Baseline = json::from_json("cairn.evals.v1.Baseline", text)?;
        if existing.iter().any(|(_, e)| {
            e.name == b.name && e.version == b.version && e.jurisdiction == b.jurisdiction
        }) {
            continue;
        }
        let c = net.client(member)?;
        c.publish_result(&c.prepare_baseline(&b, &Share::Clear)?)
            .await?;
    }
    steps.ok(
        "uk-aisi, eu-aio and jp-aisi (governance) published the GB, EU and JP baselines".into(),
    );
    for text in RESULTS {
        let r = json::result_from_json(text)?;
        let evaluator = r
            .evaluator
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        let c = net.client(&evaluator)?;
        c.publish_result(&c.prepare_result(&r, &Share::Green)?)
            .await?;
    }
    steps.ok(
        "jp-aisi and uk-aisi published evaluation results for Frontier-1 and Frontier-2".into(),
    );
    for model in ["Frontier-1", "Frontier-2"] {
        let m = ModelRef::parse(model);
        let rows = crate::baseline::matrix_rows(&eu, &m).await?;
        if !json_out {
            println!();
            crate::baseline::print_matrix(&m, &rows, false, false)?;
            println!();
        }
        ensure!(rows.len() >= 3, "the matrix misses baselines");
    }
    steps.ok("eu-aio printed the cross-border matrix for both models".into());
    let uk = net.client("uk-aisi")?;
    let (gb_id, _) = uk
        .current_baselines(now)
        .await?
        .into_iter()
        .find(|(_, b)| b.jurisdiction == "GB")
        .ok_or_else(|| anyhow!("no GB baseline"))?;
    let a = uk.assess(&gb_id, &ModelRef::parse("Frontier-1")).await?;
    let published = uk
        .publish_result(&uk.prepare_assessment(&a, &Share::Green)?)
        .await?;
    let jp = net.client("jp-aisi")?;
    let (_, verdict) = jp.verify_assessment(&published.record_id).await?;
    verdict.map_err(|p| anyhow!("the published assessment does not verify: {}", p.join("; ")))?;
    steps.ok(format!("uk-aisi published its assessment of Frontier-1 against the GB baseline ({}); jp-aisi recomputed it from the cited results: it matches", published.record_id));
    Ok(())
}
