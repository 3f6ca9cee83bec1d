//! The files of log cleaning: the `.cleaned` segment being written, the atomic swap
//! that replaces a group of segments with it, the recovery of a swap a crash cut short,
//! and the per-partition cleaner checkpoint.
//!
//! A group of segments starting at base offset `B` is replaced in four steps:
//!
//! 1. write `B.log.cleaned`, `B.index.cleaned`, `B.timeindex.cleaned`; fsync them;
//! 2. rename the two indexes to `.swap`, then `B.log.cleaned` to `B.log.swap`, and fsync
//!    the directory: **the rename of the `.log` is the commit point**;
//! 3. unlink the old segments of the group (never truncate: a reader holding a
//!    `FileRegion` keeps the old inode and reads the old, valid bytes);
//! 4. rename the `.swap` indexes, then `B.log.swap`, to their final names; fsync the
//!    directory.
//!
//! [`recover_swaps`] runs before a log is opened: `.cleaned` files (a swap that never
//! committed) and `.swap` indexes without a `B.log.swap` are deleted; a `B.log.swap`
//! means the swap committed, so every old segment it covers is deleted and the swap
//! files are renamed into place (steps 3 and 4 again, idempotent). Indexes that went
//! missing on the way are rebuilt from the log when it is opened.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::storage::batch::{BatchHeader, HEADER_SIZE};
use crate::storage::checkpoint::write_atomic;
use crate::storage::error::{IoContext, StorageError};
use crate::storage::index::{OffsetIndex, TimeIndex};
use crate::storage::scan::read_header_at;
use crate::storage::segment::{file_stem, segment_paths};

/// Per-partition cleaner checkpoint (Kafka keeps one `cleaner-offset-checkpoint` per
/// log dir): `"<offset> <horizon>"`, the offset below which the log is clean and the
/// earliest delete horizon of a tombstone still kept (`i64::MAX` when none), so a
/// restart still knows when tombstones fall due.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

const EXTS: [&str; 3] = ["log", "index", "timeindex"];

/// `[log, index, timeindex]` of segment `base` with `suffix` (`cleaned` or `swap`).
pub(crate) fn suffixed_paths(dir: &Path, base: i64, suffix: &str) -> [PathBuf; 3] {
    let stem = file_stem(base);
    EXTS.map(|ext| dir.join(format!("{stem}.{ext}.{suffix}")))
}

/// `(clean offset, next delete horizon)`, `(0, i64::MAX)` without a checkpoint.
pub(crate) fn read_checkpoint(dir: &Path) -> Result<(i64, i64), StorageError> {
    let path = dir.join(CLEANER_CHECKPOINT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, i64::MAX)),
        Err(e) => return Err(e).at(&path),
    };
    let bad = |reason: &str| StorageError::InvalidCheckpoint {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let mut parts = text.split_whitespace().map(str::parse::<i64>);
    let offset = parts.next().ok_or_else(|| bad("empty"))?;
    let offset = offset.map_err(|e| bad(&e.to_string()))?;
    let horizon = match parts.next() {
        Some(h) => h.map_err(|e| bad(&e.to_string()))?,
        None => i64::MAX,
    };
    Ok((offset, horizon))
}

pub(crate) fn write_checkpoint(dir: &Path, offset: i64, horizon: i64) -> Result<(), StorageError> {
    write_atomic(
        &dir.join(CLEANER_CHECKPOINT_FILE),
        &format!("{offset} {horizon}\n"),
    )
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// A cleaned segment being written: batches go to a buffered `.log.cleaned`, index
/// entries to `.index.cleaned` / `.timeindex.cleaned` by the same rule as appends.
pub(crate) struct CleanedSegment {
    pub base_offset: i64,
    dir: PathBuf,
    log: BufWriter<File>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    interval: u64,
    pub size: u64,
    bytes_since_index: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
}

impl CleanedSegment {
    /// Start `base.*.cleaned`; `max_input` bounds the output, sizing the indexes (one
    /// entry per batch at most; trimmed in [`CleanedSegment::finish`]).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        max_input: u64,
        interval: u64,
    ) -> Result<Self, StorageError> {
        let [log, index, time] = suffixed_paths(dir, base_offset, "cleaned");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log)
            .at(&log)?;
        let entries = max_input / HEADER_SIZE as u64 + 2;
        Ok(CleanedSegment {
            base_offset,
            dir: dir.to_path_buf(),
            log: BufWriter::with_capacity(1 << 20, file),
            offset_index: OffsetIndex::create(&index, base_offset, entries * 8)?,
            time_index: TimeIndex::create(&time, base_offset, entries * 12)?,
            interval,
            size: 0,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
        })
    }

    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> Result<(), StorageError> {
        let path = || suffixed_paths(&self.dir, self.base_offset, "cleaned")[0].clone();
        self.log.write_all(batch).at(&path())?;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index > self.interval && !self.offset_index.is_full() {
            self.offset_index.append(h.last_offset(), self.size);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.len() as u64;
        self.size += batch.len() as u64;
        Ok(())
    }

    /// Close the files as a rolled segment is closed (final time index entry, indexes
    /// trimmed) and make them durable: step 1 of the swap.
    pub fn finish(mut self) -> Result<(), StorageError> {
        let [log, _, _] = suffixed_paths(&self.dir, self.base_offset, "cleaned");
        if self.max_timestamp >= 0 {
            if self.time_index.is_full() {
                let bytes = (self.time_index.entries() + 1) * TimeIndex::ENTRY_SIZE;
                self.time_index.resize(bytes as u64)?;
            }
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        }
        self.offset_index.trim()?;
        self.time_index.trim()?;
        self.offset_index.flush()?;
        self.time_index.flush()?;
        let file = self.log.into_inner().map_err(|e| e.into_error()).at(&log)?;
        file.sync_all().at(&log)
    }

    /// Give up: delete the `.cleaned` files.
    pub fn abort(self) -> Result<(), StorageError> {
        let (dir, base) = (self.dir.clone(), self.base_offset);
        drop(self);
        delete_cleaned(&dir, base)
    }
}

pub(crate) fn delete_cleaned(dir: &Path, base: i64) -> Result<(), StorageError> {
    for p in suffixed_paths(dir, base, "cleaned") {
        remove_if_exists(&p)?;
    }
    Ok(())
}

/// Step 2: `.cleaned` → `.swap`, the `.log` last; after this the swap is committed.
pub(crate) fn commit_swap(dir: &Path, base: i64) -> Result<(), StorageError> {
    let cleaned = suffixed_paths(dir, base, "cleaned");
    let swap = suffixed_paths(dir, base, "swap");
    for i in [1, 2, 0] {
        fs::rename(&cleaned[i], &swap[i]).at(&swap[i])?;
    }
    sync_dir(dir)
}

/// Step 4: `.swap` → final names, the `.log` last (a `.log.swap` left behind by a
/// crash still says "finish this swap").
pub(crate) fn finish_swap(dir: &Path, base: i64) -> Result<(), StorageError> {
    let swap = suffixed_paths(dir, base, "swap");
    let fin = segment_paths(dir, base);
    for i in [1, 2, 0] {
        if i == 0 || swap[i].exists() {
            fs::rename(&swap[i], &fin[i]).at(&fin[i])?;
        }
    }
    sync_dir(dir)
}

/// The offset after the last whole batch of `path` (its base offset when empty).
fn end_offset(path: &Path, base: i64) -> Result<i64, StorageError> {
    let file = File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let (mut pos, mut end) = (0u64, base);
    while let Some(h) = read_header_at(&file, pos, len).at(path)? {
        let size = h.total_size() as u64;
        if h.batch_length <= 0 || pos + size > len {
            break;
        }
        end = h.next_offset();
        pos += size;
    }
    Ok(end)
}

/// Finish or roll back every swap a crash interrupted (see the module docs). Runs
/// before the directory's segments are listed.
pub(crate) fn recover_swaps(dir: &Path) -> Result<(), StorageError> {
    let mut log_bases = Vec::new();
    let mut swaps = Vec::new();
    let mut index_swaps = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Some(base) = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten()
        else {
            continue;
        };
        match ext {
            "log" => log_bases.push(base),
            "log.swap" => swaps.push(base),
            "index.swap" | "timeindex.swap" => index_swaps.push((base, path)),
            e if e.ends_with(".cleaned") => {
                tracing::info!(file = %path.display(), "deleting unfinished cleaned segment");
                remove_if_exists(&path)?;
            }
            _ => {}
        }
    }
    for (base, path) in index_swaps {
        if !swaps.contains(&base) {
            remove_if_exists(&path)?;
        }
    }
    swaps.sort_unstable();
    for base in swaps {
        let swap_log = &suffixed_paths(dir, base, "swap")[0];
        let end = end_offset(swap_log, base)?;
        tracing::warn!(dir = %dir.display(), base_offset = base, end_offset = end, "completing interrupted segment swap");
        for &old in log_bases
            .iter()
            .filter(|&&b| b >= base && b < end.max(base + 1))
        {
            for p in segment_paths(dir, old) {
                remove_if_exists(&p)?;
            }
        }
        finish_swap(dir, base)?;
    }
    Ok(())
}

/// Reads whole batches of a closed segment sequentially through one buffer.
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    path: &'a Path,
    buf: Vec<u8>,
    buf_pos: u64,
    end: u64,
}

impl<'a> BatchReader<'a> {
    const CHUNK: usize = 1 << 20;

    pub fn new(file: &'a File, path: &'a Path, end: u64) -> Self {
        BatchReader {
            file,
            path,
            buf: Vec::new(),
            buf_pos: 0,
            end,
        }
    }

    /// The batch at `pos` and its header, or `None` at the end of the segment. A batch
    /// cut short is an error: closed segments were checked when they were opened.
    pub fn batch_at(&mut self, pos: u64) -> Result<Option<(BatchHeader, &[u8])>, StorageError> {
        if pos + HEADER_SIZE as u64 > self.end {
            return Ok(None);
        }
        self.fill(pos, HEADER_SIZE)?;
        let from = (pos - self.buf_pos) as usize;
        let h = BatchHeader::parse(&self.buf[from..])
            .ok_or_else(|| StorageError::CorruptMessage("short batch header".into()))?;
        let size = h.total_size();
        if h.batch_length <= 0 || pos + size as u64 > self.end {
            return Err(StorageError::CorruptMessage(format!(
                "batch at position {pos} of {} runs past the segment end",
                self.path.display()
            )));
        }
        self.fill(pos, size)?;
        let from = (pos - self.buf_pos) as usize;
        Ok(Some((h, &self.buf[from..from + size])))
    }

    fn fill(&mut self, pos: u64, n: usize) -> Result<(), StorageError> {
        let have = pos >= self.buf_pos && pos + n as u64 <= self.buf_pos + self.buf.len() as u64;
        if !have {
            let want = n.max(Self::CHUNK).min((self.end - pos) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos).at(self.path)?;
            self.buf_pos = pos;
        }
        Ok(())
    }
}
