//! A [`Store`] on a PostgreSQL-wire database: PostgreSQL 15, CockroachDB
//! or YugabyteDB. Several processes may share one (replicas); the database
//! is the single point of truth and of ordering.
//!
//! One table per store (`cairn_<name>`: every service its own), holding
//! `(ns TEXT, k BYTEA, v BYTEA)` with primary key `(ns, k)`. `BYTEA` keys
//! compare bytewise in all three databases, so scans keep the interface's
//! order. Only SQL the three share is used: `CREATE TABLE IF NOT EXISTS`,
//! `INSERT … ON CONFLICT … DO UPDATE`, `SERIALIZABLE` transactions.
//!
//! A batch is one `SERIALIZABLE` transaction: its preconditions are read
//! first (so they see the state before the batch, as the interface says),
//! then its writes. A serialization failure (SQLSTATE 40001, or a
//! deadlock, 40P01) retries the whole transaction with jittered backoff;
//! a precondition that does not hold rolls back and is a
//! [`StoreError::Conflict`]. Durability is the database's: with
//! PostgreSQL's default `synchronous_commit = on` a committed batch is in
//! the WAL on disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use crate::{
    ConfigProblem, Contention, Entry, Op, Store, StoreError, WriteBatch, backend, check_namespace,
};

/// The largest value stored (PostgreSQL allows 1 GiB per `BYTEA`; records
/// and log tiles are far smaller).
const MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// Attempts of one batch before a persistent serialization failure is
/// reported.
const MAX_ATTEMPTS: u32 = 30;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct PostgresConfig {
    /// A libpq-style connection string (`host=… port=… user=… dbname=…`)
    /// or URL (`postgres://user@host:port/db`).
    pub url: String,
    /// The store's name: its table is `cairn_<name>`.
    pub name: String,
    /// Most pooled connections.
    pub pool_size: usize,
    /// The CA certificate(s) (PEM) that the database server's certificate
    /// must chain to. Given, every connection is TLS 1.3 and the server's
    /// name (the connection string's host) is verified; absent, the
    /// connection is not encrypted — for loopback or a network that
    /// encrypts on its own.
    pub ca_file: Option<std::path::PathBuf>,
}

impl PostgresConfig {
    /// Defaults: 16 connections.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            pool_size: 16,
            ca_file: None,
        }
    }
}

/// A [`Store`] in one table of a PostgreSQL-wire database.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    table: String,
    schema: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.inner.table)
            .finish_non_exhaustive()
    }
}

/// A database error, with its SQLSTATE and message (tokio-postgres's
/// `Display` says only "db error").
fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => StoreError::Database {
            code: d.code().code().to_owned(),
            message: d.message().to_owned(),
        },
        None => backend(e),
    }
}

/// A pool error, with its causes (deadpool's own message is only "error
/// connecting to server").
fn unreachable(e: deadpool_postgres::PoolError) -> StoreError {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause.push_str(&format!(": {s}"));
        source = s.source();
    }
    StoreError::Unreachable { cause }
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// Checks a store name: `[a-z][a-z0-9_]{0,39}` (it becomes part of a
/// table name, which SQL cannot take as a parameter).
fn check_name(name: &str) -> Result<(), StoreError> {
    if crate::is_plain_name(name, 40) {
        Ok(())
    } else {
        Err(StoreError::Config(ConfigProblem::Name {
            name: name.to_owned(),
        }))
    }
}

impl PostgresStore {
    /// Prepares the pool without connecting (the first operation connects
    /// and creates the table if needed). See [`PostgresStore::open`].
    pub fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        check_name(&config.name)?;
        let mut pg = config.url.parse::<tokio_postgres::Config>().map_err(|e| {
            StoreError::Config(ConfigProblem::Url {
                detail: e.to_string(),
            })
        })?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &config.ca_file {
            Some(ca) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                Manager::from_config(pg, tls_connector(ca)?, manager_config)
            }
            None => {
                let remote = pg.get_hosts().iter().any(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => !is_loopback(name),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(_) => false,
                });
                if remote {
                    tracing::warn!(
                        "the connection to the database is not encrypted; give the CA of its certificate (--postgres-ca) unless the network encrypts it"
                    );
                }
                Manager::from_config(pg, NoTls, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(backend)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                table: format!("cairn_{}", config.name),
                schema: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// Connects, creates the table if needed, and checks that the database
    /// answers: errors surface at start-up, not on the first request.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let s = Self::connect(config)?;
        s.schema().await?;
        Ok(s)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    async fn schema(&self) -> Result<(), StoreError> {
        self.inner
            .schema
            .get_or_try_init(|| async {
                let client = self.inner.pool.get().await.map_err(unreachable)?;
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {} (ns TEXT NOT NULL, k BYTEA NOT NULL, v BYTEA NOT NULL, PRIMARY KEY (ns, k))",
                    self.inner.table
                );
                match client.batch_execute(&sql).await {
                    Ok(()) => Ok(()),
                    // Two processes creating the table at once: PostgreSQL
                    // reports the loser as a duplicate (type or table).
                    Err(e)
                        if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                            || e.code() == Some(&SqlState::DUPLICATE_TABLE) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(db(e)),
                }
            })
            .await
            .map(|_| ())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.schema().await?;
        self.inner.pool.get().await.map_err(unreachable)
    }

    /// One attempt at `batch`: `Ok(Err(conflict))` when a precondition
    /// does not hold, `Err` for a database error (maybe retryable).
    async fn attempt(
        &self,
        batch: &WriteBatch,
    ) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
        let mut client = match self.client().await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let t = &self.inner.table;
        // Whatever its size, a batch is five round trips: BEGIN, one SELECT
        // for every precondition, one UPSERT and one DELETE for the final
        // value of every written key (arrays, UNNEST), COMMIT.
        let plan = Plan::of(batch);
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await?;
        if !plan.expect_ns.is_empty() {
            let select = tx
                .prepare_cached(&format!(
                    "SELECT ns, k, v FROM {t} WHERE (ns, k) IN (SELECT * FROM UNNEST($1::text[], $2::bytea[]))"
                ))
                .await?;
            let rows = tx
                .query(&select, &[&plan.expect_ns, &plan.expect_keys])
                .await?;
            let found: HashMap<(String, Vec<u8>), Vec<u8>> = rows
                .into_iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect();
            for (namespace, key, value) in &plan.expects {
                let current = found.get(&((*namespace).to_owned(), key.to_vec()));
                if current.map(Vec::as_slice) != *value {
                    tx.rollback().await?;
                    return Ok(Err(StoreError::Conflict {
                        namespace: (*namespace).to_owned(),
                        key: String::from_utf8_lossy(key).into_owned(),
                    }));
                }
            }
        }
        if !plan.put_ns.is_empty() {
            let upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {t} (ns, k, v) SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::bytea[]) ON CONFLICT (ns, k) DO UPDATE SET v = excluded.v"
                ))
                .await?;
            tx.execute(&upsert, &[&plan.put_ns, &plan.put_keys, &plan.put_values])
                .await?;
        }
        if !plan.delete_ns.is_empty() {
            let delete = tx
                .prepare_cached(&format!(
                    "DELETE FROM {t} WHERE (ns, k) IN (SELECT * FROM UNNEST($1::text[], $2::bytea[]))"
                ))
                .await?;
            tx.execute(&delete, &[&plan.delete_ns, &plan.delete_keys])
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }
}

/// A precondition: namespace, key, the value it must hold (`None`: absent).
type Expectation<'a> = (&'static str, &'a [u8], Option<&'a [u8]>);

/// A batch as statements: its preconditions (in order, so the first that
/// fails is the one reported) and the final value of every key it writes
/// (a later write of a key replaces an earlier one, as applying the
/// operations in order would).
struct Plan<'a> {
    expects: Vec<Expectation<'a>>,
    expect_ns: Vec<&'static str>,
    expect_keys: Vec<&'a [u8]>,
    put_ns: Vec<&'static str>,
    put_keys: Vec<&'a [u8]>,
    put_values: Vec<&'a [u8]>,
    delete_ns: Vec<&'static str>,
    delete_keys: Vec<&'a [u8]>,
}

impl<'a> Plan<'a> {
    fn of(batch: &'a WriteBatch) -> Self {
        let mut expects = Vec::new();
        let mut last: HashMap<(&'static str, &'a [u8]), Option<&'a [u8]>> = HashMap::new();
        let mut order = Vec::new();
        for op in batch.ops() {
            match op {
                Op::Expect {
                    namespace,
                    key,
                    value,
                } => expects.push((*namespace, key.as_slice(), value.as_deref())),
                Op::Put {
                    namespace,
                    key,
                    value,
                } => {
                    if last
                        .insert((*namespace, key.as_slice()), Some(value.as_slice()))
                        .is_none()
                    {
                        order.push((*namespace, key.as_slice()));
                    }
                }
                Op::Delete { namespace, key } => {
                    if last.insert((*namespace, key.as_slice()), None).is_none() {
                        order.push((*namespace, key.as_slice()));
                    }
                }
            }
        }
        let mut plan = Plan {
            expect_ns: expects.iter().map(|e| e.0).collect(),
            expect_keys: expects.iter().map(|e| e.1).collect(),
            expects,
            put_ns: Vec::new(),
            put_keys: Vec::new(),
            put_values: Vec::new(),
            delete_ns: Vec::new(),
            delete_keys: Vec::new(),
        };
        for (ns, key) in order {
            match last.get(&(ns, key)).copied().flatten() {
                Some(value) => {
                    plan.put_ns.push(ns);
                    plan.put_keys.push(key);
                    plan.put_values.push(value);
                }
                None => {
                    plan.delete_ns.push(ns);
                    plan.delete_keys.push(key);
                }
            }
        }
        plan
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// TLS 1.3 only (ring), trusting only the CA certificates in `ca`.
fn tls_connector(
    ca: &std::path::Path,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let io = |e: &dyn std::fmt::Display| {
        StoreError::Config(ConfigProblem::CaFile {
            path: ca.display().to_string(),
            detail: e.to_string(),
        })
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| io(&e))? {
        roots.add(cert.map_err(|e| io(&e))?).map_err(|e| io(&e))?;
    }
    if roots.is_empty() {
        return Err(io(&"no certificate in it"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(backend)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pause of about `base` (±50%), from the clock's low bits: spreads out
/// transactions that just collided.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let factor = 0.5 + f64::from(nanos % 1000) / 1000.0;
    base.mul_f64(factor)
}

#[async_trait]
impl Store for PostgresStore {
    async fn get(
        &self,
        namespace: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        check_namespace(namespace)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT v FROM {} WHERE ns = $1 AND k = $2",
                self.inner.table
            ))
            .await
            .map_err(db)?;
        let row = client
            .query_opt(&stmt, &[&namespace, &key])
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn scan(
        &self,
        namespace: &'static str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        check_namespace(namespace)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let t = &self.inner.table;
        let rows = match end {
            Some(end) => {
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT k, v FROM {t} WHERE ns = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4"
                    ))
                    .await
                    .map_err(db)?;
                client
                    .query(&stmt, &[&namespace, &start, &end, &limit])
                    .await
            }
            None => {
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT k, v FROM {t} WHERE ns = $1 AND k >= $2 ORDER BY k LIMIT $3"
                    ))
                    .await
                    .map_err(db)?;
                client.query(&stmt, &[&namespace, &start, &limit]).await
            }
        }
        .map_err(db)?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        for op in batch.ops() {
            let (Op::Put { namespace, .. }
            | Op::Delete { namespace, .. }
            | Op::Expect { namespace, .. }) = op;
            check_namespace(namespace)?;
            if let Op::Put { value, .. } = op
                && value.len() > MAX_VALUE_LEN
            {
                return Err(StoreError::ValueTooLarge {
                    len: value.len(),
                    limit: MAX_VALUE_LEN,
                });
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut pause = Duration::from_millis(2);
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(&batch).await {
                Ok(result) => return result,
                Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "serialization failure; retrying the batch");
                    tokio::time::sleep(jittered(pause)).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(db(e)),
            }
        }
        Err(StoreError::Contended(Contention::Batch))
    }

    fn max_value_len(&self) -> usize {
        MAX_VALUE_LEN
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn size_on_disk(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        // PostgreSQL (and YugabyteDB) only; CockroachDB has no such
        // function, and the size is then unknown rather than an error.
        match client
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)",
                &[&self.inner.table],
            )
            .await
        {
            Ok(row) => Ok(u64::try_from(row.get::<_, i64>(0)).ok()),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
