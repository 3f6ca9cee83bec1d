//! Producer state snapshots: `<dir>/<20-digit offset>.snapshot`, the state of every
//! producer after all batches below `offset`. Recovery loads the newest snapshot at or
//! below the log end and replays batch headers from there, instead of rescanning the
//! whole log.
//!
//! Format (ours, not Kafka's): 4-byte magic `TPS1`, CRC32C (big endian) of the body, then
//! the body in MessagePack. A snapshot that fails its CRC is ignored (an older one or
//! a longer replay takes its place); it never stops the log from opening.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::producer::state::{ProducerEntry, ProducerStateManager};
use crate::storage::StorageError;

const MAGIC: &[u8; 4] = b"TPS1";
const SUFFIX: &str = ".snapshot";
/// Snapshots kept after a new one is written: older ones serve truncation (a follower
/// cut back below the newest) without a replay from the log start.
pub const SNAPSHOTS_KEPT: usize = 3;

#[derive(Serialize, Deserialize)]
struct Body {
    offset: i64,
    producers: Vec<(i64, ProducerEntry)>,
}

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SUFFIX}"))
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(o) = stem.parse::<i64>() {
            offsets.push(o);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Write the snapshot for `offset` (temp file, fsync, rename) and prune old ones.
pub fn write_snapshot(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> Result<(), StorageError> {
    let mut producers: Vec<(i64, ProducerEntry)> =
        state.entries().map(|(id, e)| (*id, e.clone())).collect();
    producers.sort_unstable_by_key(|(id, _)| *id);
    let body = rmp_serde::to_vec(&Body { offset, producers })
        .map_err(|e| io_err(dir)(std::io::Error::other(e)))?;
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(MAGIC).map_err(io_err(&tmp))?;
        f.write_all(&crc32c::crc32c(&body).to_be_bytes())
            .map_err(io_err(&tmp))?;
        f.write_all(&body).map_err(io_err(&tmp))?;
        f.sync_data().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    let all = list_snapshots(dir)?;
    if all.len() > SNAPSHOTS_KEPT {
        for o in &all[..all.len() - SNAPSHOTS_KEPT] {
            let p = snapshot_path(dir, *o);
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}

/// Read one snapshot; `None` when it is damaged or not ours.
pub fn read_snapshot(path: &Path) -> Result<Option<(i64, ProducerStateManager)>, StorageError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Ok(None);
    }
    let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let body = &bytes[8..];
    if crc32c::crc32c(body) != crc {
        return Ok(None);
    }
    match rmp_serde::from_slice::<Body>(body) {
        Ok(b) => Ok(Some((
            b.offset,
            ProducerStateManager::from_entries(b.producers),
        ))),
        Err(_) => Ok(None),
    }
}

/// Delete snapshots above `offset` (the log was truncated below them).
pub fn delete_snapshots_above(dir: &Path, offset: i64) -> Result<(), StorageError> {
    for o in list_snapshots(dir)? {
        if o > offset {
            let p = snapshot_path(dir, o);
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
    }
    Ok(())
}
