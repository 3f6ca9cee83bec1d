//! One segment of a partition log: a `.log` file of record batches and its two indexes.
//!
//! What a segment *is* ([`SegmentMeta`]: base offset, size, timestamps) is kept apart
//! from what it *holds open* (the file handle and the index mappings), so the log can
//! reason about segments (retention, rolling, lookups) without touching files.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::batch::{BatchHeader, HEADER_SIZE};
use crate::storage::config::LogConfig;
use crate::storage::error::{IoContext, StorageError};
use crate::storage::index::{OffsetIndex, TimeIndex};
pub use crate::storage::scan::read_header_at;
use crate::storage::scan::Scanner;

mod stamped;
use stamped::{stamped_prefix, write_all_vectored_at, STAMPED_PREFIX};

/// The file name stem of a segment: its base offset, zero-padded to 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// The three files of the segment at `base_offset`: `.log`, `.index`, `.timeindex`.
pub fn segment_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    let stem = file_stem(base_offset);
    ["log", "index", "timeindex"].map(|ext| dir.join(format!("{stem}.{ext}")))
}

/// `segment.bytes`, capped where the offset index's 32-bit positions stop (Kafka's
/// `segment.bytes` is an `int` for the same reason).
pub fn max_segment_bytes(config: &LogConfig) -> u64 {
    config.segment_bytes.min(i32::MAX as u64)
}

/// What a segment is, independent of open files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentMeta {
    pub base_offset: i64,
    /// Bytes of whole batches in the `.log` file; the next write goes here.
    pub size: u64,
    /// The offset after the segment's last batch (`base_offset` when empty).
    pub next_offset: i64,
    /// Largest batch max timestamp, -1 when none; drives time retention.
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (Kafka's shallow offset).
    pub offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: `segment.ms` is measured from it, as Kafka does.
    pub first_batch_timestamp: Option<i64>,
    /// Wall-clock creation time, the `segment.ms` reference when batches carry no time.
    pub created_ms: i64,
    /// Bytes appended since the last offset index entry (`index.interval.bytes`).
    pub bytes_since_last_index_entry: u64,
}

/// A segment with its open `.log` file and memory-mapped indexes.
#[derive(Debug)]
pub struct LogSegment {
    pub meta: SegmentMeta,
    /// Shared with [`crate::storage::FileRegion`]s, so a fetch in flight keeps reading
    /// valid bytes even if retention unlinks the segment meanwhile.
    file: Arc<File>,
    log_path: PathBuf,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
}

fn open_log_file(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)
}

/// `preallocate`: reserve `bytes` of blocks for the file without changing its size.
/// Best effort: a file system without `fallocate` (or a full disk) leaves the file as
/// it was, and appends allocate as they go.
fn preallocate(file: &File, bytes: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(bytes).unwrap_or(libc::off_t::MAX);
        // SAFETY: an open descriptor and a plain range; KEEP_SIZE leaves i_size alone.
        unsafe {
            libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, 0, len);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, bytes);
}

impl LogSegment {
    /// Gives back any blocks reserved past the segment's end (`preallocate`), once it
    /// is no longer appended to: a truncation to its own size (ext4 and XFS free blocks
    /// past the end then; a punched hole past the end is ignored). Best effort, like the
    /// reservation; a file with none past its end is unchanged.
    pub fn release_preallocated(&self) {
        let _ = self.file.set_len(self.meta.size);
    }

    /// A new, empty segment (any leftover files of that name are reset).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        let [log, index, time] = segment_paths(dir, base_offset);
        let file = open_log_file(&log)?;
        file.set_len(0).at(&log)?;
        if config.preallocate {
            preallocate(&file, config.segment_bytes);
        }
        Ok(LogSegment {
            meta: Self::empty_meta(base_offset, now_ms),
            file: Arc::new(file),
            log_path: log,
            offset_index: OffsetIndex::create(&index, base_offset, config.segment_index_bytes)?,
            time_index: TimeIndex::create(&time, base_offset, config.segment_index_bytes)?,
        })
    }

    fn empty_meta(base_offset: i64, now_ms: i64) -> SegmentMeta {
        SegmentMeta {
            base_offset,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: now_ms,
            bytes_since_last_index_entry: 0,
        }
    }

    /// Open a closed segment below the recovery point without reading its batches:
    /// its indexes are loaded and sanity-checked, and rebuilt (headers only) if they
    /// are missing or inconsistent. `next_offset` is the following segment's base.
    pub fn open_trusted(
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Self, StorageError> {
        let [log, index, time] = segment_paths(dir, base_offset);
        let file = open_log_file(&log)?;
        let size = file.metadata().at(&log)?.len();
        let loaded = OffsetIndex::load(&index, base_offset, size.max(1))
            .and_then(|oi| Ok((oi, TimeIndex::load(&time, base_offset)?)));
        match loaded {
            Ok((offset_index, time_index)) => {
                let (max_timestamp, offset_of_max_timestamp) =
                    time_index.last_entry().unwrap_or((-1, base_offset));
                let meta = SegmentMeta {
                    size,
                    next_offset,
                    max_timestamp,
                    offset_of_max_timestamp,
                    ..Self::empty_meta(base_offset, now_ms)
                };
                Ok(LogSegment {
                    meta,
                    file: Arc::new(file),
                    log_path: log,
                    offset_index,
                    time_index,
                })
            }
            Err(e) => {
                tracing::info!(segment = %log.display(), error = %e, "rebuilding index of segment");
                // At most one entry per batch of >= 61 bytes, 12 bytes for the larger
                // (time) entry, plus the final time entry: room enough, trimmed right after.
                let config = LogConfig {
                    segment_index_bytes: (size / HEADER_SIZE as u64 + 2) * 12,
                    ..config.clone()
                };
                let (mut seg, _) = Self::recover(dir, base_offset, &config, now_ms, i64::MAX)?;
                seg.close_indexes()?;
                Ok(seg)
            }
        }
    }

    /// Open the active (last) segment. After a clean close its indexes are trimmed and
    /// the recovery point is its end, so the part below the recovery point is trusted:
    /// the scan resumes at the last offset index entry below it (checked against the
    /// batch header there) instead of reading the whole segment. Anything doubtful
    /// falls back to [`LogSegment::recover`].
    pub fn open_active(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        recovery_point: i64,
    ) -> Result<(Self, u64), StorageError> {
        if recovery_point > base_offset {
            if let Some(resumed) = Self::resume(dir, base_offset, config, now_ms, recovery_point)? {
                return Ok(resumed);
            }
        }
        Self::recover(dir, base_offset, config, now_ms, recovery_point)
    }

    fn resume(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        recovery_point: i64,
    ) -> Result<Option<(Self, u64)>, StorageError> {
        let [log, index, time] = segment_paths(dir, base_offset);
        let file = open_log_file(&log)?;
        let size = file.metadata().at(&log)?.len();
        let (Ok(mut offset_index), Ok(mut time_index)) = (
            OffsetIndex::load(&index, base_offset, size.max(1)),
            TimeIndex::load(&time, base_offset),
        ) else {
            return Ok(None);
        };
        let Some((slot, last_offset, pos)) =
            offset_index.last_entry_at_or_below(recovery_point - 1)
        else {
            return Ok(None);
        };
        let at_entry = read_header_at(&file, pos, size).at(&log)?;
        let first = read_header_at(&file, 0, size).at(&log)?;
        let (Some(at_entry), Some(first)) = (at_entry, first) else {
            return Ok(None);
        };
        if at_entry.magic != 2 || at_entry.last_offset() != last_offset {
            return Ok(None);
        }
        offset_index.truncate_entries(slot + 1);
        time_index.truncate_after_offset(last_offset);
        offset_index.resize(config.segment_index_bytes)?;
        time_index.resize(config.segment_index_bytes)?;
        let (max_timestamp, offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        let meta = SegmentMeta {
            size: pos,
            next_offset: at_entry.base_offset,
            max_timestamp,
            offset_of_max_timestamp,
            first_batch_timestamp: Some(first.max_timestamp),
            ..Self::empty_meta(base_offset, now_ms)
        };
        let mut seg = LogSegment {
            meta,
            file: Arc::new(file),
            log_path: log,
            offset_index,
            time_index,
        };
        let cut = seg.rescan_from(pos, config.index_interval_bytes, recovery_point)?;
        Ok(Some((seg, cut)))
    }

    /// Open a segment by scanning every batch and rebuilding both indexes. Batches whose
    /// last offset is at or past `verify_crc_from` also have their CRC checked. The file
    /// is truncated at the first torn or corrupt batch; returns the bytes cut off.
    pub fn recover(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
        verify_crc_from: i64,
    ) -> Result<(Self, u64), StorageError> {
        let [log, index, time] = segment_paths(dir, base_offset);
        let file = open_log_file(&log)?;
        let mut seg = LogSegment {
            meta: Self::empty_meta(base_offset, now_ms),
            file: Arc::new(file),
            log_path: log,
            offset_index: OffsetIndex::create(&index, base_offset, config.segment_index_bytes)?,
            time_index: TimeIndex::create(&time, base_offset, config.segment_index_bytes)?,
        };
        let cut = seg.rescan(config.index_interval_bytes, verify_crc_from)?;
        Ok((seg, cut))
    }

    /// Re-read the batches from position 0, re-index them, and truncate at the first
    /// bad one. Indexes must be empty (freshly created) on entry.
    fn rescan(&mut self, interval: u64, verify_crc_from: i64) -> Result<u64, StorageError> {
        self.rescan_from(0, interval, verify_crc_from)
    }

    /// [`Self::rescan`] from `start`, with metadata and indexes describing what precedes it.
    fn rescan_from(
        &mut self,
        start: u64,
        interval: u64,
        verify_crc_from: i64,
    ) -> Result<u64, StorageError> {
        let len = self.file.metadata().at(&self.log_path)?.len();
        let file = Arc::clone(&self.file);
        let mut scanner = Scanner {
            file: &file,
            buf: Vec::new(),
            buf_pos: 0,
        };
        let mut pos = start;
        while pos < len {
            let expected = self.meta.next_offset;
            let header = match scanner.batch_at(
                pos,
                len,
                (self.meta.base_offset, expected),
                verify_crc_from,
            ) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => return Err(e).at(&self.log_path),
            };
            let size = header.total_size() as u64;
            self.index_batch(pos, &header, interval);
            pos += size;
        }
        if pos < len {
            self.file.set_len(pos).at(&self.log_path)?;
            self.file.sync_data().at(&self.log_path)?;
        }
        Ok(len - pos)
    }

    /// Update metadata and indexes for a batch just written at `pos` (Kafka's rule: an
    /// offset index entry once more than `index.interval.bytes` were appended since the
    /// last one, and a time index entry alongside when the max timestamp grew).
    fn index_batch(&mut self, pos: u64, h: &BatchHeader, interval: u64) {
        let meta = &mut self.meta;
        if meta.first_batch_timestamp.is_none() {
            meta.first_batch_timestamp = Some(h.max_timestamp);
        }
        if h.max_timestamp > meta.max_timestamp {
            meta.max_timestamp = h.max_timestamp;
            meta.offset_of_max_timestamp = h.last_offset();
        }
        if meta.bytes_since_last_index_entry > interval && !self.offset_index.is_full() {
            self.offset_index.append(h.last_offset(), pos);
            self.time_index
                .maybe_append(meta.max_timestamp, meta.offset_of_max_timestamp);
            meta.bytes_since_last_index_entry = 0;
        }
        meta.bytes_since_last_index_entry += h.total_size() as u64;
        meta.next_offset = h.next_offset();
        meta.size = pos + h.total_size() as u64;
    }

    /// Write validated batches (`headers` describe `records` in order) at the end.
    pub fn append(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        interval: u64,
    ) -> Result<(), StorageError> {
        let mut pos = self.meta.size;
        let written = self.file.write_all_at(records, pos);
        self.cut_back_failed_write(written)?;
        for h in headers {
            self.index_batch(pos, h, interval);
            pos += h.total_size() as u64;
        }
        Ok(())
    }

    /// [`Self::append`] for batches whose base offset and leader epoch were assigned in
    /// `headers` but not in `records` (a shared buffer that must not change): each batch
    /// is written as a stamped copy of its first [`STAMPED_PREFIX`] bytes followed by
    /// the rest of it from `records`, all in one positional vectored write, so the
    /// record bytes are never copied in user space.
    pub fn append_stamped(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        interval: u64,
    ) -> Result<(), StorageError> {
        let prefixes: Vec<[u8; STAMPED_PREFIX]> = headers.iter().map(stamped_prefix).collect();
        let mut slices = Vec::with_capacity(headers.len() * 2);
        let mut at = 0;
        for (h, prefix) in headers.iter().zip(&prefixes) {
            let end = at + h.total_size();
            // Validation guarantees every batch is whole; stay panic-free regardless.
            let rest = records.get(at + STAMPED_PREFIX..end).ok_or_else(|| {
                StorageError::CorruptMessage(format!(
                    "batch at byte {at} ends past the record set ({} bytes)",
                    records.len()
                ))
            })?;
            slices.push(IoSlice::new(prefix));
            slices.push(IoSlice::new(rest));
            at = end;
        }
        let written = write_all_vectored_at(&self.file, &mut slices, self.meta.size);
        self.cut_back_failed_write(written)?;
        let mut pos = self.meta.size;
        for h in headers {
            self.index_batch(pos, h, interval);
            pos += h.total_size() as u64;
        }
        Ok(())
    }

    /// A write that failed part way (`ENOSPC` after some bytes went in) leaves a torn
    /// batch past `meta.size`. Nothing points at it, but a later, shorter append would
    /// leave its tail behind the new end, and a restart would have to scan past it:
    /// cut the file back to its last whole batch, so the log stays exactly what was
    /// acknowledged and the same append can simply be tried again. Shrinking needs no
    /// free space; if even that fails, both errors are reported (the actor reopens).
    fn cut_back_failed_write(&self, written: std::io::Result<()>) -> Result<(), StorageError> {
        let Err(e) = written else { return Ok(()) };
        if let Err(cut) = self.file.set_len(self.meta.size) {
            let both = std::io::Error::other(format!(
                "{e}; then cutting the torn write back to {} bytes failed: {cut}",
                self.meta.size
            ));
            return Err(both).at(&self.log_path);
        }
        Err(e).at(&self.log_path)
    }

    /// Kafka's roll rule for an append of `bytes` ending at `last_offset` whose newest
    /// batch has `max_timestamp`.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        bytes: u64,
        max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let size = self.meta.size;
        let waited = match self.meta.first_batch_timestamp {
            Some(first) if first >= 0 => max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(self.meta.created_ms),
        };
        size > 0
            && (size + bytes > max_segment_bytes(config)
                || waited > config.segment_ms
                || self.offset_index.is_full()
                || self.time_index.is_full()
                || last_offset - self.meta.base_offset > i32::MAX as i64)
    }

    /// The first batch whose last offset is `>= offset`, and its position: one index
    /// lookup, then a scan of headers only.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let (_, mut pos) = self.offset_index.lookup(offset);
        while let Some(h) = read_header_at(&self.file, pos, self.meta.size).at(&self.log_path)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is `>= timestamp` and whose last offset is
    /// `>= min_offset` (the log start offset), found from the time index.
    pub fn find_batch_by_time(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let start = self
            .time_index
            .lookup_before(timestamp)
            .map(|(_, o)| o)
            .unwrap_or(self.meta.base_offset);
        let (_, mut pos) = self.offset_index.lookup(start);
        while let Some(h) = read_header_at(&self.file, pos, self.meta.size).at(&self.log_path)? {
            if h.max_timestamp >= timestamp && h.last_offset() >= min_offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Remove every batch whose last offset is `>= offset` (cutting at the start of the
    /// batch holding `offset`), then re-index what is left as an active segment.
    pub fn truncate_to(&mut self, offset: i64, config: &LogConfig) -> Result<(), StorageError> {
        let Some((pos, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.file.set_len(pos).at(&self.log_path)?;
        let [_, index, time] = segment_paths(
            self.log_path.parent().unwrap_or(Path::new(".")),
            self.meta.base_offset,
        );
        self.offset_index =
            OffsetIndex::create(&index, self.meta.base_offset, config.segment_index_bytes)?;
        self.time_index =
            TimeIndex::create(&time, self.meta.base_offset, config.segment_index_bytes)?;
        self.meta = Self::empty_meta(self.meta.base_offset, self.meta.created_ms);
        self.rescan(config.index_interval_bytes, i64::MAX)?;
        Ok(())
    }

    /// Closing: make sure the time index ends with the segment's max timestamp (so a
    /// restart can read it back), then trim both indexes to their used size.
    pub fn close_indexes(&mut self) -> Result<(), StorageError> {
        if self.meta.max_timestamp >= 0 {
            // A full time index cannot take the final entry; extending it by one keeps
            // the max timestamp recoverable.
            if self.time_index.is_full() {
                let bytes = (self.time_index.entries() + 1) * TimeIndex::ENTRY_SIZE;
                self.time_index.resize(bytes as u64)?;
            }
            self.time_index
                .maybe_append(self.meta.max_timestamp, self.meta.offset_of_max_timestamp);
        }
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// fsync the log data and msync the indexes.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.file.sync_data().at(&self.log_path)?;
        self.offset_index.flush()?;
        self.time_index.flush()
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Unlink the segment's files. Open [`crate::storage::FileRegion`]s keep the
    /// inode alive, so in-flight fetches still read the old bytes.
    pub fn delete(self) -> Result<(), StorageError> {
        self.offset_index.delete()?;
        self.time_index.delete()?;
        std::fs::remove_file(&self.log_path).at(&self.log_path)
    }
}
