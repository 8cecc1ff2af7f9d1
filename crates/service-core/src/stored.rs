//! How a record service lays out its store.
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `records` | record id (text) | [`Entry`] |
//! | `record_seq` | sequence number (u64 BE) | record id |
//! | `record_meta` | `token_key` | the page-token key |
//! | `outbox` | outbox number (u64 BE) | [`OutboxItem`] |
//! | `record_receipts` | record id + `r` (its leaf) or `e` (its erasure) | `Receipt` |
//!
//! A record, its sequence entry, the sequence counter and its outbox item
//! are written in one atomic batch, so a record is either wholly accepted
//! (and will be logged) or not stored at all. Receipts arrive later and are
//! kept apart from the [`Entry`] (a few hundred bytes each), so storing a
//! batch of them never rewrites the records' bodies; readers fill
//! `Entry::receipt` and `Entry::erasure_receipt` from there.

use cairn_record::pb;

pub const NS_RECORDS: &str = "records";
pub const NS_SEQ: &str = "record_seq";
pub const NS_META: &str = "record_meta";
pub const NS_OUTBOX: &str = "outbox";
pub const NS_RECEIPTS: &str = "record_receipts";
pub const META_TOKEN_KEY: &[u8] = b"token_key";
/// The last sequence number committed (u64 BE): every numbered commit
/// moves it by compare-and-swap (see `group`).
pub const META_SEQ_KEY: &[u8] = b"seq";

/// Where the receipt of record `id`'s leaf (or of its erasure) is kept.
pub fn receipt_key(id: &[u8], erasure: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 1);
    k.extend_from_slice(id);
    k.push(if erasure { b'e' } else { b'r' });
    k
}

/// A stored record with everything the service knows about it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The envelope bytes as submitted.
    #[prost(bytes = "vec", tag = "1")]
    pub envelope: Vec<u8>,
    /// The body bytes as submitted; empty once erased.
    #[prost(bytes = "vec", tag = "2")]
    pub body: Vec<u8>,
    /// Position in the service's sequence.
    #[prost(uint64, tag = "3")]
    pub seq: u64,
    /// The audit receipt, once the outbox has appended the leaf.
    #[prost(message, optional, tag = "4")]
    pub receipt: Option<pb::Receipt>,
    /// The encoded LogLeaf.
    #[prost(bytes = "vec", tag = "5")]
    pub leaf: Vec<u8>,
    /// `RecordState`.
    #[prost(int32, tag = "6")]
    pub state: i32,
    /// The record that superseded or retracted this one.
    #[prost(string, tag = "7")]
    pub superseded_by: String,
    /// TLP:RED: the salt of the leaf's salted subject.
    #[prost(bytes = "vec", tag = "8")]
    pub leaf_salt: Vec<u8>,
    /// When the service accepted it.
    #[prost(message, optional, tag = "9")]
    pub received_at: Option<prost_types::Timestamp>,
    /// Erasure order envelope, once erased.
    #[prost(bytes = "vec", tag = "10")]
    pub erasure_order: Vec<u8>,
    /// The erasure order's leaf and receipt.
    #[prost(bytes = "vec", tag = "11")]
    pub erasure_leaf: Vec<u8>,
    #[prost(message, optional, tag = "12")]
    pub erasure_receipt: Option<pb::Receipt>,
}

/// A leaf waiting to be appended to the audit log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutboxItem {
    /// The record it belongs to.
    #[prost(string, tag = "1")]
    pub record_id: String,
    /// The encoded LogLeaf.
    #[prost(bytes = "vec", tag = "2")]
    pub leaf: Vec<u8>,
    /// True for an erasure order's leaf.
    #[prost(bool, tag = "3")]
    pub erasure: bool,
    /// When it was queued (Unix milliseconds), for the audit-lag metric
    /// and the hand-over of a stopped replica's items.
    #[prost(uint64, tag = "4")]
    pub queued_at_ms: u64,
    /// The replica that queued it (empty when the store has one process).
    #[prost(string, tag = "5")]
    pub owner: String,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The header of a stored envelope (checked when it was accepted; a
/// failure here is corruption).
pub fn header_of(
    envelope: &[u8],
) -> Result<(pb::RecordHeader, cairn_record::header::CheckedHeader), crate::ServiceError> {
    use crate::ServiceError;
    let env = cairn_record::record::decode_envelope(envelope)
        .map_err(|e| ServiceError::corrupt("envelope", e))?;
    let raw = cairn_record::record::decode_header(&env.payload)
        .map_err(|e| ServiceError::corrupt("header", e))?;
    let checked =
        cairn_record::header::check(&raw).map_err(|e| ServiceError::corrupt("header", e))?;
    Ok((raw, checked))
}
