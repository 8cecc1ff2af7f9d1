//! Replays every saved fuzz input (fuzz/corpus/<target>/*) through the same
//! entry points the fuzz targets use: a finding, once saved, stays a test.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn every_saved_fuzz_input_runs_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (name, run) in cairn_tests::fuzz::TARGETS {
        let dir = root.join(name);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .collect();
        assert!(!entries.is_empty(), "no corpus for fuzz target {name}");
        for e in entries {
            let data = std::fs::read(e.path()).unwrap();
            run(&data);
            total += 1;
        }
    }
    assert!(total >= cairn_tests::fuzz::TARGETS.len());
}
