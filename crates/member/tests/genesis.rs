//! A network founded from member cards: the genesis names the directory
//! and the quorum rule, and is in force only once every founder (every
//! governance member) has signed it; a changed directory, a signature by
//! a non-founder or a missing one is refused, naming the problem.
#![allow(clippy::unwrap_used)]

use cairn_identity::directory::DirectoryDocument;
use cairn_identity::genesis::Genesis;
use cairn_identity::{Directory, Role, SigningKey};
use cairn_member::{LeafRequest, MemberDir, NewMember, init};

fn member(
    root: &std::path::Path,
    id: &str,
    roles: Vec<Role>,
) -> (MemberDir, cairn_member::MemberCard) {
    let dir = MemberDir::new(root.join(id));
    let card = init(
        &dir,
        &NewMember {
            id: id.into(),
            name: format!("{id} institute"),
            jurisdiction: "FR".into(),
            roles,
            trust_domain: "net.example".into(),
            first: LeafRequest {
                trust_domain: "net.example".into(),
                member: id.into(),
                name: "cli".into(),
                days: 30,
                server: false,
                dns: vec![],
                ips: vec![],
            },
        },
    )
    .unwrap();
    (dir, card)
}

fn key(dir: &MemberDir) -> SigningKey {
    let m = dir.member_file().unwrap();
    SigningKey::load(
        m.signing_key_id.clone(),
        &dir.signing_key(&m.signing_key_id),
    )
    .unwrap()
}

#[test]
fn a_genesis_is_in_force_once_every_founder_signed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let gov = vec![Role::Submitter, Role::Governance];
    let (a, ca) = member(tmp.path(), "aa-one", gov.clone());
    let (b, cb) = member(tmp.path(), "bb-two", gov);
    let (c, cc) = member(tmp.path(), "cc-three", vec![Role::Submitter]);
    let doc = DirectoryDocument {
        version: 1,
        trust_domain: "net.example".into(),
        members: vec![ca.member, cb.member, cc.member],
        services: vec![],
    };
    let text = doc.to_toml();
    assert!(
        Genesis::new(text.clone(), 0, "g")
            .unwrap_err()
            .to_string()
            .contains("quorum")
    );
    assert!(
        Genesis::new(text.clone(), 3, "g")
            .unwrap_err()
            .to_string()
            .contains("1 to the 2 governance members")
    );
    let mut g = Genesis::new(text, 2, "g").unwrap();
    let e = g.sign("cc-three", &key(&c), "g").unwrap_err();
    assert!(e.to_string().contains("not a founder"), "{e}");
    let e = g.sign("aa-one", &key(&b), "g").unwrap_err();
    assert!(e.to_string().contains("not a signing key of aa-one"), "{e}");
    g.sign("aa-one", &key(&a), "g").unwrap();
    let e = g.directory_in_force("g").unwrap_err();
    assert!(e.to_string().contains("bb-two missing"), "{e}");
    g.sign("bb-two", &key(&b), "g").unwrap();
    let dir = g.directory_in_force("g").unwrap();
    assert_eq!(dir.quorum(), Some(2));

    // Loaded from a file like any directory.
    let path = tmp.path().join("genesis.toml");
    std::fs::write(&path, g.to_toml()).unwrap();
    let loaded = Directory::load(&path).unwrap();
    assert!(loaded.member("cc-three").is_some());
    assert_eq!(loaded.quorum(), Some(2));

    // A changed directory, or a changed quorum, no longer verifies.
    let mut forged = g.clone();
    forged.directory = forged
        .directory
        .replace("cc-three institute", "cc-three (forged)");
    let e = forged.directory_in_force("g").unwrap_err();
    assert!(e.to_string().contains("does not verify"), "{e}");
    let mut forged = g.clone();
    forged.quorum = 1;
    assert!(forged.directory_in_force("g").is_err());
    std::fs::write(&path, forged.to_toml()).unwrap();
    assert!(Directory::load(&path).is_err(), "a service refuses it too");
    // Doubled or foreign signatures are refused.
    let mut doubled = g.clone();
    doubled.signatures.push(g.signatures[0].clone());
    assert!(
        doubled
            .missing("g")
            .unwrap_err()
            .to_string()
            .contains("signed twice")
    );
}
