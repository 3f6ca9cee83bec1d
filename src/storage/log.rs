//! The log of one partition: an ordered list of segments, the last one active.
//!
//! [`Log`] is a plain struct owned by the partition's `Log` actor, which serialises
//! every call (appends must not interleave). It opens and recovers the directory,
//! appends validated batches, and serves reads as [`FileRegion`]s for `sendfile(2)`.
//! Rolling, retention, truncation and lookups by time or epoch live in
//! `maintenance.rs`; opening and recovery in `recovery.rs`.

use std::path::{Path, PathBuf};

use crate::storage::batch::{
    assign_offset_and_epoch, validate_batches, validate_batches_with, BatchHeader, HEADER_SIZE,
};
use crate::storage::checkpoint::{write_offset, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::storage::config::LogConfig;
use crate::storage::epoch::LeaderEpochCache;
use crate::storage::error::IoContext;
use crate::storage::error::StorageError;
use crate::storage::region::FileRegion;
use crate::storage::segment::{max_segment_bytes, read_header_at, LogSegment};

/// What an append wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp of the append (-1 if none carried a timestamp).
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (batch-level, not decoded).
    pub offset_of_max_timestamp: i64,
    pub record_count: u32,
    pub bytes: u64,
    pub log_start_offset: i64,
    /// The batch headers as written, with assigned offsets and leader epoch.
    pub batches: Vec<BatchHeader>,
}

/// What a read found: whole batches of one segment, as a file region.
#[derive(Clone, Debug)]
pub struct ReadInfo {
    /// `None` when there is nothing to return (at the end of the log, above the
    /// `max_offset` bound, or a first batch larger than the budget without `min_one_batch`).
    pub region: Option<FileRegion>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// Flush durations a [`Log`] keeps until its owner takes them.
pub const FLUSH_TIMES_KEPT: usize = 64;

/// A partition's log directory, opened and recovered.
#[derive(Debug)]
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Sorted by base offset and never empty; the last segment is the active one.
    pub(super) segments: Vec<LogSegment>,
    /// First offset visible to readers; advanced by retention and DeleteRecords and
    /// checkpointed so it survives restarts (segments are deleted whole, so the first
    /// segment may still hold older bytes).
    pub(super) log_start_offset: i64,
    /// Every batch below this offset is known to be on disk; recovery scans from here.
    pub(super) recovery_point: i64,
    pub(super) epochs: LeaderEpochCache,
    /// Records appended since the last fsync (`flush.messages`).
    pub(super) unflushed_messages: u64,
    /// How long each flush since the last [`Log::take_flush_times`] took (bounded).
    pub(super) flush_times: Vec<std::time::Duration>,
    /// Time of the last fsync (`flush.ms`).
    pub(super) last_flush_ms: i64,
    /// The last batches of the active segment, for reads at the log end that skip
    /// this log's owner (`tail.rs`); cleared before any change but an append.
    pub(super) tail: crate::storage::SharedTail,
}

impl Drop for Log {
    /// A log closed or dropped (on an error) is no longer described by its tail.
    fn drop(&mut self) {
        self.tail.lock().clear();
    }
}

impl Log {
    /// Open (creating if needed) the log in `dir` and recover it; see `recovery.rs`.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, StorageError> {
        crate::storage::recovery::open_log(dir, config, now_ms)
    }

    /// Append a producer's record set as the leader of `leader_epoch`: validate every
    /// batch first (all or nothing), then assign offsets from the log end offset and
    /// the leader epoch by rewriting those fields in place (the CRC does not cover them).
    /// A compacted topic refuses records without a key (INVALID_RECORD), as Kafka does.
    /// For a buffer the caller cannot (or should not) mutate, use
    /// [`Log::append_as_leader_shared`], which writes the same bytes without a copy.
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        if let Some(mut converted) = self.recompressed(records)? {
            return self.append_as_leader(&mut converted, leader_epoch, now_ms);
        }
        let headers = self.leader_headers(records, leader_epoch, now_ms)?;
        let mut pos = 0;
        for h in &headers {
            assign_offset_and_epoch(&mut records[pos..], h.base_offset, leader_epoch);
            pos += h.total_size();
        }
        self.append_validated(records, headers, now_ms, false)
    }

    /// [`Log::append_as_leader`] for a shared, immutable buffer (the request's `Bytes`):
    /// `records` is left untouched. Each batch goes to the segment file as a stamped copy
    /// of its first 16 bytes (base offset, length, leader epoch) followed by the rest of
    /// the batch straight from `records`, in one vectored write; the bytes on disk, the
    /// validation and the index updates are the same as with the in-place path.
    pub fn append_as_leader_shared(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        if let Some(mut converted) = self.recompressed(records)? {
            return self.append_as_leader(&mut converted, leader_epoch, now_ms);
        }
        let headers = self.leader_headers(records, leader_epoch, now_ms)?;
        self.append_validated(records, headers, now_ms, true)
    }

    /// Whether a leader append of `records` now would only write: no segment roll (a
    /// new file, index trims, an fsync), no flush by `flush.messages` / `flush.ms`, and
    /// no recompression to the topic's `compression.type`. An owner can then run it on
    /// a thread that must not block, and send everything else to its storage thread.
    /// Reads batch headers only; records it cannot parse count as quick (validation
    /// refuses them before anything is written).
    pub fn append_is_quick(&self, records: &[u8], now_ms: i64) -> bool {
        if self.config.compression.is_some() {
            return false;
        }
        let (mut pos, mut count, mut max_timestamp) = (0usize, 0i64, -1i64);
        while pos < records.len() {
            let Some(h) = BatchHeader::parse(&records[pos..]) else {
                break;
            };
            count += i64::from(h.last_offset_delta.max(0)) + 1;
            max_timestamp = max_timestamp.max(h.max_timestamp);
            pos += h.total_size().max(HEADER_SIZE);
        }
        let last_offset = self.log_end_offset() + count.max(1) - 1;
        let flush_due = self.unflushed_messages.saturating_add(count as u64)
            >= self.config.flush_messages
            || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms;
        !flush_due
            && !self.active().should_roll(
                &self.config,
                records.len() as u64,
                max_timestamp,
                last_offset,
                now_ms,
            )
    }

    /// KIP-937: every record's timestamp within `[now - before.max.ms, now +
    /// after.max.ms]`, when the topic sets either bound (records are read, decompressed
    /// if need be, only then). Control batches carry no user timestamps.
    fn check_timestamps(
        &self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let (before, after) = (
            self.config.timestamp_before_max_ms,
            self.config.timestamp_after_max_ms,
        );
        if before == i64::MAX && after == i64::MAX {
            return Ok(());
        }
        let (lo, hi) = (now_ms.saturating_sub(before), now_ms.saturating_add(after));
        let mut pos = 0;
        for h in headers {
            let batch = &records[pos..pos + h.total_size()];
            pos += h.total_size();
            if h.is_control() {
                continue;
            }
            let section = crate::storage::compact_records::record_section(batch, h)?;
            let mut errors = Vec::new();
            for (i, r) in crate::storage::compact_records::parse_records(&section, h)?
                .iter()
                .enumerate()
            {
                let ts = h.base_timestamp.wrapping_add(r.timestamp_delta);
                // A record without a timestamp (-1, NO_TIMESTAMP) is not checked, as in Kafka.
                if ts != -1 && (ts < lo || ts > hi) {
                    errors.push(crate::storage::RecordError {
                        batch_index: i as i32,
                        message: format!(
                            "timestamp {ts} is out of range: it must be within [{lo}, {hi}] \
                             (message.timestamp.before.max.ms / after.max.ms)"
                        ),
                    });
                }
            }
            if !errors.is_empty() {
                return Err(StorageError::RecordsRejected {
                    rule: crate::storage::RecordRule::Timestamp,
                    errors,
                });
            }
        }
        Ok(())
    }

    /// `records` recompressed for the topic's `compression.type`, if it names a codec
    /// and some batch uses another one (see [`crate::storage::codec::recompress_batches`]).
    fn recompressed(&self, records: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(target) = self.config.compression else {
            return Ok(None);
        };
        // Checked against max.message.bytes as they came in, then again converted.
        let headers = validate_batches(records, self.config.max_message_bytes)?;
        crate::storage::codec::recompress_batches(
            records,
            &headers,
            target,
            self.config.max_message_bytes,
            max_segment_bytes(&self.config),
        )
    }

    /// Validate a leader append and return its headers with offsets (from the log end
    /// offset) and `leader_epoch` assigned; nothing is written.
    fn leader_headers(
        &self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Vec<BatchHeader>, StorageError> {
        let mut headers = validate_batches(records, self.config.max_message_bytes)?;
        let mut pos = 0;
        for h in &headers {
            let batch = &records[pos..pos + h.total_size()];
            pos += h.total_size();
            if h.is_control() {
                // Markers are the transaction coordinator's to write (Kafka: "clients
                // are not allowed to write control records"); WriteTxnMarkers will
                // need an append origin that allows them.
                return Err(StorageError::InvalidRecord(
                    "clients may not write control batches".into(),
                ));
            }
            // Uncompressed records are cheap to walk: check their structure. Compressed
            // ones are only opened when the topic needs their records (keys,
            // timestamp bounds, recompression): decompressing every produced batch
            // would cost more CPU than the rest of the produce path together.
            if h.compression() == crate::storage::codec::NONE {
                crate::storage::records::check_records(&batch[HEADER_SIZE..], h)?;
            }
        }
        self.check_timestamps(records, &headers, now_ms)?;
        if self.config.cleanup_compact {
            let mut pos = 0;
            for h in &headers {
                crate::storage::compact_records::check_keys(&records[pos..], h)?;
                pos += h.total_size();
            }
        }
        let mut next = self.log_end_offset();
        for h in &mut headers {
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            next = h.next_offset();
        }
        Ok(headers)
    }

    /// Append batches copied from the leader, keeping their offsets and epochs. They
    /// must start at the log end offset with increasing offsets (gaps are allowed, as a
    /// compacted leader leaves them).
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let headers = validate_batches_with(records, self.config.max_message_bytes, false)?;
        let mut expected = self.log_end_offset();
        for (i, h) in headers.iter().enumerate() {
            let ok = if i == 0 {
                h.base_offset == expected
            } else {
                h.base_offset >= expected
            };
            if !ok {
                return Err(StorageError::UnexpectedAppendOffset {
                    expected,
                    first: h.base_offset,
                });
            }
            expected = h.next_offset();
        }
        self.append_validated(records, headers, now_ms, false)
    }

    /// Write validated batches. With `stamp`, the base offset and leader epoch of each
    /// batch are taken from `batches` rather than from `records` (which still hold
    /// the producer's values); see [`LogSegment::append_stamped`].
    fn append_validated(
        &mut self,
        records: &[u8],
        batches: Vec<BatchHeader>,
        now_ms: i64,
        stamp: bool,
    ) -> Result<AppendInfo, StorageError> {
        let bytes = records.len() as u64;
        let max_segment = max_segment_bytes(&self.config);
        if bytes > max_segment {
            return Err(StorageError::RecordListTooLarge {
                size: bytes,
                max: max_segment,
            });
        }
        let first = batches
            .first()
            .expect("validation guarantees at least one batch");
        let last = batches
            .last()
            .expect("validation guarantees at least one batch");
        let (first_offset, last_offset) = (first.base_offset, last.last_offset());
        let (mut max_timestamp, mut offset_of_max_timestamp) = (-1, first_offset);
        for h in &batches {
            if h.max_timestamp > max_timestamp {
                max_timestamp = h.max_timestamp;
                offset_of_max_timestamp = h.last_offset();
            }
        }
        if self
            .active()
            .should_roll(&self.config, bytes, max_timestamp, last_offset, now_ms)
        {
            self.roll(now_ms)?;
        }
        let interval = self.config.index_interval_bytes;
        let position = self.active().meta.size;
        if stamp {
            self.active_mut()
                .append_stamped(records, &batches, interval)?;
        } else {
            self.active_mut().append(records, &batches, interval)?;
        }
        let mut at = position;
        let appended = batches.iter().map(|h| {
            let b = crate::storage::TailBatch {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                position: at,
                size: h.total_size() as u64,
            };
            at += b.size;
            b
        });
        self.tail.lock().push(
            self.segments.last().expect("never empty").file(),
            appended,
            self.log_start_offset,
        );
        for h in &batches {
            self.epochs
                .assign(h.partition_leader_epoch, h.base_offset)?;
        }
        let record_count: u32 = batches.iter().map(|h| h.record_count.max(0) as u32).sum();
        self.unflushed_messages += record_count as u64;
        if self.unflushed_messages >= self.config.flush_messages
            || now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_ms
        {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            record_count,
            bytes,
            log_start_offset: self.log_start_offset,
            batches,
        })
    }

    /// Whole batches starting with the one that holds `start_offset` (so the region may
    /// begin before it, as Kafka's does), within one segment, up to `max_bytes` (but at
    /// least one batch when `min_one_batch`), only batches whose last offset is below
    /// `max_offset` (exclusive, e.g. the high watermark). No record bytes are copied.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, StorageError> {
        let (log_start_offset, log_end_offset) = (self.log_start_offset, self.log_end_offset());
        if start_offset < log_start_offset || start_offset > log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: start_offset,
                log_start: log_start_offset,
                log_end: log_end_offset,
            });
        }
        let info = |region| ReadInfo {
            region,
            log_start_offset,
            log_end_offset,
        };
        if start_offset == log_end_offset || start_offset >= max_offset {
            return Ok(info(None));
        }
        let first_seg = self
            .segments
            .partition_point(|s| s.meta.base_offset <= start_offset)
            .max(1)
            - 1;
        // The batch may be in a later segment when `start_offset` falls in a gap.
        let mut found = None;
        for seg in &self.segments[first_seg..] {
            if let Some((pos, h)) = seg.find_batch(start_offset)? {
                found = Some((seg, pos, h));
                break;
            }
        }
        let Some((seg, pos, first)) = found else {
            return Ok(info(None));
        };
        let budget = max_bytes as u64;
        let first_size = first.total_size() as u64;
        if first.last_offset() >= max_offset || (first_size > budget && !min_one_batch) {
            return Ok(info(None));
        }
        let end = if max_offset >= seg.meta.next_offset && seg.meta.size - pos <= budget {
            // Everything to the segment's end fits: no need to walk the headers.
            seg.meta.size
        } else {
            let mut end = pos + first_size;
            while let Some(h) = read_header_at(seg.file(), end, seg.meta.size).at(seg.log_path())? {
                let size = h.total_size() as u64;
                if h.last_offset() >= max_offset || end + size - pos > budget {
                    break;
                }
                end += size;
            }
            end
        };
        let region = FileRegion {
            file: seg.file().clone(),
            position: pos,
            len: end - pos,
        };
        Ok(info(Some(region)))
    }

    /// fsync the segments written since the last flush, then advance and checkpoint
    /// the recovery point to the log end offset.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        let started = std::time::Instant::now();
        let rp = self.recovery_point;
        for seg in self
            .segments
            .iter()
            .filter(|s| s.meta.next_offset > rp || s.meta.size == 0)
        {
            seg.flush()?;
        }
        self.unflushed_messages = 0;
        // Epochs first: once the recovery point passes an append, recovery no longer
        // rebuilds that append's epoch from its batch header.
        self.epochs.flush()?;
        let leo = self.log_end_offset();
        if leo != self.recovery_point {
            self.recovery_point = leo;
            write_offset(&self.dir.join(RECOVERY_POINT_FILE), leo)?;
        }
        // Kept for the owner to report (LogFlushRateAndTimeMs); a few suffice between
        // two reports, so an owner that never asks holds a bounded list.
        if self.flush_times.len() < FLUSH_TIMES_KEPT {
            self.flush_times.push(started.elapsed());
        }
        Ok(())
    }

    /// The durations of the flushes since the last call (at most [`FLUSH_TIMES_KEPT`]).
    pub fn take_flush_times(&mut self) -> Vec<std::time::Duration> {
        std::mem::take(&mut self.flush_times)
    }

    /// Flush, trim the active segment's indexes and write the checkpoints.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.active_mut().close_indexes()?;
        write_offset(&self.dir.join(LOG_START_OFFSET_FILE), self.log_start_offset)
    }

    /// DeleteTopics: remove the partition directory and everything in it (renamed
    /// aside first, so a crash never leaves a half-removed directory under its name).
    pub fn delete_dir(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        crate::storage::identity::remove_dir(&dir)
    }

    /// Share this log's tail with readers: `shared` now holds it (emptied; the next
    /// append fills it).
    pub fn share_tail(&mut self, shared: crate::storage::SharedTail) {
        self.tail.lock().clear();
        self.tail = shared;
        self.tail.lock().clear();
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().meta.next_offset
    }

    /// The recovery point (every offset below it is fsynced).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.meta.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first (for tools and tests).
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.meta.base_offset).collect()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Topic configs change at runtime; new limits apply from the next append, roll or
    /// retention pass (the active segment keeps its index size until it rolls).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn active(&self) -> &LogSegment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }
}

#[cfg(test)]
#[path = "log_shared_tests.rs"]
mod shared_tests;
