//! C2SP tlog-tiles: tile paths, where each subtree hash lives, and entry
//! bundles.
//!
//! Tiles have height 8: a tile at tile level `L` holds up to 256 hashes of
//! Merkle level `8 L`, and tile `N` holds those with indexes `256 N ..
//! 256 N + 255`. A partial tile of width `W` holds the first `W`.

use crate::error::TlogError;
use crate::hash::{HASH_LEN, Hash};
use crate::proof::NodeId;

/// Tile height (levels per tile).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// A hash tile: tile level, tile index and width (1..=256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level (Merkle level / 8).
    pub level: u8,
    /// Tile index.
    pub index: u64,
    /// Number of hashes (256 for a full tile).
    pub width: u16,
}

/// What a tile path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `checkpoint`.
    Checkpoint,
    /// `tile/<L>/<N>[.p/<W>]`.
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`.
    Entries {
        /// Bundle index.
        index: u64,
        /// Number of entries.
        width: u16,
    },
}

/// `N` as C2SP path elements: 3 digits each, all but the last prefixed with
/// `x` (1234067 → `x001/x234/067`).
pub fn encode_index(n: u64) -> String {
    let mut groups = Vec::new();
    let mut rest = n;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g:03}")
            } else {
                format!("{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn width_suffix(width: u16) -> String {
    if u64::from(width) == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

impl TilePath {
    /// The path, relative to the log's prefix.
    pub fn to_path(&self) -> String {
        match self {
            TilePath::Checkpoint => "checkpoint".to_owned(),
            TilePath::Hashes(t) => format!(
                "tile/{}/{}{}",
                t.level,
                encode_index(t.index),
                width_suffix(t.width)
            ),
            TilePath::Entries { index, width } => format!(
                "tile/entries/{}{}",
                encode_index(*index),
                width_suffix(*width)
            ),
        }
    }

    /// Parses a path relative to the log's prefix.
    pub fn parse(path: &str) -> Result<Self, TlogError> {
        let bad = |m: &str| {
            TlogError::TilePath(format!(
                "{:?}: {m}",
                path.chars().take(120).collect::<String>()
            ))
        };
        if path == "checkpoint" {
            return Ok(TilePath::Checkpoint);
        }
        let rest = path
            .strip_prefix("tile/")
            .ok_or_else(|| bad("not under tile/"))?;
        let (kind, rest) = rest.split_once('/').ok_or_else(|| bad("no tile index"))?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                if w.is_empty()
                    || w.len() > 3
                    || !w.bytes().all(|c| c.is_ascii_digit())
                    || w.starts_with('0')
                {
                    return Err(bad("partial width must be 1 to 255 without leading zeros"));
                }
                let w: u16 = w.parse().map_err(|_| bad("bad width"))?;
                if u64::from(w) >= TILE_WIDTH {
                    return Err(bad("partial width must be below 256"));
                }
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(index_part).ok_or_else(|| bad("malformed tile index"))?;
        if kind == "entries" {
            return Ok(TilePath::Entries { index, width });
        }
        if kind.is_empty()
            || kind.len() > 2
            || !kind.bytes().all(|c| c.is_ascii_digit())
            || (kind.len() > 1 && kind.starts_with('0'))
        {
            return Err(bad("malformed tile level"));
        }
        let level: u8 = kind.parse().map_err(|_| bad("malformed tile level"))?;
        if level > 7 {
            return Err(bad("tile level above 7"));
        }
        Ok(TilePath::Hashes(TileId {
            level,
            index,
            width,
        }))
    }
}

fn parse_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let (last, init) = parts.split_last()?;
    let mut n: u64 = 0;
    for (i, part) in init.iter().enumerate() {
        let digits = part.strip_prefix('x')?;
        if digits.len() != 3
            || !digits.bytes().all(|c| c.is_ascii_digit())
            || (i == 0 && digits == "000")
        {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    if last.len() != 3 || !last.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.checked_mul(1000)?.checked_add(last.parse().ok()?)
}

/// Where the hash of a perfect subtree can be computed from: the tile
/// (level and index) and the range of its hashes to fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLocation {
    /// Tile level.
    pub tile_level: u8,
    /// Tile index.
    pub tile_index: u64,
    /// First hash within the tile.
    pub offset: usize,
    /// Number of hashes (a power of two up to 128).
    pub count: usize,
}

/// Where node `node` lives in the tiles.
pub fn locate(node: NodeId) -> NodeLocation {
    let tile_level = node.level / TILE_HEIGHT;
    let sub = node.level % TILE_HEIGHT;
    let first = node.index << sub; // index at Merkle level 8 * tile_level
    NodeLocation {
        tile_level,
        tile_index: first / TILE_WIDTH,
        offset: (first % TILE_WIDTH) as usize,
        count: 1usize << sub,
    }
}

/// Number of hashes stored at tile level `level` for a tree of `size`.
pub fn stored_at_level(level: u8, size: u64) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    if shift >= 64 { 0 } else { size >> shift }
}

/// The width of tile `index` at `level` in a tree of `size` (0: none yet).
pub fn tile_width(level: u8, index: u64, size: u64) -> u16 {
    let stored = stored_at_level(level, size);
    let start = index.saturating_mul(TILE_WIDTH);
    if stored <= start {
        0
    } else {
        (stored - start).min(TILE_WIDTH) as u16
    }
}

/// Splits tile bytes into hashes.
pub fn tile_hashes(bytes: &[u8]) -> Result<Vec<Hash>, TlogError> {
    if !bytes.len().is_multiple_of(HASH_LEN) || bytes.len() > HASH_LEN * TILE_WIDTH as usize {
        return Err(TlogError::TilePath(format!(
            "tile of {} bytes is not 1 to 256 hashes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks(HASH_LEN)
        .map(|c| c.try_into().unwrap_or([0; HASH_LEN]))
        .collect())
}

/// Encodes an entry bundle: each entry as a big-endian u16 length and its
/// bytes. Entries longer than 65535 bytes cannot be bundled.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| {
            TlogError::TilePath(format!("entry of {} bytes does not fit a bundle", e.len()))
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, TlogError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(TlogError::TilePath("truncated entry length".into()));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(TlogError::TilePath("truncated entry".into()));
        }
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_c2sp() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(1000), "x001/000");
        let t = TilePath::Hashes(TileId {
            level: 0,
            index: 1234067,
            width: 256,
        });
        assert_eq!(t.to_path(), "tile/0/x001/x234/067");
        let p = TilePath::Hashes(TileId {
            level: 1,
            index: 5,
            width: 17,
        });
        assert_eq!(p.to_path(), "tile/1/005.p/17");
        assert_eq!(
            TilePath::Entries {
                index: 3,
                width: 256
            }
            .to_path(),
            "tile/entries/003"
        );
        for path in [
            t,
            p,
            TilePath::Entries {
                index: 1000,
                width: 9,
            },
            TilePath::Checkpoint,
        ] {
            assert_eq!(TilePath::parse(&path.to_path()).unwrap(), path);
        }
        for bad in [
            "tile/0/1",
            "tile/0/x000/001",
            "tile/8/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/00/000",
            "tile/0/001/002",
            "tiles/0/000",
            "tile/0/000.p/012",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locations_and_widths() {
        assert_eq!(
            locate(NodeId {
                level: 0,
                index: 300
            }),
            NodeLocation {
                tile_level: 0,
                tile_index: 1,
                offset: 44,
                count: 1
            }
        );
        assert_eq!(
            locate(NodeId { level: 9, index: 3 }),
            NodeLocation {
                tile_level: 1,
                tile_index: 0,
                offset: 6,
                count: 2
            }
        );
        assert_eq!(tile_width(0, 0, 300), 256);
        assert_eq!(tile_width(0, 1, 300), 44);
        assert_eq!(tile_width(0, 2, 300), 0);
        assert_eq!(tile_width(1, 0, 300), 1);
    }

    #[test]
    fn bundles_round_trip() {
        let entries: Vec<&[u8]> = vec![b"", b"abc", &[7u8; 300]];
        let b = encode_bundle(entries.clone()).unwrap();
        assert_eq!(
            decode_bundle(&b).unwrap(),
            entries.iter().map(|e| e.to_vec()).collect::<Vec<_>>()
        );
        assert!(decode_bundle(&b[..b.len() - 1]).is_err());
        assert!(encode_bundle([&vec![0u8; 70_000][..]]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "[tile/entrisx0-9.p]{0,40}") {
            let _ = TilePath::parse(&s);
        }

        #[test]
        fn index_round_trips(n in proptest::num::u64::ANY) {
            let path = TilePath::Entries { index: n, width: 256 }.to_path();
            proptest::prop_assert_eq!(TilePath::parse(&path).unwrap(), TilePath::Entries { index: n, width: 256 });
        }
    }
}
