//! Alert subscriptions: what concerns a member, matched against incidents
//! as they arrive. Header fields (severity, sector, jurisdiction: the
//! disclosed index) narrow the service's watch stream; fields inside sealed
//! bodies (the AI system and its models) are matched here, by the member,
//! after opening — the services cannot read them.

use std::collections::BTreeSet;

use cairn_proto::intake::v1 as intake;
use cairn_record::pb::{self, Severity};

/// What a member wants to be told about. Within a list any entry matches;
/// the lists and the minimum severity must all match (an empty list
/// matches everything). `my_threads` alerts, besides, on every new report
/// in a thread whose first report the member may read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Model names, identifiers or digests (`sha256:…`), or AI system
    /// names, matched in the opened content.
    pub models: Vec<String>,
    /// Sectors, matched in the disclosed index.
    pub sectors: Vec<String>,
    /// Jurisdictions, matched in the disclosed index.
    pub jurisdictions: Vec<String>,
    /// At least this severe (unspecified: any).
    pub min_severity: Severity,
    /// Also every follow-up report in a thread the member is part of.
    pub my_threads: bool,
}

/// Why a record matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It matches the subscription's criteria.
    Criteria,
    /// A new report in a thread the member is part of.
    Thread(String),
}

impl Subscription {
    /// The watch filter the service applies: incidents at the minimum
    /// severity, in the one sector or jurisdiction when only one is asked
    /// for. Everything else is matched by [`Subscription::matches`].
    pub fn filter(&self) -> pb::RecordFilter {
        let one = |v: &[String]| match v {
            [only] if !self.my_threads => only.clone(),
            _ => String::new(),
        };
        let incident = (!self.my_threads).then(|| pb::IncidentFilter {
            min_severity: self.min_severity as i32,
            sector: one(&self.sectors),
            jurisdiction: one(&self.jurisdictions),
            ..Default::default()
        });
        pb::RecordFilter {
            kinds: vec![pb::RecordKind::Incident as i32],
            incident,
            ..Default::default()
        }
    }

    /// Whether the record with `header` (and `content`, when the member
    /// could open it) matches; `in_my_thread` says whether the thread it
    /// names, if any, is one the member is part of.
    pub fn matches(
        &self,
        header: &pb::RecordHeader,
        content: Option<&intake::Incident>,
        in_my_thread: bool,
    ) -> Option<Reason> {
        if header.kind() != pb::RecordKind::Incident || header.retracts.is_some() {
            return None;
        }
        if self.my_threads
            && in_my_thread
            && let Some(t) = &header.thread
        {
            return Some(Reason::Thread(t.uuid.clone()));
        }
        let index = match header.index.as_ref().and_then(|i| i.fields.as_ref()) {
            Some(pb::index_fields::Fields::Incident(i)) => Some(i),
            _ => None,
        };
        let any_in = |wanted: &[String], have: Option<&Vec<String>>| {
            wanted.is_empty() || have.is_some_and(|h| wanted.iter().any(|w| h.contains(w)))
        };
        let severe = self.min_severity == Severity::Unspecified
            || index.is_some_and(|i| i.severity >= self.min_severity as i32);
        let criteria = severe
            && any_in(&self.sectors, index.map(|i| &i.sectors))
            && any_in(&self.jurisdictions, index.map(|i| &i.jurisdictions))
            && (self.models.is_empty() || content.is_some_and(|c| self.names_a_model(c)));
        // A subscription to threads alone asks for nothing else.
        let only_threads = self.my_threads
            && self.models.is_empty()
            && self.sectors.is_empty()
            && self.jurisdictions.is_empty()
            && self.min_severity == Severity::Unspecified;
        (criteria && !only_threads).then_some(Reason::Criteria)
    }

    fn names_a_model(&self, incident: &intake::Incident) -> bool {
        let Some(system) = &incident.ai_system else {
            return false;
        };
        let names: BTreeSet<&str> = std::iter::once(system.name.as_str())
            .chain(
                system
                    .models
                    .iter()
                    .flat_map(|m| [m.id.as_str(), m.digest.as_str()]),
            )
            .filter(|n| !n.is_empty())
            .collect();
        self.models.iter().any(|m| names.contains(m.as_str()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(severity: Severity, sector: &str, thread: Option<&str>) -> pb::RecordHeader {
        pb::RecordHeader {
            kind: pb::RecordKind::Incident as i32,
            thread: thread.map(|t| pb::RecordId { uuid: t.into() }),
            index: Some(pb::IndexFields {
                fields: Some(pb::index_fields::Fields::Incident(pb::IncidentIndex {
                    severity: severity as i32,
                    sectors: vec![sector.into()],
                    jurisdictions: vec!["GB".into()],
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    fn incident(model: &str, digest: &str) -> intake::Incident {
        intake::Incident {
            ai_system: Some(intake::AiSystem {
                name: "MedAssist".into(),
                models: vec![intake::ModelIdentifier {
                    id: model.into(),
                    digest: digest.into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_criterion_must_match_and_models_are_read_from_the_content() {
        let s = Subscription {
            models: vec!["sha256:aa".into(), "frontier-1".into()],
            sectors: vec!["healthcare".into(), "energy".into()],
            min_severity: Severity::High,
            ..Default::default()
        };
        let h = header(Severity::Critical, "energy", None);
        let by_digest = incident("x", "sha256:aa");
        assert_eq!(
            s.matches(&h, Some(&by_digest), false),
            Some(Reason::Criteria)
        );
        let by_id = incident("frontier-1", "");
        assert_eq!(s.matches(&h, Some(&by_id), false), Some(Reason::Criteria));
        // Sealed to others: the model cannot be matched.
        assert_eq!(s.matches(&h, None, false), None);
        assert_eq!(s.matches(&h, Some(&incident("other", "")), false), None);
        let mild = header(Severity::Moderate, "energy", None);
        assert_eq!(s.matches(&mild, Some(&by_digest), false), None);
        let elsewhere = header(Severity::Critical, "finance", None);
        assert_eq!(s.matches(&elsewhere, Some(&by_digest), false), None);
        // The filter the service applies: severity only (two sectors).
        let f = s.filter().incident.unwrap();
        assert_eq!(
            (f.min_severity, f.sector.as_str()),
            (Severity::High as i32, "")
        );
    }

    #[test]
    fn a_thread_subscription_takes_follow_ups_in_the_members_threads_only() {
        let s = Subscription {
            my_threads: true,
            ..Default::default()
        };
        let follow_up = header(Severity::Low, "energy", Some("t1"));
        assert_eq!(
            s.matches(&follow_up, None, true),
            Some(Reason::Thread("t1".into()))
        );
        assert_eq!(s.matches(&follow_up, None, false), None);
        let first = header(Severity::Critical, "energy", None);
        assert_eq!(s.matches(&first, None, false), None, "nothing else asked");
        assert!(s.filter().incident.is_none(), "the service filters nothing");
        // A retraction is no report.
        let mut retraction = follow_up.clone();
        retraction.retracts = Some(pb::RecordId { uuid: "x".into() });
        assert_eq!(s.matches(&retraction, None, true), None);
    }
}
