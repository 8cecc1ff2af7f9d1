//! A member made with its own CA outside any devnet: its files and their
//! modes, its card, certificates issued directly, for a CSR and renewed —
//! all accepted by the directory verifier once the card is in a directory
//! — and what that verifier refuses: a certificate without client-auth
//! usage, and one issued under a sub-CA (the member CA's path length is 0).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;

use cairn_identity::directory::DirectoryDocument;
use cairn_identity::{Directory, DirectoryHandle, Role};
use cairn_member::{LeafRequest, MemberCard, MemberDir, MemberError, NewMember, ca, init, renew};
use cairn_mtls::DirectoryClientVerifier;
use rustls::server::danger::ClientCertVerifier as _;
use rustls_pki_types::{CertificateDer, UnixTime};

fn request(name: &str) -> LeafRequest {
    LeafRequest {
        trust_domain: "net.example".into(),
        member: "fr-inesia".into(),
        name: name.into(),
        days: 30,
        server: false,
        dns: vec![],
        ips: vec![],
    }
}

fn new_member() -> NewMember {
    NewMember {
        id: "fr-inesia".into(),
        name: "INESIA".into(),
        jurisdiction: "FR".into(),
        roles: vec![Role::Submitter, Role::Auditor],
        trust_domain: "net.example".into(),
        first: request("analyst"),
    }
}

fn verifier(card: &MemberCard) -> DirectoryClientVerifier {
    let doc = DirectoryDocument {
        version: 1,
        trust_domain: card.trust_domain.clone(),
        members: vec![card.member.clone()],
        services: vec![],
    };
    let dir = Directory::from_document(doc, "test").unwrap();
    DirectoryClientVerifier::new(DirectoryHandle::new(dir))
}

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    cairn_identity::parse_certificates(pem.as_bytes()).unwrap()
}

fn accepts(
    v: &DirectoryClientVerifier,
    pem: &str,
    intermediates: &[CertificateDer<'static>],
) -> Result<(), String> {
    let c = chain(pem);
    v.verify_client_cert(&c[0], intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_member_is_made_in_its_own_layout_and_its_certificates_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = MemberDir::new(tmp.path().join("inesia"));
    let card = init(&dir, &new_member()).unwrap();
    for private in [dir.ca_key(), dir.sealing_key(), dir.tls("analyst").1] {
        assert_eq!(mode(&private), 0o600, "{}", private.display());
    }
    assert_eq!(mode(&dir.path("ca-offline")), 0o700);
    let m = dir.member_file().unwrap();
    assert_eq!(mode(&dir.signing_key(&m.signing_key_id)), 0o600);
    let text = std::fs::read_to_string(dir.path("card.toml")).unwrap();
    assert!(!text.contains("PRIVATE"), "the card holds no secret");
    let parsed = MemberCard::parse(&text, "card.toml").unwrap();
    assert_eq!(parsed.member.id, "fr-inesia");
    let files = dir.connect_files("analyst").unwrap();
    assert_eq!(files.member, "fr-inesia");

    let v = verifier(&card);
    let cert = std::fs::read_to_string(&files.cert).unwrap();
    accepts(&v, &cert, &[]).unwrap();
    let parsed_cert = cairn_identity::parse_certificates(cert.as_bytes()).unwrap();
    let who = cairn_mtls::claimed_identity(&parsed_cert[0], "net.example").unwrap();
    assert_eq!(
        who.to_uri("net.example"),
        "spiffe://net.example/member/fr-inesia/analyst"
    );
    assert!(
        ca::not_after(&cert).unwrap() < time::OffsetDateTime::now_utc() + time::Duration::days(91)
    );

    // Issued for a CSR whose key never left the program's machine.
    let (key, csr) = ca::csr(&request("ci-uploader")).unwrap();
    assert!(key.contains("PRIVATE KEY") && csr.contains("CERTIFICATE REQUEST"));
    let ca = init::ca_of(&dir).unwrap();
    let issued = ca.issue_for_csr(&csr, &request("ci-uploader")).unwrap();
    assert!(issued.key_pem.is_none());
    accepts(&v, &issued.cert_pem, &[]).unwrap();
    assert!(
        ca.issue_for_csr(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            &request("x1")
        )
        .is_err()
    );

    // Renewed: a new key and certificate; with the CA key gone, refused.
    let before = std::fs::read_to_string(&files.key).unwrap();
    renew(&dir, &request("analyst")).unwrap();
    assert_ne!(before, std::fs::read_to_string(&files.key).unwrap());
    accepts(&v, &std::fs::read_to_string(&files.cert).unwrap(), &[]).unwrap();
    std::fs::rename(dir.path("ca-offline"), tmp.path().join("usb-stick")).unwrap();
    let e = renew(&dir, &request("analyst")).unwrap_err();
    assert!(matches!(e, MemberError::CaOffline { .. }), "{e}");
    assert!(e.to_string().contains("cairn member csr"), "{e}");
}

#[test]
fn the_verifier_enforces_client_usage_and_the_ca_path_length() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = MemberDir::new(tmp.path().join("inesia"));
    let card = init(&dir, &new_member()).unwrap();
    let v = verifier(&card);
    let ca_pem = std::fs::read_to_string(dir.path("ca.pem")).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.ca_key()).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let leaf = |eku: Vec<rcgen::ExtendedKeyUsagePurpose>,
                by: &rcgen::Issuer<'_, rcgen::KeyPair>| {
        let mut p = rcgen::CertificateParams::default();
        p.subject_alt_names = vec![rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("spiffe://net.example/member/fr-inesia/rogue")
                .unwrap(),
        )];
        p.extended_key_usages = eku;
        p.use_authority_key_identifier_extension = true;
        let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        p.signed_by(&k, by).unwrap().pem()
    };
    // Server-only usage: refused for a client.
    let server_only = leaf(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth], &issuer);
    let e = accepts(&v, &server_only, &[]).unwrap_err();
    assert!(e.contains("does not chain to its CA"), "{e}");
    // A sub-CA under the member CA (path length 0) cannot vouch for anyone.
    let mut sub = rcgen::CertificateParams::default();
    sub.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    sub.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    sub.use_authority_key_identifier_extension = true;
    let sub_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let sub_cert = sub.signed_by(&sub_key, &issuer).unwrap();
    let sub_issuer = rcgen::Issuer::new(sub, sub_key);
    let under_sub = leaf(
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        &sub_issuer,
    );
    let e = accepts(&v, &under_sub, &[sub_cert.der().clone()]).unwrap_err();
    assert!(
        e.contains("1 intermediate CA(s), but its CA in the directory allows 0"),
        "{e}"
    );
    // The same usage straight from the member CA is fine.
    let fine = leaf(vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth], &issuer);
    accepts(&v, &fine, &[]).unwrap();
}

#[test]
fn nothing_is_made_for_a_bad_member_or_over_an_existing_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = MemberDir::new(tmp.path().join("m"));
    let mut bad = new_member();
    bad.jurisdiction = "France".into();
    let e = init(&dir, &bad).unwrap_err();
    assert!(e.to_string().contains("member.jurisdiction"), "{e}");
    assert!(!dir.root().exists(), "a refused member writes nothing");
    let mut bad = new_member();
    bad.first.days = 2000;
    assert!(
        init(&dir, &bad)
            .unwrap_err()
            .to_string()
            .contains("825 days")
    );
    init(&dir, &new_member()).unwrap();
    let e = init(&dir, &new_member()).unwrap_err();
    assert!(matches!(e, MemberError::Exists { .. }), "{e}");
    let e = MemberCard::parse(
        "card_version = 1\ntrust_domain = \"net.example\"\n",
        "x.toml",
    )
    .unwrap_err();
    assert!(e.to_string().contains("member card x.toml"), "{e}");
}
