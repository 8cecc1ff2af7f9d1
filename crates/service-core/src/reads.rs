//! Reading records: get by id, list pages, watch streams, and the latest
//! inclusion proof. Every path applies [`crate::labels::decide`] for the
//! reader and never looks past the committed frontier; whatever it shows is
//! durable first ([`RecordCore::until_durable`]).

use std::sync::Arc;

use cairn_identity::PeerIdentity;
use cairn_proto::audit::v1 as audit;
use cairn_record::pb;

use crate::core::{RecordCore, member_of};
use crate::error::ServiceError;
use crate::labels::{self, Decision, Operation, Reader};
use crate::stored::*;

/// Largest list page.
const MAX_PAGE: u32 = 500;

/// The watch stream a service forwards to its client.
pub type WatchReceiver = tokio::sync::mpsc::Receiver<Result<pb::WatchEvent, ServiceError>>;

/// What a reader is shown of a stored entry: the body only with whole
/// access and while not erased; the leaf salt only with whole access.
fn shown(e: Entry, access: Decision) -> pb::StoredRecord {
    let erased = e.state == pb::RecordState::Erased as i32;
    let whole = access == Decision::Whole;
    pb::StoredRecord {
        record: Some(pb::SignedRecord {
            envelope: e.envelope,
            body: if whole && !erased { e.body } else { Vec::new() },
        }),
        receipt_pending: e.receipt.is_none(),
        receipt: e.receipt,
        state: e.state,
        superseded_by: (!e.superseded_by.is_empty()).then_some(pb::RecordId {
            uuid: e.superseded_by,
        }),
        leaf_salt: if whole { e.leaf_salt } else { Vec::new() },
        received_at: e.received_at,
        erasure_order: e.erasure_order,
        erasure_receipt: e.erasure_receipt,
        latest_proof: None,
    }
}

/// `op`'s rule for `member` on a record with header `h`.
fn access(op: Operation, h: &cairn_record::header::CheckedHeader, member: &str) -> Decision {
    labels::decide(op, h.label, Reader::reading(h, member))
}

impl RecordCore {
    /// The member id behind `peer`, if the directory in force lists it.
    fn reader(&self, peer: &PeerIdentity) -> Result<String, ServiceError> {
        let member = member_of(peer)?;
        if self.directory.current().member(member).is_none() {
            return Err(ServiceError::UnknownMember {
                member: member.to_owned(),
            });
        }
        Ok(member.to_owned())
    }

    /// Fetches a record `peer` may see.
    pub async fn get(
        &self,
        peer: &PeerIdentity,
        record_id: Option<&pb::RecordId>,
        latest_proof: bool,
    ) -> Result<pb::StoredRecord, ServiceError> {
        let member = self.reader(peer)?;
        let id = record_id
            .map(|r| r.uuid.as_str())
            .ok_or(ServiceError::Missing { field: "record_id" })?;
        cairn_record::header::parse_record_id(id).map_err(|d| ServiceError::BadField {
            field: "record_id",
            problem: d.to_string(),
        })?;
        let not_found = || ServiceError::NotFound {
            record: id.to_owned(),
        };
        let (_, e) = self.entry(id).await?.ok_or_else(not_found)?;
        self.until_durable(|| format!("record {id}")).await?;
        let e = self.with_receipts(id.as_bytes(), e).await?;
        let (_, h) = header_of(&e.envelope)?;
        let mut decision = access(Operation::Get, &h, &member);
        if self.about_hidden(&h, &member).await? {
            decision = Decision::Hidden;
        }
        match decision {
            Decision::Whole => {}
            Decision::Hidden => return Err(not_found()),
            Decision::HeaderOnly | Decision::Denied => {
                return Err(ServiceError::NotRecipient {
                    record: id.to_owned(),
                    label: h.label,
                    member,
                });
            }
        }
        let leaf_index = e.receipt.as_ref().map(|r| r.leaf_index);
        let leaf = e.leaf.clone();
        let mut out = shown(e, decision);
        self.hide_unseen_successor(&member, &mut out).await?;
        if latest_proof && let Some(index) = leaf_index {
            out.latest_proof = Some(self.latest_proof(leaf, index).await?);
        }
        Ok(out)
    }

    /// The leaf's inclusion proof in the audit log's latest checkpoint.
    async fn latest_proof(&self, leaf: Vec<u8>, index: u64) -> Result<pb::Receipt, ServiceError> {
        let mut audit = self.audit.clone();
        let unavailable = |s: tonic::Status| ServiceError::AuditUnavailable {
            message: s.message().to_owned(),
        };
        let checkpoint = audit
            .get_checkpoint(audit::GetCheckpointRequest {})
            .await
            .map_err(unavailable)?
            .into_inner()
            .checkpoint;
        let bad = |e: cairn_tlog::TlogError| ServiceError::corrupt("audit checkpoint", e);
        let note = cairn_tlog::note::parse(&checkpoint).map_err(bad)?;
        let size = cairn_tlog::Checkpoint::parse_body(&note.text)
            .map_err(bad)?
            .size;
        let p = audit
            .get_inclusion_proof(audit::GetInclusionProofRequest {
                leaf: Some(audit::get_inclusion_proof_request::Leaf::LeafIndex(index)),
                tree_size: size,
            })
            .await
            .map_err(unavailable)?
            .into_inner();
        Ok(pb::Receipt {
            leaf,
            leaf_index: index,
            checkpoint,
            inclusion_proof: p.proof,
        })
    }

    /// One page of the records `peer` may see, oldest first.
    pub async fn list(
        &self,
        peer: &PeerIdentity,
        filter: &pb::RecordFilter,
        page_size: u32,
        token: &str,
    ) -> Result<(Vec<pb::StoredRecord>, String), ServiceError> {
        let member = self.reader(peer)?;
        let page_size = match page_size {
            0 => 50,
            n if n > MAX_PAGE => return Err(ServiceError::PageSize { max: MAX_PAGE }),
            n => n as usize,
        };
        let after = self.tokens.read(&member, token, "page_token")?;
        let frontier = self.frontier_now().await?;
        let window = Window {
            after,
            frontier,
            want: page_size,
            budget: page_size * 20,
        };
        let (records, last, more) = self.scan(&member, filter, Operation::List, window).await?;
        let next = if more {
            self.tokens.make(&member, last)?
        } else {
            String::new()
        };
        Ok((records.into_iter().map(|(_, r)| r).collect(), next))
    }

    /// Records in `w` that `member` may see under `op`. Returns the records
    /// with their sequence numbers, the last sequence number examined, and
    /// whether more may follow.
    async fn scan(
        &self,
        member: &str,
        filter: &pb::RecordFilter,
        op: Operation,
        w: Window,
    ) -> Result<(Vec<(u64, pb::StoredRecord)>, u64, bool), ServiceError> {
        let mut out = Vec::new();
        let mut last = w.after;
        let mut examined = 0;
        while out.len() < w.want && examined < w.budget && last < w.frontier {
            let start = (last + 1).to_be_bytes();
            let end = (w.frontier + 1).to_be_bytes();
            let limit = (w.budget - examined).min(256);
            let batch = self.store.scan(NS_SEQ, &start, Some(&end), limit).await?;
            if batch.is_empty() {
                last = w.frontier;
                break;
            }
            for (k, id) in batch {
                last = <[u8; 8]>::try_from(k.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        ServiceError::corrupt("sequence key", format!("{} bytes", k.len()))
                    })?;
                examined += 1;
                if let Some(record) = self.visible(member, filter, op, &id).await? {
                    out.push((last, record));
                    if out.len() >= w.want {
                        break;
                    }
                }
            }
        }
        let more = last < w.frontier;
        // An entry read here may carry a later, not yet durable change (a
        // supersession, an erasure).
        if !out.is_empty() {
            self.until_durable(|| "a listed record".to_owned()).await?;
        }
        Ok((out, last, more))
    }

    /// Record `id` as `member` may see it under `op`, if it may and it
    /// matches `filter`.
    async fn visible(
        &self,
        member: &str,
        filter: &pb::RecordFilter,
        op: Operation,
        id: &[u8],
    ) -> Result<Option<pb::StoredRecord>, ServiceError> {
        let Some(bytes) = self.store.get(NS_RECORDS, id).await? else {
            return Ok(None);
        };
        let e = <Entry as prost::Message>::decode(bytes.as_slice())
            .map_err(|e| ServiceError::corrupt("record entry", e))?;
        let (raw, h) = header_of(&e.envelope)?;
        let decision = access(op, &h, member);
        if decision == Decision::Hidden
            || !crate::filter::matches(&h, raw.index.as_ref(), e.state, filter)
            || self.about_hidden(&h, member).await?
        {
            return Ok(None);
        }
        let e = self.with_receipts(id, e).await?;
        let mut out = shown(e, decision);
        self.hide_unseen_successor(member, &mut out).await?;
        Ok(Some(out))
    }

    /// Clears `superseded_by` when it names a record `member` may not know
    /// of (a TLP:RED correction the reader is not a recipient of): its id
    /// must not leak through the record it replaced.
    async fn hide_unseen_successor(
        &self,
        member: &str,
        out: &mut pb::StoredRecord,
    ) -> Result<(), ServiceError> {
        let Some(next) = out.superseded_by.as_ref().map(|r| r.uuid.clone()) else {
            return Ok(());
        };
        let hidden = match self.entry(&next).await? {
            Some((_, e)) => {
                let (_, h) = header_of(&e.envelope)?;
                access(Operation::Get, &h, member) == Decision::Hidden
            }
            None => true,
        };
        if hidden {
            out.superseded_by = None;
        }
        Ok(())
    }

    /// Streams the records `peer` may see after `cursor`, then new ones as
    /// they are accepted, until the receiver is dropped.
    pub fn watch(
        self: &Arc<Self>,
        peer: &PeerIdentity,
        filter: pb::RecordFilter,
        cursor: &str,
    ) -> Result<WatchReceiver, ServiceError> {
        let member = self.reader(peer)?;
        let after = self.tokens.read(&member, cursor, "cursor")?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(self.clone().follow(member, filter, after, tx));
        Ok(rx)
    }

    /// The watch task: pages through what is committed, then waits for the
    /// frontier to move, until the receiver is gone or an error is sent.
    async fn follow(
        self: Arc<Self>,
        member: String,
        filter: pb::RecordFilter,
        mut after: u64,
        tx: tokio::sync::mpsc::Sender<Result<pb::WatchEvent, ServiceError>>,
    ) {
        let mut frontier = self.frontier.subscribe();
        loop {
            let f = *frontier.borrow_and_update();
            let window = Window {
                after,
                frontier: f,
                want: 64,
                budget: 4096,
            };
            match self.scan(&member, &filter, Operation::Watch, window).await {
                Ok((records, last, more)) => {
                    for (seq, record) in records {
                        let event = pb::WatchEvent {
                            cursor: match self.tokens.make(&member, seq) {
                                Ok(c) => c,
                                Err(e) => {
                                    let _ = tx.send(Err(e)).await;
                                    return;
                                }
                            },
                            record: Some(record),
                        };
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    after = last;
                    if more {
                        continue;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
            tokio::select! {
                changed = frontier.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
        }
    }
}

/// The part of the sequence one scan looks at: after `after`, up to
/// `frontier`, at most `want` records, examining at most `budget` entries.
#[derive(Clone, Copy, Debug)]
struct Window {
    after: u64,
    frontier: u64,
    want: usize,
    budget: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: pb::RecordState) -> Entry {
        Entry {
            envelope: b"env".to_vec(),
            body: b"body".to_vec(),
            leaf_salt: b"salt".to_vec(),
            state: state as i32,
            superseded_by: "next".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_header_only_reader_gets_neither_body_nor_salt() {
        let r = shown(entry(pb::RecordState::Active), Decision::HeaderOnly);
        let rec = r.record.unwrap_or_default();
        assert_eq!(rec.envelope, b"env");
        assert!(rec.body.is_empty() && r.leaf_salt.is_empty());
        assert!(r.receipt_pending);
    }

    #[test]
    fn a_whole_reader_gets_both_unless_erased() {
        let r = shown(entry(pb::RecordState::Active), Decision::Whole);
        assert_eq!(r.record.unwrap_or_default().body, b"body");
        assert_eq!(r.leaf_salt, b"salt");
        assert_eq!(r.superseded_by.map(|s| s.uuid).as_deref(), Some("next"));
        let r = shown(entry(pb::RecordState::Erased), Decision::Whole);
        assert!(r.record.unwrap_or_default().body.is_empty());
    }
}
