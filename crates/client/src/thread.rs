//! Incident threads as a member sees them: the first report, its updates
//! and the final report, each a signed record whose header names the
//! thread's first report; who of each report's recipients acknowledged it
//! (and how far they are) and who has not; and the thread's EU AI Act
//! Art. 73 clock.
//!
//! The clock is computed here, by the member, because what it reads (the
//! serious-incident classification and the awareness time) is inside sealed
//! bodies. From the most recent report that classifies the incident (a
//! later report may reclassify it), the period applies: 15 days from
//! awareness (Art. 73(2)), 10 for a death (73(4)), 2 for a widespread
//! infringement or critical infrastructure (73(3)). Art. 73(5) lets the
//! report within the period be incomplete and be followed by a complete
//! one; so the clock says both whether the first report that classified it
//! as serious arrived within the period, and where the final (complete)
//! report stands against the same date: met by which report, due in N
//! hours, or overdue.

use cairn_proto::intake::v1 as intake;
use cairn_record::header::timestamp_to_time;
use cairn_record::pb::{self, IncidentStatus, RecordState};
use time::{Duration, OffsetDateTime};

/// One report of a thread, as the caller can see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Its record id.
    pub record_id: String,
    /// Its author.
    pub author: String,
    /// Initial, update or final (from the disclosed index, or the content).
    pub status: IncidentStatus,
    /// Active, superseded, retracted or erased.
    pub state: RecordState,
    /// When the service accepted it.
    pub received_at: Option<OffsetDateTime>,
    /// Its title, where the caller could open it.
    pub title: Option<String>,
    /// The latest acknowledgement of each member that acknowledged it (as
    /// far as the caller may see them), oldest first.
    pub acknowledged: Vec<Ack>,
    /// The report's recipients (other than its author) with no
    /// acknowledgement the caller can see, waiting since `received_at`.
    pub awaiting: Vec<String>,
}

/// One member's latest acknowledgement of a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Ack {
    /// Who acknowledged.
    pub by: String,
    /// Its state (`None`: sealed to others than the caller).
    pub state: Option<pb::AcknowledgementState>,
    /// Its note, if any and readable.
    pub note: Option<String>,
    /// When the service accepted it.
    pub at: Option<OffsetDateTime>,
}

/// Fills in `report`'s acknowledgements from `acks` (its
/// acknowledgements, opened where the caller could) and who of its
/// recipients has not acknowledged it; `stored` is the report.
pub fn acknowledge(
    report: &mut Report,
    stored: &pb::StoredRecord,
    acks: &[(pb::StoredRecord, Option<pb::Acknowledgement>)],
    directory: &cairn_identity::Directory,
) {
    let mut latest: std::collections::BTreeMap<String, Ack> = Default::default();
    for (s, content) in acks {
        let Ok(h) = crate::verify::stored_header(s) else {
            continue;
        };
        let by = h.author.map(|a| a.id).unwrap_or_default();
        let at = s
            .received_at
            .as_ref()
            .and_then(|t| timestamp_to_time(t).ok());
        if latest.get(&by).is_some_and(|a| a.at >= at) {
            continue;
        }
        let ack = Ack {
            by: by.clone(),
            state: content.as_ref().map(|c| c.state()),
            note: content
                .as_ref()
                .map(|c| c.note.clone())
                .filter(|n| !n.is_empty()),
            at,
        };
        latest.insert(by, ack);
    }
    let expected: Vec<String> = match crate::verify::stored_header(stored) {
        Ok(h) if h.label() == pb::SharingLabel::TlpClear => {
            directory.members().map(|m| m.id.to_string()).collect()
        }
        Ok(h) => h.recipients.into_iter().map(|m| m.id).collect(),
        Err(_) => Vec::new(),
    };
    report.awaiting = expected
        .into_iter()
        .filter(|m| *m != report.author && !latest.contains_key(m))
        .collect();
    let mut acknowledged: Vec<Ack> = latest.into_values().collect();
    acknowledged.sort_by_key(|a| a.at);
    report.acknowledged = acknowledged;
}

/// The Art. 73 period that applies.
#[derive(Clone, Debug, PartialEq)]
pub struct Deadline {
    /// Which paragraph's period.
    pub category: intake::Art73Category,
    /// Its length in days.
    pub days: i64,
    /// When the provider became aware (the period starts).
    pub aware_at: OffsetDateTime,
    /// When it ends.
    pub due_at: OffsetDateTime,
    /// The report whose classification this is.
    pub classified_by: String,
}

/// Where a report stands against the deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Met by this report, this many hours before the deadline (negative:
    /// after it).
    Met {
        /// The report.
        by: String,
        /// Hours before the deadline it arrived (negative: late).
        hours_early: i64,
    },
    /// Not in yet; due in this many hours.
    DueIn {
        /// Hours left.
        hours: i64,
    },
    /// Not in yet; this many hours past the deadline.
    Overdue {
        /// Hours past.
        hours: i64,
    },
}

/// A thread and its clock.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    /// The thread's first report.
    pub thread: String,
    /// Its reports the caller may see, oldest accepted first.
    pub reports: Vec<Report>,
    /// The period that applies; `None` when no report the caller could
    /// open classifies the incident as serious.
    pub deadline: Option<Deadline>,
    /// The first report that classified it as serious, against the period.
    pub reported: Option<Clock>,
    /// The final report against the same date.
    pub completed: Option<Clock>,
}

/// The timeline of `thread` from `records` (each with its opened content
/// where the caller could open it), as of `now`. Records of other threads,
/// and active retractions, are left out.
pub fn timeline(
    thread: &str,
    records: &[(pb::StoredRecord, Option<intake::Incident>)],
    now: OffsetDateTime,
) -> Timeline {
    let mut reports: Vec<(Report, Option<&intake::Incident>)> = records
        .iter()
        .filter_map(|(s, inc)| report_of(s, inc.as_ref()).map(|r| (r, inc.as_ref())))
        .collect();
    reports.sort_by_key(|(r, _)| r.received_at);
    let deadline = reports
        .iter()
        .rev()
        .filter(|(r, _)| r.state != RecordState::Retracted)
        .find_map(|(r, inc)| deadline_of(&r.record_id, (*inc)?));
    let arrived = |pick: &dyn Fn(&Report, Option<&intake::Incident>) -> bool| {
        reports
            .iter()
            .filter(|(r, _)| r.state != RecordState::Retracted)
            .find(|(r, inc)| pick(r, *inc))
            .map(|(r, _)| r)
    };
    let clock = |d: &Deadline, report: Option<&Report>| match report {
        Some(r) => Clock::Met {
            by: r.record_id.clone(),
            hours_early: (d.due_at - r.received_at.unwrap_or(now)).whole_hours(),
        },
        None if now <= d.due_at => Clock::DueIn {
            hours: (d.due_at - now).whole_hours(),
        },
        None => Clock::Overdue {
            hours: (now - d.due_at).whole_hours(),
        },
    };
    let (reported, completed) = match &deadline {
        Some(d) => {
            let serious = |_: &Report, inc: Option<&intake::Incident>| {
                inc.and_then(|i| i.serious_incident.as_ref())
                    .is_some_and(|s| s.is_serious)
            };
            let fin = |r: &Report, _: Option<&intake::Incident>| r.status == IncidentStatus::Final;
            (
                Some(clock(d, arrived(&serious))),
                Some(clock(d, arrived(&fin))),
            )
        }
        None => (None, None),
    };
    Timeline {
        thread: thread.to_owned(),
        reports: reports.into_iter().map(|(r, _)| r).collect(),
        deadline,
        reported,
        completed,
    }
}

/// The report a stored record is, if it is an incident report (not a
/// retraction).
fn report_of(s: &pb::StoredRecord, inc: Option<&intake::Incident>) -> Option<Report> {
    let h = crate::verify::stored_header(s).ok()?;
    if h.kind() != pb::RecordKind::Incident || h.retracts.is_some() {
        return None;
    }
    let disclosed = match h.index.as_ref().and_then(|i| i.fields.as_ref()) {
        Some(pb::index_fields::Fields::Incident(i)) => Some(i.status()),
        _ => None,
    };
    Some(Report {
        record_id: h.record_id.map(|r| r.uuid).unwrap_or_default(),
        author: h.author.map(|a| a.id).unwrap_or_default(),
        status: inc.map(|i| i.status()).or(disclosed).unwrap_or_default(),
        state: s.state(),
        received_at: s
            .received_at
            .as_ref()
            .and_then(|t| timestamp_to_time(t).ok()),
        title: inc.map(|i| i.title.clone()),
        acknowledged: Vec::new(),
        awaiting: Vec::new(),
    })
}

fn deadline_of(record_id: &str, inc: &intake::Incident) -> Option<Deadline> {
    let s = inc.serious_incident.as_ref().filter(|s| s.is_serious)?;
    let category = intake::Art73Category::try_from(s.category).ok()?;
    let days = cairn_record::content::art73_days(category)?;
    let aware_at = timestamp_to_time(s.aware_at.as_ref()?).ok()?;
    Some(Deadline {
        category,
        days,
        aware_at,
        due_at: aware_at + Duration::days(days),
        classified_by: record_id.to_owned(),
    })
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::Met { by, hours_early } if *hours_early >= 0 => {
                write!(
                    f,
                    "on time: met by {by}, {hours_early} h before the deadline"
                )
            }
            Clock::Met { by, hours_early } => {
                write!(
                    f,
                    "late: met by {by}, {} h after the deadline",
                    -hours_early
                )
            }
            Clock::DueIn { hours } => write!(f, "due in {hours} h"),
            Clock::Overdue { hours } => write!(f, "overdue by {hours} h"),
        }
    }
}

#[cfg(test)]
mod tests;
