//! Partition identity on disk: which topic a partition directory belongs to.
//!
//! A partition directory is named `<topic>-<partition>`, and a topic deleted and
//! re-created under the same name gets the same directory name. Its topic id, written
//! in Kafka's `partition.metadata` file, tells the two apart: a directory holding
//! another topic id is the deleted topic's leftover (a crash between the delete and
//! the removal) and is never served. Deletes rename the directory to
//! `<topic>-<partition>.<unique>-delete` first (one atomic step), then remove it;
//! start-up sweeps such names left by a crash.

use crate::storage::checkpoint::write_atomic;
use crate::storage::error::{IoContext, StorageError};
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
pub const DELETE_SUFFIX: &str = "-delete";

/// The topic id recorded in `dir`, if any.
pub fn read_topic_id(dir: &Path) -> Result<Option<Uuid>, StorageError> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(&path),
    };
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(str::trim)
        .and_then(|s| Uuid::parse_str(s).ok());
    match id {
        Some(id) => Ok(Some(id)),
        None => Err(StorageError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no valid topic_id line"),
        }),
    }
}

/// Make `dir` the directory of topic `topic_id`: a directory of another topic id is
/// moved aside and removed; a new (or pre-identity) directory gets the id written.
/// Returns whether a leftover of another topic was removed.
pub fn claim_dir(dir: &Path, topic_id: Uuid) -> Result<bool, StorageError> {
    let mut removed = false;
    if dir.is_dir() {
        match read_topic_id(dir) {
            Ok(Some(id)) if id == topic_id => return Ok(false),
            Ok(None) => {}
            // Another topic's data, or an unreadable identity: never serve it.
            Ok(Some(_)) | Err(_) => {
                remove_dir(dir)?;
                removed = true;
            }
        }
    }
    std::fs::create_dir_all(dir).at(dir)?;
    write_atomic(
        &dir.join(PARTITION_METADATA_FILE),
        &format!("version: 0\ntopic_id: {topic_id}\n"),
    )?;
    Ok(removed)
}

/// Delete a partition directory: rename it out of the way, then remove it.
pub fn remove_dir(dir: &Path) -> Result<(), StorageError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = crate::metadata::random_uuid().simple().to_string();
    let aside: PathBuf = dir.with_file_name(format!("{name}.{unique}{DELETE_SUFFIX}"));
    std::fs::rename(dir, &aside).at(dir)?;
    if let Some(parent) = dir.parent() {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    std::fs::remove_dir_all(&aside).at(&aside)
}

/// Remove directories a crash left renamed for deletion; returns how many.
pub fn sweep_deleted(log_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETE_SUFFIX) && e.path().is_dir() {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => n += 1,
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove deleted partition dir")
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_topic_never_gets_the_old_data() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        let (old, new) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
        assert!(!claim_dir(&dir, old).unwrap());
        std::fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        assert_eq!(read_topic_id(&dir).unwrap(), Some(old));
        // Same topic again (a restart): kept.
        assert!(!claim_dir(&dir, old).unwrap());
        assert!(dir.join("00000000000000000000.log").exists());
        // The name re-created as another topic (the delete never finished): replaced.
        assert!(claim_dir(&dir, new).unwrap());
        assert!(!dir.join("00000000000000000000.log").exists());
        assert_eq!(read_topic_id(&dir).unwrap(), Some(new));
        // A directory from before identities existed is adopted.
        let legacy = root.path().join("u-0");
        std::fs::create_dir_all(&legacy).unwrap();
        std::fs::write(legacy.join("x.log"), b"kept").unwrap();
        assert!(!claim_dir(&legacy, old).unwrap());
        assert!(legacy.join("x.log").exists());
    }

    #[test]
    fn deletes_rename_first_and_start_up_sweeps_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        claim_dir(&dir, Uuid::from_bytes([1; 16])).unwrap();
        remove_dir(&dir).unwrap();
        assert!(!dir.exists());
        // A crash after the rename leaves `<name>.<unique>-delete`: swept at start-up.
        let left = root.path().join("t-1.abc-delete");
        std::fs::create_dir_all(left.join("sub")).unwrap();
        std::fs::create_dir_all(root.path().join("t-2")).unwrap();
        assert_eq!(sweep_deleted(root.path()), 1);
        assert!(!left.exists() && root.path().join("t-2").exists());
    }
}
