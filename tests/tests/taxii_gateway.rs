//! The member-side TAXII 2.1 gateway, driven by tools we did not write
//! (`tests/python/taxii_gateway.py`): OASIS's taxii2-client discovers it,
//! lists its collections, pages through them with `as_pages` and adds an
//! incident, which a recipient then opens as a cairn record; OASIS's
//! stix2-validator finds no error in any object it serves. The network
//! holds incidents, a correction, a retraction, a follow-up, a sighting
//! and an evaluation result before the gateway starts, so it catches up
//! from its cursor, then follows; stopped and started again on its state,
//! it gets the record that arrived meanwhile, and nothing twice.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, Share, json};
use cairn_proto::intake::v1 as intake;
use cairn_taxii::{Gateway, ServerIdentity, Store, Users};
use cairn_tests::Net;
use time::OffsetDateTime;
use uuid::Uuid;

const INCIDENT: &str = include_str!("../../examples/incident.json");
const RESULT: &str = include_str!("../../examples/result.json");

/// uk-aisi's records and jp-aisi's answers; returns the last record id.
async fn populate(uk: &Client, jp: &Client) -> String {
    let mut incident = json::incident_from_json(INCIDENT).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        incident.title = format!("Dosage advice, deployment {i}");
        let p = uk.prepare_incident(&incident, &Share::Green).unwrap();
        ids.push(uk.submit_incident(&p).await.unwrap().record_id);
    }
    incident.title = "Dosage advice, deployment 0 (corrected)".into();
    let c = uk
        .prepare_incident_correction(&incident, &Share::Green, &ids[0])
        .unwrap();
    let corrected = uk.submit_incident(&c).await.unwrap().record_id;
    let stored = uk.get_incident(&corrected, false).await.unwrap();
    let r = uk
        .prepare_retraction(&stored, "a duplicate report")
        .unwrap();
    uk.retract_incident(&r).await.unwrap();
    incident.status = cairn_record::pb::IncidentStatus::Update as i32;
    incident.title = "Dosage advice, deployment 1: update".into();
    let f = uk
        .prepare_follow_up(&incident, &Share::Green, &ids[1])
        .unwrap();
    uk.submit_incident(&f).await.unwrap();
    let sighting = intake::Sighting {
        description: "the same dosage answer in a Japanese deployment".into(),
        observed_at: Some(cairn_record::header::time_to_timestamp(
            OffsetDateTime::now_utc() - time::Duration::hours(2),
        )),
        jurisdiction: "JP".into(),
        model: None,
        evidence: vec![],
    };
    let s = jp
        .prepare_sighting(&sighting, &Share::Green, Some(&ids[2]))
        .unwrap();
    jp.submit_incident(&s).await.unwrap();
    let result = json::result_from_json(RESULT).unwrap();
    let p = jp.prepare_result(&result, &Share::Green).unwrap();
    jp.publish_result(&p).await.unwrap().record_id
}

/// Waits (bounded) until the gateway's store holds what `record_id` became.
async fn caught_up(store_of: &dyn Fn() -> bool) {
    for _ in 0..300 {
        if store_of() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not catch up within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taxii2_client_and_stix2_validator_use_the_gateway() {
    let python = tokio::task::spawn_blocking(|| {
        cairn_tests::python::venv(Path::new(env!("CARGO_TARGET_TMPDIR")))
    })
    .await
    .unwrap();
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, jp) = (net.client("uk-aisi"), net.client("jp-aisi"));
    let last = populate(&uk, &jp).await;

    let state = net.tmp.path().join("taxii-uk");
    let store = Store::open(&state).unwrap();
    let (users, password) = Users::load_or_create(&state.join("users")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tls, ca) =
        cairn_taxii::tls::server_config(&state, &ServerIdentity::Local, addr.ip()).unwrap();
    let gw = Gateway::new(net.client("uk-aisi"), store, users).unwrap();
    let following = tokio::spawn(gw.clone().follow());
    let serving = tokio::spawn(gw.clone().serve(listener, tls));
    let last = Uuid::parse_str(&last).unwrap();
    let probe = Arc::clone(&gw);
    caught_up(&move || probe.has_record(last)).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new(&python)
        // requests lets these override the CA taxii2-client is given.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .arg(root.join("tests/python/taxii_gateway.py"))
        .args([
            "--discovery",
            &format!("https://localhost:{}/taxii2/", addr.port()),
        ])
        .arg("--ca")
        .arg(ca.unwrap())
        .args(["--user", "taxii", "--password", &password.unwrap()])
        .args([
            "--member-identity",
            &cairn_stix::vocab::member_identity_id("uk-aisi"),
        ])
        .args(["--recipient", "jp-aisi"])
        .args([
            "--ai-extension",
            &cairn_stix::vocab::ai_incident_extension_id(),
        ])
        .arg("--incident-schema")
        .arg(root.join("crates/stix/schemas/ai-incident.schema.json"))
        .arg("--evaluation-schema")
        .arg(root.join("crates/stix/schemas/evaluation-result.schema.json"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("all TAXII checks passed"),
        "{stdout}\n{stderr}"
    );
    for refusal in [
        "is required: cairn's AI incident extension",
        "marked TLP:GREEN but was added to the TLP:AMBER collection",
        "not this member's identity",
        "objects of type \"indicator\" cannot be shared",
    ] {
        assert!(stdout.contains(refusal), "missing {refusal:?}:\n{stdout}");
    }

    // The incident the tool added is a cairn record jp-aisi opens.
    let added = stdout
        .lines()
        .find_map(|l| l.strip_prefix("added-record "))
        .unwrap()
        .trim();
    let stored = jp.get_incident(added, false).await.unwrap();
    let opened = jp.open(&stored).unwrap();
    assert_eq!(
        opened.incident().unwrap().title,
        "Utility chatbot gave wrong shut-off steps"
    );
    assert_eq!(opened.header.author.as_str(), "uk-aisi");
    assert_eq!(opened.header.recipients, ["jp-aisi", "uk-aisi"]);
    // eu-aio, not a recipient, is refused it.
    let eu = net.client("eu-aio");
    let refused = eu.get_incident(added, false).await.unwrap_err();
    assert!(
        refused.to_string().contains("not among its recipients"),
        "{refused}"
    );

    // Stopped, a record arrives; started again on the same state, the
    // gateway picks up from its cursor: the new record and nothing twice.
    following.abort();
    serving.abort();
    let _ = (following.await, serving.await);
    let green = gw
        .collections()
        .find("incidents-tlp-green")
        .unwrap()
        .id
        .clone();
    let count = |gw: &Gateway| {
        gw.store()
            .scan(&green, 0, 100_000, &|_| true)
            .unwrap()
            .0
            .len()
    };
    let before = count(&gw);
    drop(gw);
    let mut incident = json::incident_from_json(INCIDENT).unwrap();
    incident.title = "While the gateway was down".into();
    let p = jp.prepare_incident(&incident, &Share::Green).unwrap();
    let missed = Uuid::parse_str(&jp.submit_incident(&p).await.unwrap().record_id).unwrap();
    let (users, _) = Users::load_or_create(&state.join("users")).unwrap();
    let gw = Gateway::new(net.client("uk-aisi"), Store::open(&state).unwrap(), users).unwrap();
    let following = tokio::spawn(gw.clone().follow());
    let probe = Arc::clone(&gw);
    caught_up(&move || probe.has_record(missed)).await;
    assert_eq!(count(&gw), before + 1, "the new record, and nothing twice");
    following.abort();
}
