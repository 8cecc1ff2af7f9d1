#![allow(clippy::unwrap_used)]
use cairn_record::header::time_to_timestamp;
use prost::Message as _;
use time::macros::datetime;
use uuid::Uuid;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

/// A stored incident report with this status, received at `at`; its
/// content classifies it as serious (`category`, aware at `aware`) or not.
fn report(
    thread: Option<Uuid>,
    status: IncidentStatus,
    at: OffsetDateTime,
    serious: Option<(intake::Art73Category, OffsetDateTime)>,
) -> (Uuid, (pb::StoredRecord, Option<intake::Incident>)) {
    let id = Uuid::now_v7();
    let header = pb::RecordHeader {
        record_id: Some(pb::RecordId {
            uuid: id.hyphenated().to_string(),
        }),
        kind: pb::RecordKind::Incident as i32,
        author: Some(pb::MemberId {
            id: "uk-aisi".into(),
        }),
        thread: thread.map(|t| pb::RecordId {
            uuid: t.hyphenated().to_string(),
        }),
        ..Default::default()
    };
    let envelope = pb::Envelope {
        payload_type: cairn_record::dsse::RECORD_HEADER_TYPE.into(),
        payload: header.encode_to_vec(),
        signatures: vec![],
    };
    let stored = pb::StoredRecord {
        record: Some(pb::SignedRecord {
            envelope: envelope.encode_to_vec(),
            body: vec![],
        }),
        state: RecordState::Active as i32,
        received_at: Some(time_to_timestamp(at)),
        ..Default::default()
    };
    let incident = intake::Incident {
        title: format!("{status:?}"),
        status: status as i32,
        serious_incident: serious.map(|(c, aware)| intake::SeriousIncident {
            is_serious: true,
            category: c as i32,
            aware_at: Some(time_to_timestamp(aware)),
            reporting_deadline: None,
        }),
        ..Default::default()
    };
    (id, (stored, Some(incident)))
}

const GENERAL: intake::Art73Category = intake::Art73Category::General;

#[test]
fn a_thread_without_a_serious_classification_has_no_clock() {
    let (id, first) = report(None, IncidentStatus::Initial, NOW, None);
    let t = timeline(&id.to_string(), &[first], NOW);
    assert_eq!(t.reports.len(), 1);
    assert_eq!(t.deadline, None);
    assert_eq!((t.reported, t.completed), (None, None));
}

#[test]
fn an_initial_report_in_time_leaves_the_final_due() {
    let aware = NOW - Duration::days(2);
    let (id, first) = report(
        None,
        IncidentStatus::Initial,
        NOW - Duration::days(1),
        Some((GENERAL, aware)),
    );
    let t = timeline(&id.to_string(), &[first], NOW);
    let d = t.deadline.clone().unwrap();
    assert_eq!((d.days, d.due_at), (15, aware + Duration::days(15)));
    assert_eq!(
        t.reported,
        Some(Clock::Met {
            by: id.to_string(),
            hours_early: 14 * 24
        })
    );
    assert_eq!(t.completed, Some(Clock::DueIn { hours: 13 * 24 }));
    assert_eq!(t.completed.unwrap().to_string(), "due in 312 h");
}

#[test]
fn the_final_report_meets_the_clock_and_a_late_one_says_so() {
    let aware = NOW - Duration::days(20);
    let (id, first) = report(
        None,
        IncidentStatus::Initial,
        aware + Duration::days(1),
        Some((GENERAL, aware)),
    );
    let (fin_id, fin) = report(Some(id), IncidentStatus::Final, NOW, Some((GENERAL, aware)));
    let t = timeline(&id.to_string(), &[fin, first.clone()], NOW);
    assert_eq!(t.reports[0].record_id, id.to_string(), "oldest first");
    assert_eq!(
        t.completed,
        Some(Clock::Met {
            by: fin_id.to_string(),
            hours_early: -5 * 24
        })
    );
    assert!(t.completed.unwrap().to_string().starts_with("late: met by"));
    // Without the final report it is overdue.
    let t = timeline(&id.to_string(), &[first], NOW);
    assert_eq!(t.completed, Some(Clock::Overdue { hours: 5 * 24 }));
}

#[test]
fn a_later_report_reclassifies_and_a_retracted_one_counts_for_nothing() {
    let aware = NOW - Duration::days(1);
    let (id, first) = report(
        None,
        IncidentStatus::Initial,
        NOW - Duration::hours(20),
        Some((GENERAL, aware)),
    );
    let (upd_id, update) = report(
        Some(id),
        IncidentStatus::Update,
        NOW - Duration::hours(2),
        Some((
            intake::Art73Category::WidespreadOrCriticalInfrastructure,
            aware,
        )),
    );
    let t = timeline(&id.to_string(), &[first.clone(), update.clone()], NOW);
    let d = t.deadline.unwrap();
    assert_eq!((d.days, d.classified_by), (2, upd_id.to_string()));
    assert_eq!(t.completed, Some(Clock::DueIn { hours: 24 }));
    // The update withdrawn: the first report's classification stands.
    let (_, (mut withdrawn, content)) = (upd_id, update);
    withdrawn.state = RecordState::Retracted as i32;
    let t = timeline(&id.to_string(), &[first, (withdrawn, content)], NOW);
    assert_eq!(t.deadline.unwrap().days, 15);
}
