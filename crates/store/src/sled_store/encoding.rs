//! How values, keys and batches are laid out in sled: heads, chunks and the
//! transaction that applies a prepared batch.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::{Op, StoreError, WriteBatch, check_namespace};

/// Largest piece of a value stored under one sled key.
pub(super) const CHUNK_LEN: usize = 32 * 1024;
pub(super) const DATA: u8 = b'd';
const CHUNKS: u8 = b'c';
const INLINE: u8 = 0;
const CHUNKED: u8 = 1;

pub(super) fn data_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + namespace.len() + key.len());
    out.push(DATA);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

pub(super) fn chunk_key(namespace: &str, key: &[u8], write_id: u64, index: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + namespace.len() + key.len());
    out.push(CHUNKS);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&write_id.to_be_bytes());
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// A stored head: the value itself, or where its chunks are.
pub(super) enum Head {
    Inline(Vec<u8>),
    Chunked {
        write_id: u64,
        chunks: u32,
        len: u64,
    },
}

pub(super) fn decode_head(raw: &[u8]) -> Result<Head, StoreError> {
    match raw.split_first() {
        Some((&INLINE, rest)) => Ok(Head::Inline(rest.to_vec())),
        Some((&CHUNKED, rest)) if rest.len() == 20 => {
            let mut w = [0u8; 8];
            let mut c = [0u8; 4];
            let mut l = [0u8; 8];
            w.copy_from_slice(&rest[..8]);
            c.copy_from_slice(&rest[8..12]);
            l.copy_from_slice(&rest[12..20]);
            Ok(Head::Chunked {
                write_id: u64::from_be_bytes(w),
                chunks: u32::from_be_bytes(c),
                len: u64::from_be_bytes(l),
            })
        }
        _ => Err(StoreError::Corrupt { what: "value head" }),
    }
}

/// A value prepared for writing: its head and chunk entries.
pub(super) struct Encoded {
    pub(super) head: Vec<u8>,
    pub(super) chunks: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) fn encode(namespace: &str, key: &[u8], value: &[u8], write_id: u64) -> Encoded {
    if value.len() <= CHUNK_LEN {
        let mut head = Vec::with_capacity(1 + value.len());
        head.push(INLINE);
        head.extend_from_slice(value);
        return Encoded {
            head,
            chunks: Vec::new(),
        };
    }
    let chunks: Vec<(Vec<u8>, Vec<u8>)> = value
        .chunks(CHUNK_LEN)
        .enumerate()
        .map(|(i, c)| (chunk_key(namespace, key, write_id, i as u32), c.to_vec()))
        .collect();
    let mut head = Vec::with_capacity(21);
    head.push(CHUNKED);
    head.extend_from_slice(&write_id.to_be_bytes());
    head.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
    head.extend_from_slice(&(value.len() as u64).to_be_bytes());
    Encoded { head, chunks }
}

/// What a batch becomes once values are encoded.
pub(super) enum Prepared {
    Put {
        namespace: &'static str,
        key: Vec<u8>,
        encoded: Encoded,
    },
    Delete {
        namespace: &'static str,
        key: Vec<u8>,
    },
    Expect {
        namespace: &'static str,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
}

impl Prepared {
    /// Bytes this operation writes or compares.
    pub(super) fn len(&self) -> usize {
        match self {
            Prepared::Put { key, encoded, .. } => {
                key.len()
                    + encoded.head.len()
                    + encoded
                        .chunks
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            }
            Prepared::Delete { key, .. } => key.len(),
            Prepared::Expect { key, value, .. } => key.len() + value.as_ref().map_or(0, Vec::len),
        }
    }
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

pub(super) fn tx_read(
    tx: &TransactionalTree,
    namespace: &str,
    key: &[u8],
) -> TxResult<Option<Vec<u8>>> {
    let Some(raw) = tx.get(data_key(namespace, key))? else {
        return Ok(None);
    };
    match decode_head(&raw).map_err(ConflictableTransactionError::Abort)? {
        Head::Inline(v) => Ok(Some(v)),
        Head::Chunked {
            write_id,
            chunks,
            len,
        } => {
            let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for i in 0..chunks {
                let part = tx
                    .get(chunk_key(namespace, key, write_id, i))?
                    .ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt {
                            what: "value: a chunk is missing",
                        })
                    })?;
                out.extend_from_slice(&part);
            }
            Ok(Some(out))
        }
    }
}

pub(super) fn tx_remove(tx: &TransactionalTree, namespace: &str, key: &[u8]) -> TxResult<()> {
    if let Some(raw) = tx.remove(data_key(namespace, key))?
        && let Head::Chunked {
            write_id, chunks, ..
        } = decode_head(&raw).map_err(ConflictableTransactionError::Abort)?
    {
        for i in 0..chunks {
            tx.remove(chunk_key(namespace, key, write_id, i))?;
        }
    }
    Ok(())
}

/// A batch's operations checked and encoded; `new_id` numbers chunked
/// values (sled's id generator).
pub(super) fn prepare(
    batch: &WriteBatch,
    max_value_len: usize,
    mut new_id: impl FnMut() -> Result<u64, StoreError>,
) -> Result<Vec<Prepared>, StoreError> {
    let mut prepared = Vec::with_capacity(batch.ops().len());
    for op in batch.ops() {
        match op {
            Op::Put {
                namespace,
                key,
                value,
            } => {
                check_namespace(namespace)?;
                if value.len() > max_value_len {
                    return Err(StoreError::ValueTooLarge {
                        len: value.len(),
                        limit: max_value_len,
                    });
                }
                let write_id = if value.len() > CHUNK_LEN {
                    new_id()?
                } else {
                    0
                };
                prepared.push(Prepared::Put {
                    namespace,
                    key: key.clone(),
                    encoded: encode(namespace, key, value, write_id),
                });
            }
            Op::Delete { namespace, key } => {
                check_namespace(namespace)?;
                prepared.push(Prepared::Delete {
                    namespace,
                    key: key.clone(),
                });
            }
            Op::Expect {
                namespace,
                key,
                value,
            } => {
                check_namespace(namespace)?;
                prepared.push(Prepared::Expect {
                    namespace,
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    Ok(prepared)
}

/// The body of a batch's transaction: every precondition, then every write.
pub(super) fn apply_prepared(tx: &TransactionalTree, prepared: &[Prepared]) -> TxResult<()> {
    for p in prepared {
        if let Prepared::Expect {
            namespace,
            key,
            value,
        } = p
            && tx_read(tx, namespace, key)? != *value
        {
            return Err(ConflictableTransactionError::Abort(StoreError::Conflict {
                namespace: (*namespace).to_owned(),
                key: String::from_utf8_lossy(key).chars().take(120).collect(),
            }));
        }
    }
    for p in prepared {
        match p {
            Prepared::Put {
                namespace,
                key,
                encoded,
            } => {
                tx_remove(tx, namespace, key)?;
                tx.insert(data_key(namespace, key), encoded.head.as_slice())?;
                for (ck, cv) in &encoded.chunks {
                    tx.insert(ck.as_slice(), cv.as_slice())?;
                }
            }
            Prepared::Delete { namespace, key } => tx_remove(tx, namespace, key)?,
            Prepared::Expect { .. } => {}
        }
    }
    Ok(())
}
