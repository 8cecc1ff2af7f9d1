//! How many bytes the embedded store (redb, through `EmbeddedStore`, with its durability
//! settings) puts on disk per stored item, for the three shapes the audit
//! log writes: small sequential values (entries), 33 KB sequential values
//! (entry bundles), and 40-byte values under random 32-byte keys (the
//! leaf-hash index). One million items in batches of 1024.
//!
//! cargo run --release -p cairn-store --example amplification -- small|bundle|hash

use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store as _, WriteBatch};

fn size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        size(&e.path())
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "small".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(EmbeddedStoreConfig::new(dir.path())).expect("store");
    let n = 1_000_000u64;
    let mut i = 0;
    while i < n {
        let mut b = WriteBatch::new();
        match mode.as_str() {
            "small" => {
                for k in i..i + 1024 {
                    b.put("e", k.to_be_bytes().to_vec(), vec![7u8; 130]);
                }
            }
            "bundle" => {
                for t in 0..4u64 {
                    b.put(
                        "e",
                        (i / 256 + t).to_be_bytes().to_vec(),
                        vec![7u8; 130 * 256],
                    );
                }
            }
            "hash" => {
                for k in i..i + 1024 {
                    let h = ring::digest::digest(&ring::digest::SHA256, &k.to_be_bytes());
                    b.put("e", h.as_ref().to_vec(), k.to_be_bytes().to_vec());
                }
            }
            other => panic!("unknown mode {other}: use small, bundle or hash"),
        }
        store.commit(b).await.expect("commit");
        i += 1024;
    }
    drop(store);
    println!(
        "{mode}: {:.1} bytes on disk per item",
        size(dir.path()) as f64 / n as f64
    );
}
