//! Small text checkpoint files, replaced atomically (write temp, fsync, rename, fsync dir).
//!
//! Kafka keeps `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` once
//! per log directory, covering every partition. Troupe keeps one `recovery-point` and
//! one `log-start-offset` file *per partition directory* instead: each partition's log
//! is owned by its own actor, and a shared file would force those actors to coordinate
//! (or funnel through one writer) on every flush and retention pass.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::storage::error::{IoContext, StorageError};

/// File holding the offset below which every batch is known to be on disk.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// File holding the log start offset (advanced by retention and DeleteRecords).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// Replace `path` with `contents` so that a crash leaves either the old or the new file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), StorageError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    let mut f = File::create(tmp).at(tmp)?;
    f.write_all(contents.as_bytes()).at(tmp)?;
    f.sync_all().at(tmp)?;
    fs::rename(tmp, path).at(path)?;
    // The rename itself only survives a crash once the directory entry is synced.
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
    }
    Ok(())
}

/// Read a one-number checkpoint; `None` if the file does not exist.
pub fn read_offset(path: &Path) -> Result<Option<i64>, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    text.trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|e| StorageError::InvalidCheckpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

pub fn write_offset(path: &Path, offset: i64) -> Result<(), StorageError> {
    write_atomic(path, &format!("{offset}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(RECOVERY_POINT_FILE);
        assert_eq!(read_offset(&p).unwrap(), None);
        write_offset(&p, 42).unwrap();
        write_offset(&p, 43).unwrap();
        assert_eq!(read_offset(&p).unwrap(), Some(43));
        assert!(!dir.path().join("recovery-point.tmp").exists());
        fs::write(&p, "x").unwrap();
        assert!(matches!(
            read_offset(&p),
            Err(StorageError::InvalidCheckpoint { .. })
        ));
    }
}
