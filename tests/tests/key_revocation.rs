//! Rotation is not revocation, on a running network. uk-aisi's key signs
//! two incidents, one claiming a time before a compromise and one after;
//! the key is then revoked for compromise (with a new key added) by
//! quorum. From the revocation's place in the log on, the old key signs
//! nothing that is accepted — even a record backdated to before the
//! compromise — while the new key works; the full audit checks both old
//! records against the directory in force at their leaves and flags the
//! one that claims a time after the compromise began. A revocation cannot
//! then be withdrawn.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_client::audit::LogVerifier;
use cairn_identity::SigningKey;
use cairn_identity::directory::{DirectoryDocument, SigningKeyDocument};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, SharingLabel};
use cairn_tests::Net;
use cairn_tests::governance::record_id;
use time::format_description::well_known::Rfc3339;
use time::{Duration as Span, OffsetDateTime};
use tonic::Code;

/// An incident by uk-aisi signed with `key`, claiming `created_at`.
fn incident(net: &Net, key: &SigningKey, created_at: OffsetDateTime) -> pb::SignedRecord {
    let (mut draft, _) = net.incident("uk-aisi", SharingLabel::TlpClear, &[], "x");
    draft.created_at = created_at;
    cairn_record::build(&draft, "uk-aisi", key).unwrap()
}

async fn submit(net: &Net, record: &pb::SignedRecord) -> Result<(), tonic::Status> {
    net.intake("uk-aisi")
        .submit_incident(intake::SubmitIncidentRequest {
            record: Some(record.clone()),
        })
        .await
        .map(drop)
}

/// The genesis with uk-aisi's key revoked since `since` and `new` added.
fn revoked(net: &Net, since: OffsetDateTime, new: &SigningKey) -> DirectoryDocument {
    let mut doc = net.genesis_document();
    let uk = doc.members.iter_mut().find(|m| m.id == "uk-aisi").unwrap();
    uk.signing_keys[0].compromised_since = Some(since.format(&Rfc3339).unwrap());
    uk.signing_keys.push(SigningKeyDocument {
        id: new.key_id().to_owned(),
        public_key: new.verifying_key().to_base64(),
        valid_from: uk.signing_keys[0].valid_from.clone(),
        valid_until: None,
        compromised_since: None,
    });
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_signs_nothing_from_its_place_and_the_audit_flags_what_it_signed_after() {
    let net = Net::start(Duration::from_secs(10)).await;
    let old = net.signing_key("uk-aisi");
    let now = OffsetDateTime::now_utc();
    let before = incident(&net, &old, now - Span::hours(2));
    let after = incident(&net, &old, now - Span::minutes(30));
    submit(&net, &before).await.unwrap();
    submit(&net, &after).await.unwrap();

    let (new, _) = SigningKey::generate("uk-aisi-sign-2").unwrap();
    let compromise = (now - Span::hours(1)).replace_nanosecond(0).unwrap();
    net.change_to(&revoked(&net, compromise, &new)).await;
    net.intake_at(1).await;

    // Whatever time it claims, the old key is refused; the new one is not.
    let backdated = incident(&net, &old, now - Span::hours(3));
    let refused = submit(&net, &backdated).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("is revoked: compromised since"),
        "{refused:?}"
    );
    assert!(
        net.client("uk-aisi")
            .get_incident(&record_id(&backdated), false)
            .await
            .is_err()
    );
    submit(&net, &incident(&net, &new, OffsetDateTime::now_utc()))
        .await
        .unwrap();

    // The audit: both old records verify at their leaves; the later one is
    // flagged, and nothing else.
    let mut v = LogVerifier::new(net.log_key.clone(), vec![], 0)
        .unwrap()
        .with_log(AuditLogClient::new(net.channel(
            "eu-aio",
            net.audit_addr,
            "audit",
        )));
    let text = v.latest().await.unwrap();
    let head = v.head(&text).unwrap();
    let leaves = v.recompute(&head, |_| {}).await.unwrap();
    let client = net.client("eu-aio");
    let history = client.directory_history().await.unwrap();
    let seen = v
        .check_records(&leaves, &client, Some(&history), |_| {})
        .await
        .unwrap();
    assert_eq!((seen.records, seen.directory_changes), (3, 2));
    let flagged: Vec<_> = seen.flagged.iter().map(|f| f.record_id.clone()).collect();
    assert_eq!(flagged, vec![record_id(&after)]);
    assert_eq!(seen.flagged[0].compromised_since, compromise);
    assert_eq!(seen.flagged[0].key_id, old.key_id());

    // The revocation stands: a change withdrawing it is refused.
    let (g, _) = net.governed("uk-aisi").await;
    let previous = *g.current().directory.digest();
    let undo = net.proposal("eu-aio", &net.genesis_document(), &previous, 2);
    let refused = net.submit_change("eu-aio", undo).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("cannot be withdrawn"),
        "{refused:?}"
    );
}
