//! Structural checks of a record header: everything that can be checked
//! without the directory or the service's policy.

use cairn_identity::spiffe::MemberId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::commitment::COMMITMENT_LEN;
use crate::error::RecordError;
use crate::pb::{self, RecordKind, SharingLabel};

/// The content schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Most recipients a record may list.
pub const MAX_RECIPIENTS: usize = 256;

/// Longest signing key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Parses a record id: a UUIDv7 in canonical lowercase hyphenated form.
pub fn parse_record_id(text: &str) -> Result<Uuid, &'static str> {
    let id = Uuid::try_parse(text).map_err(|_| "not a UUID")?;
    if id.hyphenated().to_string() != text {
        return Err("not in canonical lowercase hyphenated form");
    }
    if id.get_version_num() != 7 {
        return Err("not a version 7 UUID");
    }
    Ok(id)
}

/// A protobuf timestamp as a point in time.
pub fn timestamp_to_time(ts: &prost_types::Timestamp) -> Result<OffsetDateTime, &'static str> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err("nanos out of range");
    }
    let t = OffsetDateTime::from_unix_timestamp(ts.seconds).map_err(|_| "seconds out of range")?;
    Ok(t + time::Duration::nanoseconds(i64::from(ts.nanos)))
}

/// A point in time as a protobuf timestamp.
pub fn time_to_timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// A header whose structure has been checked, with its fields in typed form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedHeader {
    /// Record id.
    pub record_id: Uuid,
    /// Kind.
    pub kind: RecordKind,
    /// Author.
    pub author: MemberId,
    /// Signing key id.
    pub signing_key_id: String,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Label.
    pub label: SharingLabel,
    /// Recipients, sorted.
    pub recipients: Vec<String>,
    /// The record it supersedes.
    pub supersedes: Option<Uuid>,
    /// The record it retracts.
    pub retracts: Option<Uuid>,
    /// For a follow-up incident report: its thread's first report.
    pub thread: Option<Uuid>,
    /// For an acknowledgement: the report it acknowledges.
    pub acknowledges: Option<Uuid>,
    /// For a sighting or a mitigation: the incident it concerns.
    pub about: Option<Uuid>,
}

fn bad(field: &str, detail: impl Into<String>) -> RecordError {
    RecordError::field(format!("header.{field}"), detail)
}

fn opt_record_id(field: &str, id: &Option<pb::RecordId>) -> Result<Option<Uuid>, RecordError> {
    id.as_ref()
        .map(|r| {
            parse_record_id(&r.uuid)
                .map_err(|d| bad(field, format!("{:?}: {d}", truncate(&r.uuid))))
        })
        .transpose()
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Checks a header's structure.
pub fn check(h: &pb::RecordHeader) -> Result<CheckedHeader, RecordError> {
    let id_text = h
        .record_id
        .as_ref()
        .map(|r| r.uuid.as_str())
        .ok_or_else(|| bad("record_id", "missing"))?;
    let record_id = parse_record_id(id_text)
        .map_err(|d| bad("record_id", format!("{:?}: {d}", truncate(id_text))))?;
    let kind = RecordKind::try_from(h.kind)
        .ok()
        .filter(|k| *k != RecordKind::Unspecified)
        .ok_or_else(|| bad("kind", format!("{} is not a record kind", h.kind)))?;
    if h.schema_version != SCHEMA_VERSION {
        return Err(bad(
            "schema_version",
            format!(
                "{} is not supported (this build reads {SCHEMA_VERSION})",
                h.schema_version
            ),
        ));
    }
    let author_text = h
        .author
        .as_ref()
        .map(|a| a.id.as_str())
        .ok_or_else(|| bad("author", "missing"))?;
    let author = MemberId::parse(author_text)
        .map_err(|d| bad("author", format!("{:?}: {d}", truncate(author_text))))?;
    if h.signing_key_id.is_empty() || h.signing_key_id.len() > MAX_KEY_ID_LEN {
        return Err(bad(
            "signing_key_id",
            format!("must be 1 to {MAX_KEY_ID_LEN} bytes"),
        ));
    }
    let created_at = h
        .created_at
        .as_ref()
        .ok_or_else(|| bad("created_at", "missing"))
        .and_then(|ts| timestamp_to_time(ts).map_err(|d| bad("created_at", d)))?;
    let label = SharingLabel::try_from(h.label)
        .ok()
        .filter(|l| *l != SharingLabel::Unspecified)
        .ok_or_else(|| bad("label", format!("{} is not a sharing label", h.label)))?;
    let recipients = check_recipients(h, label)?;
    let (supersedes, retracts) = check_links(h, record_id)?;
    let thread = check_thread(h, kind, record_id)?;
    let acknowledges = check_acknowledges(h, kind, record_id)?;
    let about = opt_record_id("about", &h.about)?;
    if about.is_some() && !matches!(kind, RecordKind::Sighting | RecordKind::Mitigation) {
        return Err(bad(
            "about",
            "only a sighting or a mitigation is about an incident",
        ));
    }
    if about == Some(record_id) {
        return Err(bad("about", "a record cannot refer to itself"));
    }
    check_length("body_commitment", &h.body_commitment, COMMITMENT_LEN)?;
    check_index(h, kind)?;
    check_length("body_digest", &h.body_digest, 32)?;
    Ok(CheckedHeader {
        record_id,
        kind,
        author,
        signing_key_id: h.signing_key_id.clone(),
        created_at,
        label,
        recipients,
        supersedes,
        retracts,
        thread,
        acknowledges,
        about,
    })
}

/// The recipients: at most [`MAX_RECIPIENTS`] member ids, sorted and
/// unique, none for TLP:CLEAR and some for every other label.
fn check_recipients(h: &pb::RecordHeader, label: SharingLabel) -> Result<Vec<String>, RecordError> {
    if h.recipients.len() > MAX_RECIPIENTS {
        return Err(bad(
            "recipients",
            format!(
                "{} recipients, at most {MAX_RECIPIENTS}",
                h.recipients.len()
            ),
        ));
    }
    let mut recipients: Vec<String> = Vec::with_capacity(h.recipients.len());
    for (i, r) in h.recipients.iter().enumerate() {
        MemberId::parse(&r.id).map_err(|d| {
            bad(
                &format!("recipients[{i}]"),
                format!("{:?}: {d}", truncate(&r.id)),
            )
        })?;
        if let Some(prev) = recipients.last()
            && prev.as_str() >= r.id.as_str()
        {
            return Err(bad(
                &format!("recipients[{i}]"),
                "recipients must be sorted and unique",
            ));
        }
        recipients.push(r.id.clone());
    }
    match label {
        SharingLabel::TlpClear if !recipients.is_empty() => {
            return Err(bad("recipients", "a TLP:CLEAR record has no recipients"));
        }
        SharingLabel::TlpClear => {}
        _ if recipients.is_empty() => {
            return Err(bad(
                "recipients",
                format!("a {} record needs recipients", label.as_str_name()),
            ));
        }
        _ => {}
    }
    Ok(recipients)
}

/// What the record supersedes or retracts: at most one, never itself.
fn check_links(
    h: &pb::RecordHeader,
    record_id: Uuid,
) -> Result<(Option<Uuid>, Option<Uuid>), RecordError> {
    let supersedes = opt_record_id("supersedes", &h.supersedes)?;
    let retracts = opt_record_id("retracts", &h.retracts)?;
    if supersedes.is_some() && retracts.is_some() {
        return Err(bad(
            "retracts",
            "a record cannot both supersede and retract",
        ));
    }
    if supersedes == Some(record_id) || retracts == Some(record_id) {
        return Err(bad("supersedes", "a record cannot refer to itself"));
    }
    Ok((supersedes, retracts))
}

/// The thread a follow-up incident report belongs to: only on incidents,
/// never on a retraction, never itself; a disclosed status says update or
/// final (a thread has one first report).
fn check_thread(
    h: &pb::RecordHeader,
    kind: RecordKind,
    record_id: Uuid,
) -> Result<Option<Uuid>, RecordError> {
    let Some(thread) = opt_record_id("thread", &h.thread)? else {
        return Ok(None);
    };
    if kind != RecordKind::Incident {
        return Err(bad("thread", "only incident reports belong to a thread"));
    }
    if h.retracts.is_some() {
        return Err(bad("thread", "a retraction is not a report of a thread"));
    }
    if thread == record_id {
        return Err(bad(
            "thread",
            "a thread's first report names no thread; follow-ups name it",
        ));
    }
    if let Some(pb::IndexFields {
        fields: Some(pb::index_fields::Fields::Incident(i)),
    }) = &h.index
        && i.status == pb::IncidentStatus::Initial as i32
    {
        return Err(bad(
            "thread",
            "a follow-up report's status is update or final, not initial",
        ));
    }
    Ok(Some(thread))
}

/// What an acknowledgement acknowledges: required on one, refused on
/// every other kind; never itself; an acknowledgement links nothing else.
fn check_acknowledges(
    h: &pb::RecordHeader,
    kind: RecordKind,
    record_id: Uuid,
) -> Result<Option<Uuid>, RecordError> {
    let acknowledges = opt_record_id("acknowledges", &h.acknowledges)?;
    if kind != RecordKind::Acknowledgement {
        return match acknowledges {
            Some(_) => Err(bad("acknowledges", "only an acknowledgement acknowledges")),
            None => Ok(None),
        };
    }
    let Some(report) = acknowledges else {
        return Err(bad("acknowledges", "an acknowledgement names its report"));
    };
    if report == record_id {
        return Err(bad("acknowledges", "a record cannot refer to itself"));
    }
    if h.supersedes.is_some() || h.retracts.is_some() || h.thread.is_some() {
        return Err(bad(
            "acknowledges",
            "an acknowledgement neither supersedes, retracts nor follows up; a later state is a new acknowledgement",
        ));
    }
    Ok(Some(report))
}

/// Index fields, if any, of the record's kind.
fn check_index(h: &pb::RecordHeader, kind: RecordKind) -> Result<(), RecordError> {
    if let Some(index) = &h.index {
        let fits = matches!(
            (&index.fields, kind),
            (None, _)
                | (
                    Some(pb::index_fields::Fields::Incident(_)),
                    RecordKind::Incident
                )
                | (
                    Some(pb::index_fields::Fields::Evaluation(_)),
                    RecordKind::EvaluationResult | RecordKind::Baseline | RecordKind::Assessment
                )
        );
        if !fits {
            return Err(bad(
                "index",
                format!(
                    "these index fields do not describe a {} record",
                    kind.as_str_name()
                ),
            ));
        }
    }
    Ok(())
}

/// `bytes` (header field `field`) is `len` bytes long.
fn check_length(field: &str, bytes: &[u8], len: usize) -> Result<(), RecordError> {
    if bytes.len() != len {
        return Err(bad(field, format!("{} bytes, expected {len}", bytes.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_must_be_canonical_v7() {
        let id = Uuid::now_v7();
        assert_eq!(parse_record_id(&id.to_string()).unwrap(), id);
        assert!(parse_record_id(&id.to_string().to_uppercase()).is_err());
        assert!(parse_record_id(&id.simple().to_string()).is_err());
        assert_eq!(
            parse_record_id(&Uuid::new_v4().to_string()),
            Err("not a version 7 UUID")
        );
        assert_eq!(parse_record_id("nope"), Err("not a UUID"));
    }

    #[test]
    fn timestamps_convert_both_ways() {
        let ts = prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 123,
        };
        assert_eq!(time_to_timestamp(timestamp_to_time(&ts).unwrap()), ts);
        assert!(
            timestamp_to_time(&prost_types::Timestamp {
                seconds: 0,
                nanos: -1
            })
            .is_err()
        );
        assert!(
            timestamp_to_time(&prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })
            .is_err()
        );
    }
}
