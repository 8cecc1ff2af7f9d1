//! Runs the TAXII gateway's part of the bad-input catalogue
//! (`[[taxii_case]]` in `tests/bad-input.toml`) against uk-aisi's gateway
//! over a running network: each request is refused with the HTTP status
//! TAXII 2.1 names and a TAXII error message naming the problem (or, for
//! an added object, its status resource lists it as a failure with the
//! reason), and nothing reaches the network: the audit log stays empty.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use cairn_client::{Share, json};
use cairn_taxii::{Gateway, Store, Users};
use cairn_tests::Net;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[derive(serde::Deserialize)]
struct Case {
    input: String,
    http: u16,
    says: String,
}

#[derive(serde::Deserialize)]
struct Catalogue {
    taxii_case: Vec<Case>,
}

const TAXII: &str = "application/taxii+json;version=2.1";
const PASSWORD: &str = "a-long-local-password";
const TLP1_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";

/// A valid STIX incident by uk-aisi, TLP:AMBER to jp-aisi.
fn incident(net: &Net) -> Value {
    let uk = net.client("uk-aisi");
    let content = json::incident_from_json(include_str!("../../examples/incident.json")).unwrap();
    let p = uk
        .prepare_incident(&content, &Share::Amber(vec!["jp-aisi".into()]))
        .unwrap();
    let jp = net.client("jp-aisi");
    let stored = cairn_proto::common::v1::StoredRecord {
        record: Some(p.record.clone()),
        ..Default::default()
    };
    let opened = jp.open(&stored).unwrap();
    let mut obj = cairn_stix::objects_of(&opened, &|_| None)
        .unwrap()
        .objects
        .remove(0);
    obj["id"] = json!(format!("incident--{}", uuid::Uuid::new_v4()));
    obj
}

/// The object of a per-object case.
fn broken(input: &str, good: &Value) -> Value {
    let ext = cairn_stix::vocab::ai_incident_extension_id();
    let green = cairn_stix::vocab::marking_id(cairn_record::pb::SharingLabel::TlpGreen).unwrap();
    let amber = cairn_stix::vocab::marking_id(cairn_record::pb::SharingLabel::TlpAmber).unwrap();
    let mut o = good.clone();
    match input {
        "object_indicator" => {
            o = json!({"type": "indicator", "spec_version": "2.1", "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"})
        }
        "incident_without_extension" => o["extensions"] = json!({}),
        "incident_marking_of_another_collection" => {
            o["object_marking_refs"] = json!([green]);
            o["extensions"][&ext]
                .as_object_mut()
                .unwrap()
                .remove("recipients");
        }
        "incident_tlp1_marking" => o["object_marking_refs"] = json!([TLP1_AMBER]),
        "incident_two_markings" => o["object_marking_refs"] = json!([amber, green]),
        "incident_granular_markings" => {
            o["granular_markings"] = json!([{"marking_ref": amber, "selectors": ["name"]}]);
        }
        "incident_recipients_on_green" => o["object_marking_refs"] = json!([green]),
        "incident_amber_without_recipients" => {
            o["extensions"][&ext]
                .as_object_mut()
                .unwrap()
                .remove("recipients");
        }
        "incident_unknown_recipient" => {
            o["extensions"][&ext]["recipients"] = json!(["nobody-aisi"]);
        }
        "incident_of_another_author" => {
            o["created_by_ref"] = json!(cairn_stix::vocab::member_identity_id("jp-aisi"));
        }
        "incident_revoked" => o["revoked"] = json!(true),
        "incident_bad_id" => o["id"] = json!("incident--12345"),
        "incident_spec_version_2_0" => o["spec_version"] = json!("2.0"),
        "incident_name_differs_from_title" => o["name"] = json!("another title"),
        "incident_unknown_severity" => {
            o["extensions"][&ext]["incident"]["severity"] = json!("SEVERITY_APOCALYPTIC");
        }
        "incident_occurred_in_the_future" => {
            o["extensions"][&ext]["incident"]["occurred_at"] = json!("2099-01-01T00:00:00Z");
        }
        other => panic!("no object for case {other}"),
    }
    o
}

fn basic(user: &str, password: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b}")
}

/// The request a case sends.
fn request(input: &str, good: &Value) -> Request<Body> {
    let objects = "/cairn/collections/incidents-tlp-amber/objects/";
    let (mut method, mut path) = ("GET", objects.to_owned());
    let (mut user, mut password) = ("taxii", PASSWORD);
    let (mut accept, mut content_type) = (TAXII, TAXII);
    let mut body = String::new();
    let mut auth = true;
    match input {
        "no_credentials" => auth = false,
        "wrong_password" => password = "not-the-password",
        "accept_html" => accept = "text/html",
        "unknown_collection" => path = "/cairn/collections/no-such/objects/".into(),
        "limit_zero" => path.push_str("?limit=0"),
        "added_after_not_a_time" => path.push_str("?added_after=yesterday"),
        "next_not_given_by_server" => path.push_str("?next=abc"),
        "match_version_unknown" => path.push_str("?match%5Bversion%5D=latest"),
        "read_above_user_label" => {
            user = "misp";
            path = "/cairn/collections/incidents-tlp-red/objects/".into();
        }
        "unknown_object" => {
            path.push_str("incident--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/");
        }
        add => {
            method = "POST";
            body = json!({ "objects": [good] }).to_string();
            match add {
                "add_as_json" => content_type = "application/json",
                "add_not_json" => body = "{not json".into(),
                "add_no_objects_list" => body = json!({"type": "bundle"}).to_string(),
                "add_empty_objects" => body = json!({"objects": []}).to_string(),
                "add_too_large" => body = " ".repeat(cairn_taxii::MAX_CONTENT_LENGTH + 1),
                "add_to_network_collection" => path = "/cairn/collections/network/objects/".into(),
                "add_to_collection_above_label" => user = "misp",
                object => body = json!({ "objects": [broken(object, good)] }).to_string(),
            }
        }
    }
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("accept", accept)
        .header("content-type", content_type);
    if auth {
        r = r.header("authorization", basic(user, password));
    }
    r.body(Body::from(body)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogued_taxii_refusal_is_precise_and_submits_nothing() {
    let cases = toml::from_str::<Catalogue>(include_str!("../bad-input.toml"))
        .unwrap()
        .taxii_case;
    assert!(
        cases.len() >= 30,
        "the TAXII catalogue holds {} cases",
        cases.len()
    );
    let net = Net::start(Duration::from_secs(5)).await;
    let state = net.tmp.path().join("taxii");
    let store = Store::open(&state).unwrap();
    let users = Users::parse(
        &state.join("users"),
        &format!("taxii:{PASSWORD}:red\nmisp:{PASSWORD}:green\n"),
    )
    .unwrap();
    let gw: Arc<Gateway> = Gateway::new(net.client("uk-aisi"), store, users).unwrap();
    let app = cairn_taxii::http::router(gw);
    let good = incident(&net);
    let mut failures = Vec::new();
    for c in &cases {
        let response = app.clone().oneshot(request(&c.input, &good)).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get("content-type").cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let said = if status == StatusCode::ACCEPTED {
            if body["failure_count"] == 1 && body["success_count"] == 0 {
                body["failures"][0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                format!("not one failure: {body}")
            }
        } else {
            let typed = content_type.is_some_and(|t| t == TAXII);
            if !typed || body["http_status"].as_str() != Some(status.as_str()) {
                failures.push(format!("{}: not a TAXII error message: {body}", c.input));
            }
            body["description"].as_str().unwrap_or_default().to_owned()
        };
        if status.as_u16() != c.http {
            failures.push(format!(
                "{}: HTTP {status}, not {}: {said}",
                c.input, c.http
            ));
        } else if !said.contains(&c.says) {
            failures.push(format!("{}: {said:?} does not say {:?}", c.input, c.says));
        }
    }
    // Nothing was submitted.
    assert_eq!(
        net.log_size("eu-aio").await,
        0,
        "a refused object reached the network"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
