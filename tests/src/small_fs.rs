//! Size-limited filesystems for fault tests. A test calls [`inside`]: the
//! first time it runs the same test again in a private mount namespace
//! (`unshare --user --map-root-user --mount`, so no privilege is needed
//! where user namespaces are allowed) and reports how that went; inside,
//! the test [`mount`]s tmpfs filesystems of a few MiB where a service keeps
//! its store, fills them with [`fill`], and frees them again. Nothing is
//! mounted outside the namespace, and its mounts vanish with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the namespace's environment.
const INSIDE: &str = "CAIRN_TEST_IN_MOUNT_NAMESPACE";

/// Set (by `.ci/run`) where a machine that cannot make a mount namespace
/// must fail these tests rather than skip them.
const REQUIRED: &str = "CAIRN_REQUIRE_MOUNT_NAMESPACE";

/// `true` inside the namespace (run the test); `false` outside, after the
/// test ran inside and passed (or was skipped where no namespace can be
/// made). `test` is the test's path as libtest names it.
pub fn inside(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status();
    let why = match status {
        Ok(s) if s.success() => return false,
        // libtest's exit code for a failed test.
        Ok(s) if s.code() == Some(101) => panic!("{test} failed in its mount namespace"),
        Ok(s) => format!("unshare exited with {s}"),
        Err(e) => format!("unshare did not run: {e}"),
    };
    if std::env::var_os(REQUIRED).is_some() {
        panic!("{test} needs a mount namespace and none could be made: {why}");
    }
    eprintln!("SKIPPED {test}: no mount namespace on this machine ({why})");
    false
}

/// Mounts a tmpfs of `mib` MiB at `dir` (created if needed); only inside
/// the namespace.
pub fn mount(dir: &Path, mib: u32) -> PathBuf {
    assert!(
        std::env::var_os(INSIDE).is_some(),
        "mount only inside the test's namespace"
    );
    std::fs::create_dir_all(dir).expect("mount point");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size={mib}m"))
        .arg("cairn-test")
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mount tmpfs at {}: {status}",
        dir.display()
    );
    dir.to_owned()
}

/// Fills the filesystem of `dir` until it has no space left; returns the
/// file to remove to free it again.
pub fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler file");
    let block = vec![0u8; 64 * 1024];
    // Bounded: a tmpfs of a few MiB fills in a few hundred blocks.
    for _ in 0..1_000_000 {
        match file.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => return path,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    panic!("{} never filled up", dir.display())
}
