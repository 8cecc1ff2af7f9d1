//! The storage conformance suite: what every [`Store`] backend must do.
//!
//! A backend's tests instantiate it with
//! [`store_conformance_tests!`](crate::store_conformance_tests), giving an
//! expression that builds a fresh [`StoreFactory`] (an empty store that can
//! be reopened at the same place).

#![allow(clippy::unwrap_used)] // a test suite: a failed step is a failed test

use std::sync::Arc;

use crate::{Store, StoreError, WriteBatch};

/// Makes stores for the suite: every `open` of one factory reaches the same
/// data, and a new factory starts empty.
#[async_trait::async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// The backend.
    type Store: Store;
    /// Opens the store (again).
    fn open(&self) -> Self::Store;
}

fn batch(f: impl FnOnce(&mut WriteBatch)) -> WriteBatch {
    let mut b = WriteBatch::new();
    f(&mut b);
    b
}

/// Put, get, overwrite, delete.
pub async fn put_get_delete<F: StoreFactory>(f: &F) {
    let s = f.open();
    assert_eq!(s.get("t", b"k").await.unwrap(), None);
    s.commit(batch(|b| {
        b.put("t", b"k".to_vec(), b"v1".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("t", b"k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    s.commit(batch(|b| {
        b.put("t", b"k".to_vec(), b"v2".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("t", b"k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    s.commit(batch(|b| {
        b.delete("t", b"k".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("t", b"k").await.unwrap(), None);
    // Deleting what is absent is fine; an empty value is a value.
    s.commit(batch(|b| {
        b.delete("t", b"nothing".to_vec())
            .put("t", b"empty".to_vec(), Vec::new());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("t", b"empty").await.unwrap(), Some(Vec::new()));
}

/// Namespaces never see each other's keys, including prefix-named ones.
pub async fn namespaces_are_isolated<F: StoreFactory>(f: &F) {
    let s = f.open();
    s.commit(batch(|b| {
        b.put("a", b"k".to_vec(), b"in a".to_vec())
            .put("ab", b"k".to_vec(), b"in ab".to_vec())
            .put("a", b"\x00".to_vec(), b"zero".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(
        s.get("a", b"k").await.unwrap().as_deref(),
        Some(&b"in a"[..])
    );
    assert_eq!(
        s.get("ab", b"k").await.unwrap().as_deref(),
        Some(&b"in ab"[..])
    );
    let a = s.scan("a", b"", None, 100).await.unwrap();
    assert_eq!(
        a,
        vec![
            (b"\x00".to_vec(), b"zero".to_vec()),
            (b"k".to_vec(), b"in a".to_vec())
        ]
    );
    let ab = s.scan("ab", b"", None, 100).await.unwrap();
    assert_eq!(ab, vec![(b"k".to_vec(), b"in ab".to_vec())]);
    assert_eq!(s.scan("b", b"", None, 100).await.unwrap(), vec![]);
}

/// Scans are ordered by unsigned byte order, honour bounds and limits.
pub async fn scans_are_ordered_and_bounded<F: StoreFactory>(f: &F) {
    let s = f.open();
    let keys: Vec<Vec<u8>> = vec![
        vec![0xff],
        vec![0x00, 0x01],
        vec![0x10],
        vec![0x00],
        vec![0x80, 0x00],
        vec![0x10, 0x00],
    ];
    s.commit(batch(|b| {
        for k in &keys {
            b.put("scan", k.clone(), k.clone());
        }
    }))
    .await
    .unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    let all: Vec<Vec<u8>> = s
        .scan("scan", b"", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(all, sorted);
    let mid: Vec<Vec<u8>> = s
        .scan("scan", &[0x00, 0x01], Some(&[0x80]), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(mid, vec![vec![0x00, 0x01], vec![0x10], vec![0x10, 0x00]]);
    assert_eq!(s.scan("scan", b"", None, 2).await.unwrap().len(), 2);
    assert_eq!(
        s.scan("scan", &[0x80], Some(&[0x10]), 100).await.unwrap(),
        vec![]
    );
    assert_eq!(s.scan("scan", b"", None, 0).await.unwrap(), vec![]);
}

/// A batch whose precondition fails writes nothing at all.
pub async fn failed_preconditions_write_nothing<F: StoreFactory>(f: &F) {
    let s = f.open();
    s.commit(batch(|b| {
        b.put("p", b"existing".to_vec(), b"1".to_vec());
    }))
    .await
    .unwrap();
    let err = s
        .commit(batch(|b| {
            b.put("p", b"new".to_vec(), b"x".to_vec())
                .delete("p", b"existing".to_vec())
                .put("q", b"other".to_vec(), vec![7; 100_000])
                .expect_absent("p", b"existing".to_vec());
        }))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(s.get("p", b"new").await.unwrap(), None);
    assert_eq!(s.get("q", b"other").await.unwrap(), None);
    assert_eq!(
        s.get("p", b"existing").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
}

/// Compare-and-swap on a value, and on absence.
pub async fn expectations_compare_values<F: StoreFactory>(f: &F) {
    let s = f.open();
    s.commit(batch(|b| {
        b.expect("c", b"k".to_vec(), None)
            .put("c", b"k".to_vec(), b"1".to_vec());
    }))
    .await
    .unwrap();
    let stale = s
        .commit(batch(|b| {
            b.expect("c", b"k".to_vec(), Some(b"0".to_vec())).put(
                "c",
                b"k".to_vec(),
                b"2".to_vec(),
            );
        }))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })));
    s.commit(batch(|b| {
        b.expect("c", b"k".to_vec(), Some(b"1".to_vec()))
            .put("c", b"k".to_vec(), b"2".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("c", b"k").await.unwrap().as_deref(), Some(&b"2"[..]));
    // Operations in one batch apply in order.
    s.commit(batch(|b| {
        b.put("c", b"order".to_vec(), b"x".to_vec())
            .delete("c", b"order".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("c", b"order").await.unwrap(), None);
}

/// Concurrent compare-and-swap increments lose no update.
pub async fn concurrent_increments_are_linearizable<F: StoreFactory>(f: &F) {
    let s = Arc::new(f.open());
    let tasks = 8;
    let per_task = 10;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                // Bounded retries: a conflict means another task won this round.
                let mut done = false;
                for _ in 0..1000 {
                    let current = s.get("ctr", b"n").await.unwrap();
                    let n = current
                        .as_deref()
                        .map(|v| u64::from_be_bytes(v.try_into().unwrap()))
                        .unwrap_or(0);
                    let mut b = WriteBatch::new();
                    b.expect("ctr", b"n".to_vec(), current).put(
                        "ctr",
                        b"n".to_vec(),
                        (n + 1).to_be_bytes().to_vec(),
                    );
                    match s.commit(b).await {
                        Ok(()) => {
                            done = true;
                            break;
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
                assert!(done, "an increment never went through");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let n = s.get("ctr", b"n").await.unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(n.try_into().unwrap()), tasks * per_task);
}

/// Of many concurrent insert-if-absent batches for one key, exactly one wins.
pub async fn insert_if_absent_has_one_winner<F: StoreFactory>(f: &F) {
    let s = Arc::new(f.open());
    let mut handles = Vec::new();
    for i in 0..8u8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut b = WriteBatch::new();
            b.expect_absent("once", b"id".to_vec())
                .put("once", b"id".to_vec(), vec![i]);
            s.commit(b).await.is_ok()
        }));
    }
    let mut winners = 0;
    for h in handles {
        if h.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

/// Values up to the backend's limit round-trip; larger ones are refused
/// and write nothing.
pub async fn large_values_and_the_limit<F: StoreFactory>(f: &F) {
    let s = f.open();
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    s.commit(batch(|b| {
        b.put("big", b"a".to_vec(), big.clone())
            .put("big", b"b".to_vec(), b"small".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("big", b"a").await.unwrap().unwrap(), big);
    let scanned = s.scan("big", b"", None, 10).await.unwrap();
    assert_eq!(
        scanned,
        vec![
            (b"a".to_vec(), big.clone()),
            (b"b".to_vec(), b"small".to_vec())
        ]
    );
    // Overwrite large with small and small with large.
    s.commit(batch(|b| {
        b.put("big", b"a".to_vec(), b"now small".to_vec())
            .put("big", b"b".to_vec(), big.clone());
    }))
    .await
    .unwrap();
    assert_eq!(
        s.get("big", b"a").await.unwrap().as_deref(),
        Some(&b"now small"[..])
    );
    assert_eq!(s.get("big", b"b").await.unwrap().unwrap(), big);
    // Expectations compare whole large values.
    s.commit(batch(|b| {
        b.expect("big", b"b".to_vec(), Some(big.clone()))
            .delete("big", b"b".to_vec());
    }))
    .await
    .unwrap();
    assert_eq!(s.get("big", b"b").await.unwrap(), None);

    let too_big = vec![0u8; s.max_value_len() + 1];
    let err = s
        .commit(batch(|b| {
            b.put("big", b"c".to_vec(), b"x".to_vec())
                .put("big", b"d".to_vec(), too_big.clone());
        }))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ValueTooLarge { .. }), "{err}");
    assert_eq!(s.get("big", b"c").await.unwrap(), None);
}

/// Committed data is there after the store is closed and reopened.
pub async fn committed_data_survives_reopen<F: StoreFactory>(f: &F) {
    {
        let s = f.open();
        s.commit(batch(|b| {
            b.put("dur", b"k".to_vec(), b"kept".to_vec()).put(
                "dur",
                b"big".to_vec(),
                vec![3; 200_000],
            );
        }))
        .await
        .unwrap();
    }
    let s = f.open();
    assert_eq!(
        s.get("dur", b"k").await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(s.get("dur", b"big").await.unwrap(), Some(vec![3; 200_000]));
}

/// An unsynced commit is atomic and visible at once, refuses on a failed
/// precondition like any commit, and is kept by the next durable commit.
pub async fn unsynced_commits_are_atomic_and_visible<F: StoreFactory>(f: &F) {
    {
        let s = f.open();
        s.commit_unsynced(batch(|b| {
            b.put("cache", b"a".to_vec(), b"1".to_vec())
                .put("cache", b"b".to_vec(), b"2".to_vec());
        }))
        .await
        .unwrap();
        assert_eq!(
            s.get("cache", b"a").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        let err = s
            .commit_unsynced(batch(|b| {
                b.put("cache", b"c".to_vec(), b"3".to_vec())
                    .expect_absent("cache", b"a".to_vec());
            }))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(s.get("cache", b"c").await.unwrap(), None);
        s.commit(batch(|b| {
            b.put("dur", b"k".to_vec(), b"v".to_vec());
        }))
        .await
        .unwrap();
    }
    let s = f.open();
    assert_eq!(
        s.get("cache", b"b").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        s.get("dur", b"k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

/// Malformed namespaces are refused.
pub async fn namespaces_are_checked<F: StoreFactory>(f: &F) {
    let s = f.open();
    assert!(matches!(
        s.get("Bad", b"k").await,
        Err(StoreError::InvalidNamespace(_))
    ));
    assert!(matches!(
        s.scan("", b"", None, 1).await,
        Err(StoreError::InvalidNamespace(_))
    ));
    let err = s
        .commit(batch(|b| {
            b.put("ok", b"k".to_vec(), b"v".to_vec())
                .put("no\0pe", b"k".to_vec(), b"v".to_vec());
        }))
        .await;
    assert!(matches!(err, Err(StoreError::InvalidNamespace(_))));
    assert_eq!(s.get("ok", b"k").await.unwrap(), None);
}

/// Instantiates the whole suite as `#[tokio::test]`s. The argument is an
/// expression that makes a fresh, empty [`StoreFactory`]; with `optional`
/// before it, an `Option` of one, for backends that need a server.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(optional Some($factory));
    };
    (optional $factory:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance_tests!(@each $factory;
                put_get_delete,
                namespaces_are_isolated,
                scans_are_ordered_and_bounded,
                failed_preconditions_write_nothing,
                expectations_compare_values,
                concurrent_increments_are_linearizable,
                insert_if_absent_has_one_winner,
                large_values_and_the_limit,
                committed_data_survives_reopen,
                unsynced_commits_are_atomic_and_visible,
                namespaces_are_checked
            );
        }
    };
    (@each $factory:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                // `None`: the backend is not available here, and the
                // factory expression has said so (or failed the test).
                if let Some(factory) = $factory {
                    $crate::conformance::$name(&factory).await;
                }
            }
        )*
    };
}

/// Says once per test process, on the real stderr (libtest captures
/// `eprintln!` of passing tests, so a skip would otherwise be silent), that
/// the PostgreSQL tests of this binary were skipped.
fn announce_skip() {
    use std::io::Write as _;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\n=== SKIPPED: the PostgreSQL tests of this binary did not run: CAIRN_TEST_POSTGRES is not set \
             (.ci/run starts a throwaway PostgreSQL; by hand: scripts/pg-throwaway start <dir>) ===\n"
        );
    });
}

/// The PostgreSQL server for tests: `CAIRN_TEST_POSTGRES` (a connection
/// string; `.ci/run` starts a throwaway cluster and sets it). Unset, the
/// PostgreSQL tests are skipped with a banner on stderr — unless
/// `CAIRN_REQUIRE_POSTGRES=1` (CI sets it), when a missing server fails
/// the test: a skipped suite must never pass for a run suite.
pub fn postgres_test_url() -> Option<String> {
    match std::env::var("CAIRN_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CAIRN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CAIRN_REQUIRE_POSTGRES=1 but CAIRN_TEST_POSTGRES is not set: the PostgreSQL suite cannot run"
            );
            announce_skip();
            None
        }
    }
}

/// The CA of the test server's TLS certificate: `CAIRN_TEST_POSTGRES_CA`
/// (`scripts/pg-throwaway` makes one). Unset, tests connect in plaintext
/// and the TLS test is skipped — unless `CAIRN_REQUIRE_POSTGRES=1`, when it
/// fails.
pub fn postgres_test_ca() -> Option<std::path::PathBuf> {
    let ca = std::env::var_os("CAIRN_TEST_POSTGRES_CA").map(std::path::PathBuf::from);
    if ca.is_none() {
        assert!(
            std::env::var("CAIRN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "CAIRN_REQUIRE_POSTGRES=1 but CAIRN_TEST_POSTGRES_CA is not set"
        );
    }
    ca
}

/// A store name no other test uses (tables are left behind in the
/// throwaway cluster).
pub fn unique_store_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new, empty database on the test server at `url` (a libpq-style
/// `key=value` string), and the connection string that reaches it: tests
/// that run services with fixed table names each get their own.
pub async fn fresh_postgres_database(url: &str, prefix: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {url}: {e}"));
    let task = tokio::spawn(connection);
    let name = unique_store_name(prefix);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    format!("{url} dbname={name}")
}
