//! STIX and TAXII from the CLI against a running `cairn devnet`: `cairn
//! incident export --stix` writes a bundle of what the member can open,
//! `cairn incident import --stix` shares a bundle's incidents (all or
//! nothing), and `cairn taxii serve` serves what arrives to a local tool
//! over HTTPS with basic authentication.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use common::{Devnet, example, text};
use serde_json::{Value, json};

const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";

#[test]
fn incidents_are_exported_and_imported_as_stix_bundles() {
    let net = Devnet::start();
    let file = example("incident.json");
    let sent = net.ok(
        "uk-aisi",
        &[
            "incident", "submit", &file, "--label", "amber", "--to", "jp-aisi",
        ],
    );
    let record = sent["recordId"]
        .as_str()
        .or(sent["record_id"].as_str())
        .unwrap()
        .to_owned();
    let out = net.dir.join("jp.json");
    let path = out.display().to_string();
    net.ok("jp-aisi", &["incident", "export", "--stix", "--out", &path]);
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(bundle["type"], "bundle");
    let objects = bundle["objects"].as_array().unwrap();
    let incident = objects
        .iter()
        .find(|o| o["type"] == "incident")
        .unwrap()
        .clone();
    assert_eq!(incident["object_marking_refs"], json!([AMBER]));
    assert_eq!(
        incident["external_references"][0]["external_id"],
        record.as_str()
    );
    assert!(objects.iter().any(|o| o["id"] == AMBER));
    assert!(objects.iter().filter(|o| o["type"] == "identity").count() >= 4);

    // jp-aisi may not share uk-aisi's incident as its own: nothing is sent.
    let refused = net.refused("jp-aisi", &["incident", "import", "--stix", &path]);
    assert!(refused.contains("nothing was submitted"), "{refused}");
    assert!(refused.contains("not this member's identity"), "{refused}");

    // uk-aisi shares a new incident from a bundle.
    let mut fresh = incident;
    fresh["id"] = json!("incident--6f1b0d8e-2d4a-4c3e-9a51-0f3c2b7e9d11");
    fresh["name"] = json!("Imported from a STIX bundle");
    let ext = fresh["extensions"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|e| e.get("incident").is_some())
        .unwrap();
    ext["incident"]["title"] = json!("Imported from a STIX bundle");
    let mine = net.dir.join("uk.json");
    std::fs::write(
        &mine,
        json!({"type": "bundle", "id": "bundle--6f1b0d8e-2d4a-4c3e-9a51-0f3c2b7e9d12", "objects": [fresh]}).to_string(),
    )
    .unwrap();
    let mine = mine.display().to_string();
    let checked = net.ok(
        "uk-aisi",
        &["incident", "import", "--stix", &mine, "--dry-run"],
    );
    assert_eq!(checked["imported"][0]["submitted"], false);
    let shared = net.ok("uk-aisi", &["incident", "import", "--stix", &mine]);
    let id = shared["imported"][0]["record_id"].as_str().unwrap();
    let opened = net.ok("jp-aisi", &["incident", "get", id, "--open"]);
    assert!(
        opened.to_string().contains("Imported from a STIX bundle"),
        "{opened}"
    );

    // A file that is not a bundle is refused before anything else.
    std::fs::write(&out, "{\"type\": \"indicator\"}").unwrap();
    let refused = net.refused("uk-aisi", &["incident", "import", "--stix", &path]);
    assert!(refused.contains("is not a STIX bundle"), "{refused}");
}

/// `GET path` over HTTPS (TLS 1.3, trusting `ca`) with basic auth; the
/// status and body.
fn get(addr: &str, ca: &str, auth: &str, path: &str) -> (u16, String) {
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in cairn_mtls::parse_certificates(&std::fs::read(ca).unwrap()).unwrap() {
        roots.add(cert).unwrap();
    }
    let config =
        tokio_rustls::rustls::ClientConfig::builder_with_provider(cairn_mtls::crypto_provider())
            .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = tokio_rustls::rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = tokio_rustls::rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nAccept: application/taxii+json;version=2.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn taxii_serve_gives_a_local_tool_what_arrives() {
    let net = Devnet::start();
    let state = net.dir.join("taxii-jp");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args([
        "--json",
        "taxii",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--member",
        "jp-aisi",
    ])
    .arg("--state")
    .arg(&state)
    .arg("--devnet")
    .arg(&net.dir);
    let (mut child, ready) = common::spawn_ready(cmd);
    let url = ready["discovery"].as_str().unwrap();
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches("/taxii2/")
        .to_owned();
    let ca = ready["ca"].as_str().unwrap();
    let password = ready["password"].as_str().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("taxii:{password}"));
    let auth = format!("Basic {b64}");
    let (status, body) = get(&addr, ca, "Basic dGF4aWk6bm8=", "/taxii2/");
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&addr, ca, &auth, "/taxii2/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("cairn TAXII gateway of jp-aisi"), "{body}");

    let sent = net.run(
        "uk-aisi",
        &[
            "incident",
            "submit",
            &example("incident.json"),
            "--label",
            "amber",
            "--to",
            "jp-aisi",
        ],
    );
    assert!(sent.status.success(), "{}", text(&sent));
    let objects = "/cairn/collections/incidents-tlp-amber/objects/";
    let mut body = String::new();
    for _ in 0..100 {
        body = get(&addr, ca, &auth, objects).1;
        if body.contains("Assistant gave lethal dosage advice") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        body.contains("Assistant gave lethal dosage advice"),
        "{body}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
