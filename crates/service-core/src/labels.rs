//! Label and recipient rules (DESIGN.md section 3), as pure functions.
//!
//! [`decide`] says what one reader may do with one record for one
//! operation, from the record's label and the reader's relation to it;
//! [`check_recipients`] says whether a new record's recipients and wrapped
//! keys fit its label and the directory in force. The services call these
//! and nothing else decides who sees what.

use cairn_identity::{Directory, Member, Role};
use cairn_record::header::CheckedHeader;
use cairn_record::pb::{self, SharingLabel};

use crate::error::ServiceError;

/// What a reader is to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// It signed the record.
    Author,
    /// The record is sealed to it.
    Recipient,
    /// Neither.
    Outsider,
}

/// A reader of a record: its relation and the roles that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    /// Its relation to the record.
    pub relation: Relation,
    /// It holds the `governance` role (may erase any record).
    pub governance: bool,
}

impl Relation {
    /// What member `member` is to the record with header `h`.
    pub fn of(h: &CheckedHeader, member: &str) -> Self {
        if h.author.as_str() == member {
            Relation::Author
        } else if h.recipients.iter().any(|r| r == member) {
            Relation::Recipient
        } else {
            Relation::Outsider
        }
    }
}

impl Reader {
    /// `member`'s relation to the record with header `h`, and its roles.
    pub fn of(h: &CheckedHeader, member: &Member) -> Self {
        Self {
            relation: Relation::of(h, member.id.as_str()),
            governance: member.has_role(Role::Governance),
        }
    }

    /// `member` reading: roles never widen what a member reads.
    pub fn reading(h: &CheckedHeader, member: &str) -> Self {
        Self {
            relation: Relation::of(h, member),
            governance: false,
        }
    }
}

/// What a reader does with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Fetch it by id.
    Get,
    /// See it in a list page.
    List,
    /// See it in a watch stream.
    Watch,
    /// Supersede it with a correction.
    Supersede,
    /// Retract it.
    Retract,
    /// Erase its body.
    Erase,
}

/// The answer for one reader, record and operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, with the body (reads) or the change (writes).
    Whole,
    /// Listed or watched with its header only, no body.
    HeaderOnly,
    /// The record does not exist for this reader (NOT_FOUND, not listed).
    Hidden,
    /// Refused (PERMISSION_DENIED).
    Denied,
}

/// How much of a record's content a reader may read.
pub fn read_access(label: SharingLabel, relation: Relation) -> Decision {
    match (relation, label) {
        (Relation::Author, _) => Decision::Whole,
        (_, SharingLabel::TlpClear | SharingLabel::TlpGreen) => Decision::Whole,
        (Relation::Recipient, _) => Decision::Whole,
        (Relation::Outsider, SharingLabel::TlpAmber | SharingLabel::TlpAmberStrict) => {
            Decision::HeaderOnly
        }
        // TLP:RED, and any label this build does not know: hidden.
        (Relation::Outsider, _) => Decision::Hidden,
    }
}

/// The rule for `op` on a record labelled `label`, by `reader`. A record
/// hidden from a reader is hidden on every operation: changing it answers
/// exactly what changing a record that does not exist answers.
pub fn decide(op: Operation, label: SharingLabel, reader: Reader) -> Decision {
    let access = read_access(label, reader.relation);
    if access == Decision::Hidden {
        return Decision::Hidden;
    }
    match op {
        Operation::List | Operation::Watch => access,
        Operation::Get => match access {
            Decision::HeaderOnly => Decision::Denied,
            other => other,
        },
        Operation::Supersede | Operation::Retract => match reader.relation {
            Relation::Author => Decision::Whole,
            _ => Decision::Denied,
        },
        // The author, or a governance member that may read the record.
        Operation::Erase => match (reader.relation, reader.governance, access) {
            (Relation::Author, _, _) | (_, true, Decision::Whole) => Decision::Whole,
            _ => Decision::Denied,
        },
    }
}

/// A new record's recipients and wrapped keys fit its label against the
/// directory in force: CLEAR has no rule; GREEN is sealed to exactly every
/// member; AMBER, AMBER+STRICT and RED name members that exist; every
/// wrapped key is for the recipient's current sealing key.
pub fn check_recipients(
    h: &CheckedHeader,
    body: &pb::RecordBody,
    directory: &Directory,
) -> Result<(), ServiceError> {
    if h.label == SharingLabel::TlpClear {
        return Ok(());
    }
    if let Some(r) = h.recipients.iter().find(|r| directory.member(r).is_none()) {
        return Err(ServiceError::UnknownRecipient {
            recipient: r.clone(),
        });
    }
    if h.label == SharingLabel::TlpGreen {
        let all: Vec<String> = directory.members().map(|m| m.id.to_string()).collect();
        if h.recipients != all {
            return Err(ServiceError::GreenRecipients { members: all });
        }
    }
    if let Some(pb::record_body::Body::Sealed(sealed)) = &body.body {
        for (index, w) in sealed.wrapped_keys.iter().enumerate() {
            let rid = w
                .recipient
                .as_ref()
                .map(|r| r.id.as_str())
                .unwrap_or_default();
            let listed = directory.member(rid).map(|m| m.sealing_key.id.as_str());
            if listed != Some(w.recipient_key_id.as_str()) {
                return Err(ServiceError::WrongSealingKey {
                    index,
                    recipient: rid.to_owned(),
                    key_id: w.recipient_key_id.clone(),
                    listed: listed.map(str::to_owned),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use Operation::*;

    const AUTHOR: Reader = Reader {
        relation: Relation::Author,
        governance: false,
    };
    const RECIPIENT: Reader = Reader {
        relation: Relation::Recipient,
        governance: false,
    };
    const OTHER: Reader = Reader {
        relation: Relation::Outsider,
        governance: false,
    };
    const GOVERNANCE: Reader = Reader {
        relation: Relation::Outsider,
        governance: true,
    };
    /// The auditor role grants nothing over records beyond membership.
    const AUDITOR: Reader = OTHER;

    /// Every label × reader × operation.
    /// Columns: get, list, watch, supersede, retract, erase.
    #[test]
    fn the_label_table() {
        use SharingLabel::*;
        let ops = [Get, List, Watch, Supersede, Retract, Erase];
        let readers = [
            ("author", AUTHOR),
            ("recipient", RECIPIENT),
            ("other member", OTHER),
            ("governance", GOVERNANCE),
            ("auditor", AUDITOR),
        ];
        // For each label: the row of each reader in the order above.
        let open = [Whole, Whole, Whole, Denied, Denied, Denied];
        let open_gov = [Whole, Whole, Whole, Denied, Denied, Whole];
        let mine = [Whole, Whole, Whole, Whole, Whole, Whole];
        let amber_out = [Denied, HeaderOnly, HeaderOnly, Denied, Denied, Denied];
        // A governance member erases only what it may read.
        let amber_gov = amber_out;
        // RED does not exist for non-recipients, whatever they try.
        let red_out = [Hidden; 6];
        let red_gov = red_out;
        let table: [(SharingLabel, [[Decision; 6]; 5]); 5] = [
            (TlpClear, [mine, open, open, open_gov, open]),
            (TlpGreen, [mine, open, open, open_gov, open]),
            (TlpAmber, [mine, open, amber_out, amber_gov, amber_out]),
            (
                TlpAmberStrict,
                [mine, open, amber_out, amber_gov, amber_out],
            ),
            (TlpRed, [mine, open, red_out, red_gov, red_out]),
        ];
        for (label, rows) in table {
            for ((who, reader), row) in readers.iter().zip(rows) {
                for (op, want) in ops.iter().zip(row) {
                    assert_eq!(
                        decide(*op, label, *reader),
                        want,
                        "{} × {who} × {op:?}",
                        label.as_str_name()
                    );
                }
            }
        }
    }

    #[test]
    fn a_governance_recipient_reads_as_a_recipient_and_may_erase() {
        let r = Reader {
            relation: Relation::Recipient,
            governance: true,
        };
        assert_eq!(decide(Get, SharingLabel::TlpRed, r), Whole);
        assert_eq!(decide(Erase, SharingLabel::TlpRed, r), Whole);
        assert_eq!(decide(Supersede, SharingLabel::TlpRed, r), Denied);
    }

    #[test]
    fn an_unknown_label_is_hidden_from_outsiders() {
        assert_eq!(
            read_access(SharingLabel::Unspecified, Relation::Outsider),
            Hidden
        );
        assert_eq!(
            read_access(SharingLabel::Unspecified, Relation::Recipient),
            Whole
        );
    }
}
