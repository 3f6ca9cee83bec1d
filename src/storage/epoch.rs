//! The leader epoch cache: which leader epoch started at which offset.
//!
//! Followers use it (through OffsetForLeaderEpoch) to find where their log diverges
//! from a new leader's. It is persisted in Kafka's `leader-epoch-checkpoint` text
//! format: a version line `0`, a line with the entry count, then `epoch start_offset`
//! lines, rewritten atomically.
//!
//! A new epoch's first append only marks the cache dirty: the file is written by the
//! log's next flush, before the recovery point moves past that append. Writing (and
//! fsyncing) it on the append path cost two fsyncs and a rename per partition on its
//! first produce (10,000 partitions: 20k fsyncs queued on the storage thread); Kafka made
//! the same change (KAFKA-15046). Entries lost in a crash are rebuilt from the batch
//! headers after the recovery point, which carry their leader epoch.

use std::path::{Path, PathBuf};

use crate::storage::checkpoint::write_atomic;
use crate::storage::error::StorageError;

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// `(epoch, start_offset)` entries with both strictly increasing.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<(i32, i64)>,
    /// Entries changed by `assign` since the file was last written.
    dirty: bool,
}

impl LeaderEpochCache {
    /// Load the cache of the partition in `dir` (empty if there is no checkpoint yet).
    pub fn load(dir: &Path) -> Result<LeaderEpochCache, StorageError> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(StorageError::Io { path, source }),
        };
        let entries = if text.trim().is_empty() {
            Vec::new()
        } else {
            parse(&text).map_err(|reason| StorageError::InvalidCheckpoint {
                path: path.clone(),
                reason,
            })?
        };
        Ok(LeaderEpochCache {
            path,
            entries,
            dirty: false,
        })
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Record that `epoch` starts at `start_offset`. As in Kafka, an entry that does not
    /// fit after the existing ones removes those it conflicts with (later epochs or
    /// later start offsets), since the log it describes has been replaced.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        if epoch < 0 || start_offset < 0 {
            return Ok(());
        }
        if self
            .entries
            .last()
            .is_some_and(|&(e, s)| e == epoch && s <= start_offset)
        {
            return Ok(());
        }
        self.entries.retain(|&(e, s)| e < epoch && s < start_offset);
        self.entries.push((epoch, start_offset));
        self.dirty = true;
        Ok(())
    }

    /// Write the file if `assign` changed it since the last write.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.save()?;
        }
        Ok(())
    }

    /// Forget epochs starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < end_offset);
        if self.entries.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// The log now starts at `start_offset`: drop epochs that ended before it and move
    /// the start of the epoch that covers it up to it.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), StorageError> {
        let covering = self.entries.iter().rposition(|&(_, s)| s <= start_offset);
        let Some(i) = covering else { return Ok(()) };
        if i == 0 && self.entries[0].1 == start_offset {
            return Ok(());
        }
        self.entries.drain(..i);
        self.entries[0].1 = start_offset;
        self.save()
    }

    /// OffsetForLeaderEpoch, with Kafka's answers (`LeaderEpochFileCache.endOffsetFor`):
    /// * the latest epoch: it and `log_end_offset`;
    /// * an epoch the cache knows a later one of: the largest epoch `<= epoch` and the
    ///   start of the next one;
    /// * an epoch below the first cached one: the epoch asked for and the first entry's
    ///   start offset (a follower truncates to there);
    /// * an epoch above the latest, or an empty cache: `None` (UNDEFINED_EPOCH, -1).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let &(latest, _) = self.entries.last()?;
        if epoch == latest {
            return Some((latest, log_end_offset));
        }
        let next = self.entries.iter().position(|&(e, _)| e > epoch)?;
        let start_of_next = self.entries[next].1;
        match next.checked_sub(1) {
            Some(floor) => Some((self.entries[floor].0, start_of_next)),
            None => Some((epoch, start_of_next)),
        }
    }

    fn save(&mut self) -> Result<(), StorageError> {
        self.dirty = false;
        let mut text = format!("0\n{}\n", self.entries.len());
        for (e, s) in &self.entries {
            text.push_str(&format!("{e} {s}\n"));
        }
        write_atomic(&self.path, &text)
    }
}

fn parse(text: &str) -> Result<Vec<(i32, i64)>, String> {
    let mut lines = text.lines();
    let version = lines.next().map(str::trim);
    if version != Some("0") {
        return Err(format!("unsupported version {version:?}"));
    }
    let count: usize = lines
        .next()
        .ok_or("missing count")?
        .trim()
        .parse()
        .map_err(|e| format!("count: {e}"))?;
    let mut entries = Vec::with_capacity(count);
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let epoch = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(format!("bad line {line:?}"))?;
        let start = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(format!("bad line {line:?}"))?;
        entries.push((epoch, start));
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_lookup_truncate_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(c.end_offset_for(0, 10), None);
        c.assign(1, 0).unwrap();
        c.assign(1, 5).unwrap();
        c.assign(3, 10).unwrap();
        c.assign(5, 20).unwrap();
        assert_eq!(c.entries(), &[(1, 0), (3, 10), (5, 20)]);
        // Kafka's answers: below the first epoch → (asked, first start); above the
        // latest → undefined.
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(c.end_offset_for(1, 30), Some((1, 10)));
        assert_eq!(c.end_offset_for(2, 30), Some((1, 10)));
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(9, 30), None);
        // assign only marks the cache dirty; the log's flush writes the file.
        assert!(!dir.path().join(LEADER_EPOCH_FILE).exists());
        c.flush().unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(text, "0\n3\n1 0\n3 10\n5 20\n");
        c.truncate_from_end(20).unwrap();
        c.truncate_from_start(12).unwrap();
        assert_eq!(c.entries(), &[(3, 12)]);
        let c = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(c.entries(), &[(3, 12)]);
        assert_eq!(c.latest_epoch(), Some(3));
    }

    #[test]
    fn conflicting_assign_replaces_later_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        c.assign(1, 0).unwrap();
        c.assign(2, 10).unwrap();
        c.assign(3, 5).unwrap();
        assert_eq!(c.entries(), &[(1, 0), (3, 5)]);
        std::fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n2\n1 0\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).is_err());
    }
}
