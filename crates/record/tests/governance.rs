//! The directory governed through the log: proposals, approvals, the
//! quorum, and every refusal, over the example dev network (three
//! governance members, quorum 2).
#![allow(clippy::unwrap_used)]

use cairn_devpki::{DevPki, DevPkiSpec};
use cairn_identity::Role;
use cairn_identity::directory::DirectoryDocument;
use cairn_record::governance::{ChangeProblem, Governed};
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::record::sha256;
use cairn_record::{RecordDraft, RecordError, build};
use prost::Message as _;

struct Net {
    pki: DevPki,
    genesis: String,
}

impl Net {
    fn new() -> Self {
        let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
        let genesis = pki.founding_document().unwrap();
        Self { pki, genesis }
    }

    fn sign(
        &self,
        who: &str,
        content: pb::DirectoryChange,
        label: SharingLabel,
    ) -> pb::SignedRecord {
        let m = self.pki.members.iter().find(|m| m.spec.id == who).unwrap();
        let directory = cairn_identity::Directory::parse(self.genesis.as_bytes(), "g").unwrap();
        let mut draft =
            RecordDraft::new(RecordKind::DirectoryChange, label, content.encode_to_vec());
        if label != SharingLabel::TlpClear {
            draft.recipients =
                vec![cairn_record::Recipient::from_directory(&directory, who).unwrap()];
        }
        build(&draft, who, &m.signing_key).unwrap()
    }

    fn propose(
        &self,
        g: &Governed,
        who: &str,
        doc: &DirectoryDocument,
        quorum: u32,
    ) -> pb::SignedRecord {
        let content = pb::DirectoryChange {
            directory: doc.to_toml().into_bytes(),
            previous_digest: g.current().directory.digest().to_vec(),
            summary: "a change".into(),
            quorum,
            ..Default::default()
        };
        self.sign(who, content, SharingLabel::TlpClear)
    }

    fn approve(&self, g: &Governed, who: &str, proposal: &pb::SignedRecord) -> pb::SignedRecord {
        let id = record_id(proposal);
        let p = g.proposals().find(|p| p.id.to_string() == id).unwrap();
        let content = pb::DirectoryChange {
            previous_digest: g.current().directory.digest().to_vec(),
            approves: Some(pb::RecordId { uuid: id }),
            proposed_digest: sha256(p.document.as_bytes()).to_vec(),
            ..Default::default()
        };
        self.sign(who, content, SharingLabel::TlpClear)
    }
}

fn record_id(r: &pb::SignedRecord) -> String {
    let env = cairn_record::record::decode_envelope(&r.envelope).unwrap();
    let h = cairn_record::record::decode_header(&env.payload).unwrap();
    h.record_id.unwrap().uuid
}

/// The genesis's directory with `member` stripped of `role`.
fn without_role(net: &Net, member: &str, role: Role) -> DirectoryDocument {
    let mut doc = net.pki.directory.clone();
    doc.members
        .iter_mut()
        .filter(|m| m.id == member)
        .for_each(|m| m.roles.retain(|r| *r != role));
    doc
}

fn problem(r: Result<impl std::fmt::Debug, RecordError>) -> ChangeProblem {
    match r {
        Err(RecordError::Change(p)) => p,
        other => panic!("expected a change problem, got {other:?}"),
    }
}

#[test]
fn a_change_takes_effect_at_the_approval_that_reaches_the_quorum() {
    let net = Net::new();
    let mut g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    assert_eq!(g.current().directory.quorum(), Some(2));
    let doc = without_role(&net, "jp-aisi", Role::Submitter);
    let p = net.propose(&g, "uk-aisi", &doc, 2);
    let s = g.apply(g.check(&p).unwrap(), 10);
    assert_eq!((s.approvals, s.quorum, s.effective), (1, 2, None));
    // Under quorum: nothing applied.
    assert_eq!(g.current().version, 0);
    assert!(
        g.current()
            .directory
            .member("jp-aisi")
            .unwrap()
            .has_role(Role::Submitter)
    );
    assert_eq!(g.pending().count(), 1);

    let a = net.approve(&g, "eu-aio", &p);
    let s = g.apply(g.check(&a).unwrap(), 12);
    assert_eq!((s.approvals, s.effective), (2, Some(1)));
    let now = g.current();
    assert_eq!((now.version, now.effective_at), (1, Some(12)));
    assert!(
        !now.directory
            .member("jp-aisi")
            .unwrap()
            .has_role(Role::Submitter)
    );
    assert_eq!(now.directory.digest(), &sha256(doc.to_toml().as_bytes()));
    assert_eq!(g.pending().count(), 0);
    // As of a tree that does not yet hold the approval: the genesis.
    assert_eq!(g.at_tree_size(12).version, 0);
    assert_eq!(g.at_tree_size(13).version, 1);

    // An auditor replaying the same records reaches the same directory.
    let replayed = Governed::replay(&net.genesis, [(&p, 10), (&a, 12)]).unwrap();
    assert_eq!(
        replayed.current().directory.digest(),
        now.directory.digest()
    );
    // A resubmission is recognised as such.
    assert_eq!(
        g.resubmitted(&a).map(|id| id.to_string()),
        Some(record_id(&a))
    );
    assert_eq!(
        g.proposal_of(&g.resubmitted(&a).unwrap())
            .unwrap()
            .to_string(),
        record_id(&p)
    );
}

#[test]
fn a_second_concurrent_proposal_is_stale_once_the_first_wins() {
    let net = Net::new();
    let mut g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let first = net.propose(
        &g,
        "uk-aisi",
        &without_role(&net, "jp-aisi", Role::Submitter),
        2,
    );
    let second = net.propose(
        &g,
        "jp-aisi",
        &without_role(&net, "eu-aio", Role::Auditor),
        2,
    );
    g.apply(g.check(&first).unwrap(), 0);
    g.apply(g.check(&second).unwrap(), 1);
    let late_approval = net.approve(&g, "uk-aisi", &second);
    let a = net.approve(&g, "eu-aio", &first);
    g.apply(g.check(&a).unwrap(), 2);
    assert_eq!(g.current().version, 1);
    assert!(matches!(
        problem(g.check(&late_approval)),
        ChangeProblem::Stale { version: 1, .. }
    ));
    // So is one that claims the version now in force: the proposal itself
    // was made against version 0, and cannot take effect over version 1.
    let current_claimed = net.approve(&g, "uk-aisi", &second);
    assert!(
        matches!(
            problem(g.check(&current_claimed)),
            ChangeProblem::Stale { version: 1, .. }
        ),
        "a stale proposal was approvable with the current digest"
    );
    // A proposal made against version 0 now is stale too.
    let stale = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let again = net.propose(
        &stale,
        "jp-aisi",
        &without_role(&net, "eu-aio", Role::Auditor),
        2,
    );
    let p = problem(g.check(&again));
    assert!(p.to_string().contains("propose again"), "{p}");
}

#[test]
fn refusals_name_the_problem() {
    let net = Net::new();
    let mut g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let doc = without_role(&net, "jp-aisi", Role::Submitter);

    // Not TLP:CLEAR.
    let content = pb::DirectoryChange {
        directory: doc.to_toml().into_bytes(),
        previous_digest: g.current().directory.digest().to_vec(),
        quorum: 2,
        ..Default::default()
    };
    let sealed = net.sign("uk-aisi", content, SharingLabel::TlpGreen);
    assert_eq!(problem(g.check(&sealed)), ChangeProblem::NotClear);

    // A quorum the governance members cannot meet: removing two of three
    // governance members under a quorum of 2.
    let mut two_gone = without_role(&net, "jp-aisi", Role::Governance);
    two_gone
        .members
        .iter_mut()
        .filter(|m| m.id == "eu-aio")
        .for_each(|m| m.roles.retain(|r| *r != Role::Governance));
    let p = net.propose(&g, "uk-aisi", &two_gone, 2);
    assert_eq!(
        problem(g.check(&p)),
        ChangeProblem::Quorum {
            quorum: 2,
            governance: 1
        }
    );
    // Nothing changes.
    let same = net.propose(&g, "uk-aisi", &net.pki.directory, 2);
    assert_eq!(
        problem(g.check(&same)),
        ChangeProblem::NoChange { version: 0 }
    );
    // A malformed directory.
    let content = pb::DirectoryChange {
        directory: b"version = 1\ntrust_domain = \"Not A Domain\"\n".to_vec(),
        previous_digest: g.current().directory.digest().to_vec(),
        quorum: 1,
        ..Default::default()
    };
    let bad = net.sign("uk-aisi", content, SharingLabel::TlpClear);
    let p = problem(g.check(&bad));
    assert!(
        matches!(&p, ChangeProblem::BadDirectory { detail } if detail.contains("trust_domain")),
        "{p}"
    );

    // An approval of nothing known, a doubled one, the wrong digest.
    let real = net.propose(&g, "uk-aisi", &doc, 2);
    let unknown = net.approve(
        &{
            let mut h = g.clone();
            h.apply(h.check(&real).unwrap(), 0);
            h
        },
        "eu-aio",
        &real,
    );
    assert!(matches!(
        problem(g.check(&unknown)),
        ChangeProblem::UnknownProposal { .. }
    ));
    g.apply(g.check(&real).unwrap(), 0);
    let own = net.approve(&g, "uk-aisi", &real);
    assert!(matches!(
        problem(g.check(&own)),
        ChangeProblem::AlreadyApproved { .. }
    ));
    let mut wrong = pb::DirectoryChange::decode(
        cairn_record::verify(&unknown, &g.current().directory)
            .unwrap()
            .open("eu-aio", None)
            .unwrap()
            .content
            .as_slice(),
    )
    .unwrap();
    wrong.proposed_digest = vec![0; 32];
    let wrong = net.sign("eu-aio", wrong, SharingLabel::TlpClear);
    assert!(matches!(
        problem(g.check(&wrong)),
        ChangeProblem::DigestMismatch { .. }
    ));
}

#[test]
fn a_member_without_governance_cannot_propose_and_an_unsigned_genesis_founds_nothing() {
    let net = Net::new();
    let mut g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let doc = without_role(&net, "jp-aisi", Role::Governance);
    let p = net.propose(&g, "uk-aisi", &doc, 2);
    g.apply(g.check(&p).unwrap(), 0);
    let a = net.approve(&g, "eu-aio", &p);
    g.apply(g.check(&a).unwrap(), 1);
    let by_jp = net.propose(
        &g,
        "jp-aisi",
        &without_role(&net, "uk-aisi", Role::Auditor),
        1,
    );
    assert_eq!(
        problem(g.check(&by_jp)),
        ChangeProblem::NotGovernance {
            member: "jp-aisi".into(),
            version: 1
        }
    );

    // A genesis that is not fully signed is refused outright.
    let mut unsigned = cairn_identity::genesis::Genesis::parse(&net.genesis, "g").unwrap();
    unsigned.signatures.pop();
    assert!(Governed::from_genesis(&unsigned.to_toml(), "g").is_err());
}

#[test]
fn a_replay_stops_at_the_first_record_that_does_not_check() {
    let net = Net::new();
    let g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let p = net.propose(
        &g,
        "uk-aisi",
        &without_role(&net, "jp-aisi", Role::Submitter),
        2,
    );
    let mut tampered = p.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    let (at, e) = Governed::replay(&net.genesis, [(&p, 0), (&tampered, 1)]).unwrap_err();
    assert_eq!(at, 1);
    assert!(e.to_string().contains("body"), "{e}");
}

/// The genesis's directory with one edit to jp-aisi's first signing key.
fn with_key(
    net: &Net,
    edit: impl Fn(&mut cairn_identity::directory::SigningKeyDocument),
) -> DirectoryDocument {
    let mut doc = net.pki.directory.clone();
    let m = doc.members.iter_mut().find(|m| m.id == "jp-aisi").unwrap();
    edit(&mut m.signing_keys[0]);
    doc
}

fn key_refusal(net: &Net, g: &Governed, doc: &DirectoryDocument) -> String {
    match problem(g.check(&net.propose(g, "uk-aisi", doc, 2))) {
        p @ ChangeProblem::Key { .. } => p.to_string(),
        other => panic!("expected a key problem, got {other:?}"),
    }
}

#[test]
fn a_revocation_is_permanent_and_a_rotation_cannot_reach_into_the_past() {
    let net = Net::new();
    let mut g = Governed::from_genesis(&net.genesis, "genesis").unwrap();
    let valid_from = |net: &Net| {
        let m = net.pki.directory.members.iter().find(|m| m.id == "jp-aisi");
        let text = m.unwrap().signing_keys[0].valid_from.clone();
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let past = rfc(valid_from(&net) + time::Duration::hours(1));
    // A window cannot end before the proposal: that would be a revocation.
    let moved = with_key(&net, |k| k.valid_until = Some(past.clone()));
    let text = key_refusal(&net, &g, &moved);
    assert!(text.contains("revoke it for compromise"), "{text}");
    // Nor can a key id be bound to another key.
    let other = net.pki.members[0].signing_key.verifying_key().to_base64();
    let rebound = with_key(&net, |k| k.public_key = other.clone());
    assert!(key_refusal(&net, &g, &rebound).contains("names one key for ever"));
    // A compromise is in the past.
    let future = with_key(&net, |k| {
        k.compromised_since = Some("2999-01-01T00:00:00Z".into())
    });
    assert!(key_refusal(&net, &g, &future).contains("a compromise is in the past"));

    // Revoked by quorum: from then on the key signs nothing valid.
    let since = rfc(valid_from(&net) + time::Duration::hours(2));
    let revoked = with_key(&net, |k| k.compromised_since = Some(since.clone()));
    let p = net.propose(&g, "uk-aisi", &revoked, 2);
    g.apply(g.check(&p).unwrap(), 1);
    let a = net.approve(&g, "eu-aio", &p);
    assert_eq!(g.apply(g.check(&a).unwrap(), 2).effective, Some(1));
    // jp-aisi, a governance member, can no longer sign a change.
    let by_jp = net.propose(&g, "jp-aisi", &net.pki.directory, 2);
    match g.check(&by_jp) {
        Err(RecordError::SigningKey(e)) => {
            assert!(
                e.to_string().contains("is revoked: compromised since"),
                "{e}"
            )
        }
        other => panic!("a revoked key signed a change: {other:?}"),
    }
    // The revocation cannot be withdrawn, moved or hidden.
    let withdrawn = net.pki.directory.clone();
    assert!(key_refusal(&net, &g, &withdrawn).contains("cannot be withdrawn"));
    let hidden = {
        let mut d = revoked.clone();
        let m = d.members.iter_mut().find(|m| m.id == "jp-aisi").unwrap();
        let mut fresh = m.signing_keys[0].clone();
        fresh.id = "jp-aisi-sign-2".into();
        fresh.compromised_since = None;
        fresh.public_key = other.clone();
        m.signing_keys = vec![fresh];
        d
    };
    assert!(key_refusal(&net, &g, &hidden).contains("must stay listed"));
}
