//! The directory governed through the log, end to end on a running
//! network (three governance members, quorum 2): a change is pending under
//! quorum, takes effect at the approval that reaches it — on the audit
//! service's own connections at once — is in the log and in the history an
//! auditor replays, survives a restart, and a change left in flight by a
//! crash is completed; intake follows it from the log, admitting a new
//! member and closing a removed one's open connection within 5 s, and
//! keeps what it followed across a restart. Refusals that need a history (a second approval, a
//! stale approval, a signer without governance) are here; the stateless
//! ones are in `tests/bad-input.toml`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_proto::audit::v1 as audit;
use cairn_record::pb;
use cairn_record::record::sha256;
use cairn_tests::governance::record_id;
use cairn_tests::{
    Net, closed_within_5s, example_without, refused_in_transport, verify_receipt_of,
};
use prost::Message as _;
use tonic::Code;

fn without_member(doc: &mut cairn_identity::directory::DirectoryDocument, id: &str) {
    doc.members.retain(|m| m.id != id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_takes_effect_at_its_quorum_and_holds_across_a_restart() {
    let mut net = Net::start(Duration::from_secs(5)).await;
    let genesis_digest = *net.directory.digest();
    let mut doc = net.genesis_document();
    without_member(&mut doc, "jp-aisi");

    let proposal = net.proposal("uk-aisi", &doc, &genesis_digest, 2);
    let r = net
        .submit_change("uk-aisi", proposal.clone())
        .await
        .unwrap();
    assert_eq!(r.standing(), audit::ChangeStanding::Pending);
    assert_eq!((r.approvals, r.quorum, r.version), (1, 2, 0));
    verify_receipt_of(
        r.receipt.as_ref().unwrap(),
        &proposal.envelope,
        &net.log_key,
    );
    // Under quorum nothing is applied: jp-aisi still connects.
    net.governed("jp-aisi").await;

    let approval = net.approval("eu-aio", &proposal, &doc, &genesis_digest);
    let r = net.submit_change("eu-aio", approval.clone()).await.unwrap();
    assert_eq!(r.standing(), audit::ChangeStanding::Effective);
    assert_eq!((r.approvals, r.version), (2, 1));
    assert_eq!(r.proposal.unwrap().uuid, record_id(&proposal));
    verify_receipt_of(
        r.receipt.as_ref().unwrap(),
        &approval.envelope,
        &net.log_key,
    );
    assert_eq!(net.log_size("uk-aisi").await, 2);

    // Sent again, the approval is answered as the first time, and nothing
    // is appended.
    let again = net.submit_change("eu-aio", approval.clone()).await.unwrap();
    assert_eq!(
        (again.standing(), again.version),
        (audit::ChangeStanding::Effective, 1)
    );
    assert_eq!(net.log_size("uk-aisi").await, 2);

    // The removed member's new connections are refused at once.
    let refused = net
        .governance("jp-aisi")
        .get_directory_history(audit::GetDirectoryHistoryRequest::default())
        .await
        .unwrap_err();
    assert!(refused_in_transport(&refused), "{refused:?}");

    // The history replays from the genesis to the same directory, and its
    // leaves are the log's.
    let (g, entries) = net.governed("uk-aisi").await;
    assert_eq!(g.current().version, 1);
    assert_eq!(
        g.current().directory.digest(),
        &sha256(doc.to_toml().as_bytes())
    );
    assert_eq!(g.current().effective_at, Some(entries[1].leaf_index));
    assert_eq!(
        entries.iter().map(|e| e.leaf_index).collect::<Vec<_>>(),
        [0, 1]
    );
    let metrics = net.audit.as_ref().unwrap().metrics.render();
    assert!(
        metrics.contains("cairn_directory_version{service=\"audit\"} 1"),
        "{metrics}"
    );

    // A backup holds the history with the log, and a restore brings it back.
    let backup = net.tmp.path().join("backup");
    let size = net.audit.as_ref().unwrap().backup(&backup).await.unwrap();
    assert_eq!(size, 2);
    let restored = cairn_store::StoreLocation::embedded(net.tmp.path().join("restored"));
    cairn_audit::restore(&backup, &restored).await.unwrap();
    let rows = restored
        .open("audit")
        .await
        .unwrap()
        .scan(cairn_audit::governance::NS_CHANGES, &[], None, 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "the restored store lacks the history");

    net.stop_audit().await;
    net.restart_audit().await;
    let (g, _) = net.governed("eu-aio").await;
    assert_eq!(g.current().version, 1);
    let refused = net
        .governance("jp-aisi")
        .get_directory_history(audit::GetDirectoryHistoryRequest::default())
        .await;
    assert!(
        refused.is_err(),
        "a removed member connected after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_that_depend_on_the_history_store_nothing() {
    let net = Net::start_spec(
        example_without("jp-aisi", cairn_identity::Role::Governance),
        Default::default(),
    )
    .await;
    let digest = *net.directory.digest();
    // Two governance members (eu-aio, uk-aisi): quorum 2.
    let mut one = net.genesis_document();
    one.members
        .iter_mut()
        .filter(|m| m.id == "jp-aisi")
        .for_each(|m| m.name = "Japan AISI (renamed)".into());
    let mut two = net.genesis_document();
    two.members
        .iter_mut()
        .filter(|m| m.id == "eu-aio")
        .for_each(|m| m.name = "EU AI Office (renamed)".into());

    let refuse =
        |r: Result<audit::SubmitDirectoryChangeResponse, tonic::Status>, code, says: &str| {
            let s = r.unwrap_err();
            assert_eq!(s.code(), code, "{s:?}");
            assert!(s.message().contains(says), "{s:?} does not say {says:?}");
        };
    let by_jp = net.proposal("jp-aisi", &one, &digest, 2);
    refuse(
        net.submit_change("jp-aisi", by_jp).await,
        Code::PermissionDenied,
        "jp-aisi does not hold the governance role",
    );

    let first = net.proposal("uk-aisi", &one, &digest, 2);
    let second = net.proposal("eu-aio", &two, &digest, 2);
    net.submit_change("uk-aisi", first.clone()).await.unwrap();
    net.submit_change("eu-aio", second.clone()).await.unwrap();
    let size = net.log_size("uk-aisi").await;

    let own = net.approval("uk-aisi", &first, &one, &digest);
    refuse(
        net.submit_change("uk-aisi", own).await,
        Code::AlreadyExists,
        "has already signed",
    );
    let mut wrong = pb::DirectoryChange::decode(
        cairn_record::verify(
            &net.approval("eu-aio", &first, &one, &digest),
            &net.directory,
        )
        .unwrap()
        .open("eu-aio", None)
        .unwrap()
        .content
        .as_slice(),
    )
    .unwrap();
    wrong.proposed_digest = sha256(b"another document").to_vec();
    let wrong = net.change("eu-aio", &wrong, pb::SharingLabel::TlpClear);
    refuse(
        net.submit_change("eu-aio", wrong).await,
        Code::InvalidArgument,
        "proposed_digest",
    );
    assert_eq!(
        net.log_size("uk-aisi").await,
        size,
        "a refusal was appended"
    );

    // The first proposal wins; approving the second is refused as stale.
    let approve_first = net.approval("eu-aio", &first, &one, &digest);
    let r = net.submit_change("eu-aio", approve_first).await.unwrap();
    assert_eq!(r.standing(), audit::ChangeStanding::Effective);
    let late = net.approval("uk-aisi", &second, &two, &digest);
    refuse(
        net.submit_change("uk-aisi", late).await,
        Code::FailedPrecondition,
        "propose again",
    );
    let (g, _) = net.governed("uk-aisi").await;
    assert_eq!((g.current().version, g.pending().count()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_left_in_flight_by_a_crash_is_completed() {
    let mut net = Net::start(Duration::from_secs(5)).await;
    let digest = *net.directory.digest();
    let mut doc = net.genesis_document();
    doc.members[0].name = "renamed while in flight".into();
    let proposal = net.proposal("uk-aisi", &doc, &digest, 2);

    // What a crash after the pending row was durable, before the log
    // answered, leaves behind.
    net.stop_audit().await;
    {
        let store = net.store("audit").open("audit").await.unwrap();
        let leaf = cairn_record::leaf::encode(
            pb::RecordKind::DirectoryChange,
            cairn_record::leaf::clear_subject(&record_id(&proposal), "uk-aisi"),
            time::OffsetDateTime::now_utc(),
            &proposal.envelope,
            "audit",
        );
        let entry = audit::DirectoryChangeEntry {
            record: Some(proposal.clone()),
            leaf,
            leaf_index: 0,
        };
        let mut batch = cairn_store::WriteBatch::new();
        batch.put(
            cairn_audit::governance::NS_PENDING,
            b"in-flight".to_vec(),
            entry.encode_to_vec(),
        );
        store.commit(batch).await.unwrap();
    }
    net.restart_audit().await;
    // The approval checks only against a history that holds the proposal.
    let approval = net.approval("eu-aio", &proposal, &doc, &digest);
    let r = net.submit_change("eu-aio", approval).await.unwrap();
    assert_eq!(r.standing(), audit::ChangeStanding::Effective);
    let (g, entries) = net.governed("uk-aisi").await;
    assert_eq!((g.current().version, entries.len()), (1, 2));
    assert_eq!(net.log_size("uk-aisi").await, 2);
    // The proposer, never answered, sends it again and gets its answer.
    let again = net.submit_change("uk-aisi", proposal).await.unwrap();
    assert_eq!(again.standing(), audit::ChangeStanding::Effective);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_services_follow_the_log_admitting_and_closing_at_once() {
    use cairn_proto::intake::v1 as intake;
    let mut net = Net::start(Duration::from_secs(5)).await;

    // A fourth organisation, with its own CA and keys.
    let fr = net.new_organisation("fr-inesia", "INESIA", "FR");
    let fr_tls = fr.members[0].tls.tls_identity().unwrap();
    let fr_intake = || net.intake_as(&fr_tls);
    let before = fr_intake()
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert!(refused_in_transport(&before), "{before:?}");

    let mut doc = net.genesis_document();
    doc.members.push(fr.directory.members[0].clone());
    net.change_to(&doc).await;
    net.intake_at(1).await;
    fr_intake()
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .expect("the admitted member connects");

    // jp-aisi holds a watch open, then is removed: new handshakes are
    // refused and the open connection is closed within 5 s.
    let mut watch = net
        .intake("jp-aisi")
        .watch_incidents(intake::WatchIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    without_member(&mut doc, "jp-aisi");
    net.change_to(&doc).await;
    net.intake_at(2).await;
    let refused = net
        .intake("jp-aisi")
        .list_incidents(intake::ListIncidentsRequest::default())
        .await
        .unwrap_err();
    assert!(refused_in_transport(&refused), "{refused:?}");
    closed_within_5s(&mut watch, "the removed member").await;
    let metrics = net.intake.metrics.render();
    assert!(
        metrics.contains("cairn_directory_version{service=\"intake\"} 2"),
        "{metrics}"
    );

    // A restart of intake applies what it followed before it serves, even
    // with the audit service out of reach.
    net.stop_audit().await;
    net.reopen("intake").await;
    assert_eq!(*net.intake.directory_version().unwrap().borrow(), 2);
}
