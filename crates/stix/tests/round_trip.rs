//! A record exported to STIX and imported back is the same incident with
//! the same share; corrections and retractions become versions of one
//! object; bad objects are refused naming the property at fault.
#![allow(clippy::unwrap_used)]

use cairn_client::{Share, json, open_record, prepare};
use cairn_devpki::{DevPki, DevPkiSpec};
use cairn_stix::{StixError, export, incident_from_object, objects_of, vocab};
use serde_json::Value;
use uuid::Uuid;

const INCIDENT: &str = include_str!("../../../examples/incident.json");

struct Net {
    pki: DevPki,
    directory: cairn_identity::Directory,
}

fn net() -> Net {
    let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
    let directory = pki.directory().unwrap();
    Net { pki, directory }
}

fn opened(net: &Net, prepared: &cairn_client::Prepared) -> cairn_client::Opened {
    let jp = net.pki.member("jp-aisi").unwrap();
    open_record(
        &net.directory,
        &prepared.record,
        "jp-aisi",
        Some(&jp.sealing_key),
    )
    .unwrap()
}

fn nothing(_: Uuid) -> Option<Value> {
    None
}

#[test]
fn an_incident_round_trips_with_its_share() {
    let net = net();
    let uk = net.pki.member("uk-aisi").unwrap();
    let incident = json::incident_from_json(INCIDENT).unwrap();
    let share = Share::Amber(vec!["jp-aisi".into()]);
    let p = prepare::incident(
        &net.directory,
        "uk-aisi",
        &uk.signing_key,
        &incident,
        &share,
    )
    .unwrap();
    let record = opened(&net, &p);
    let out = objects_of(&record, &nothing).unwrap();
    assert_eq!(out.objects.len(), 1);
    let obj = &out.objects[0];
    assert_eq!(obj["type"], "incident");
    assert_eq!(obj["name"], incident.title);
    assert_eq!(
        obj["object_marking_refs"][0],
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
    );
    assert_eq!(obj["created_by_ref"], vocab::member_identity_id("uk-aisi"));
    let back = incident_from_object(obj, "uk-aisi").unwrap();
    assert_eq!(&back.incident, record.incident().unwrap());
    assert_eq!(
        back.share,
        Share::Amber(vec!["jp-aisi".into(), "uk-aisi".into()])
    );
    // Another member may not share it as its own.
    let e = incident_from_object(obj, "jp-aisi").unwrap_err();
    assert!(
        matches!(e, StixError::Property { ref property, .. } if property == "created_by_ref"),
        "{e}"
    );
}

#[test]
fn a_correction_is_a_new_version_and_a_retraction_revokes_it() {
    let net = net();
    let uk = net.pki.member("uk-aisi").unwrap();
    let mut incident = json::incident_from_json(INCIDENT).unwrap();
    let p1 = prepare::incident(
        &net.directory,
        "uk-aisi",
        &uk.signing_key,
        &incident,
        &Share::Green,
    )
    .unwrap();
    let v1 = objects_of(&opened(&net, &p1), &nothing)
        .unwrap()
        .objects
        .remove(0);
    incident.title = "Corrected title".into();
    let id1 = p1.record_id.clone();
    let p2 = prepare::incident_with(
        &net.directory,
        "uk-aisi",
        &uk.signing_key,
        &incident,
        &Share::Green,
        Some(&id1),
    )
    .unwrap();
    let first = v1.clone();
    let lookup = move |_: Uuid| Some(first.clone());
    let v2 = objects_of(&opened(&net, &p2), &lookup)
        .unwrap()
        .objects
        .remove(0);
    assert_eq!(v2["id"], v1["id"]);
    assert_eq!(v2["created"], v1["created"]);
    assert!(v2["modified"].as_str().unwrap() > v1["modified"].as_str().unwrap());
    assert_eq!(v2["name"], "Corrected title");
    let h = opened(&net, &p2).header;
    let v3 = export::revoked(&v2, &h, "duplicate report");
    assert_eq!(v3["revoked"], true);
    assert!(v3["modified"].as_str().unwrap() > v2["modified"].as_str().unwrap());
    assert!(incident_from_object(&v3, "uk-aisi").is_err());
}

#[test]
fn bad_objects_are_refused_naming_the_problem() {
    let net = net();
    let uk = net.pki.member("uk-aisi").unwrap();
    let incident = json::incident_from_json(INCIDENT).unwrap();
    let p = prepare::incident(
        &net.directory,
        "uk-aisi",
        &uk.signing_key,
        &incident,
        &Share::Green,
    )
    .unwrap();
    let good = objects_of(&opened(&net, &p), &nothing)
        .unwrap()
        .objects
        .remove(0);
    let ext = vocab::ai_incident_extension_id();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change)> = vec![
        ("type", Box::new(|o| o["type"] = "indicator".into())),
        (
            "spec_version",
            Box::new(|o| o["spec_version"] = "2.0".into()),
        ),
        ("id", Box::new(|o| o["id"] = "incident--not-a-uuid".into())),
        ("created", Box::new(|o| o["created"] = "yesterday".into())),
        (
            "markings",
            Box::new(|o| o["object_marking_refs"] = serde_json::json!([])),
        ),
        (
            "markings",
            Box::new(|o| {
                o["object_marking_refs"] =
                    serde_json::json!(["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"])
            }),
        ),
        (
            "recipients",
            Box::new(move |o| o["extensions"][&ext]["recipients"] = serde_json::json!(["jp-aisi"])),
        ),
        (
            "extension",
            Box::new(|o| o["extensions"] = serde_json::json!({})),
        ),
        ("name", Box::new(|o| o["name"] = "another title".into())),
        (
            "content",
            Box::new(|o| {
                let ext = vocab::ai_incident_extension_id();
                o["extensions"][&ext]["incident"]["severity"] = "SEVERITY_APOCALYPTIC".into();
            }),
        ),
    ];
    for (what, change) in cases {
        let mut o = good.clone();
        change(&mut o);
        let e = incident_from_object(&o, "uk-aisi").expect_err(what);
        assert!(!e.to_string().is_empty());
        eprintln!("{what}: {e}");
    }
    assert!(incident_from_object(&good, "uk-aisi").is_ok());
}
