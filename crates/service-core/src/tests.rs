//! The core on its own: an embedded store, the example directory, no audit log
//! (its address answers nothing, so receipts stay pending). Submitting,
//! idempotency, refusals that store nothing, and reads under every label.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use cairn_identity::Role;
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store};
use cairn_testkit::{MEMBERS, Pki};

use crate::{RecordCore, RecordCoreConfig, ServiceError, ServicePolicy, ServiceSchema, SubmitKind};

/// No schema of its own.
#[derive(Debug)]
struct NoSchema;
impl ServiceSchema for NoSchema {}

/// An erasure order for `record` by `by`, signed with its key, now.
fn order(pki: &Pki, by: &str, record: &str) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc();
    cairn_testkit::erasure_order(&pki.signing_key(by), by, record, now)
}

struct Core {
    pki: Pki,
    core: Arc<RecordCore>,
}

async fn core() -> Core {
    let pki = Pki::example();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(EmbeddedStoreConfig::new(pki.tmp.path().join("store"))).unwrap(),
    );
    let policy = ServicePolicy {
        service: "intake",
        kinds: vec![(RecordKind::Incident, vec![Role::Submitter])],
        schema: Arc::new(NoSchema),
    };
    let config = RecordCoreConfig {
        receipt_wait: Duration::from_millis(20),
        ..RecordCoreConfig::default()
    };
    // Nothing listens on port 9 of loopback: the outbox keeps retrying.
    let audit = AuditLogClient::new(
        tonic::transport::Channel::from_static("http://127.0.0.1:9").connect_lazy(),
    );
    let core = RecordCore::open(store, pki.handle.clone(), policy, config, audit)
        .await
        .unwrap();
    Core { pki, core }
}

fn id_of(r: &pb::SignedRecord) -> pb::RecordId {
    let env = cairn_record::record::decode_envelope(&r.envelope).unwrap();
    cairn_record::record::decode_header(&env.payload)
        .unwrap()
        .record_id
        .unwrap()
}

impl Core {
    async fn get(&self, member: &str, id: &pb::RecordId) -> Result<pb::StoredRecord, ServiceError> {
        self.core.get(&self.pki.peer(member), Some(id), false).await
    }

    async fn listed(&self, member: &str) -> usize {
        let (records, _) = self
            .core
            .list(&self.pki.peer(member), &pb::RecordFilter::default(), 0, "")
            .await
            .unwrap();
        records.len()
    }
}

#[tokio::test]
async fn an_accepted_record_is_stored_once_and_pending_without_an_audit_log() {
    let c = core().await;
    let (_, rec) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "t",
    );
    let peer = c.pki.peer("uk-aisi");
    let out = c
        .core
        .submit(&peer, rec.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    assert!(out.receipt_pending && !out.duplicate && out.receipt.is_none());
    // The same bytes again: the same record, a duplicate.
    let again = c
        .core
        .submit(&peer, rec.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.record_id, out.record_id);
    // Another record under the same id: ALREADY_EXISTS, nothing changed.
    let (mut draft, _) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "other",
    );
    draft.record_id = uuid::Uuid::parse_str(&out.record_id).unwrap();
    let other = cairn_record::build(&draft, "uk-aisi", &c.pki.signing_key("uk-aisi")).unwrap();
    let e = c
        .core
        .submit(&peer, other, SubmitKind::SubmitOrCorrect)
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::IdTaken { .. }), "{e}");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    let stored = c.get("jp-aisi", &id_of(&rec)).await.unwrap();
    assert_eq!(stored.record.unwrap(), rec);
    assert_eq!(c.listed("uk-aisi").await, 1);
}

#[tokio::test]
async fn a_refused_record_stores_nothing() {
    let c = core().await;
    let (_, rec) = c.pki.incident(
        "jp-aisi",
        SharingLabel::TlpGreen,
        &["eu-aio", "jp-aisi", "uk-aisi"],
        "t",
    );
    // Signed by jp-aisi, arriving on uk-aisi's connection.
    let e = c
        .core
        .submit(
            &c.pki.peer("uk-aisi"),
            rec.clone(),
            SubmitKind::SubmitOrCorrect,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::SignerNotPeer { .. }), "{e}");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(matches!(
        c.get("jp-aisi", &id_of(&rec)).await,
        Err(ServiceError::NotFound { .. })
    ));
    assert_eq!(c.listed("jp-aisi").await, 0);
    assert_eq!(c.core.frontier.current(), 0, "no sequence number was taken");
}

#[tokio::test]
async fn reads_follow_the_label_for_each_reader() {
    let c = core().await;
    let peer = c.pki.peer("uk-aisi");
    let (_, amber) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        "a",
    );
    let (_, red) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpRed,
        &["jp-aisi", "uk-aisi"],
        "r",
    );
    for r in [&amber, &red] {
        c.core
            .submit(&peer, r.clone(), SubmitKind::SubmitOrCorrect)
            .await
            .unwrap();
    }
    // The recipient reads both.
    assert!(c.get("jp-aisi", &id_of(&amber)).await.is_ok());
    assert!(c.get("jp-aisi", &id_of(&red)).await.is_ok());
    assert_eq!(c.listed("jp-aisi").await, 2);
    // An outsider: AMBER's header only (get refused, listed without a
    // body); RED does not exist.
    assert!(matches!(
        c.get("eu-aio", &id_of(&amber)).await,
        Err(ServiceError::NotRecipient { .. })
    ));
    assert!(matches!(
        c.get("eu-aio", &id_of(&red)).await,
        Err(ServiceError::NotFound { .. })
    ));
    let (listed, _) = c
        .core
        .list(&c.pki.peer("eu-aio"), &pb::RecordFilter::default(), 0, "")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let only = listed[0].record.clone().unwrap();
    assert_eq!(only.envelope, amber.envelope);
    assert!(only.body.is_empty() && listed[0].leaf_salt.is_empty());
}

#[tokio::test]
async fn a_service_peer_and_an_unknown_member_are_refused() {
    let c = core().await;
    let (_, rec) = c.pki.incident("uk-aisi", SharingLabel::TlpClear, &[], "t");
    let service = cairn_identity::PeerIdentity::Service {
        name: "evals".into(),
    };
    let e = c
        .core
        .submit(&service, rec, SubmitKind::SubmitOrCorrect)
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::NotAMember { .. }), "{e}");
    let e = c
        .core
        .list(
            &cairn_testkit::member_peer("zz-nobody"),
            &pb::RecordFilter::default(),
            0,
            "",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::UnknownMember { .. }), "{e}");
}

#[tokio::test]
async fn a_key_whose_window_has_ended_signs_nothing_new_however_the_record_is_dated() {
    let c = core().await;
    // Created an hour ago, inside the key's window as it was then…
    let (mut draft, _) = c.pki.incident("uk-aisi", SharingLabel::TlpClear, &[], "t");
    draft.created_at = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let rec = cairn_record::build(&draft, "uk-aisi", &c.pki.signing_key("uk-aisi")).unwrap();
    // …but the window ended ten minutes ago (a rotation).
    let mut doc = c.pki.pki.directory.clone();
    let until = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let until = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for m in doc.members.iter_mut().filter(|m| m.id == "uk-aisi") {
        m.signing_keys[0].valid_until = Some(until.clone());
    }
    let rotated = cairn_identity::Directory::from_document(doc, "rotated").unwrap();
    c.pki.handle.replace(rotated).unwrap();
    let e = c
        .core
        .submit(
            &c.pki.peer("uk-aisi"),
            rec.clone(),
            SubmitKind::SubmitOrCorrect,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ServiceError::KeyNotCurrent(_)), "{e}");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(matches!(
        c.get("uk-aisi", &id_of(&rec)).await,
        Err(ServiceError::NotFound { .. })
    ));
}

/// A RED record does not exist for a non-recipient on any path: superseding
/// or erasing it answers exactly what an unknown id answers, even for a
/// governance member.
#[tokio::test]
async fn a_red_record_is_unknown_to_outsiders_when_changing_it_too() {
    let c = core().await;
    let (_, red) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpRed,
        &["jp-aisi", "uk-aisi"],
        "r",
    );
    c.core
        .submit(
            &c.pki.peer("uk-aisi"),
            red.clone(),
            SubmitKind::SubmitOrCorrect,
        )
        .await
        .unwrap();
    let red_id = id_of(&red).uuid;
    let unknown = uuid::Uuid::now_v7().hyphenated().to_string();
    let outsider = c.pki.peer("eu-aio");
    assert!(
        c.pki
            .directory
            .member("eu-aio")
            .unwrap()
            .has_role(Role::Governance)
    );

    // A correction or a retraction of the RED id, and of an unknown one.
    let change = |target: &str, retract: bool| {
        let (mut d, _) = c
            .pki
            .incident("eu-aio", SharingLabel::TlpClear, &[], "change");
        let target = Some(uuid::Uuid::parse_str(target).unwrap());
        if retract {
            d.retracts = target;
            d.content = prost::Message::encode_to_vec(&pb::Retraction {
                reason: "withdrawn".into(),
            });
            d.index = None;
        } else {
            d.supersedes = target;
        }
        cairn_record::build(&d, "eu-aio", &c.pki.signing_key("eu-aio")).unwrap()
    };
    let answer = |e: ServiceError, id: &str| (e.code(), e.to_string().replace(id, "<id>"));
    for (retract, call) in [
        (false, SubmitKind::SubmitOrCorrect),
        (true, SubmitKind::Retract),
    ] {
        let of_red = c
            .core
            .submit(&outsider, change(&red_id, retract), call)
            .await
            .unwrap_err();
        let of_unknown = c
            .core
            .submit(&outsider, change(&unknown, retract), call)
            .await
            .unwrap_err();
        assert_eq!(of_red.code(), tonic::Code::NotFound, "{call:?}: {of_red}");
        assert_eq!(answer(of_red, &red_id), answer(of_unknown, &unknown));
    }
    // Reading it, too.
    let read = |id: &str| pb::RecordId {
        uuid: id.to_owned(),
    };
    let of_red = c.get("eu-aio", &read(&red_id)).await.unwrap_err();
    let of_unknown = c.get("eu-aio", &read(&unknown)).await.unwrap_err();
    assert_eq!(answer(of_red, &red_id), answer(of_unknown, &unknown));

    let of_red = c
        .core
        .erase(&outsider, &order(&c.pki, "eu-aio", &red_id))
        .await
        .unwrap_err();
    let of_unknown = c
        .core
        .erase(&outsider, &order(&c.pki, "eu-aio", &unknown))
        .await
        .unwrap_err();
    assert_eq!(of_red.code(), tonic::Code::NotFound);
    assert_eq!(answer(of_red, &red_id), answer(of_unknown, &unknown));

    // The record is untouched: its recipient still reads it whole.
    let stored = c.get("jp-aisi", &id_of(&red)).await.unwrap();
    assert_eq!(stored.record.unwrap().body, red.body);
}

/// A record others may read does not name its TLP:RED correction to them.
#[tokio::test]
async fn a_red_correction_is_not_named_to_readers_of_the_corrected_record() {
    let c = core().await;
    let author = c.pki.peer("uk-aisi");
    let (_, green) = c
        .pki
        .incident("uk-aisi", SharingLabel::TlpClear, &[], "first");
    c.core
        .submit(&author, green.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    let (mut d, _) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpRed,
        &["jp-aisi", "uk-aisi"],
        "fix",
    );
    d.supersedes = Some(uuid::Uuid::parse_str(&id_of(&green).uuid).unwrap());
    let red = cairn_record::build(&d, "uk-aisi", &c.pki.signing_key("uk-aisi")).unwrap();
    c.core
        .submit(&author, red.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    // The recipient learns of the correction; an outsider only that the
    // record is no longer active.
    let seen = c.get("jp-aisi", &id_of(&green)).await.unwrap();
    assert_eq!(seen.superseded_by, Some(id_of(&red)));
    let seen = c.get("eu-aio", &id_of(&green)).await.unwrap();
    assert_eq!(seen.state, pb::RecordState::Superseded as i32);
    assert_eq!(seen.superseded_by, None);
    let filter = pb::RecordFilter {
        include_inactive: true,
        ..Default::default()
    };
    let (listed, _) = c
        .core
        .list(&c.pki.peer("eu-aio"), &filter, 0, "")
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].superseded_by, None);
}

/// A correction or retraction of a TLP:RED record names it in its header,
/// so it is TLP:RED too: a GREEN one is refused and stores nothing.
#[tokio::test]
async fn a_red_record_is_corrected_and_retracted_only_in_red() {
    let c = core().await;
    let author = c.pki.peer("uk-aisi");
    let to = ["jp-aisi", "uk-aisi"];
    let (_, red) = c.pki.incident("uk-aisi", SharingLabel::TlpRed, &to, "red");
    c.core
        .submit(&author, red.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    let target = Some(uuid::Uuid::parse_str(&id_of(&red).uuid).unwrap());
    for (retract, call) in [
        (false, SubmitKind::SubmitOrCorrect),
        (true, SubmitKind::Retract),
    ] {
        let (mut d, _) = c
            .pki
            .incident("uk-aisi", SharingLabel::TlpGreen, &MEMBERS, "out");
        if retract {
            d.retracts = target;
            d.content = prost::Message::encode_to_vec(&pb::Retraction {
                reason: "withdrawn".into(),
            });
            d.index = None;
        } else {
            d.supersedes = target;
        }
        let out = cairn_record::build(&d, "uk-aisi", &c.pki.signing_key("uk-aisi")).unwrap();
        let err = c.core.submit(&author, out.clone(), call).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.to_string().ends_with("is TLP:RED too"), "{err}");
        assert!(
            c.get("uk-aisi", &id_of(&out)).await.is_err(),
            "nothing stored"
        );
    }
    // In RED it goes through.
    let (mut d, _) = c.pki.incident("uk-aisi", SharingLabel::TlpRed, &to, "fix");
    d.supersedes = target;
    let fix = cairn_record::build(&d, "uk-aisi", &c.pki.signing_key("uk-aisi")).unwrap();
    c.core
        .submit(&author, fix, SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
}

/// The erasure of a TLP:RED record is logged with a salted subject: the
/// log names neither the record nor who erased it.
#[tokio::test]
async fn a_red_erasure_leaf_names_neither_record_nor_orderer() {
    use prost::Message as _;
    let c = core().await;
    let (_, red) = c.pki.incident(
        "uk-aisi",
        SharingLabel::TlpRed,
        &["jp-aisi", "uk-aisi"],
        "r",
    );
    let author = c.pki.peer("uk-aisi");
    c.core
        .submit(&author, red.clone(), SubmitKind::SubmitOrCorrect)
        .await
        .unwrap();
    let id = id_of(&red).uuid;
    let (_, pending) = c
        .core
        .erase(&author, &order(&c.pki, "uk-aisi", &id))
        .await
        .unwrap();
    assert!(pending, "no audit log here");
    let items = c
        .core
        .store
        .scan(crate::stored::NS_OUTBOX, &[], None, 100)
        .await
        .unwrap();
    let erasure = items
        .iter()
        .map(|(_, v)| crate::stored::OutboxItem::decode(v.as_slice()).unwrap())
        .find(|i| i.erasure)
        .unwrap();
    let text = String::from_utf8_lossy(&erasure.leaf);
    assert!(!text.contains(&id) && !text.contains("uk-aisi"), "{text}");
    let leaf = pb::LogLeaf::decode(erasure.leaf.as_slice()).unwrap();
    assert!(matches!(
        leaf.subject,
        Some(pb::log_leaf::Subject::Salted(_))
    ));
    // The record's recipients, who hold its salt, can check the subject.
    let stored = c.get("jp-aisi", &id_of(&red)).await.unwrap();
    let Some(pb::log_leaf::Subject::Salted(s)) = leaf.subject else {
        unreachable!()
    };
    assert_eq!(
        s.record_id_digest,
        crate::leaves::salted(&stored.leaf_salt, &id)
    );
}
