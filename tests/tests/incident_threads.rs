//! Incident threads on a real network, through the SDK: a serious
//! incident's first report, its update and its final report, each a
//! signed record naming the thread; the Art. 73 clock a recipient computes
//! from what it opens; and every way of adding a report to a thread that
//! is not the submitter's to add to.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cairn_client::thread::Clock;
use cairn_client::{ClientError, Share};
use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, IncidentStatus};
use cairn_tests::Net;
use time::OffsetDateTime;
use tonic::Code;

/// An hour after awareness.
fn s_reported(aware: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(cairn_record::header::time_to_timestamp(
        aware + time::Duration::hours(1),
    ))
}

fn refusal(e: ClientError) -> tonic::Status {
    match e {
        ClientError::Status(s) => s,
        other => panic!("not a refusal: {other}"),
    }
}

/// The example incident, aware a day ago, with this status.
fn report(status: IncidentStatus, title: &str) -> intake::Incident {
    let mut i =
        cairn_client::json::incident_from_json(include_str!("../../examples/incident.json"))
            .unwrap();
    let aware = OffsetDateTime::now_utc() - time::Duration::days(1);
    let s = i.serious_incident.as_mut().unwrap();
    s.aware_at = Some(cairn_record::header::time_to_timestamp(aware));
    i.detected_at = s.aware_at;
    i.occurred_at = s.aware_at;
    i.reported_at = s_reported(aware);
    i.status = status as i32;
    i.title = title.into();
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_grows_by_its_authors_reports_and_its_clock_is_met() {
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, jp) = (net.client("uk-aisi"), net.client("jp-aisi"));
    let amber = Share::Amber(vec!["jp-aisi".into()]);
    let first = uk
        .submit_incident(
            &uk.prepare_incident(&report(IncidentStatus::Initial, "first"), &amber)
                .unwrap(),
        )
        .await
        .unwrap();
    let thread = first.record_id.clone();
    let update = uk
        .submit_incident(
            &uk.prepare_follow_up(&report(IncidentStatus::Update, "update"), &amber, &thread)
                .unwrap(),
        )
        .await
        .unwrap();

    // The recipient's clock: 15 days from awareness, reported on time,
    // the final report due (in about 14 days).
    let t = jp.timeline(&update.record_id).await.unwrap();
    assert_eq!(t.thread, thread, "any report finds its thread");
    let titles: Vec<_> = t.reports.iter().map(|r| r.title.clone().unwrap()).collect();
    assert_eq!(titles, ["first", "update"]);
    let d = t.deadline.clone().unwrap();
    assert_eq!(d.days, 15);
    assert!(
        matches!(&t.reported, Some(Clock::Met { by, hours_early }) if *by == thread && *hours_early > 300)
    );
    assert!(matches!(t.completed, Some(Clock::DueIn { hours }) if (330..=337).contains(&hours)));

    // The final report meets it.
    let fin = uk
        .submit_incident(
            &uk.prepare_follow_up(&report(IncidentStatus::Final, "final"), &amber, &thread)
                .unwrap(),
        )
        .await
        .unwrap();
    let t = jp.timeline(&thread).await.unwrap();
    assert!(
        matches!(&t.completed, Some(Clock::Met { by, .. }) if *by == fin.record_id),
        "{t:?}"
    );
    // The thread lists as such.
    let (listed, _) = jp
        .list_incidents(
            pb::RecordFilter {
                thread: Some(pb::RecordId {
                    uuid: thread.clone(),
                }),
                ..Default::default()
            },
            50,
            String::new(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);

    // A correction of the update stays in the thread.
    let moved = uk
        .prepare_incident_correction(
            &report(IncidentStatus::Update, "moved"),
            &amber,
            &update.record_id,
        )
        .unwrap();
    let err = refusal(uk.submit_incident(&moved).await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("header.thread: a correction stays in the thread"),
        "{err:?}"
    );

    // Only the thread's author adds to it; only a first report starts one.
    let theirs = jp
        .prepare_follow_up(
            &report(IncidentStatus::Update, "jp's"),
            &Share::Green,
            &thread,
        )
        .unwrap();
    let err = refusal(jp.submit_incident(&theirs).await.unwrap_err());
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("is uk-aisi's; a member adds reports only to its own threads"),
        "{err:?}"
    );
    let nested = uk
        .prepare_follow_up(
            &report(IncidentStatus::Update, "nested"),
            &amber,
            &update.record_id,
        )
        .unwrap();
    let err = refusal(uk.submit_incident(&nested).await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains(&format!("name its thread's first report {thread}")),
        "{err:?}"
    );
    // A follow-up marked initial is refused before it is sent.
    assert!(matches!(
        uk.prepare_follow_up(&report(IncidentStatus::Initial, "again"), &amber, &thread),
        Err(ClientError::Record(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_thread_does_not_exist_for_those_outside_it() {
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, eu) = (net.client("uk-aisi"), net.client("eu-aio"));
    let red = uk
        .submit_incident(
            &uk.prepare_incident(
                &report(IncidentStatus::Initial, "red"),
                &Share::Red(vec!["jp-aisi".into()]),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let unknown = uuid::Uuid::now_v7().hyphenated().to_string();
    let answer = |target: &str| {
        let eu = &eu;
        let target = target.to_owned();
        async move {
            let p = eu
                .prepare_follow_up(&report(IncidentStatus::Update, "x"), &Share::Green, &target)
                .unwrap();
            let s = refusal(eu.submit_incident(&p).await.unwrap_err());
            (s.code(), s.message().replace(&target, "<id>"))
        }
    };
    let of_red = answer(&red.record_id).await;
    assert_eq!(of_red.0, Code::NotFound);
    assert_eq!(of_red, answer(&unknown).await);
    // Its timeline is not eu-aio's to read either.
    assert_eq!(
        refusal(eu.timeline(&red.record_id).await.unwrap_err()).code(),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_acknowledge_a_report_and_its_author_sees_who_has_not() {
    use pb::AcknowledgementState as State;
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, jp, eu) = (
        net.client("uk-aisi"),
        net.client("jp-aisi"),
        net.client("eu-aio"),
    );
    let to_both = Share::Amber(vec!["jp-aisi".into(), "eu-aio".into()]);
    let first = uk
        .submit_incident(
            &uk.prepare_incident(&report(IncidentStatus::Initial, "first"), &to_both)
                .unwrap(),
        )
        .await
        .unwrap();
    let seen = jp.get_incident(&first.record_id, false).await.unwrap();
    for (state, note) in [
        (State::Received, ""),
        (State::Triaged, "checking our deployments"),
    ] {
        let ack = jp.prepare_acknowledgement(&seen, state, note, &[]).unwrap();
        let sent = jp.submit_incident(&ack).await.unwrap();
        assert!(sent.verified_in_tree_of.is_some(), "logged like any record");
    }

    // The author sees jp-aisi's latest state and note, and that eu-aio has
    // not answered yet.
    let t = uk.timeline(&first.record_id).await.unwrap();
    let r = &t.reports[0];
    assert_eq!(r.acknowledged.len(), 1, "{r:?}");
    let a = &r.acknowledged[0];
    assert_eq!((a.by.as_str(), a.state), ("jp-aisi", Some(State::Triaged)));
    assert_eq!(a.note.as_deref(), Some("checking our deployments"));
    assert_eq!(r.awaiting, ["eu-aio"]);
    // eu-aio, to whom jp-aisi did not send it, sees that it was answered,
    // not how.
    let t = eu.timeline(&first.record_id).await.unwrap();
    assert_eq!(t.reports[0].acknowledged[0].state, None);

    // The author does not acknowledge its own report.
    let own = uk.get_incident(&first.record_id, false).await.unwrap();
    let ack = uk
        .prepare_acknowledgement(&own, State::Received, "", &[])
        .unwrap();
    let err = refusal(uk.submit_incident(&ack).await.unwrap_err());
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("is your own report"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_those_who_may_read_a_report_acknowledge_it() {
    use pb::AcknowledgementState as State;
    let net = Net::start(Duration::from_secs(10)).await;
    let (uk, eu) = (net.client("uk-aisi"), net.client("eu-aio"));
    let submit = |share: Share| {
        let uk = &uk;
        async move {
            uk.submit_incident(
                &uk.prepare_incident(&report(IncidentStatus::Initial, "r"), &share)
                    .unwrap(),
            )
            .await
            .unwrap()
            .record_id
        }
    };
    let amber = submit(Share::Amber(vec!["jp-aisi".into()])).await;
    let red = submit(Share::Red(vec!["jp-aisi".into()])).await;
    let unknown = uuid::Uuid::now_v7().hyphenated().to_string();
    // eu-aio's acknowledgement of a report as if it had read it.
    let ack_of = |id: &str, label: pb::SharingLabel| {
        let header = pb::RecordHeader {
            record_id: Some(pb::RecordId { uuid: id.into() }),
            author: Some(pb::MemberId {
                id: "uk-aisi".into(),
            }),
            label: label as i32,
            ..Default::default()
        };
        cairn_client::prepare::acknowledgement(
            &net.directory,
            "eu-aio",
            &net.signing_key("eu-aio"),
            &header,
            State::Received,
            "",
            &[],
        )
        .unwrap()
    };
    // AMBER: eu-aio sees the header, not the report: refused by name.
    let err = refusal(
        eu.submit_incident(&ack_of(&amber, pb::SharingLabel::TlpAmber))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // RED: exactly what an unknown id answers.
    let answer = |id: String| {
        let eu = &eu;
        let p = ack_of(&id, pb::SharingLabel::TlpRed);
        async move {
            let s = refusal(eu.submit_incident(&p).await.unwrap_err());
            (s.code(), s.message().replace(&id, "<id>"))
        }
    };
    let of_red = answer(red.clone()).await;
    assert_eq!(of_red.0, Code::NotFound);
    assert_eq!(of_red, answer(unknown).await);
}
