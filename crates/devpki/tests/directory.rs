//! The directory as the dev PKI writes it: parsing, the errors that name
//! file and field, validity windows, and the handle's trust-domain guard.
#![allow(clippy::unwrap_used)]

use cairn_devpki::{DevPki, DevPkiSpec};
use cairn_identity::directory::KeyLookupError;
use cairn_identity::{Directory, DirectoryHandle};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn example() -> (DevPki, String) {
    let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
    let text = pki.directory.to_toml();
    (pki, text)
}

fn parse_err(text: &str) -> String {
    Directory::parse(text.as_bytes(), "net.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn round_trips_through_toml() {
    let (_, text) = example();
    let dir = Directory::parse(text.as_bytes(), "net.toml").unwrap();
    assert_eq!(dir.trust_domain(), "cairn.example");
    assert_eq!(dir.member("eu-aio").unwrap().jurisdiction, "EU");
    assert_eq!(
        dir.digest(),
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()
    );
}

#[test]
fn errors_name_the_file_and_field() {
    let (pki, text) = example();
    let jp = "jurisdiction = \"JP\"";
    assert!(text.contains(jp));
    let e = parse_err(&text.replacen(jp, "jurisdiction = \"XX\"", 1));
    assert!(e.starts_with("net.toml: members[1].jurisdiction:"), "{e}");

    let mut doc = pki.directory.clone();
    doc.members[2].signing_keys[0].public_key = "AAAA".into();
    let e = parse_err(&doc.to_toml());
    assert!(
        e.contains("members[2].signing_keys[0].public_key: key is 3 bytes, expected 32"),
        "{e}"
    );

    let mut doc = pki.directory.clone();
    doc.members[0].signing_keys[0].valid_from = "yesterday".into();
    assert!(
        parse_err(&doc.to_toml())
            .contains("members[0].signing_keys[0].valid_from: not an RFC 3339")
    );

    let mut doc = pki.directory.clone();
    doc.members[0].ca_certificate =
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
    assert!(parse_err(&doc.to_toml()).contains("members[0].ca_certificate: not a valid X.509"));

    let mut doc = pki.directory.clone();
    doc.members[1].id = doc.members[0].id.clone();
    assert!(parse_err(&doc.to_toml()).contains("duplicate member id"));

    let mut doc = pki.directory.clone();
    doc.members[0].roles.clear();
    assert!(
        parse_err(&doc.to_toml()).contains("members[0].roles: a member needs at least one role")
    );

    // A leaf certificate is not a CA.
    let mut doc = pki.directory.clone();
    doc.members[0].ca_certificate = pki.members[0].tls.cert_pem.clone();
    assert!(parse_err(&doc.to_toml()).contains("is not a CA"));

    assert!(
        parse_err("version = 2\ntrust_domain = \"x.example\"")
            .contains("version: unsupported version 2")
    );
    let e = parse_err("version = 1\ntrust_domain = \"x.example\"\nsurprise = 1");
    assert!(
        e.contains("document:") && e.contains("unknown field `surprise`"),
        "{e}"
    );
    assert!(parse_err("version = 1\ntrust_domain = \"Bad Domain\"").contains("trust_domain:"));
    let e = Directory::parse(&[0xff, 0xfe], "bin.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bin.toml: document: not UTF-8"), "{e}");
}

#[test]
fn signing_keys_respect_their_validity_window() {
    let (pki, _) = example();
    let mut doc = pki.directory.clone();
    doc.members[0].signing_keys[0].valid_from = "2026-01-01T00:00:00Z".into();
    doc.members[0].signing_keys[0].valid_until = Some("2026-06-01T00:00:00Z".into());
    let id = doc.members[0].id.clone();
    let dir = Directory::from_document(doc, "t").unwrap();
    let m = dir.member(&id).unwrap();
    let key_id = m.signing_keys[0].id.clone();
    let t = |s: &str| OffsetDateTime::parse(s, &Rfc3339).unwrap();
    assert!(m.signing_key_at(&key_id, t("2026-03-01T00:00:00Z")).is_ok());
    assert!(matches!(
        m.signing_key_at(&key_id, t("2025-12-31T23:59:59Z")),
        Err(KeyLookupError::NotValidAt { .. })
    ));
    assert!(matches!(
        m.signing_key_at(&key_id, t("2026-06-01T00:00:00Z")),
        Err(KeyLookupError::NotValidAt { .. })
    ));
    assert!(matches!(
        m.signing_key_at("nope", t("2026-03-01T00:00:00Z")),
        Err(KeyLookupError::UnknownKey { .. })
    ));
}

#[test]
fn reload_cannot_change_the_trust_domain() {
    let (pki, _) = example();
    let handle = DirectoryHandle::new(pki.directory().unwrap());
    let mut doc = pki.directory.clone();
    doc.trust_domain = "other.example".into();
    let other = Directory::from_document(doc, "t").unwrap();
    assert!(handle.replace(other).is_err());
}
