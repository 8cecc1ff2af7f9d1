//! A full audit as a member runs it (`cairn audit verify --full --records`,
//! through the SDK's `LogVerifier`): every entry of a real network's log
//! parses as a leaf and recomputes to the root, and every record the
//! auditing member may read is served as it was logged — envelope digest
//! and signature for records, order digest and signature for erasures.
//! What the member may not read, and TLP:RED leaves, are counted; a served
//! record that is not the one logged fails, naming the entry; so does a
//! directory history that does not match the log's directory changes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_client::audit::{LogFailure, LogVerifier, RecordsChecked};
use cairn_client::{ClientError, Share};
use cairn_proto::audit::v1::audit_log_client::AuditLogClient;
use cairn_proto::evals::v1 as evals;
use cairn_record::pb;
use cairn_tests::Net;

async fn full_audit_as(net: &Net, member: &str) -> (Vec<pb::LogLeaf>, RecordsChecked) {
    let mut v = LogVerifier::new(net.log_key.clone(), vec![], 0)
        .unwrap()
        .with_log(AuditLogClient::new(net.channel(
            member,
            net.audit_addr,
            "audit",
        )));
    let text = v.latest().await.unwrap();
    let head = v.head(&text).unwrap();
    let leaves = v.recompute(&head, |_| {}).await.unwrap();
    let client = net.client(member);
    let history = client.directory_history().await.unwrap();
    let seen = v
        .check_records(&leaves, &client, Some(&history), |_| {})
        .await
        .unwrap();
    (leaves, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_checks_every_record_it_may_read() {
    let net = Net::start(Duration::from_secs(10)).await;
    let uk = net.client("uk-aisi");
    let incident =
        cairn_client::json::incident_from_json(include_str!("../../examples/incident.json"))
            .unwrap();
    for share in [
        Share::Green,
        Share::Amber(vec!["jp-aisi".into()]),
        Share::Red(vec!["jp-aisi".into()]),
    ] {
        let p = uk.prepare_incident(&incident, &share).unwrap();
        assert!(uk.submit_incident(&p).await.unwrap().receipt.is_some());
    }
    // jp-aisi publishes a result and erases it: two leaves, one record.
    let jp = net.client("jp-aisi");
    let result =
        cairn_client::json::result_from_json(include_str!("../../examples/result.json")).unwrap();
    let p = jp.prepare_result(&result, &Share::Green).unwrap();
    jp.publish_result(&p).await.unwrap();
    let order = cairn_testkit::erasure_order(
        &net.signing_key("jp-aisi"),
        "jp-aisi",
        &p.record_id,
        time::OffsetDateTime::now_utc(),
    );
    net.evals("jp-aisi")
        .erase_result(evals::EraseResultRequest { order })
        .await
        .unwrap();

    // A directory change (proposal and approval): two leaves of the audit
    // service's, matched by the history.
    let mut doc = net.genesis_document();
    doc.members[0].name = "renamed".into();
    let digest = *net.directory.digest();
    let proposal = net.proposal("uk-aisi", &doc, &digest, 2);
    net.submit_change("uk-aisi", proposal.clone())
        .await
        .unwrap();
    let approval = net.approval("jp-aisi", &proposal, &doc, &digest);
    net.submit_change("jp-aisi", approval).await.unwrap();

    // eu-aio reads the GREEN incident and the erased result; not the AMBER
    // one; the RED one names nothing.
    let (leaves, seen) = full_audit_as(&net, "eu-aio").await;
    assert_eq!(leaves.len(), 7);
    assert_eq!(
        seen,
        RecordsChecked {
            records: 2,
            erasures: 1,
            unreadable: 1,
            salted: 1,
            directory_changes: 2,
            flagged: vec![],
        }
    );
    // jp-aisi, a recipient of the AMBER incident, checks it too.
    let (_, seen) = full_audit_as(&net, "jp-aisi").await;
    assert_eq!((seen.records, seen.unreadable), (3, 0));

    // A log whose leaf names another envelope than the one served fails
    // at that entry; so do a leaf naming another author, and an erasure
    // leaf whose orderer is not the order's signer.
    let v = LogVerifier::new(net.log_key.clone(), vec![], 0).unwrap();
    let auditor = net.client("eu-aio");
    let history = auditor.directory_history().await.unwrap();
    let failure = |tampered: Vec<pb::LogLeaf>| {
        let (v, auditor, history) = (&v, &auditor, &history);
        async move {
            match v
                .check_records(&tampered, auditor, Some(history), |_| {})
                .await
            {
                Err(ClientError::LogFailed(f)) => f,
                other => panic!("expected a failed check, got {other:?}"),
            }
        }
    };
    let with_author = |index: usize, author: &str| {
        let mut l = leaves.clone();
        if let Some(pb::log_leaf::Subject::Clear(s)) = &mut l[index].subject {
            s.author = Some(pb::MemberId { id: author.into() });
        }
        l
    };
    let mut other_digest = leaves.clone();
    other_digest[0].envelope_digest = vec![0; 32];
    let f = failure(other_digest).await;
    assert!(
        matches!(f, LogFailure::OtherEnvelope { index: 0, .. }),
        "{f}"
    );
    let f = failure(with_author(0, "eu-aio")).await;
    assert!(
        matches!(f, LogFailure::OtherSubject { index: 0, .. }),
        "{f}"
    );
    let f = failure(with_author(4, "uk-aisi")).await;
    assert!(
        matches!(f, LogFailure::OtherSubject { index: 4, .. }),
        "{f}"
    );
    // A history that hides a directory change the log holds fails at that
    // leaf: key history is checked against the log, not taken on trust.
    let mut hidden = history.clone();
    hidden.entries.pop();
    let f = match v
        .check_records(&leaves, &auditor, Some(&hidden), |_| {})
        .await
    {
        Err(ClientError::LogFailed(f)) => f,
        other => panic!("expected a failed check, got {other:?}"),
    };
    assert!(
        matches!(f, LogFailure::HistoryMismatch { index: 6, .. }),
        "{f}"
    );
}
