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

/// The directory-change target reaches the end of the path: a patch of
/// the document in force (a member's display name) is proposed, approved
/// and takes effect; a foreign document does not.
#[test]
fn the_directory_change_target_reaches_a_change_in_force() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/directory_change");
    let run = |name: &str| {
        let data = std::fs::read(root.join(name)).unwrap();
        cairn_tests::fuzz::directory_changed(&data).unwrap()
    };
    let patched = run("patch-name");
    assert_eq!(
        patched.current().version,
        1,
        "the patch did not take effect"
    );
    assert!(
        patched
            .current()
            .document
            .contains("name = \"GB AI Security Institute\""),
        "{}",
        patched.current().document
    );
    assert_eq!(run("foreign-document").current().version, 0);
}
