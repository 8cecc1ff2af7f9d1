//! Erasure: a signed order from a record's author or a governance member
//! deletes the stored body and keeps the log entry; the order itself is
//! logged. The order is a `cairn.common.v1.ErasureOrder`, the same for
//! every service.

use cairn_identity::{Member, PeerIdentity};
use cairn_record::clock::Skew;
use cairn_record::header::timestamp_to_time;
use cairn_record::pb::{self, RecordState};
use cairn_record::{dsse, record};
use cairn_store::WriteBatch;
use prost::Message as _;
use time::OffsetDateTime;

use crate::core::{Attempt, Change, Committed, RecordCore};
use crate::error::ServiceError;
use crate::labels::{self, Decision, Operation, Reader};
use crate::leaves;
use crate::stored::*;

/// A verified erasure order, to be applied.
struct Erasure<'a> {
    record_id: String,
    orderer: &'a Member,
    order_bytes: &'a [u8],
}

impl RecordCore {
    /// Erases a record's body under a signed erasure order from its author
    /// or a governance member; the log entry stays and the order is logged.
    /// Returns the erasure's receipt, or `None` while it is pending.
    pub async fn erase(
        &self,
        peer: &PeerIdentity,
        order_bytes: &[u8],
    ) -> Result<(Option<pb::Receipt>, bool), ServiceError> {
        let member = self.member(peer)?;
        // Sized and rate-limited like a submission (an order is an envelope).
        self.within_rate(member.id.as_str())?;
        if order_bytes.len() > self.config.max_envelope {
            return Err(ServiceError::TooLarge {
                field: "order",
                size: order_bytes.len(),
                limit: self.config.max_envelope,
            });
        }
        let order = self.verified_order(&member, order_bytes)?;
        let erasure = Erasure {
            record_id: order.record_id.map(|r| r.uuid).unwrap_or_default(),
            orderer: &member,
            order_bytes,
        };
        let receipt = match self.commit_retrying(&erasure).await? {
            Committed::Receipt(r) => {
                tracing::info!(record_id = %erasure.record_id, by = %member.id, "record erased");
                r
            }
            Committed::Answered(done) => {
                let id = &erasure.record_id;
                self.until_durable(|| format!("the erasure of record {id}"))
                    .await?;
                self.with_receipts(id.as_bytes(), done)
                    .await?
                    .erasure_receipt
            }
        };
        let pending = receipt.is_none();
        Ok((receipt, pending))
    }

    /// The order in `order_bytes`, from the connection's member, with a
    /// record id, a reason, a time and a signature by the orderer's key
    /// valid at that time and now.
    fn verified_order(
        &self,
        member: &Member,
        order_bytes: &[u8],
    ) -> Result<pb::ErasureOrder, ServiceError> {
        let env = record::decode_envelope(order_bytes)?;
        if env.payload_type != dsse::ERASURE_ORDER_TYPE {
            return Err(ServiceError::BadField {
                field: "order.payload_type",
                problem: format!("expected {:?}", dsse::ERASURE_ORDER_TYPE),
            });
        }
        let order = pb::ErasureOrder::decode(env.payload.as_slice()).map_err(|e| {
            ServiceError::BadField {
                field: "order",
                problem: format!("not an ErasureOrder ({e})"),
            }
        })?;
        let ordered_by = order.ordered_by.as_ref().map_or("", |m| m.id.as_str());
        if ordered_by != member.id.as_str() {
            return Err(ServiceError::OrdererNotPeer {
                orderer: ordered_by.to_owned(),
                member: member.id.to_string(),
            });
        }
        if order.reason.trim().is_empty() {
            return Err(ServiceError::Missing {
                field: "order.reason",
            });
        }
        let at = order
            .ordered_at
            .as_ref()
            .ok_or(ServiceError::Missing {
                field: "order.ordered_at",
            })
            .and_then(|t| {
                timestamp_to_time(t).map_err(|d| ServiceError::BadField {
                    field: "order.ordered_at",
                    problem: d.to_string(),
                })
            })?;
        // The claimed time is bounded by the receive time, and the key must
        // be valid at both: a key whose window has ended erases nothing,
        // however the order is dated.
        let now = OffsetDateTime::now_utc();
        self.config.clock().check(at, now).map_err(|s| match s {
            Skew::InFuture => ServiceError::OrderedInFuture,
            Skew::TooOld { max_days } => ServiceError::OrderedTooOld { max_days },
        })?;
        let key = member
            .signing_key_at(&order.signing_key_id, at)
            .map_err(ServiceError::OrderKey)?;
        member
            .signing_key_at(&order.signing_key_id, now)
            .map_err(ServiceError::KeyNotCurrent)?;
        let [sig] = env.signatures.as_slice() else {
            return Err(ServiceError::BadField {
                field: "order.signatures",
                problem: "exactly one".into(),
            });
        };
        if !dsse::verify(&env, sig, key) {
            return Err(ServiceError::OrderSignature);
        }
        if order.record_id.as_ref().is_none_or(|r| r.uuid.is_empty()) {
            return Err(ServiceError::Missing {
                field: "order.record_id",
            });
        }
        Ok(order)
    }
}

impl Change for Erasure<'_> {
    /// The entry of a record erased before.
    type Answer = Entry;

    async fn attempt(&self, core: &RecordCore) -> Result<Attempt<Entry>, ServiceError> {
        let id = &self.record_id;
        let (old, mut e) = core
            .entry(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound { record: id.clone() })?;
        let (_, h) = header_of(&e.envelope)?;
        match labels::decide(Operation::Erase, h.label, Reader::of(&h, self.orderer)) {
            Decision::Whole => {}
            Decision::Hidden => return Err(ServiceError::NotFound { record: id.clone() }),
            Decision::HeaderOnly | Decision::Denied => {
                return Err(ServiceError::MayNotErase {
                    record: id.clone(),
                    author: h.author.to_string(),
                });
            }
        }
        if e.state == RecordState::Erased as i32 {
            return Ok(Attempt::Answer(e));
        }
        let leaf = leaves::erasure_leaf(
            h.kind,
            id,
            self.orderer.id.as_str(),
            self.order_bytes,
            OffsetDateTime::now_utc(),
            core.policy.service,
            (h.label == pb::SharingLabel::TlpRed).then_some(e.leaf_salt.as_slice()),
        );
        e.body.clear();
        e.state = RecordState::Erased as i32;
        e.erasure_order = self.order_bytes.to_vec();
        e.erasure_leaf = leaf.clone();
        let item = OutboxItem {
            record_id: id.clone(),
            leaf,
            erasure: true,
            queued_at_ms: now_ms(),
            owner: core.outbox.owner().to_owned(),
        }
        .encode_to_vec();
        let (key, erased) = (id.as_bytes().to_vec(), e.encode_to_vec());
        Ok(Attempt::Commit(Box::new(move |n: u64| {
            let mut batch = WriteBatch::new();
            batch
                .expect(NS_RECORDS, key.clone(), Some(old.clone()))
                .put(NS_RECORDS, key.clone(), erased.clone())
                .put(NS_OUTBOX, n.to_be_bytes().to_vec(), item.clone());
            batch
        })))
    }
}
