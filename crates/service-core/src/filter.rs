//! List and watch filters: whether a stored record matches a
//! `RecordFilter`. Pure; label rules are applied before this
//! ([`crate::labels`]), so a filter can only narrow what a reader sees.

use cairn_record::header::{CheckedHeader, timestamp_to_time};
use cairn_record::pb::{self, RecordState};

/// Whether the record with header `h`, disclosed index `index` and state
/// `state` matches `f`. An unset field matches everything; an incident or
/// evaluation filter matches only records that disclose that index.
pub fn matches(
    h: &CheckedHeader,
    index: Option<&pb::IndexFields>,
    state: i32,
    f: &pb::RecordFilter,
) -> bool {
    let index = index.and_then(|i| i.fields.as_ref());
    matches_header(h, state, f)
        && f.incident.as_ref().is_none_or(|inc| match index {
            Some(pb::index_fields::Fields::Incident(i)) => matches_incident(i, inc),
            _ => false,
        })
        && f.evaluation.as_ref().is_none_or(|ev| match index {
            Some(pb::index_fields::Fields::Evaluation(e)) => matches_evaluation(e, ev),
            _ => false,
        })
}

fn matches_header(h: &CheckedHeader, state: i32, f: &pb::RecordFilter) -> bool {
    let time =
        |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(|t| timestamp_to_time(t).ok());
    f.author.as_ref().is_none_or(|a| a.id == h.author.as_str())
        && (f.kinds.is_empty() || f.kinds.contains(&(h.kind as i32)))
        && (f.labels.is_empty() || f.labels.contains(&(h.label as i32)))
        && time(&f.created_after).is_none_or(|after| h.created_at > after)
        && time(&f.created_before).is_none_or(|before| h.created_at < before)
        && (f.include_inactive || state == RecordState::Active as i32)
        && f.thread.as_ref().is_none_or(|t| in_thread(h, &t.uuid))
        && f.acknowledges
            .as_ref()
            .is_none_or(|r| names(&r.uuid, h.acknowledges))
        && f.about.as_ref().is_none_or(|r| names(&r.uuid, h.about))
}

/// `link` is the record `id` (a malformed id names nothing).
fn names(id: &str, link: Option<uuid::Uuid>) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|id| link == Some(id))
}

/// `h` is the thread's first report (`thread`) or names it.
fn in_thread(h: &CheckedHeader, thread: &str) -> bool {
    uuid::Uuid::parse_str(thread).is_ok_and(|t| h.record_id == t || h.thread == Some(t))
}

fn matches_incident(i: &pb::IncidentIndex, f: &pb::IncidentFilter) -> bool {
    (f.statuses.is_empty() || f.statuses.contains(&i.status))
        && (f.min_severity == 0 || i.severity >= f.min_severity)
        && (f.sector.is_empty() || i.sectors.contains(&f.sector))
        && (f.jurisdiction.is_empty() || i.jurisdictions.contains(&f.jurisdiction))
}

fn matches_evaluation(e: &pb::EvaluationIndex, f: &pb::EvaluationFilter) -> bool {
    (f.model_name.is_empty() || f.model_name == e.model_name)
        && (f.model_provider.is_empty() || f.model_provider == e.model_provider)
        && (f.task_id.is_empty() || e.task_ids.contains(&f.task_id))
        && f.evaluator
            .as_ref()
            .is_none_or(|m| e.evaluator.as_ref() == Some(m))
        && (f.risk_domain == 0 || f.risk_domain == e.risk_domain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cairn_identity::MemberId;
    use cairn_record::header::time_to_timestamp;
    use cairn_record::pb::{RecordKind, SharingLabel};
    use time::macros::datetime;

    fn header(kind: RecordKind) -> CheckedHeader {
        CheckedHeader {
            record_id: uuid::Uuid::now_v7(),
            kind,
            author: MemberId::parse("uk-aisi").unwrap(),
            signing_key_id: "k1".into(),
            created_at: datetime!(2026-06-01 12:00 UTC),
            label: SharingLabel::TlpGreen,
            recipients: vec![],
            supersedes: None,
            retracts: None,
            thread: None,
            acknowledges: None,
            about: None,
        }
    }

    fn incident_index() -> pb::IndexFields {
        pb::IndexFields {
            fields: Some(pb::index_fields::Fields::Incident(pb::IncidentIndex {
                status: 1,
                severity: 3,
                sectors: vec!["health".into()],
                jurisdictions: vec!["GB".into()],
            })),
        }
    }

    const ACTIVE: i32 = RecordState::Active as i32;

    #[test]
    fn a_thread_filter_takes_the_first_report_and_its_follow_ups_only() {
        let first = header(RecordKind::Incident);
        let mut follow_up = header(RecordKind::Incident);
        follow_up.thread = Some(first.record_id);
        let other = header(RecordKind::Incident);
        let of = |id: &str| pb::RecordFilter {
            thread: Some(pb::RecordId { uuid: id.into() }),
            ..Default::default()
        };
        let thread = of(&first.record_id.hyphenated().to_string());
        assert!(matches(&first, None, ACTIVE, &thread));
        assert!(matches(&follow_up, None, ACTIVE, &thread));
        assert!(!matches(&other, None, ACTIVE, &thread));
        // A follow-up's own id names no thread; nor does a malformed id.
        let by_follow_up = of(&follow_up.record_id.hyphenated().to_string());
        assert!(!matches(&first, None, ACTIVE, &by_follow_up));
        assert!(!matches(&first, None, ACTIVE, &of("not-a-uuid")));
    }

    #[test]
    fn header_fields_each_narrow() {
        let h = header(RecordKind::Incident);
        let all = pb::RecordFilter::default();
        assert!(matches(&h, None, ACTIVE, &all));
        let cases: Vec<(pb::RecordFilter, bool)> = vec![
            (
                pb::RecordFilter {
                    author: Some(pb::MemberId {
                        id: "uk-aisi".into(),
                    }),
                    ..all.clone()
                },
                true,
            ),
            (
                pb::RecordFilter {
                    author: Some(pb::MemberId {
                        id: "jp-aisi".into(),
                    }),
                    ..all.clone()
                },
                false,
            ),
            (
                pb::RecordFilter {
                    kinds: vec![RecordKind::Incident as i32],
                    ..all.clone()
                },
                true,
            ),
            (
                pb::RecordFilter {
                    kinds: vec![RecordKind::Baseline as i32],
                    ..all.clone()
                },
                false,
            ),
            (
                pb::RecordFilter {
                    labels: vec![SharingLabel::TlpRed as i32],
                    ..all.clone()
                },
                false,
            ),
            (
                pb::RecordFilter {
                    created_after: Some(time_to_timestamp(datetime!(2026-05-01 0:00 UTC))),
                    ..all.clone()
                },
                true,
            ),
            // Bounds are exclusive.
            (
                pb::RecordFilter {
                    created_after: Some(time_to_timestamp(h.created_at)),
                    ..all.clone()
                },
                false,
            ),
            (
                pb::RecordFilter {
                    created_before: Some(time_to_timestamp(h.created_at)),
                    ..all.clone()
                },
                false,
            ),
            (
                pb::RecordFilter {
                    created_before: Some(time_to_timestamp(datetime!(2027-01-01 0:00 UTC))),
                    ..all.clone()
                },
                true,
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(matches(&h, None, ACTIVE, f), *want, "case {i}: {f:?}");
        }
    }

    #[test]
    fn inactive_records_only_when_asked() {
        let h = header(RecordKind::Incident);
        let superseded = RecordState::Superseded as i32;
        assert!(!matches(&h, None, superseded, &pb::RecordFilter::default()));
        let f = pb::RecordFilter {
            include_inactive: true,
            ..Default::default()
        };
        assert!(matches(&h, None, superseded, &f));
    }

    #[test]
    fn incident_filters_need_an_incident_index() {
        let h = header(RecordKind::Incident);
        let idx = incident_index();
        let inc = |f: pb::IncidentFilter| pb::RecordFilter {
            incident: Some(f),
            ..Default::default()
        };
        assert!(!matches(
            &h,
            None,
            ACTIVE,
            &inc(pb::IncidentFilter::default())
        ));
        assert!(matches(
            &h,
            Some(&idx),
            ACTIVE,
            &inc(pb::IncidentFilter::default())
        ));
        let cases = [
            (
                pb::IncidentFilter {
                    statuses: vec![1],
                    ..Default::default()
                },
                true,
            ),
            (
                pb::IncidentFilter {
                    statuses: vec![2],
                    ..Default::default()
                },
                false,
            ),
            (
                pb::IncidentFilter {
                    min_severity: 3,
                    ..Default::default()
                },
                true,
            ),
            (
                pb::IncidentFilter {
                    min_severity: 4,
                    ..Default::default()
                },
                false,
            ),
            (
                pb::IncidentFilter {
                    sector: "health".into(),
                    ..Default::default()
                },
                true,
            ),
            (
                pb::IncidentFilter {
                    sector: "energy".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::IncidentFilter {
                    jurisdiction: "GB".into(),
                    ..Default::default()
                },
                true,
            ),
            (
                pb::IncidentFilter {
                    jurisdiction: "JP".into(),
                    ..Default::default()
                },
                false,
            ),
        ];
        for (f, want) in cases {
            assert_eq!(
                matches(&h, Some(&idx), ACTIVE, &inc(f.clone())),
                want,
                "{f:?}"
            );
        }
        // An evaluation filter never matches an incident.
        let ev = pb::RecordFilter {
            evaluation: Some(Default::default()),
            ..Default::default()
        };
        assert!(!matches(&h, Some(&idx), ACTIVE, &ev));
    }

    #[test]
    fn evaluation_filters_match_their_index() {
        let h = header(RecordKind::EvaluationResult);
        let idx = pb::IndexFields {
            fields: Some(pb::index_fields::Fields::Evaluation(pb::EvaluationIndex {
                model_provider: "acme".into(),
                model_name: "m1".into(),
                task_ids: vec!["cyber-1".into()],
                evaluator: Some(pb::MemberId {
                    id: "uk-aisi".into(),
                }),
                risk_domain: 2,
                ..Default::default()
            })),
        };
        let ev = |f: pb::EvaluationFilter| pb::RecordFilter {
            evaluation: Some(f),
            ..Default::default()
        };
        let cases = [
            (
                pb::EvaluationFilter {
                    model_name: "m1".into(),
                    ..Default::default()
                },
                true,
            ),
            (
                pb::EvaluationFilter {
                    model_name: "m2".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::EvaluationFilter {
                    model_provider: "other".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::EvaluationFilter {
                    task_id: "cyber-1".into(),
                    ..Default::default()
                },
                true,
            ),
            (
                pb::EvaluationFilter {
                    task_id: "cbrn-1".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::EvaluationFilter {
                    evaluator: Some(pb::MemberId {
                        id: "jp-aisi".into(),
                    }),
                    ..Default::default()
                },
                false,
            ),
            (
                pb::EvaluationFilter {
                    risk_domain: 2,
                    ..Default::default()
                },
                true,
            ),
            (
                pb::EvaluationFilter {
                    risk_domain: 3,
                    ..Default::default()
                },
                false,
            ),
        ];
        for (f, want) in cases {
            assert_eq!(
                matches(&h, Some(&idx), ACTIVE, &ev(f.clone())),
                want,
                "{f:?}"
            );
        }
    }
}
