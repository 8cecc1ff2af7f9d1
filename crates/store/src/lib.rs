//! Storage for cairn: one small interface ([`Store`]), the embedded default
//! backend ([`EmbeddedStore`], on redb), a backend on a PostgreSQL-wire database shared
//! by replicas ([`PostgresStore`]: PostgreSQL, CockroachDB, YugabyteDB),
//! and a conformance suite ([`conformance`]) that every backend must pass.
//!
//! The interface is a set of named keyspaces ("namespaces") of byte keys and
//! byte values, ordered by key, with atomic conditional batches: a
//! [`WriteBatch`] either applies entirely or — when one of its preconditions
//! does not hold — not at all. That is all the record services and the
//! audit log need (idempotency by insert-if-absent, sequence counters by
//! compare-and-swap, cursors by ordered scans), and it maps directly onto
//! SQL transactions.
//!
//! **Durability contract:** when [`Store::commit`] returns `Ok`, the batch
//! survives the process being killed and, for backends that say so (the
//! embedded store: see [`EmbeddedStore`]), the machine losing power.
//!
//! This crate must not know what records, leaves or receipts mean: it
//! stores bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conformance;
mod embedded;
mod postgres;

use async_trait::async_trait;

pub use embedded::{DEFAULT_CACHE_BYTES, EmbeddedStore, EmbeddedStoreConfig, REOPEN_EVERY};
pub use postgres::{PostgresConfig, PostgresStore};

/// Everything a store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A precondition of a batch did not hold; nothing was written.
    #[error("conflict on {namespace}/{key}: the stored value is not the expected one")]
    Conflict {
        /// Namespace of the failed precondition.
        namespace: String,
        /// Key (lossy UTF-8, for people).
        key: String,
    },
    /// A namespace name is not `[a-z][a-z0-9_]{0,31}`.
    #[error("invalid namespace {0:?}")]
    InvalidNamespace(String),
    /// A value is larger than the backend accepts.
    #[error("value of {len} bytes exceeds the limit of {limit}")]
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The backend's limit.
        limit: usize,
    },
    /// The backend's own error (redb's, or a PostgreSQL client's), as its
    /// text.
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes are not what a store writes: a corrupt value or a
    /// missing part of one.
    #[error("storage backend: corrupt {what}")]
    Corrupt {
        /// What does not decode (`value head`, `chunk`, `sequence counter`).
        what: &'static str,
    },
    /// The database refused an operation.
    #[error("storage backend: postgres {code}: {message}")]
    Database {
        /// Its SQLSTATE.
        code: String,
        /// Its message.
        message: String,
    },
    /// The database cannot be reached.
    #[error("storage backend: cannot reach PostgreSQL: {cause}")]
    Unreachable {
        /// The pool's error and its causes.
        cause: String,
    },
    /// An operation kept meeting concurrent changes and gave up after its
    /// retries; nothing was written.
    #[error("storage backend: {0}")]
    Contended(Contention),
    /// A part of the store stopped (a poisoned lock, a writer task gone).
    #[error("storage backend: {what} stopped")]
    Stopped {
        /// Which part.
        what: &'static str,
    },
    /// The store's configuration cannot be used.
    #[error("storage backend: {0}")]
    Config(ConfigProblem),
    /// The store closed itself after an I/O failure (a full disk, a
    /// failing device) and has not reopened yet. The write that met the
    /// failure was not acknowledged; when its data could not be written (a
    /// full disk) none of it is kept. Retry later: the store reopens by
    /// itself once the cause is fixed.
    #[error(
        "storage unavailable: {reason} (retry later: the store reopens by itself once this is fixed)"
    )]
    Unavailable {
        /// The failure, without the server's paths.
        reason: String,
    },
    /// A file operation failed.
    #[error("storage {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A copy for each caller a failure concerns (the group committer answers
/// every member of a failed group); an I/O error is copied as its kind and
/// message.
impl Clone for StoreError {
    fn clone(&self) -> Self {
        match self {
            Self::Conflict { namespace, key } => Self::Conflict {
                namespace: namespace.clone(),
                key: key.clone(),
            },
            Self::InvalidNamespace(n) => Self::InvalidNamespace(n.clone()),
            Self::ValueTooLarge { len, limit } => Self::ValueTooLarge {
                len: *len,
                limit: *limit,
            },
            Self::Backend(text) => Self::Backend(text.clone()),
            Self::Corrupt { what } => Self::Corrupt { what },
            Self::Database { code, message } => Self::Database {
                code: code.clone(),
                message: message.clone(),
            },
            Self::Unreachable { cause } => Self::Unreachable {
                cause: cause.clone(),
            },
            Self::Contended(c) => Self::Contended(*c),
            Self::Stopped { what } => Self::Stopped { what },
            Self::Config(p) => Self::Config(p.clone()),
            Self::Unavailable { reason } => Self::Unavailable {
                reason: reason.clone(),
            },
            Self::Io { path, source } => Self::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
        }
    }
}

/// What kept meeting concurrent changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Contention {
    /// A value read in parts kept being rewritten.
    #[error("value kept changing while being read")]
    Read,
    /// A batch kept failing to serialize in the database.
    #[error("the batch kept failing to serialize with concurrent transactions")]
    Batch,
}

/// Why a store's configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// Neither a data directory nor a database.
    #[error("no store: give --data-dir (embedded) or --postgres (a database)")]
    NoStore,
    /// Both a data directory and a database.
    #[error("give either --data-dir (embedded) or --postgres (a database), not both")]
    BothStores,
    /// A database CA without a database.
    #[error("--postgres-ca is for a database given with --postgres")]
    CaWithoutDatabase,
    /// A cache size without an embedded store.
    #[error("--store-cache-mib is for an embedded store given with --data-dir")]
    CacheWithoutEmbedded,
    /// A cache too small to hold the store's working pages.
    #[error("--store-cache-mib {mib}: give at least {min} MiB")]
    CacheTooSmall {
        /// The size given.
        mib: u64,
        /// The least accepted.
        min: u64,
    },
    /// A data directory that holds a store in the layout of an earlier
    /// cairn (sled's files) and no current store.
    #[error(
        "{dir} holds a store in sled's layout, written by an earlier cairn; this version \
         keeps its data in redb and does not read it: point --data-dir at a new directory, \
         or run the earlier version to finish with it"
    )]
    OldLayout {
        /// The data directory.
        dir: String,
    },
    /// A store name that cannot be part of a table name.
    #[error("store name {name:?} is not [a-z][a-z0-9_]{{0,39}}")]
    Name {
        /// The name.
        name: String,
    },
    /// A connection string that does not parse.
    #[error("the PostgreSQL connection string is not valid: {detail}")]
    Url {
        /// The parser's complaint.
        detail: String,
    },
    /// The database's CA file cannot be read or used.
    #[error("database CA file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// One entry of a scan.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An operation in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// Namespace.
        namespace: &'static str,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key` (absent is fine).
    Delete {
        /// Namespace.
        namespace: &'static str,
        /// Key.
        key: Vec<u8>,
    },
    /// Precondition: `key` currently holds `value` (`None`: is absent).
    Expect {
        /// Namespace.
        namespace: &'static str,
        /// Key.
        key: Vec<u8>,
        /// The expected value.
        value: Option<Vec<u8>>,
    },
}

/// An atomic, conditional group of writes. Preconditions are checked
/// against the state before the batch; if all hold, every write applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put(
        &mut self,
        namespace: &'static str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::Put {
            namespace,
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Removes `key`.
    pub fn delete(&mut self, namespace: &'static str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete {
            namespace,
            key: key.into(),
        });
        self
    }

    /// Requires `key` to be absent.
    pub fn expect_absent(&mut self, namespace: &'static str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Expect {
            namespace,
            key: key.into(),
            value: None,
        });
        self
    }

    /// Requires `key` to hold `value` (`None`: absent).
    pub fn expect(
        &mut self,
        namespace: &'static str,
        key: impl Into<Vec<u8>>,
        value: Option<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(Op::Expect {
            namespace,
            key: key.into(),
            value,
        });
        self
    }

    /// Appends `other`'s operations (its preconditions, too, are then
    /// checked against the state before the whole batch).
    pub fn append(&mut self, other: WriteBatch) -> &mut Self {
        self.ops.extend(other.ops);
        self
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Whether `name` is `[a-z][a-z0-9_]*` of at most `max` bytes.
pub(crate) fn is_plain_name(name: &str, max: usize) -> bool {
    let b = name.as_bytes();
    (1..=max).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// A backend's own error, as text.
pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Checks a namespace name: `[a-z][a-z0-9_]{0,31}`.
pub fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    if is_plain_name(namespace, 32) {
        Ok(())
    } else {
        Err(StoreError::InvalidNamespace(namespace.to_owned()))
    }
}

/// The storage interface of cairn services.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value of `key`, if any.
    async fn get(&self, namespace: &'static str, key: &[u8])
    -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries with `start <= key < end` (`end` `None`: to the
    /// end of the namespace), in ascending key order.
    async fn scan(
        &self,
        namespace: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// Applies `batch` atomically and durably, or returns
    /// [`StoreError::Conflict`] and writes nothing.
    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Applies `batch` atomically and visibly like [`Store::commit`], but
    /// returns without waiting for stable storage: the batch becomes
    /// durable with the next durable commit, and a crash before that loses
    /// it whole. Only for data that can be rebuilt (a cache of what is
    /// durable elsewhere), never for anything acknowledged. Backends
    /// without a cheaper path commit durably.
    async fn commit_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.commit(batch).await
    }

    /// The largest value this backend stores.
    fn max_value_len(&self) -> usize;

    /// Whether other processes may write to the same data at the same time
    /// (replicas on one database). Then nothing that the store holds may be
    /// cached as if this process were its only writer: sequence counters
    /// in particular are allocated in the store. A shared store's commit
    /// is visible to readers only once it is durable (a database
    /// transaction); an embedded store may show a commit while its sync is
    /// still running, and callers that must not expose anything a crash
    /// could undo wait for [`Store::commit`] to return.
    fn is_shared(&self) -> bool {
        false
    }

    /// Bytes the store occupies on disk, where the backend can tell (for
    /// metrics; an estimate is fine).
    async fn size_on_disk(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

/// Where a service keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded store (one process): its directory and cache.
    Embedded(EmbeddedStoreConfig),
    /// A table of a PostgreSQL-wire database, which replicas may share.
    Postgres {
        /// The connection string.
        url: String,
        /// The CA that the server's certificate chains to: given, the
        /// connection is TLS 1.3 with the server verified.
        ca_file: Option<std::path::PathBuf>,
    },
}

impl StoreLocation {
    /// Opens the store; `name` names the service's table in a database
    /// (`cairn_<name>`).
    pub async fn open(&self, name: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
        Ok(match self {
            Self::Embedded(config) => std::sync::Arc::new(EmbeddedStore::open(config.clone())?),
            Self::Postgres { url, ca_file } => {
                let mut config = PostgresConfig::new(url, name);
                config.ca_file = ca_file.clone();
                std::sync::Arc::new(PostgresStore::open(&config).await?)
            }
        })
    }

    /// An embedded store in `dir`, with the default cache.
    pub fn embedded(dir: impl Into<std::path::PathBuf>) -> Self {
        Self::Embedded(EmbeddedStoreConfig::new(dir))
    }

    /// From a service's flags: exactly one of a data directory (with, if
    /// given, its cache size in MiB) and a PostgreSQL connection
    /// string (with, if given, its server's CA).
    pub fn from_flags(flags: StoreFlags) -> Result<Self, StoreError> {
        let StoreFlags {
            data_dir,
            store_cache_mib,
            postgres,
            postgres_ca,
        } = flags;
        if postgres.is_none() && postgres_ca.is_some() {
            return Err(StoreError::Config(ConfigProblem::CaWithoutDatabase));
        }
        match (data_dir, postgres) {
            (Some(d), None) => {
                let mut config = EmbeddedStoreConfig::new(d);
                if let Some(mib) = store_cache_mib {
                    if mib < MIN_STORE_CACHE_MIB {
                        return Err(StoreError::Config(ConfigProblem::CacheTooSmall {
                            mib,
                            min: MIN_STORE_CACHE_MIB,
                        }));
                    }
                    config.cache_bytes = mib.saturating_mul(1024 * 1024);
                }
                Ok(Self::Embedded(config))
            }
            (None, Some(_)) if store_cache_mib.is_some() => {
                Err(StoreError::Config(ConfigProblem::CacheWithoutEmbedded))
            }
            (None, Some(url)) => Ok(Self::Postgres {
                url,
                ca_file: postgres_ca,
            }),
            (Some(_), Some(_)) => Err(StoreError::Config(ConfigProblem::BothStores)),
            (None, None) => Err(StoreError::Config(ConfigProblem::NoStore)),
        }
    }
}

/// The smallest embedded-store cache a service accepts (MiB).
pub const MIN_STORE_CACHE_MIB: u64 = 8;

/// A service's store flags, as given.
#[derive(Clone, Debug, Default)]
pub struct StoreFlags {
    /// `--data-dir`: an embedded store there.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--store-cache-mib`: its cache's size.
    pub store_cache_mib: Option<u64>,
    /// `--postgres`: a database instead.
    pub postgres: Option<String>,
    /// `--postgres-ca`: the database server's CA.
    pub postgres_ca: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copied_error_says_the_same_and_keeps_its_kind() {
        let errors = [
            StoreError::Unavailable {
                reason: "No space left on device".into(),
            },
            StoreError::Io {
                path: "db".into(),
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            },
            StoreError::Corrupt { what: "value head" },
            StoreError::Contended(Contention::Batch),
            StoreError::Config(ConfigProblem::NoStore),
        ];
        for e in &errors {
            let copy = e.clone();
            assert_eq!(copy.to_string(), e.to_string());
            assert_eq!(
                std::mem::discriminant(&copy),
                std::mem::discriminant(e),
                "{e}"
            );
        }
        let StoreError::Io { source, .. } = errors[1].clone() else {
            unreachable!("copied as Io")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
    }

    #[test]
    fn store_flags_name_one_store_and_a_cache_only_for_the_embedded_one() {
        let embedded = |mib| StoreFlags {
            data_dir: Some("d".into()),
            store_cache_mib: mib,
            ..StoreFlags::default()
        };
        let Ok(StoreLocation::Embedded(c)) = StoreLocation::from_flags(embedded(None)) else {
            panic!("an embedded store")
        };
        assert_eq!(c.cache_bytes, DEFAULT_CACHE_BYTES);
        let Ok(StoreLocation::Embedded(c)) = StoreLocation::from_flags(embedded(Some(96))) else {
            panic!("an embedded store")
        };
        assert_eq!(c.cache_bytes, 96 * 1024 * 1024);
        let refused = |flags| match StoreLocation::from_flags(flags) {
            Err(StoreError::Config(p)) => p,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            refused(embedded(Some(1))),
            ConfigProblem::CacheTooSmall {
                mib: 1,
                min: MIN_STORE_CACHE_MIB
            }
        );
        let db = StoreFlags {
            postgres: Some("host=db".into()),
            store_cache_mib: Some(64),
            ..StoreFlags::default()
        };
        assert_eq!(refused(db), ConfigProblem::CacheWithoutEmbedded);
        assert_eq!(refused(StoreFlags::default()), ConfigProblem::NoStore);
        let both = StoreFlags {
            postgres: Some("host=db".into()),
            ..embedded(None)
        };
        assert_eq!(refused(both), ConfigProblem::BothStores);
    }
}
