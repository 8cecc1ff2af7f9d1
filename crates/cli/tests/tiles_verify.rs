//! `cairn audit verify --tiles` on a log cairn did not write: a C2SP
//! tlog-tiles log of 66,000 entries built in the test by an independent
//! implementation — Cloudflare's `tlog_tiles` (a port of Go's
//! golang.org/x/mod/sumdb/tlog; BSD-3-Clause) computes every stored hash,
//! tile and root, and its `signed_note` signs the checkpoint with the
//! PeterNeumann key of Go's sumdb/note tests — then verified offline, with
//! consistency to a trusted earlier checkpoint from the tiles alone, and
//! refused where a tile, a bundle or the trusted checkpoint is wrong.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::path::Path;
use std::process::{Command, Output};

use tlog_tiles::{Checkpoint, Hash, HashReader, Tile, stored_hash_index, stored_hashes, tree_hash};

/// The signer and verifier keys of golang.org/x/mod/sumdb/note's tests.
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const SIZE: u64 = 66_000;
const TRUSTED: u64 = 1_000;

#[derive(Default)]
struct Stored(RefCell<Vec<Hash>>);

impl HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let all = self.0.borrow();
        Ok(indexes.iter().map(|&i| all[i as usize]).collect())
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i} of a log cairn did not write").into_bytes()
}

fn signed_checkpoint(stored: &Stored, size: u64) -> Vec<u8> {
    let root = tree_hash(size, stored).unwrap();
    let body = Checkpoint::new("PeterNeumann", size, root, "")
        .unwrap()
        .to_bytes();
    let signer = signed_note::StandardSigner::new(SKEY).unwrap();
    let mut note = signed_note::Note::new(&body, &[]).unwrap();
    note.add_sigs(&[&signer]).unwrap();
    note.to_bytes()
}

/// Writes the log in the C2SP layout: `checkpoint`, `tile/<L>/<N>[.p/<W>]`
/// (the library's `tile/8/…` paths without the height) and
/// `tile/entries/<N>[.p/<W>]`; returns the trusted earlier checkpoint.
fn write_log(dir: &Path) -> Vec<u8> {
    let stored = Stored::default();
    for n in 0..SIZE {
        let hashes = stored_hashes(n, &entry(n), &stored).unwrap();
        assert_eq!(stored.0.borrow().len() as u64, stored_hash_index(0, n));
        stored.0.borrow_mut().extend(hashes);
    }
    for tile in Tile::new_tiles(8, 0, SIZE) {
        let path = tile.path().replacen("tile/8/", "tile/", 1);
        write(dir, &path, &tile.read_data(&stored).unwrap());
        if tile.level() == 0 {
            let first = tile.level_index() * 256;
            let mut bundle = Vec::new();
            for i in first..first + u64::from(tile.width()) {
                let e = entry(i);
                bundle.extend_from_slice(&(e.len() as u16).to_be_bytes());
                bundle.extend_from_slice(&e);
            }
            write(dir, &path.replacen("tile/0/", "tile/entries/", 1), &bundle);
        }
    }
    write(dir, "checkpoint", &signed_checkpoint(&stored, SIZE));
    signed_checkpoint(&stored, TRUSTED)
}

fn write(dir: &Path, path: &str, bytes: &[u8]) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn verify(dir: &Path, trusted: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["audit", "verify", "--log-key", VKEY, "--tiles"])
        .arg(dir)
        .arg("--trusted")
        .arg(trusted)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_log_written_by_another_implementation_verifies_from_its_tiles_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let trusted_note = write_log(&dir);
    let trusted = tmp.path().join("trusted.txt");
    std::fs::write(&trusted, &trusted_note).unwrap();

    let ok = verify(&dir, &trusted);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = text(&ok);
    assert!(
        out.contains("checkpoint of PeterNeumann at size 66000"),
        "{out}"
    );
    // 258 level-0 tiles and bundles, 2 level-1 tiles, 1 level-2 tile.
    assert!(
        out.contains(
            "all 66000 entries in 258 bundles hash to their level-0 tiles; 261 hash tiles"
        ),
        "{out}"
    );
    assert!(
        out.contains("consistent with the trusted checkpoint of size 1000"),
        "{out}"
    );

    // An entry changed in its bundle (same length): exit 1, named.
    let bundle = dir.join("tile/entries/001");
    let original = std::fs::read(&bundle).unwrap();
    let mut changed = original.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(&bundle, &changed).unwrap();
    let o = verify(&dir, &trusted);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("entry 511 does not hash"), "{}", text(&o));
    std::fs::write(&bundle, &original).unwrap();

    // A level-1 tile that does not match the level-0 tiles below it.
    let tile = dir.join("tile/1/000");
    let original = std::fs::read(&tile).unwrap();
    let mut changed = original.clone();
    changed[40] ^= 1;
    std::fs::write(&tile, &changed).unwrap();
    let o = verify(&dir, &trusted);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("tile/1/000 does not match the tiles below it"),
        "{}",
        text(&o)
    );
    std::fs::write(&tile, &original).unwrap();

    // A trusted checkpoint of another history (signed by the same key).
    let other = tmp.path().join("other");
    let stored = Stored::default();
    for n in 0..TRUSTED {
        let hashes = stored_hashes(n, format!("other {n}").as_bytes(), &stored).unwrap();
        stored.0.borrow_mut().extend(hashes);
    }
    std::fs::write(&other, signed_checkpoint(&stored, TRUSTED)).unwrap();
    let o = verify(&dir, &other);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("first 1000 leaves do not hash to the trusted checkpoint's root"),
        "{}",
        text(&o)
    );

    // A missing partial tile (and no full tile to fall back on).
    std::fs::remove_file(dir.join("tile/0/257.p/208")).unwrap();
    let o = verify(&dir, &trusted);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("tile/0/257.p/208 is missing"),
        "{}",
        text(&o)
    );
}
