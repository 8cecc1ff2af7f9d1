//! Building records: validate the content, disclose its index fields, seal
//! it to the recipients its label implies, sign it.

use cairn_identity::{Directory, SigningKey};
use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::header::time_to_timestamp;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::{Recipient, RecordDraft, content};
use prost::Message as _;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ClientError;

/// With whom a record is shared (FIRST TLP 2.0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Share {
    /// TLP:CLEAR: not sealed.
    Clear,
    /// TLP:GREEN: sealed to every member of the directory.
    Green,
    /// TLP:AMBER to these members (the author is added).
    Amber(Vec<String>),
    /// TLP:AMBER+STRICT to these members (the author is added).
    AmberStrict(Vec<String>),
    /// TLP:RED to these members (the author is added).
    Red(Vec<String>),
}

impl Share {
    /// The label.
    pub fn label(&self) -> SharingLabel {
        match self {
            Share::Clear => SharingLabel::TlpClear,
            Share::Green => SharingLabel::TlpGreen,
            Share::Amber(_) => SharingLabel::TlpAmber,
            Share::AmberStrict(_) => SharingLabel::TlpAmberStrict,
            Share::Red(_) => SharingLabel::TlpRed,
        }
    }

    /// Parses `clear`, `green`, `amber`, `amber+strict` or `red` with the
    /// listed recipients.
    pub fn parse(label: &str, recipients: Vec<String>) -> Result<Self, ClientError> {
        let l = label.to_ascii_lowercase();
        let l = l.strip_prefix("tlp:").unwrap_or(&l);
        let share = match l {
            "clear" | "white" => Share::Clear,
            "green" => Share::Green,
            "amber" => Share::Amber(recipients.clone()),
            "amber+strict" | "amber-strict" | "amber_strict" => {
                Share::AmberStrict(recipients.clone())
            }
            "red" => Share::Red(recipients.clone()),
            other => {
                return Err(ClientError::Label {
                    label: other.to_owned(),
                });
            }
        };
        if matches!(share, Share::Clear | Share::Green) && !recipients.is_empty() {
            return Err(ClientError::RecipientsNotTaken {
                label: label.to_owned(),
            });
        }
        if matches!(
            share,
            Share::Amber(_) | Share::AmberStrict(_) | Share::Red(_)
        ) && recipients.is_empty()
        {
            return Err(ClientError::RecipientsNeeded {
                label: label.to_owned(),
            });
        }
        Ok(share)
    }

    fn recipients(
        &self,
        directory: &Directory,
        author: &str,
    ) -> Result<Vec<Recipient>, ClientError> {
        let ids: Vec<String> = match self {
            Share::Clear => return Ok(Vec::new()),
            Share::Green => directory.members().map(|m| m.id.to_string()).collect(),
            Share::Amber(r) | Share::AmberStrict(r) | Share::Red(r) => {
                let mut ids = r.clone();
                ids.push(author.to_owned());
                ids.sort();
                ids.dedup();
                ids
            }
        };
        ids.iter()
            .map(|m| {
                Recipient::from_directory(directory, m)
                    .map_err(|_| ClientError::UnknownRecipient { member: m.clone() })
            })
            .collect()
    }
}

/// A record ready to submit.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The signed record.
    pub record: pb::SignedRecord,
    /// Its id.
    pub record_id: String,
    /// For a serious incident: the EU AI Act Art. 73 reporting deadline.
    pub reporting_deadline: Option<OffsetDateTime>,
}

/// Seals and signs content of `kind`.
#[allow(clippy::too_many_arguments)]
pub fn record(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    kind: RecordKind,
    content: Vec<u8>,
    index: Option<pb::IndexFields>,
    share: &Share,
    supersedes: Option<&str>,
    retracts: Option<&str>,
) -> Result<Prepared, ClientError> {
    let links = Links {
        supersedes,
        retracts,
        ..Links::default()
    };
    linked(directory, author, key, kind, content, index, share, links)
}

/// A record id given as `what` (`supersedes`, `erase`, …), parsed.
fn record_id(what: &'static str, id: &str) -> Result<Uuid, ClientError> {
    cairn_record::header::parse_record_id(id).map_err(|d| ClientError::RecordId {
        what,
        id: id.to_owned(),
        detail: d.to_string(),
    })
}

/// The records a new one names in its header.
#[derive(Clone, Copy, Debug, Default)]
struct Links<'a> {
    supersedes: Option<&'a str>,
    retracts: Option<&'a str>,
    thread: Option<&'a str>,
    about: Option<&'a str>,
    acknowledges: Option<&'a str>,
}

#[allow(clippy::too_many_arguments)]
fn linked(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    kind: RecordKind,
    content: Vec<u8>,
    index: Option<pb::IndexFields>,
    share: &Share,
    links: Links<'_>,
) -> Result<Prepared, ClientError> {
    let parse_id = |what, id: Option<&str>| id.map(|id| record_id(what, id)).transpose();
    let mut draft = RecordDraft::new(kind, share.label(), content);
    draft.recipients = share.recipients(directory, author)?;
    draft.index = index;
    draft.supersedes = parse_id("supersedes", links.supersedes)?;
    draft.retracts = parse_id("retracts", links.retracts)?;
    draft.thread = parse_id("thread", links.thread)?;
    draft.about = parse_id("about", links.about)?;
    draft.acknowledges = parse_id("acknowledges", links.acknowledges)?;
    let record = cairn_record::build(&draft, author, key)?;
    Ok(Prepared {
        record,
        record_id: draft.record_id.hyphenated().to_string(),
        reporting_deadline: None,
    })
}

/// Validates an incident (filling in its Art. 73 deadline), then seals and
/// signs it.
pub fn incident(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    incident: &intake::Incident,
    share: &Share,
) -> Result<Prepared, ClientError> {
    incident_with(directory, author, key, incident, share, None)
}

/// [`incident`], as a correction superseding `supersedes`.
pub fn incident_with(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    incident: &intake::Incident,
    share: &Share,
    supersedes: Option<&str>,
) -> Result<Prepared, ClientError> {
    let links = Links {
        supersedes,
        ..Links::default()
    };
    report(directory, author, key, incident, share, links)
}

/// [`incident`], as a follow-up report (its status `update` or `final`)
/// in the thread whose first report is `thread`, one of the author's own.
pub fn follow_up(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    incident: &intake::Incident,
    share: &Share,
    thread: &str,
) -> Result<Prepared, ClientError> {
    let links = Links {
        thread: Some(thread),
        ..Links::default()
    };
    report(directory, author, key, incident, share, links)
}

fn report(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    incident: &intake::Incident,
    share: &Share,
    links: Links<'_>,
) -> Result<Prepared, ClientError> {
    let mut inc = incident.clone();
    let deadline = content::art73_deadline(&inc);
    if let (Some(d), Some(s)) = (deadline, inc.serious_incident.as_mut())
        && s.reporting_deadline.is_none()
    {
        s.reporting_deadline = Some(time_to_timestamp(d));
    }
    content::validate_incident(&inc, OffsetDateTime::now_utc())?;
    let index = content::incident_index(&inc);
    let mut p = linked(
        directory,
        author,
        key,
        RecordKind::Incident,
        inc.encode_to_vec(),
        Some(index),
        share,
        links,
    )?;
    p.reporting_deadline = deadline;
    Ok(p)
}

/// Validates an evaluation result, then seals and signs it.
pub fn result(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    result: &evals::EvaluationResult,
    share: &Share,
) -> Result<Prepared, ClientError> {
    result_with(directory, author, key, result, share, None)
}

/// [`result`], as a correction superseding `supersedes`.
pub fn result_with(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    result: &evals::EvaluationResult,
    share: &Share,
    supersedes: Option<&str>,
) -> Result<Prepared, ClientError> {
    content::validate_evaluation(result, author, OffsetDateTime::now_utc())?;
    let index = content::evaluation_index(result);
    record(
        directory,
        author,
        key,
        RecordKind::EvaluationResult,
        result.encode_to_vec(),
        Some(index),
        share,
        supersedes,
        None,
    )
}

/// The share a record's header names: its label, and its recipients (the
/// author among them) for the labels that list them.
pub fn share_of(header: &pb::RecordHeader) -> Result<Share, ClientError> {
    let recipients = || header.recipients.iter().map(|m| m.id.clone()).collect();
    Ok(match header.label() {
        SharingLabel::TlpClear => Share::Clear,
        SharingLabel::TlpGreen => Share::Green,
        SharingLabel::TlpAmber => Share::Amber(recipients()),
        SharingLabel::TlpAmberStrict => Share::AmberStrict(recipients()),
        SharingLabel::TlpRed => Share::Red(recipients()),
        SharingLabel::Unspecified => {
            return Err(ClientError::Label {
                label: "unspecified".into(),
            });
        }
    })
}

/// A retraction of the record whose header is `target` (the author's own):
/// a record of the same kind whose content is a `Retraction` with
/// `reason`, shared as the target is (the same label and recipients, so
/// whoever could read the record learns it is withdrawn).
pub fn retraction(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    target: &pb::RecordHeader,
    reason: &str,
) -> Result<Prepared, ClientError> {
    let body = pb::Retraction {
        reason: reason.to_owned(),
    };
    content::validate_retraction(&body)?;
    let target_id = target
        .record_id
        .as_ref()
        .map(|r| r.uuid.as_str())
        .unwrap_or_default();
    record(
        directory,
        author,
        key,
        target.kind(),
        body.encode_to_vec(),
        None,
        &share_of(target)?,
        None,
        Some(target_id),
    )
}

/// A sighting ("observed here too"), about the incident `about` or the
/// model it names, validated, sealed as `share` says and signed.
pub fn sighting(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    sighting: &intake::Sighting,
    share: &Share,
    about: Option<&str>,
) -> Result<Prepared, ClientError> {
    content::validate_sighting(sighting, OffsetDateTime::now_utc())?;
    if about.is_none() && sighting.model.is_none() {
        return Err(ClientError::AboutNothing { what: "a sighting" });
    }
    let links = Links {
        about,
        ..Links::default()
    };
    let content = sighting.encode_to_vec();
    linked(
        directory,
        author,
        key,
        RecordKind::Sighting,
        content,
        None,
        share,
        links,
    )
}

/// A mitigation or advisory, about the incident `about` or the model it
/// names, validated, sealed as `share` says and signed.
pub fn mitigation(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    mitigation: &intake::Mitigation,
    share: &Share,
    about: Option<&str>,
) -> Result<Prepared, ClientError> {
    content::validate_mitigation(mitigation)?;
    if about.is_none() && mitigation.model.is_none() {
        return Err(ClientError::AboutNothing {
            what: "a mitigation",
        });
    }
    let links = Links {
        about,
        ..Links::default()
    };
    let content = mitigation.encode_to_vec();
    linked(
        directory,
        author,
        key,
        RecordKind::Mitigation,
        content,
        None,
        share,
        links,
    )
}

/// An acknowledgement of the report whose header is `report`, in `state`
/// with an optional `note`: shared with the report's author and `also`
/// (TLP:RED to them when the report is RED, TLP:AMBER otherwise).
pub fn acknowledgement(
    directory: &Directory,
    author: &str,
    key: &SigningKey,
    report: &pb::RecordHeader,
    state: pb::AcknowledgementState,
    note: &str,
    also: &[String],
) -> Result<Prepared, ClientError> {
    let body = pb::Acknowledgement {
        state: state as i32,
        note: note.to_owned(),
    };
    content::validate_acknowledgement(&body)?;
    let mut to: Vec<String> = also.to_vec();
    to.extend(report.author.as_ref().map(|a| a.id.clone()));
    let share = if report.label() == SharingLabel::TlpRed {
        Share::Red(to)
    } else {
        Share::Amber(to)
    };
    let links = Links {
        acknowledges: report.record_id.as_ref().map(|r| r.uuid.as_str()),
        ..Links::default()
    };
    let content = body.encode_to_vec();
    let kind = RecordKind::Acknowledgement;
    linked(directory, author, key, kind, content, None, &share, links)
}

/// A signed erasure order (an encoded DSSE envelope of a
/// `cairn.common.v1.ErasureOrder`) by `author` for `record_id`, dated now.
pub fn erasure_order(
    author: &str,
    key: &SigningKey,
    record_id: &str,
    reason: &str,
) -> Result<Vec<u8>, ClientError> {
    content::validate_retraction(&pb::Retraction {
        reason: reason.to_owned(),
    })?;
    let id = self::record_id("erase", record_id)?;
    let order = pb::ErasureOrder {
        record_id: Some(pb::RecordId {
            uuid: id.hyphenated().to_string(),
        }),
        reason: reason.to_owned(),
        ordered_by: Some(pb::MemberId {
            id: author.to_owned(),
        }),
        signing_key_id: key.key_id().to_owned(),
        ordered_at: Some(time_to_timestamp(OffsetDateTime::now_utc())),
    };
    Ok(cairn_record::dsse::sign(
        cairn_record::dsse::ERASURE_ORDER_TYPE,
        order.encode_to_vec(),
        key,
    )
    .encode_to_vec())
}
