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
