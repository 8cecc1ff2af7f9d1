//! The second half of a full audit (DESIGN.md section 4): for every leaf
//! that names a record in the clear, fetch that record from the service
//! that accepted it, as the auditing member, and check that what is served
//! is what was logged — the envelope's digest is the leaf's and its
//! signature verifies (or, for an erasure, the order's digest is the
//! leaf's and the order's signature verifies). A record the member may not
//! read, and a TLP:RED leaf, are counted, not checked.
//!
//! Key transparency: on a network founded by a genesis, every signature is
//! checked against the directory in force at its leaf's place, rebuilt from
//! the genesis and the directory change records (the history), never
//! against today's directory file; and the history must be exactly the
//! log's directory change leaves, each at its index. A key revoked for
//! compromise verifies nothing from the revocation's place on; a record
//! it signed before that place whose created-at (or an order whose
//! ordered-at) is after the compromise began is flagged ([`Flagged`]).

use std::collections::BTreeMap;

use cairn_identity::Directory;
use cairn_proto::common::v1 as common;
use cairn_proto::common::v1::ErasureOrder;
use cairn_record::RecordError;
use cairn_record::dsse;
use cairn_record::header::{parse_record_id, timestamp_to_time};
use cairn_record::record::{decode_envelope, sha256, verify_envelope};
use prost::Message as _;
use time::OffsetDateTime;
use tonic::Code;

use super::{LogFailure, LogVerifier, failed};
use crate::client::{Client, DirectoryHistory};
use crate::error::ClientError;

/// A record or erasure order logged before its key's revocation took
/// effect, but claiming a time after the compromise began: the signature
/// verifies, and whoever held the key may have made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flagged {
    /// Its leaf.
    pub leaf_index: u64,
    /// The record (or the erased record).
    pub record_id: String,
    /// The signer.
    pub member: String,
    /// The revoked key.
    pub key_id: String,
    /// The created-at (ordered-at) it claims.
    pub claimed: OffsetDateTime,
    /// When the key's compromise began.
    pub compromised_since: OffsetDateTime,
}

/// What [`LogVerifier::check_records`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordsChecked {
    /// Records whose envelope matched their leaf and verified.
    pub records: u64,
    /// Erasure leaves whose signed order matched and verified.
    pub erasures: u64,
    /// Leaves naming a record this member may not read (or that no service
    /// serves): not checkable by this auditor.
    pub unreadable: u64,
    /// TLP:RED leaves: their subject is salted, so they name no record.
    pub salted: u64,
    /// Directory change leaves matched by the history (each record checked
    /// when the history was replayed).
    pub directory_changes: u64,
    /// Verified, but signed by a key later revoked with a compromise that
    /// began before the time it claims.
    pub flagged: Vec<Flagged>,
}

/// Every key revoked in any version of the history: (member, key id) →
/// when its compromise began.
type Revoked = BTreeMap<(String, String), OffsetDateTime>;

fn revocations(history: Option<&DirectoryHistory>) -> Revoked {
    let mut out = Revoked::new();
    for version in history.map_or(&[][..], |h| h.governed.versions()) {
        for m in version.directory.members() {
            for k in &m.signing_keys {
                if let Some(since) = k.compromised_since {
                    out.entry((m.id.to_string(), k.id.clone())).or_insert(since);
                }
            }
        }
    }
    out
}

/// Who signed a leaf's envelope or order, with which key, claiming when.
struct Signed {
    key_id: String,
    at: OffsetDateTime,
}

impl Named<'_> {
    fn flag(&self, signed: Signed, revoked: &Revoked) -> Option<Flagged> {
        let since = *revoked.get(&(self.author.to_owned(), signed.key_id.clone()))?;
        (signed.at >= since).then(|| Flagged {
            leaf_index: self.index,
            record_id: self.record.to_owned(),
            member: self.author.to_owned(),
            key_id: signed.key_id,
            claimed: signed.at,
            compromised_since: since,
        })
    }
}

/// One clear leaf, as the checks need it.
struct Named<'a> {
    index: u64,
    record: &'a str,
    author: &'a str,
    digest: &'a [u8],
}

impl LogVerifier {
    /// Checks every record that `leaves` (as [`LogVerifier::recompute`]
    /// returned them) name in the clear against what `client`'s member is
    /// served. With the directory's `history`, every signature is checked
    /// against the directory in force at its leaf and the history against
    /// the log's directory change leaves; without (a network with no
    /// genesis), against `client`'s directory.
    pub async fn check_records(
        &self,
        leaves: &[common::LogLeaf],
        client: &Client,
        history: Option<&DirectoryHistory>,
        mut progress: impl FnMut(u64),
    ) -> Result<RecordsChecked, ClientError> {
        let mut seen = RecordsChecked::default();
        let revoked = revocations(history);
        if let Some(h) = history {
            seen.directory_changes = history_matches_log(h, leaves)?;
        }
        for (index, leaf) in (0u64..).zip(leaves) {
            progress(index + 1);
            let directory = match history {
                Some(h) => &h.governed.at_tree_size(index).directory,
                None => client.directory(),
            };
            if leaf.service == "audit" && leaf.kind == common::RecordKind::DirectoryChange as i32 {
                continue;
            }
            let Some(common::log_leaf::Subject::Clear(s)) = &leaf.subject else {
                seen.salted += 1;
                continue;
            };
            let named = Named {
                index,
                record: s.record_id.as_ref().map_or("", |r| r.uuid.as_str()),
                author: s.author.as_ref().map_or("", |a| a.id.as_str()),
                digest: &leaf.envelope_digest,
            };
            let stored = match fetch(client, &leaf.service, named.record).await {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    seen.unreadable += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let envelope = stored.record.as_ref().map_or(&[][..], |r| &r.envelope);
            let signed = if sha256(envelope).as_slice() == named.digest {
                seen.records += 1;
                check_envelope(&named, envelope, directory)?
            } else if !stored.erasure_order.is_empty()
                && sha256(&stored.erasure_order).as_slice() == named.digest
            {
                seen.erasures += 1;
                check_order(&named, &stored.erasure_order, directory)?
            } else {
                return Err(failed(LogFailure::OtherEnvelope {
                    index,
                    record: named.record.to_owned(),
                }));
            };
            seen.flagged.extend(named.flag(signed, &revoked));
        }
        Ok(seen)
    }
}

/// That the history's entries are exactly the log's directory change
/// leaves, each at its index; how many.
fn history_matches_log(
    history: &DirectoryHistory,
    leaves: &[common::LogLeaf],
) -> Result<u64, ClientError> {
    let mismatch = |index, problem| failed(LogFailure::HistoryMismatch { index, problem });
    let mut entries = history.entries.iter().peekable();
    let mut matched = 0;
    for (index, leaf) in (0u64..).zip(leaves) {
        let is_change =
            leaf.service == "audit" && leaf.kind == common::RecordKind::DirectoryChange as i32;
        match entries.peek() {
            Some(e) if e.leaf_index == index => {
                let logged = common::LogLeaf::decode(e.leaf.as_slice()).ok();
                if !is_change || logged.as_ref() != Some(leaf) {
                    return Err(mismatch(
                        index,
                        "the directory history's entry here is not the log's leaf",
                    ));
                }
                entries.next();
                matched += 1;
            }
            _ if is_change => {
                return Err(mismatch(
                    index,
                    "a directory change the directory history does not hold",
                ));
            }
            _ => {}
        }
    }
    match entries.next() {
        Some(e) => Err(mismatch(
            e.leaf_index,
            "a directory history entry beyond the log, or out of order",
        )),
        None => Ok(matched),
    }
}

/// The record as `service` serves it to the member; `None` if it does not
/// exist for the member (or the service is not one that stores records).
async fn fetch(
    client: &Client,
    service: &str,
    record: &str,
) -> Result<Option<common::StoredRecord>, ClientError> {
    let got = match service {
        "intake" => client.get_incident(record, false).await,
        "evals" => client.get_result(record, false).await,
        _ => return Ok(None),
    };
    match got {
        Ok(stored) => Ok(Some(stored)),
        Err(ClientError::Status(s))
            if matches!(s.code(), Code::NotFound | Code::PermissionDenied) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn bad(named: &Named<'_>, problem: RecordError) -> ClientError {
    failed(LogFailure::BadRecord {
        index: named.index,
        record: named.record.to_owned(),
        problem,
    })
}

fn other_subject(named: &Named<'_>) -> ClientError {
    failed(LogFailure::OtherSubject {
        index: named.index,
        record: named.record.to_owned(),
    })
}

/// The envelope verifies and its header is the leaf's record by the
/// leaf's author.
fn check_envelope(
    named: &Named<'_>,
    envelope: &[u8],
    directory: &Directory,
) -> Result<Signed, ClientError> {
    let (_, h) = verify_envelope(envelope, directory).map_err(|e| bad(named, e))?;
    if h.record_id.hyphenated().to_string() != named.record || h.author.as_str() != named.author {
        return Err(other_subject(named));
    }
    Ok(Signed {
        key_id: h.signing_key_id,
        at: h.created_at,
    })
}

/// The erasure order verifies with its orderer's key as of its date, and
/// orders the erasure of the leaf's record by the leaf's orderer.
fn check_order(
    named: &Named<'_>,
    order: &[u8],
    directory: &Directory,
) -> Result<Signed, ClientError> {
    let field = |field: &str, detail: &str| {
        bad(
            named,
            RecordError::Field {
                field: format!("erasure_order.{field}"),
                detail: detail.to_owned(),
            },
        )
    };
    let env = decode_envelope(order).map_err(|e| bad(named, e))?;
    if env.payload_type != dsse::ERASURE_ORDER_TYPE {
        return Err(field("payload_type", "not an erasure order"));
    }
    let [signature] = env.signatures.as_slice() else {
        return Err(field("signatures", "an order carries exactly one"));
    };
    let o = ErasureOrder::decode(env.payload.as_slice())
        .map_err(|_| field("payload", "not an ErasureOrder"))?;
    let record = o.record_id.as_ref().map_or("", |r| r.uuid.as_str());
    let by = o.ordered_by.as_ref().map_or("", |m| m.id.as_str());
    if parse_record_id(record).is_err() || record != named.record || by != named.author {
        return Err(other_subject(named));
    }
    let at = o
        .ordered_at
        .as_ref()
        .ok_or_else(|| field("ordered_at", "missing"))
        .and_then(|t| timestamp_to_time(t).map_err(|d| field("ordered_at", d)))?;
    let member = directory
        .member(by)
        .ok_or_else(|| bad(named, RecordError::UnknownAuthor(by.to_owned())))?;
    let key = member
        .signing_key_at(&o.signing_key_id, at)
        .map_err(|e| bad(named, RecordError::SigningKey(e)))?;
    if signature.keyid != o.signing_key_id || !dsse::verify(&env, signature, key) {
        return Err(bad(named, RecordError::BadSignature));
    }
    Ok(Signed {
        key_id: o.signing_key_id,
        at,
    })
}
