//! The embedded store's write-ahead log: what makes a commit durable.
//!
//! Every batch applied to redb (visible at once, not yet durable) is also
//! encoded here, in apply order, with its write number. A commit is durable
//! once its record is written to `wal` and the file is `fdatasync`ed; one
//! sync covers every record waiting (group commit). redb's own durable
//! commit — which writes every page the batches dirtied and saves its
//! allocator state — runs only at a checkpoint, when the log has grown past
//! a threshold: it records the last write number it covers (`_wal`
//! table), and the log is emptied. On open, the records after that number
//! are applied again and checkpointed.
//!
//! A record is `u32 length | u32 CRC-32 of the payload | payload`, the
//! payload `u64 write number | u32 op count | ops`, each op `u8 kind (1 put,
//! 2 delete) | u8 namespace length | namespace | u32 key length | key |`
//! and for a put `u32 value length | value` (little-endian). Reading stops
//! at the first record that is cut short or fails its checksum: a write
//! that never finished, whose commit was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Op, StoreError};

/// The log's file inside the store's directory.
pub(super) const FILE_NAME: &str = "cairn.wal";

/// One write of a record read back: its namespace, key and value (`None`:
/// a delete).
pub(super) struct LoggedOp {
    pub(super) namespace: String,
    pub(super) key: Vec<u8>,
    pub(super) value: Option<Vec<u8>>,
}

/// A record read back: its write number and writes.
pub(super) struct Logged {
    pub(super) seq: u64,
    pub(super) ops: Vec<LoggedOp>,
}

/// Records encoded but not yet written, and the last write number in them.
#[derive(Default)]
struct Waiting {
    bytes: Vec<u8>,
    through: u64,
}

/// The open log.
pub(super) struct Wal {
    file: Mutex<File>,
    path: PathBuf,
    waiting: Mutex<Waiting>,
    /// Bytes of records since the last checkpoint (where the next goes).
    len: AtomicU64,
    /// A write or sync failed: the records it carried are lost, so no later
    /// one may be written after them (the log would skip numbers). The
    /// store closes and reopens on a new log.
    failed: AtomicBool,
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `ops` (preconditions left out: they were checked when applied) as one
/// record numbered `seq`, appended to `out`.
fn encode(seq: u64, ops: &[Op], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]); // length and checksum, filled in below
    out.extend_from_slice(&seq.to_le_bytes());
    let count_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for op in ops {
        let (kind, namespace, key, value) = match op {
            Op::Put {
                namespace,
                key,
                value,
            } => (1u8, *namespace, key, Some(value)),
            Op::Delete { namespace, key } => (2u8, *namespace, key, None),
            Op::Expect { .. } => continue,
        };
        count += 1;
        out.push(kind);
        // Namespaces are at most 32 bytes (`check_namespace`).
        out.push(namespace.len() as u8);
        out.extend_from_slice(namespace.as_bytes());
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        if let Some(v) = value {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads little-endian fields off a payload; `None` once it runs short.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
    fn bytes32(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
}

fn decode_payload(payload: &[u8]) -> Option<Logged> {
    let mut c = Cursor(payload);
    let seq = c.u64()?;
    let count = c.u32()?;
    let mut ops = Vec::new();
    for _ in 0..count {
        let kind = c.u8()?;
        let ns_len = c.u8()? as usize;
        let namespace = String::from_utf8(c.take(ns_len)?.to_vec()).ok()?;
        let key = c.bytes32()?;
        let value = match kind {
            1 => Some(c.bytes32()?),
            2 => None,
            _ => return None,
        };
        ops.push(LoggedOp {
            namespace,
            key,
            value,
        });
    }
    c.0.is_empty().then_some(Logged { seq, ops })
}

/// Every whole record at the start of `bytes`, in order, and the length
/// they take: reading stops at the first cut short or failing its checksum.
fn decode_all(bytes: &[u8]) -> (Vec<Logged>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(record) = decode_payload(payload) else {
            break;
        };
        records.push(record);
        at += 8 + len;
    }
    (records, at)
}

impl Wal {
    /// Opens (creating) the log in `dir` and reads back its whole records.
    pub(super) fn open(dir: &Path) -> Result<(Self, Vec<Logged>), StoreError> {
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io(&path, e))?;
        let (records, _) = decode_all(&bytes);
        let wal = Self {
            file: Mutex::new(file),
            path,
            waiting: Mutex::new(Waiting::default()),
            len: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        };
        Ok((wal, records))
    }

    /// Adds the record of batch `seq` (called in apply order).
    pub(super) fn append(&self, seq: u64, ops: &[Op]) {
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        encode(seq, ops, &mut w.bytes);
        w.through = seq;
    }

    /// Writes every record waiting and syncs the file; the last write
    /// number now durable (`None`: nothing was waiting). On a failure the
    /// file is cut back to its last whole record, so what failed is never
    /// read back.
    pub(super) fn write_and_sync(&self) -> Result<Option<u64>, StoreError> {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if self.failed.load(Ordering::Acquire) {
            return Err(io(
                &self.path,
                std::io::Error::other("an earlier write of this log failed"),
            ));
        }
        let Waiting { bytes, through } =
            std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        if bytes.is_empty() {
            return Ok(None);
        }
        let at = self.len.load(Ordering::Acquire);
        let written = file
            .write_all_at(&bytes, at)
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            self.failed.store(true, Ordering::Release);
            // Best effort: the store closes after this error either way.
            let _ = file.set_len(at);
            return Err(io(&self.path, e));
        }
        self.len.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        Ok(Some(through))
    }

    /// Bytes of records encoded and not yet written.
    pub(super) fn waiting_len(&self) -> usize {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bytes
            .len()
    }

    /// Bytes of records since the last checkpoint.
    pub(super) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Starts the log again from its beginning once a checkpoint made
    /// everything in it (written or waiting) durable in redb. The file
    /// keeps its size: records are written over the old ones, into blocks
    /// the file already has, so a sync writes data and no file metadata.
    /// The old records left beyond the new ones are read back at open and
    /// skipped (their numbers are checkpointed); one cut by a new record is
    /// where reading stops. A file grown past twice `keep` bytes is cut
    /// back to `keep`.
    pub(super) fn reset(&self, keep: u64) -> Result<(), StoreError> {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Waiting::default();
        let size = file.metadata().map_err(|e| io(&self.path, e))?.len();
        if size > keep.saturating_mul(2) {
            file.set_len(keep).map_err(|e| io(&self.path, e))?;
        }
        self.len.store(0, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::WriteBatch;

    fn batch(n: u8) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put("recs", vec![n], vec![n; 100])
            .expect_absent("recs", vec![n, n])
            .delete("outbox", vec![1, 2, 3]);
        b
    }

    #[test]
    fn records_read_back_as_written_and_a_cut_tail_is_dropped() {
        let mut bytes = Vec::new();
        for n in 1..=3u8 {
            encode(u64::from(n), batch(n).ops(), &mut bytes);
        }
        let (records, whole) = decode_all(&bytes);
        assert_eq!(whole, bytes.len());
        assert_eq!(records.len(), 3);
        let r = &records[1];
        assert_eq!(r.seq, 2);
        assert_eq!(r.ops.len(), 2, "the precondition is not logged");
        assert_eq!(r.ops[0].namespace, "recs");
        assert_eq!(r.ops[0].value.as_deref(), Some(&[2u8; 100][..]));
        assert!(r.ops[1].value.is_none());
        // Every cut inside the last record drops it, and only it.
        let last_start = {
            let mut two = Vec::new();
            for n in 1..=2u8 {
                encode(u64::from(n), batch(n).ops(), &mut two);
            }
            two.len()
        };
        for cut in last_start..bytes.len() {
            let (records, whole) = decode_all(&bytes[..cut]);
            assert_eq!((records.len(), whole), (2, last_start), "cut at {cut}");
        }
        // A flipped byte fails the checksum.
        let mut bad = bytes.clone();
        bad[last_start + 20] ^= 1;
        assert_eq!(decode_all(&bad).0.len(), 2);
    }

    /// After a failed write, nothing more is written: the records it
    /// carried are lost, and a later one after them would leave a gap.
    #[test]
    fn a_failed_write_fails_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(1, batch(1).ops());
        assert_eq!(wal.write_and_sync().unwrap(), Some(1));
        let writable = std::mem::replace(
            &mut *wal.file.lock().unwrap(),
            File::open(dir.path().join(FILE_NAME)).unwrap(), // read-only
        );
        wal.append(2, batch(2).ops());
        assert!(wal.write_and_sync().is_err());
        *wal.file.lock().unwrap() = writable;
        wal.append(3, batch(3).ops());
        let later = wal.write_and_sync().unwrap_err();
        assert!(later.to_string().contains("an earlier write"), "{later}");
        drop(wal);
        let (_, records) = Wal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1]);
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = decode_all(&bytes);
        }
    }
}
