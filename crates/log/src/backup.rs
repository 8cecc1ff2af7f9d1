//! Backups: a copy of everything a log is (its entries, leaf index, tiles,
//! cosigned note and state) from one store into another — full tiles and
//! bundles kept as files are copied as rows, the portable form, and moved
//! back into files when a log with a tile directory opens the restored
//! store. A running log
//! copies itself between two batches ([`crate::Log::backup`]), so the copy
//! is the log as of one checkpoint; [`restore`] copies a backup into a
//! store that holds no log. The state goes last: a copy cut short holds no
//! state and is refused by [`restore`], never taken for an empty log.
//!
//! A restored log is older than what it published since the backup; the
//! audit service's fork guard keeps it from sequencing until its witnesses
//! confirm it is not (see `cairn-audit`).

use cairn_store::{Store, WriteBatch};

use crate::engine::Snapshot;
use crate::error::LogError;
use crate::full::FullUnits;
use crate::layout::{NS_COSIGNED, NS_ENTRIES, NS_LEAF_INDEX, NS_STATE, NS_TILES, STATE_KEY};

/// The log's namespaces; full tiles kept as files are copied after these,
/// then [`LAST`].
const NAMESPACES: [&str; 3] = [NS_ENTRIES, NS_LEAF_INDEX, NS_TILES];

/// Copied last, the state last of all.
const LAST: [&str; 2] = [NS_COSIGNED, NS_STATE];

/// Keys copied per store commit.
const PAGE: usize = 1000;

/// Copies every log namespace of `from` into `to`, which must hold no log,
/// with the full units of `files` (the tree of `snap`) as rows. Returns how
/// many keys were copied.
pub(crate) async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    files: Option<(&FullUnits, &Snapshot)>,
) -> Result<u64, LogError> {
    if to.get(NS_STATE, STATE_KEY).await?.is_some() {
        return Err(LogError::TargetHoldsLog);
    }
    let mut copied = copy_namespaces(from, to, &NAMESPACES).await?;
    if let Some((full, snap)) = files {
        copied += full.export(from, snap, to).await?;
    }
    Ok(copied + copy_namespaces(from, to, &LAST).await?)
}

async fn copy_namespaces(
    from: &dyn Store,
    to: &dyn Store,
    namespaces: &[&'static str],
) -> Result<u64, LogError> {
    let mut copied = 0u64;
    for &ns in namespaces {
        let mut start: Vec<u8> = Vec::new();
        loop {
            let page = from.scan(ns, &start, None, PAGE).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            // The next page starts just after this one's last key.
            start = [last.as_slice(), &[0]].concat();
            let full = page.len() == PAGE;
            let mut batch = WriteBatch::new();
            for (k, v) in page {
                batch.put(ns, k, v);
                copied += 1;
            }
            to.commit(batch).await?;
            if !full {
                break;
            }
        }
    }
    Ok(copied)
}

/// Restores the backup in `from` into `to`, which must hold no log.
/// Returns how many keys were copied.
pub async fn restore(from: &dyn Store, to: &dyn Store) -> Result<u64, LogError> {
    if from.get(NS_STATE, STATE_KEY).await?.is_none() {
        return Err(LogError::NotABackup);
    }
    copy(from, to, None).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::{Log, LogConfig};
    use cairn_store::{EmbeddedStore, EmbeddedStoreConfig};
    use cairn_tlog::note::{ALG_ED25519, NoteSigner};

    fn store(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir)).unwrap())
    }

    async fn open(store: Arc<dyn Store>) -> Log {
        let signer =
            Arc::new(NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap());
        Log::open(store, LogConfig::new(signer)).await.unwrap()
    }

    #[tokio::test]
    async fn a_backup_taken_while_appending_is_the_log_at_one_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let log = open(store(&tmp.path().join("live"))).await;
        // More than a tile, so tiles, partial tiles and entries are copied.
        let first: Vec<Vec<u8>> = (0..300).map(|i| format!("a {i}").into_bytes()).collect();
        log.append_batch(first).await.unwrap();
        // Appends keep arriving while the backup runs.
        let appender = tokio::spawn({
            let log = log.clone();
            async move {
                for i in 0..50 {
                    log.append(format!("b {i}").into_bytes()).await.unwrap();
                }
            }
        });
        let backup = store(&tmp.path().join("backup"));
        let size = log.backup(backup.as_ref()).await.unwrap();
        appender.await.unwrap();
        assert!((300..=350).contains(&size));

        // Restored into an empty store, it opens as the log of that size,
        // and the live log's later tree extends it.
        let restored_store = store(&tmp.path().join("restored"));
        restore(backup.as_ref(), restored_store.as_ref())
            .await
            .unwrap();
        let restored = open(restored_store.clone()).await;
        let snap = restored.snapshot();
        assert_eq!(snap.size, size);
        let live = log.snapshot();
        let (_, proof) = log.consistency_proof(size, live.size).await.unwrap();
        cairn_tlog::proof::verify_consistency(size, live.size, &proof, &snap.root, &live.root)
            .unwrap();
        let (_, inclusion) = restored.inclusion_proof(size - 1, 0).await.unwrap();
        assert!(!inclusion.is_empty());

        // Neither a store that holds a log nor one that holds none will do.
        assert!(matches!(
            restore(backup.as_ref(), restored_store.as_ref()).await,
            Err(LogError::TargetHoldsLog)
        ));
        let empty = store(&tmp.path().join("empty"));
        assert!(matches!(
            restore(empty.as_ref(), store(&tmp.path().join("other")).as_ref()).await,
            Err(LogError::NotABackup)
        ));
    }
}
