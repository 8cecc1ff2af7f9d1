//! Full tiles and full entry bundles as immutable files in the C2SP
//! tlog-tiles layout (`tile/<L>/<N>`, `tile/entries/<N>`) under one
//! directory, the way Tessera's POSIX storage keeps them: a full tile
//! never changes, so it needs no database, and a reader is served its
//! bytes as they lie on disk.
//!
//! A batch's files are written together ([`TileFiles::write_all`]): each
//! written and synced, then every directory that gained an entry synced —
//! all before the store commit (and the checkpoint) that covers them. Only
//! units beyond the committed tree are ever written (a full unit inside it
//! is never rewritten), so a crash at any point leaves at worst a file,
//! whole or half-written, for a unit beyond the committed tree: it is
//! never read (readers stay within the committed tree) and is replaced
//! whole (truncated, written, synced) when the tree grows over it again.
//! No temporary file and no rename is needed for that.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_tlog::tiles::{TILE_WIDTH, TileId, TilePath};

use crate::error::LogError;

/// A full unit of the tree kept as a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Unit {
    /// The hash tile at `level`, `index`.
    Tile { level: u8, index: u64 },
    /// The entry bundle `index`.
    Bundle { index: u64 },
}

impl Unit {
    /// Its C2SP path (full width).
    pub(crate) fn path(self) -> TilePath {
        let width = TILE_WIDTH as u16;
        match self {
            Unit::Tile { level, index } => TilePath::Hashes(TileId {
                level,
                index,
                width,
            }),
            Unit::Bundle { index } => TilePath::Entries { index, width },
        }
    }
}

/// Most files written at once by one batch.
const WRITERS: usize = 8;

/// The directory of full tiles and bundles.
#[derive(Clone, Debug)]
pub(crate) struct TileFiles {
    root: Arc<PathBuf>,
}

impl TileFiles {
    /// The files under `root`, which is created if missing.
    pub(crate) fn open(root: &Path) -> Result<Self, LogError> {
        std::fs::create_dir_all(root).map_err(|e| file_error(root, e))?;
        Ok(Self {
            root: Arc::new(root.to_owned()),
        })
    }

    /// Where `unit` lies.
    pub(crate) fn path_of(&self, unit: Unit) -> PathBuf {
        self.root.join(unit.path().to_path())
    }

    /// The bytes of `unit`, or `None` if it has no file.
    pub(crate) async fn read(&self, unit: Unit) -> Result<Option<Vec<u8>>, LogError> {
        let path = self.path_of(unit);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_error(&path, e)),
        }
    }

    /// Writes every unit durably (see the module doc); returns once the
    /// files and their directories are synced.
    pub(crate) async fn write_all(&self, units: Vec<(Unit, Vec<u8>)>) -> Result<(), LogError> {
        if units.is_empty() {
            return Ok(());
        }
        let files = self.clone();
        tokio::task::spawn_blocking(move || files.write_blocking(units))
            .await
            .map_err(|_| LogError::Stopped)?
    }

    fn write_blocking(&self, units: Vec<(Unit, Vec<u8>)>) -> Result<(), LogError> {
        let mut dirty = BTreeSet::new();
        let paths: Vec<(PathBuf, Vec<u8>)> = units
            .into_iter()
            .map(|(unit, bytes)| (self.path_of(unit), bytes))
            .collect();
        for (path, _) in &paths {
            if let Some(parent) = path.parent() {
                self.ensure_dir(parent, &mut dirty)?;
                dirty.insert(parent.to_owned());
            }
        }
        // Files are synced in parallel: the disk takes concurrent flushes
        // together.
        let chunk = paths.len().div_ceil(WRITERS);
        std::thread::scope(|scope| {
            let writers: Vec<_> = paths
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .try_for_each(|(path, bytes)| write_file(path, bytes))
                    })
                })
                .collect();
            writers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or(Err(LogError::Stopped)))
        })?;
        dirty.iter().try_for_each(|dir| sync_dir(dir))
    }

    /// Creates `dir` and its missing parents below the root; each parent
    /// that gained a directory is marked to be synced.
    fn ensure_dir(&self, dir: &Path, dirty: &mut BTreeSet<PathBuf>) -> Result<(), LogError> {
        if dir.is_dir() || dir == self.root.as_path() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent, dirty)?;
            dirty.insert(parent.to_owned());
        }
        match std::fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(file_error(dir, e)),
        }
    }
}

/// Writes `bytes` to `path` (replacing what a crashed batch left there)
/// and syncs it.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let mut f = std::fs::File::create(path).map_err(|e| file_error(path, e))?;
    f.write_all(bytes).map_err(|e| file_error(path, e))?;
    f.sync_data().map_err(|e| file_error(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error(dir, e))
}

fn file_error(path: &Path, source: std::io::Error) -> LogError {
    LogError::TileFile {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn units_lie_at_their_c2sp_paths_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(&dir.path().join("tiles")).unwrap();
        let tile = Unit::Tile {
            level: 1,
            index: 1_234_067,
        };
        let bundle = Unit::Bundle { index: 5 };
        files
            .write_all(vec![(tile, vec![1; 8192]), (bundle, b"entries".to_vec())])
            .await
            .unwrap();
        assert!(dir.path().join("tiles/tile/1/x001/x234/067").is_file());
        assert!(dir.path().join("tiles/tile/entries/005").is_file());
        assert_eq!(files.read(tile).await.unwrap().unwrap(), vec![1; 8192]);
        assert_eq!(files.read(bundle).await.unwrap().unwrap(), b"entries");
        assert_eq!(files.read(Unit::Bundle { index: 6 }).await.unwrap(), None);
        // Rewriting a unit (a tile beyond a crashed batch) replaces it whole.
        files
            .write_all(vec![(bundle, b"other".to_vec())])
            .await
            .unwrap();
        assert_eq!(files.read(bundle).await.unwrap().unwrap(), b"other");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("tiles/tile/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["005"]);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = TileFiles::open(dir.path()).unwrap();
        // A plain file where the directory `tile/` must go.
        std::fs::write(dir.path().join("tile"), b"in the way").unwrap();
        let e = files
            .write_all(vec![(Unit::Bundle { index: 0 }, vec![1])])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LogError::TileFile { path, .. } if path.ends_with("tile/entries")),
            "{e}"
        );
    }
}
