//! The walkthrough of deploy/README.md ("A network of your own"), run as
//! written: three organisations, each on its own host address (127.0.0.2,
//! .3, .4; its CLI connects from it, `--source`) with its own folder,
//! credentials and CLI configuration, found a network with their own CAs;
//! the first runs the services on its host (127.0.0.2) with service
//! identities it made itself; a fourth member is admitted by quorum and submits an incident;
//! a key is rotated; a compromised key is revoked (and the audit flags what
//! it signed since the compromise); a member is removed. Every member
//! action is the `cairn` binary; the services are started from the same
//! files the binaries take (`cairn_audit::start`, `cairn_intake::start`,
//! `cairn_evals::start` with the folder `cairn network services` made).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cairn_audit::AuditConfig;
use cairn_service_core::RecordCoreConfig;
use cairn_service_core::serve::ServeConfig;
use cairn_store::StoreLocation;
use common::{example, text};
use serde_json::Value;

/// One organisation: its host's address (its CLI connects from it), its
/// member folder and its own CLI configuration.
struct Org {
    id: &'static str,
    host: &'static str,
    home: PathBuf,
}

impl Org {
    fn new(root: &Path, id: &'static str, host: &'static str) -> Self {
        let home = root.join(id);
        std::fs::create_dir_all(home.join("config")).unwrap();
        Self { id, host, home }
    }

    fn member_dir(&self) -> String {
        self.home.join("member").display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .env("CAIRN_CONFIG_DIR", self.home.join("config"))
            .env("CAIRN_PROFILE", self.id)
            .env_remove("CAIRN_DEVNET")
            .current_dir(&self.home)
            .arg("--json")
            .args(args)
            .output()
            .unwrap()
    }

    /// A command that must succeed; its (last line of) JSON.
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{} {args:?}: {}", self.id, text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"))
    }

    /// A command the network must refuse (exit 2); what it said.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{} {args:?}: {}",
            self.id,
            text(&out)
        );
        text(&out)
    }

    fn init(&self, name: &str, country: &str, roles: &str) {
        let dir = self.member_dir();
        self.ok(&[
            "member",
            "init",
            "--dir",
            &dir,
            "--id",
            self.id,
            "--name",
            name,
            "--jurisdiction",
            country,
            "--roles",
            roles,
            "--trust-domain",
            "net.example",
        ]);
    }

    fn card(&self) -> String {
        format!("{}/card.toml", self.member_dir())
    }

    fn signing_key_id(&self) -> String {
        let text = std::fs::read_to_string(self.home.join("member/member.toml")).unwrap();
        let file: toml::Table = toml::from_str(&text).unwrap();
        file["signing_key_id"].as_str().unwrap().to_owned()
    }

    fn profile(&self, genesis: &str, net: &Running, log_key: &str) {
        let (dir, intake, evals, audit) = (
            self.member_dir(),
            net.intake.addr.to_string(),
            net.evals.addr.to_string(),
            net.audit.addr.to_string(),
        );
        self.ok(&[
            "profile",
            "add",
            self.id,
            "--member-dir",
            &dir,
            "--directory",
            genesis,
            "--intake",
            &intake,
            "--evals",
            &evals,
            "--audit",
            &audit,
            "--log-key",
            log_key,
            "--source",
            self.host,
        ]);
    }

    fn submit(&self, title: &str) -> Output {
        let file = self.home.join(format!("{title}.json"));
        let mut incident: Value =
            serde_json::from_str(&std::fs::read_to_string(example("incident.json")).unwrap())
                .unwrap();
        incident["title"] = title.into();
        std::fs::write(&file, incident.to_string()).unwrap();
        self.run(&[
            "incident",
            "submit",
            file.to_str().unwrap(),
            "--label",
            "green",
        ])
    }

    /// Proposes a change; the proposal's id.
    fn propose(&self, change: &[&str]) -> String {
        let mut args = vec!["directory", "propose"];
        args.extend_from_slice(change);
        let proposed = self.ok(&args);
        assert_eq!(proposed["effective"], false, "{proposed}");
        proposed["proposal"].as_str().unwrap().to_owned()
    }

    /// Approves `proposal`, which takes effect: the version in force.
    fn approve(&self, proposal: &str) -> u64 {
        let approved = self.ok(&["directory", "approve", proposal]);
        assert_eq!(approved["effective"], true, "{approved}");
        approved["version"].as_u64().unwrap()
    }
}

/// The operator's services, on its host.
struct Running {
    audit: cairn_audit::RunningAudit,
    intake: cairn_service_core::serve::Running,
    evals: cairn_service_core::serve::Running,
}

impl Running {
    async fn stop(self) {
        self.intake.stop().await.unwrap();
        self.evals.stop().await.unwrap();
        self.audit.stop().await.unwrap();
    }
}

/// Starts the three services on `host` from the operator's folders (each
/// service given only its own) and the signed genesis.
async fn run_services(host: &str, services: &Path, data: &Path, genesis: &Path) -> Running {
    let listen: SocketAddr = format!("{host}:0").parse().unwrap();
    let own = |name: &str| services.join(name);
    let audit = cairn_audit::start(AuditConfig {
        listen,
        store: StoreLocation::embedded(data.join("audit")),
        directory: genesis.to_owned(),
        tls_cert: own("audit").join("tls.pem"),
        tls_key: own("audit").join("tls.key.pem"),
        log_key: own("audit").join("log.key.pem"),
        origin: "net.example/audit".into(),
        witness: None,
        cosigners: vec![],
        metrics_listen: None,
        lease_ttl: cairn_audit::DEFAULT_LEASE_TTL,
    })
    .await
    .unwrap();
    let record = |name: &str| ServeConfig {
        listen,
        store: StoreLocation::embedded(data.join(name)),
        directory: genesis.to_owned(),
        tls_cert: own(name).join("tls.pem"),
        tls_key: own(name).join("tls.key.pem"),
        audit: audit.addr.to_string(),
        core: RecordCoreConfig::default(),
        metrics_listen: None,
    };
    let intake = cairn_intake::start(record("intake")).await.unwrap();
    let evals = cairn_evals::start(record("evals")).await.unwrap();
    Running {
        audit,
        intake,
        evals,
    }
}

/// Founding: cards, the operator's service identities, a genesis every
/// founder signs. The genesis path and the log's key.
fn found(root: &Path, fr: &Org, de: &Org, nl: &Org) -> (PathBuf, String) {
    fr.init("INESIA", "FR", "submitter,governance");
    de.init("BSI", "DE", "submitter,auditor,governance");
    nl.init("RDI", "NL", "submitter,governance");
    let services = fr.home.join("services").display().to_string();
    let made = fr.ok(&[
        "network",
        "services",
        "--dir",
        &services,
        "--trust-domain",
        "net.example",
        "--operator",
        "INESIA",
        "--host",
        fr.host,
    ]);
    let genesis = root.join("genesis.toml");
    let g = genesis.display().to_string();
    let mut init = vec!["network", "init", "--trust-domain", "net.example"];
    let cards = [fr.card(), de.card(), nl.card()];
    for c in &cards {
        init.extend(["--card", c.as_str()]);
    }
    let flags: Vec<String> = made["network_init"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| {
            let (flag, value) = f.as_str().unwrap().split_once(' ').unwrap();
            [flag.to_owned(), value.to_owned()]
        })
        .collect();
    init.extend(flags.iter().map(String::as_str));
    init.extend(["--quorum", "2", "--out", &g]);
    fr.ok(&init);
    // The genesis travels to each founder, who signs it with its own key.
    for org in [fr, de, nl] {
        let dir = org.member_dir();
        org.ok(&["directory", "sign", &g, "--member-dir", &dir]);
    }
    assert_eq!(
        fr.ok(&["directory", "verify", &g])["missing"],
        Value::Array(vec![])
    );
    (genesis, made["log_key"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_organisations_found_admit_rotate_revoke_and_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (fr, de, nl, it) = (
        Org::new(root, "fr-inesia", "127.0.0.2"),
        Org::new(root, "de-bsi", "127.0.0.3"),
        Org::new(root, "nl-rdi", "127.0.0.4"),
        Org::new(root, "it-acn", "127.0.0.5"),
    );
    let (genesis, log_key) = tokio::task::block_in_place(|| found(root, &fr, &de, &nl));
    let net = run_services(
        fr.host,
        &fr.home.join("services"),
        &fr.home.join("data"),
        &genesis,
    )
    .await;
    let g = genesis.display().to_string();
    tokio::task::block_in_place(|| {
        for org in [&fr, &de, &nl] {
            org.profile(&g, &net, &log_key);
        }
        // A fourth member makes its credentials and its profile.
        it.init("ACN", "IT", "submitter");
        it.profile(&g, &net, &log_key);
        walk(&fr, &de, &nl, &it);
    });
    net.stop().await;
}

fn walk(fr: &Org, de: &Org, nl: &Org, it: &Org) {
    // Each organisation's CLI connects from its own host's address: one it
    // does not have (TEST-NET-1) cannot be used.
    let elsewhere = de.run(&["directory", "history", "--source", "192.0.2.1"]);
    assert!(!elsewhere.status.success());
    assert!(
        text(&elsewhere).contains("binding the source address 192.0.2.1"),
        "{}",
        text(&elsewhere)
    );
    // The fourth member is refused until the quorum admits it.
    let unknown = it.refused(&["incident", "list"]);
    assert!(
        unknown.contains("not in the network's directory"),
        "{unknown}"
    );
    let card = it.card();
    let admit = de.propose(&["--add-member", &card]);
    assert_eq!(nl.approve(&admit), 1);
    let first = it.submitted("first report from ACN");
    let opened = fr.ok(&["incident", "get", &first, "--open"]);
    assert!(
        opened.to_string().contains("first report from ACN"),
        "{opened}"
    );

    // Rotation: a new key, put in force by quorum; the old window ends.
    let old_key = it.signing_key_id();
    let dir = it.member_dir();
    let rotated = it.ok(&[
        "member",
        "rotate-key",
        "--dir",
        &dir,
        "--overlap-hours",
        "1",
    ]);
    assert_eq!(rotated["old_key"], old_key.as_str());
    let rotation = fr.propose(&["--update-keys", &card]);
    assert_eq!(de.approve(&rotation), 2);
    it.submitted("second report, new key");
    assert_ne!(it.signing_key_id(), old_key);

    // nl-rdi's key is compromised: it signed a report after the
    // compromise began; the key is revoked; it signs nothing accepted
    // after, and the audit flags that report.
    let nl_key = nl.signing_key_id();
    let since = nl_card_valid_from(nl);
    let suspect = nl.submitted("report signed with a stolen key");
    let revoke = format!("nl-rdi/{nl_key}");
    let revocation = de.propose(&["--revoke-key", &revoke, "--compromised-since", &since]);
    assert_eq!(fr.approve(&revocation), 3);
    let refused = nl.refused_submit("after the revocation");
    assert!(refused.contains("revoked"), "{refused}");
    let verified = de.ok(&["audit", "verify", "--full", "--records"]);
    let flagged = verified["flagged"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{verified}");
    assert_eq!(flagged[0]["member"], "nl-rdi");
    assert_eq!(flagged[0]["key_id"], nl_key.as_str());
    assert_eq!(flagged[0]["record"], suspect.as_str());

    // Removal: nl-rdi leaves; its connections are refused from then on.
    let removal = fr.propose(&["--remove-member", "nl-rdi"]);
    assert_eq!(de.approve(&removal), 4);
    let gone = nl.run(&["incident", "list"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone));
    assert!(
        text(&gone).contains("does not admit this certificate"),
        "{}",
        text(&gone)
    );
    let history = de.ok(&["directory", "history"]);
    assert_eq!(
        history["versions"].as_array().unwrap().len(),
        5,
        "{history}"
    );
    let shown = it.ok(&["directory", "show"]);
    let ids: Vec<&str> = shown["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["de-bsi", "fr-inesia", "it-acn"], "{shown}");
}

impl Org {
    /// Submits an incident that must be accepted; its record id.
    fn submitted(&self, title: &str) -> String {
        let out = self.submit(title);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let sent: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        sent["record_id"].as_str().unwrap().to_owned()
    }

    fn refused_submit(&self, title: &str) -> String {
        let out = self.submit(title);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        text(&out)
    }
}

/// When nl-rdi's signing key became valid (the earliest a compromise can
/// have begun).
fn nl_card_valid_from(nl: &Org) -> String {
    let text = std::fs::read_to_string(nl.home.join("member/member.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    file["signing_key_valid_from"].as_str().unwrap().to_owned()
}
