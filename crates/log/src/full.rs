//! Where full tiles and full entry bundles live: as immutable files
//! ([`crate::files`], the embedded default: `LogConfig::tile_dir`), or as
//! whole rows of the store (a database, which replicas share; and every
//! backup, the portable form). The mutable right edge — partial tiles and
//! the partial bundle — and the leaf-hash index are in the store either
//! way.
//!
//! A log opened with files over a store that holds full units as rows (a
//! restored backup, or a log written before tiles were files) moves them
//! into files at open ([`FullUnits::migrate`]): files first, synced, then
//! the rows deleted, so a crash in between only leaves rows to move again.

use cairn_store::{Store, WriteBatch};

use crate::engine::Snapshot;
use crate::error::LogError;
use crate::files::{TileFiles, Unit};
use crate::layout::{NS_ENTRIES, NS_TILES, bundle_key, tile_key};

/// A unit the batch completed.
pub(crate) struct Completed {
    pub(crate) unit: Unit,
    /// Its bytes: 256 hashes, or the C2SP bundle of 256 entries.
    pub(crate) bytes: Vec<u8>,
    /// Whether it was the partial unit of the edge with a segment stored
    /// at offset 0 (its other segments the batch deletes already).
    pub(crate) stored_at_zero: bool,
}

/// Units moved or copied per store commit.
const PAGE: usize = 256;

/// The storage of full units.
#[derive(Clone, Debug)]
pub(crate) enum FullUnits {
    /// Rows of the store, at offset 0 of the unit's key.
    InStore,
    /// Files.
    Files(TileFiles),
}

fn row(unit: Unit) -> (&'static str, Vec<u8>) {
    match unit {
        Unit::Tile { level, index } => (NS_TILES, tile_key(level, index, 0)),
        Unit::Bundle { index } => (NS_ENTRIES, bundle_key(index, 0)),
    }
}

impl FullUnits {
    /// The bytes of a full unit, if stored.
    pub(crate) async fn read(
        &self,
        store: &dyn Store,
        unit: Unit,
    ) -> Result<Option<Vec<u8>>, LogError> {
        match self {
            FullUnits::InStore => {
                let (ns, key) = row(unit);
                Ok(store.get(ns, &key).await?)
            }
            FullUnits::Files(files) => files.read(unit).await,
        }
    }

    /// Places a batch's completed units: as rows of `batch`, or as files
    /// written durably now (before the batch's checkpoint is signed) with
    /// their partial segments deleted in `batch`.
    pub(crate) async fn place(
        &self,
        batch: &mut WriteBatch,
        completed: Vec<Completed>,
    ) -> Result<(), LogError> {
        match self {
            FullUnits::InStore => {
                for c in completed {
                    let (ns, key) = row(c.unit);
                    batch.put(ns, key, c.bytes);
                }
                Ok(())
            }
            FullUnits::Files(files) => {
                let mut writes = Vec::with_capacity(completed.len());
                for c in completed {
                    if c.stored_at_zero {
                        let (ns, key) = row(c.unit);
                        batch.delete(ns, key);
                    }
                    writes.push((c.unit, c.bytes));
                }
                files.write_all(writes).await
            }
        }
    }

    /// Every full unit of the tree of `snap`, in order.
    fn units_of(snap: &Snapshot) -> impl Iterator<Item = Unit> + '_ {
        let tiles = snap.edge.iter().enumerate().flat_map(|(level, e)| {
            (0..e.index).map(move |index| Unit::Tile {
                level: level as u8,
                index,
            })
        });
        tiles.chain((0..snap.bundle.index).map(|index| Unit::Bundle { index }))
    }

    /// Copies the full units of `snap` into `to` as rows (for a backup; a
    /// store-held log's rows are copied with its namespaces already).
    pub(crate) async fn export(
        &self,
        from: &dyn Store,
        snap: &Snapshot,
        to: &dyn Store,
    ) -> Result<u64, LogError> {
        if matches!(self, FullUnits::InStore) {
            return Ok(0);
        }
        let units: Vec<Unit> = Self::units_of(snap).collect();
        for page in units.chunks(PAGE) {
            let mut batch = WriteBatch::new();
            for &unit in page {
                let bytes = self.read(from, unit).await?.ok_or_else(|| missing(unit))?;
                let (ns, key) = row(unit);
                batch.put(ns, key, bytes);
            }
            to.commit(batch).await?;
        }
        Ok(units.len() as u64)
    }

    /// Moves full units held as rows into files (see the module doc).
    /// Returns how many were moved. Scans only what the store holds: once
    /// moved, that is the right edge's few segments.
    pub(crate) async fn migrate(
        &self,
        store: &dyn Store,
        snap: &Snapshot,
    ) -> Result<u64, LogError> {
        let FullUnits::Files(files) = self else {
            return Ok(0);
        };
        let mut moved = 0u64;
        for ns in [NS_TILES, NS_ENTRIES] {
            let mut start: Vec<u8> = Vec::new();
            loop {
                let page = store.scan(ns, &start, None, PAGE).await?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                start = [last.as_slice(), &[0]].concat();
                let more = page.len() == PAGE;
                let found: Vec<(Unit, Vec<u8>)> = page
                    .into_iter()
                    .filter_map(|(k, v)| full_row(ns, &k, snap).map(|u| (u, v)))
                    .collect();
                if !found.is_empty() {
                    let mut batch = WriteBatch::new();
                    for (unit, _) in &found {
                        let (ns, key) = row(*unit);
                        batch.delete(ns, key);
                    }
                    moved += found.len() as u64;
                    files.write_all(found).await?;
                    store.commit(batch).await?;
                }
                if !more {
                    break;
                }
            }
        }
        if moved > 0 {
            tracing::info!(
                moved,
                "full tiles and bundles moved from the store into files"
            );
        }
        Ok(moved)
    }
}

/// The full unit a row of `ns` holds whole, if it is one: offset 0 of a
/// unit behind the right edge of `snap`.
fn full_row(ns: &str, key: &[u8], snap: &Snapshot) -> Option<Unit> {
    let be = |b: &[u8]| <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes);
    match (ns, key.len()) {
        (NS_TILES, 11) if key[9..] == [0, 0] => {
            let (level, index) = (key[0], be(&key[1..9])?);
            let edge = snap.edge.get(usize::from(level))?;
            (index < edge.index).then_some(Unit::Tile { level, index })
        }
        (NS_ENTRIES, 10) if key[8..] == [0, 0] => {
            let index = be(&key[..8])?;
            (index < snap.bundle.index).then_some(Unit::Bundle { index })
        }
        _ => None,
    }
}

/// A full unit of the committed tree that is not there.
pub(crate) fn missing(unit: Unit) -> LogError {
    LogError::corrupt(format!("{} is missing", unit.path().to_path()))
}

/// The storage a log opened with `tile_dir` uses.
pub(crate) fn from_config(tile_dir: Option<&std::path::Path>) -> Result<FullUnits, LogError> {
    Ok(match tile_dir {
        Some(dir) => FullUnits::Files(TileFiles::open(dir)?),
        None => FullUnits::InStore,
    })
}
