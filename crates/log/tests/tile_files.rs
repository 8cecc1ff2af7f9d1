//! Full tiles and bundles as files: a log written with them as rows moves
//! them into files at open; a backup carries them as rows and a restored
//! log gets its files back; a lost tile file is refused at open, never
//! served as an empty tile; and `kill -9` mid-stream (tile files half
//! written, or written for a batch whose commit never happened) never
//! corrupts the log: the tree never rewinds and the root at open matches
//! the state.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use cairn_log::{Log, LogConfig, LogError};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store};
use cairn_tlog::hash::{Hash, leaf_hash, naive_root};
use cairn_tlog::note::{ALG_ED25519, NoteSigner};
use cairn_tlog::proof;
use cairn_tlog::tiles::{TileId, TilePath};

fn signer() -> Arc<NoteSigner> {
    Arc::new(NoteSigner::from_seed("test.example/log", ALG_ED25519, &[5; 32]).unwrap())
}

fn store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(EmbeddedStoreConfig::new(dir)).unwrap())
}

async fn try_open(dir: &Path, files: bool) -> Result<Log, LogError> {
    let mut config = LogConfig::new(signer());
    config.tile_dir = files.then(|| dir.join("tiles"));
    Log::open(store(dir), config).await
}

async fn open(dir: &Path, files: bool) -> Log {
    try_open(dir, files).await.unwrap()
}

fn leaf(i: u64) -> Vec<u8> {
    format!("leaf {i:08}").into_bytes()
}

async fn append(log: &Log, range: std::ops::Range<u64>) -> Vec<Hash> {
    let leaves: Vec<Vec<u8>> = range.map(leaf).collect();
    log.append_batch(leaves.clone()).await.unwrap();
    leaves.iter().map(|l| leaf_hash(l)).collect()
}

/// Every leaf's inclusion proof, its index by hash, and the full tiles
/// served whole.
async fn check(log: &Log, all: &[Hash]) {
    let snap = log.snapshot();
    assert_eq!(snap.root, naive_root(all));
    for i in (0..all.len() as u64).step_by(61) {
        let (size, p) = log.inclusion_proof(i, 0).await.unwrap();
        proof::verify_inclusion(i, size, &all[i as usize], &p, &snap.root).unwrap();
        assert_eq!(log.index_of(&all[i as usize]).await.unwrap(), i);
    }
    let tile = TilePath::Hashes(TileId {
        level: 0,
        index: 1,
        width: 256,
    });
    let bytes = log.tile(&tile).await.unwrap();
    assert_eq!(bytes, all[256..512].concat());
}

#[tokio::test]
async fn rows_move_into_files_at_open_and_a_backup_brings_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let log = open(&live, false).await;
    let mut all = append(&log, 0..1000).await;
    log.close().await;
    assert!(!live.join("tiles").exists());

    // Opened with files: the three full tiles and bundles are files now.
    let log = open(&live, true).await;
    for f in ["tile/0/000", "tile/0/002", "tile/entries/002"] {
        assert!(live.join("tiles").join(f).is_file(), "{f}");
    }
    assert!(!live.join("tiles/tile/0/003").exists());
    check(&log, &all).await;
    all.extend(append(&log, 1000..1300).await);
    check(&log, &all).await;

    // A backup holds them as rows; the restored log moves them into its
    // own files.
    let backup = dir.path().join("backup");
    log.backup(store(&backup).as_ref()).await.unwrap();
    log.close().await;
    assert!(!backup.join("tiles").exists());
    let restored = dir.path().join("restored");
    cairn_log::backup::restore(store(&backup).as_ref(), store(&restored).as_ref())
        .await
        .unwrap();
    let log = open(&restored, true).await;
    assert!(restored.join("tiles/tile/entries/004").is_file());
    check(&log, &all).await;
}

#[tokio::test]
async fn a_lost_tile_file_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), true).await;
    append(&log, 0..700).await;
    log.close().await;
    // The last full tile of level 0 (tile 1) goes missing.
    std::fs::remove_file(dir.path().join("tiles/tile/0/001")).unwrap();
    let e = try_open(dir.path(), true).await.unwrap_err();
    assert!(
        matches!(&e, LogError::Corrupt { what } if what.contains("tile/0/001 is missing")),
        "{e}"
    );
    // A truncated one is refused too.
    std::fs::write(dir.path().join("tiles/tile/0/001"), [0u8; 100]).unwrap();
    let e = try_open(dir.path(), true).await.unwrap_err();
    assert!(
        matches!(e, LogError::Corrupt { .. } | LogError::Tlog(_)),
        "{e}"
    );
    // One with other hashes does not match the tree.
    std::fs::write(dir.path().join("tiles/tile/0/001"), [7u8; 8192]).unwrap();
    let e = try_open(dir.path(), true).await.unwrap_err();
    assert!(
        matches!(&e, LogError::Corrupt { what } if what.contains("does not match")),
        "{e}"
    );
}

const CHILD_ENV: &str = "CAIRN_LOG_CRASH_CHILD_DIR";
/// The child stops by itself after this many batches if never killed.
const MAX_BATCHES: u64 = 20_000;

/// In the child: append batches of 100 leaves (a tile completes every few
/// batches) forever, printing each acknowledged size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only meaningful when started by `kill_9_mid_stream_never_corrupts_the_log`
    };
    let log = open(Path::new(&dir), true).await;
    let mut n = log.snapshot().size;
    for _ in 0..MAX_BATCHES {
        append(&log, n..n + 100).await;
        n += 100;
        println!("acked {n}");
    }
}

#[tokio::test]
async fn kill_9_mid_stream_never_corrupts_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = 30 + round * 17;
        for (seen, line) in BufReader::new(stdout).lines().enumerate() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("acked ") {
                acked = n.parse().unwrap();
            }
            if seen as u64 >= kill_after {
                child.kill().unwrap();
                break;
            }
        }
        child.wait().unwrap();
        // Every acknowledged leaf is there, in order; the root at open is
        // the state's (Log::open checks it against the tiles and the last
        // full units against the tree).
        let log = open(dir.path(), true).await;
        let snap = log.snapshot();
        assert!(snap.size >= acked, "round {round}: {} < {acked}", snap.size);
        let all: Vec<Hash> = (0..snap.size).map(|i| leaf_hash(&leaf(i))).collect();
        check(&log, &all).await;
        log.close().await;
    }
    // A stray file beside a tile is never read; files left for
    // tiles beyond the tree (a batch that wrote them, then died before its
    // commit) are replaced when the tree grows over them.
    let log = open(dir.path(), true).await;
    let size = log.snapshot().size;
    log.close().await;
    let next = size / 256 + 1;
    let tiles = dir.path().join("tiles/tile");
    std::fs::write(tiles.join("0/000.tmp"), [1u8; 10]).unwrap();
    std::fs::write(tiles.join(format!("0/{next:03}")), [9u8; 8192]).unwrap();
    std::fs::write(tiles.join(format!("entries/{next:03}")), [9u8; 30]).unwrap();
    let log = open(dir.path(), true).await;
    let mut all: Vec<Hash> = (0..size).map(|i| leaf_hash(&leaf(i))).collect();
    all.extend(append(&log, size..size + 600).await);
    check(&log, &all).await;
    let (entries, _) = log.entries(next * 256, next * 256 + 2, 2).await.unwrap();
    assert_eq!(entries[1].1, leaf(next * 256 + 1));
    log.close().await;
    open(dir.path(), true).await;
}
