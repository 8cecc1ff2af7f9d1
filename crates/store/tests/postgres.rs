//! The storage conformance suite on PostgreSQL (skipped without
//! `CAIRN_TEST_POSTGRES`; required in CI), plus what only a shared
//! database can show: two store handles (two processes' worth of pools)
//! on one table see each other's writes and serialize their batches.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cairn_store::conformance::{
    StoreFactory, postgres_test_ca, postgres_test_url, unique_store_name,
};
use cairn_store::{PostgresConfig, PostgresStore, Store, StoreError, WriteBatch};

struct Factory {
    config: PostgresConfig,
}

impl StoreFactory for Factory {
    type Store = PostgresStore;
    fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.config).unwrap()
    }
}

fn factory() -> Option<Factory> {
    postgres_test_url().map(|url| Factory {
        config: PostgresConfig::new(url, unique_store_name("conf")),
    })
}

cairn_store::store_conformance_tests!(optional factory());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_table_are_one_store() {
    let Some(f) = factory() else { return };
    let a = Arc::new(PostgresStore::open(&f.config).await.unwrap());
    let b = Arc::new(PostgresStore::open(&f.config).await.unwrap());
    assert!(a.is_shared());
    let mut batch = WriteBatch::new();
    batch
        .expect_absent("seq", b"n".to_vec())
        .put("seq", b"n".to_vec(), vec![0]);
    a.commit(batch).await.unwrap();
    assert_eq!(b.get("seq", b"n").await.unwrap(), Some(vec![0]));
    // Both handles bump one counter concurrently by compare-and-swap:
    // every increment lands exactly once.
    let mut tasks = Vec::new();
    for s in [a.clone(), b.clone(), a.clone(), b.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 15 {
                let cur = s.get("seq", b"n").await.unwrap().unwrap();
                let mut batch = WriteBatch::new();
                batch.expect("seq", b"n".to_vec(), Some(cur.clone())).put(
                    "seq",
                    b"n".to_vec(),
                    vec![cur[0] + 1],
                );
                match s.commit(batch).await {
                    Ok(()) => done += 1,
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.get("seq", b"n").await.unwrap(), Some(vec![60]));
    assert!(a.size_on_disk().await.unwrap().unwrap() > 0);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_it() {
    // Port 1 on loopback: nothing listens there.
    let e = PostgresStore::open(&PostgresConfig::new(
        "host=127.0.0.1 port=1 user=postgres connect_timeout=5",
        "x",
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("PostgreSQL"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ca_the_connection_is_tls_1_3_and_the_server_is_verified() {
    let (Some(url), Some(ca)) = (postgres_test_url(), postgres_test_ca()) else {
        eprintln!("skipping: the TLS test needs CAIRN_TEST_POSTGRES and CAIRN_TEST_POSTGRES_CA");
        return;
    };
    let app = unique_store_name("tls");
    let mut config = PostgresConfig::new(format!("{url} application_name={app}"), app.clone());
    config.ca_file = Some(ca.clone());
    let s = PostgresStore::open(&config).await.unwrap();
    let mut b = WriteBatch::new();
    b.put("k", b"a".to_vec(), b"sealed bytes".to_vec());
    s.commit(b).await.unwrap();
    // The server's view of our pooled connection.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty(), "no connection of ours");
    for r in rows {
        assert!(r.get::<_, bool>(0), "a connection is not encrypted");
        assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("TLSv1.3"));
    }
    drop(client);
    let _ = task.await;

    // A CA that did not issue the server's certificate: refused.
    let mut wrong = PostgresConfig::new(url, unique_store_name("tls"));
    wrong.ca_file = Some(ca.with_file_name("server.pem"));
    let e = PostgresStore::open(&wrong).await.unwrap_err().to_string();
    assert!(e.contains("cannot reach PostgreSQL"), "{e}");
    // No CA file: refused by name.
    let mut missing = PostgresConfig::new("host=127.0.0.1", "x");
    missing.ca_file = Some("/nonexistent/ca.pem".into());
    let e = PostgresStore::connect(&missing).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
