//! Everything that reshapes a [`Log`] besides appends: rolling, retention, DeleteRecords,
//! truncation (for followers), and lookups by timestamp and by leader epoch.

use crate::storage::checkpoint::{write_offset, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::storage::error::{IoContext, StorageError};
use crate::storage::log::Log;
use crate::storage::records::decode_records;
use crate::storage::segment::LogSegment;

use std::os::unix::fs::FileExt;

impl Log {
    /// Close the active segment (final time index entry, indexes trimmed, fsynced, so
    /// the recovery point moves past it) and start a new one at the log end offset.
    /// Rolling an empty active segment does nothing.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.tail.lock().clear();
        let preallocated = self.config.preallocate;
        let active = self.active_mut();
        if active.meta.size == 0 {
            return Ok(());
        }
        active.close_indexes()?;
        active.flush()?;
        if preallocated {
            active.release_preallocated();
        }
        let base = active.meta.next_offset;
        let seg = LogSegment::create(&self.dir, base, &self.config, now_ms)?;
        self.segments.push(seg);
        if self.recovery_point < base {
            self.recovery_point = base;
            write_offset(&self.dir.join(RECOVERY_POINT_FILE), base)?;
        }
        tracing::debug!(dir = %self.dir.display(), base_offset = base, "rolled segment");
        Ok(())
    }

    /// Delete old closed segments: by `retention.ms` (segment's newest timestamp, or
    /// its creation time when it has none, older than the limit; an expired, non-empty
    /// active segment is rolled first so it can go too), by `retention.bytes` (Kafka's
    /// rule: oldest first while `size - segment.size >= retention.bytes`), and those
    /// wholly below the log start offset. Returns the number of segments deleted.
    ///
    /// Kafka also never deletes past the high watermark; the caller owns that bound.
    ///
    /// A topic whose `cleanup.policy` lacks `delete` (compact only) keeps its segments:
    /// only those below the log start offset go.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        self.enforce_retention_below(now_ms, i64::MAX)
    }

    /// [`Self::enforce_retention`] that deletes no segment holding offsets at or above
    /// `high_watermark` (Kafka's rule: a replicated partition only deletes what every
    /// in-sync replica has).
    pub fn enforce_retention_below(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<usize, StorageError> {
        let committed = self
            .segments
            .iter()
            .take_while(|s| s.meta.next_offset <= high_watermark)
            .count();
        let mut deleted = self.delete_below_log_start()?;
        if !self.config.cleanup_delete {
            return Ok(deleted);
        }
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            let expired = |s: &LogSegment| {
                let ts = if s.meta.max_timestamp >= 0 {
                    s.meta.max_timestamp
                } else {
                    s.meta.created_ms
                };
                now_ms.saturating_sub(ts) > retention_ms
            };
            let count = self.segments.iter().take_while(|s| expired(s)).count();
            if count == self.segments.len() && self.active().meta.size > 0 {
                self.roll(now_ms)?;
            }
            let closed = self.segments.len() - 1;
            let committed = committed.saturating_sub(deleted);
            deleted += self.delete_oldest(count.min(closed).min(committed), "retention.ms")?;
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            let mut count = 0;
            for seg in &self.segments[..self.segments.len() - 1] {
                if excess - (seg.meta.size as i64) < 0 {
                    break;
                }
                excess -= seg.meta.size as i64;
                count += 1;
            }
            deleted += self.delete_oldest(
                count.min(committed.saturating_sub(deleted)),
                "retention.bytes",
            )?;
        }
        Ok(deleted)
    }

    /// DeleteRecords: make `offset` the log start offset (checkpointed) and delete the
    /// segments wholly below it. Returns the new log start offset; offsets at or below
    /// the current one change nothing.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        self.tail.lock().clear();
        let log_end = self.log_end_offset();
        if offset > log_end || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset > self.log_start_offset {
            self.set_log_start_offset(offset)?;
            self.delete_below_log_start()?;
        }
        Ok(self.log_start_offset)
    }

    /// Remove every batch at or after `offset` (a follower diverged from its leader).
    /// Later segments are deleted whole; the segment holding `offset` is cut at the
    /// start of the batch containing it, so the log end offset may end up below
    /// `offset` when it falls mid-batch. A target below the first segment empties the log
    /// and restarts it at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        self.tail.lock().clear();
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        if offset < self.segments[0].meta.base_offset {
            let now = self.segments_created_fallback();
            for seg in self.segments.drain(..) {
                seg.delete()?;
            }
            self.segments
                .push(LogSegment::create(&self.dir, offset, &self.config, now)?);
        } else {
            while self.segments.len() > 1 && self.active().meta.base_offset > offset {
                let seg = self.segments.pop().expect("len > 1");
                seg.delete()?;
            }
            let config = self.config.clone();
            self.active_mut().truncate_to(offset, &config)?;
        }
        let log_end = self.log_end_offset();
        tracing::info!(dir = %self.dir.display(), offset, log_end, "truncated log");
        self.epochs.truncate_from_end(log_end)?;
        if self.log_start_offset > log_end || offset < self.segments[0].meta.base_offset {
            self.set_log_start_offset(log_end.min(self.log_start_offset))?;
        }
        if self.recovery_point > log_end {
            self.recovery_point = log_end;
            write_offset(&self.dir.join(RECOVERY_POINT_FILE), log_end)?;
        }
        Ok(())
    }

    /// A follower whose fetch offset fell below its leader's log start (retention or
    /// DeleteRecords at the leader): drop every segment and restart the log empty at
    /// `offset` (Kafka's `truncateFullyAndStartAt`), epochs and checkpoints included.
    pub fn truncate_fully_and_start_at(
        &mut self,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        for seg in self.segments.drain(..) {
            seg.delete()?;
        }
        self.segments
            .push(LogSegment::create(&self.dir, offset, &self.config, now_ms)?);
        self.epochs.truncate_from_end(0)?;
        self.log_start_offset = offset;
        write_offset(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
        self.recovery_point = offset;
        write_offset(&self.dir.join(RECOVERY_POINT_FILE), offset)?;
        tracing::info!(dir = %self.dir.display(), offset, "log restarted empty at the leader's log start");
        Ok(())
    }

    /// A new leader records where its epoch begins (its log end offset) before it
    /// appends anything, so OffsetForLeaderEpoch answers its followers at once.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        if self.epochs.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        self.epochs.assign(epoch, end)?;
        self.epochs.flush()
    }

    /// ListOffsets by timestamp: the first record (by offset) whose timestamp is
    /// `>= timestamp`, as `(offset, timestamp)`. The batch's records are decoded
    /// (decompressed if need be) to find the exact one; a compressed batch whose records
    /// do not decompress is answered with its base offset and max timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let lso = self.log_start_offset;
        for seg in self
            .segments
            .iter()
            .filter(|s| s.meta.max_timestamp >= timestamp)
        {
            let Some((pos, h)) = seg.find_batch_by_time(timestamp, lso)? else {
                continue;
            };
            let mut buf = vec![0u8; h.total_size()];
            seg.file().read_exact_at(&mut buf, pos).at(seg.log_path())?;
            let records = match decode_records(&buf) {
                Ok(r) => r,
                Err(_) if h.compression() != 0 => {
                    return Ok(Some((h.base_offset.max(lso), h.max_timestamp)))
                }
                Err(e) => return Err(e),
            };
            if let Some(r) = records
                .iter()
                .find(|r| r.timestamp >= timestamp && r.offset >= lso)
            {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// ListOffsets `-3` (MAX_TIMESTAMP): `(max timestamp, offset of the first record
    /// carrying it)`, or `(-1, -1)` for a log without timestamps. The exact offset is
    /// found by decoding the batch; if that fails the batch's last offset is returned.
    pub fn max_timestamp_and_offset(&self) -> (i64, i64) {
        let best = self
            .segments
            .iter()
            .map(|s| &s.meta)
            .filter(|m| m.max_timestamp >= 0)
            .fold(None::<(i64, i64)>, |acc, m| match acc {
                Some((ts, _)) if ts >= m.max_timestamp => acc,
                _ => Some((m.max_timestamp, m.offset_of_max_timestamp)),
            });
        let Some((ts, shallow)) = best else {
            return (-1, -1);
        };
        match self.offset_for_timestamp(ts) {
            Ok(Some((offset, found))) if found == ts => (ts, offset),
            _ => (ts, shallow),
        }
    }

    /// OffsetForLeaderEpoch: the largest epoch `<= epoch` and its end offset (where the
    /// next epoch starts, or the log end offset). `None` = UNDEFINED_EPOCH (-1, -1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The `(epoch, start offset)` entries of the leader epoch cache.
    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        self.tail.lock().clear();
        self.log_start_offset = offset;
        self.epochs.truncate_from_start(offset)?;
        write_offset(&self.dir.join(LOG_START_OFFSET_FILE), offset)
    }

    /// Delete closed segments whose successor starts at or below the log start offset.
    fn delete_below_log_start(&mut self) -> Result<usize, StorageError> {
        let lso = self.log_start_offset;
        let count = self
            .segments
            .windows(2)
            .take_while(|w| w[1].meta.base_offset <= lso)
            .count();
        self.delete_oldest(count, "log start offset")
    }

    /// Delete the `count` oldest segments (never the active one) and move the log start
    /// offset up to the first remaining segment.
    fn delete_oldest(&mut self, count: usize, reason: &str) -> Result<usize, StorageError> {
        self.tail.lock().clear();
        let count = count.min(self.segments.len() - 1);
        if count == 0 {
            return Ok(0);
        }
        for seg in self.segments.drain(..count) {
            tracing::info!(segment = %seg.log_path().display(), size = seg.meta.size, reason, "deleting segment");
            seg.delete()?;
        }
        let first = self.segments[0].meta.base_offset;
        if first > self.log_start_offset {
            self.set_log_start_offset(first)?;
        }
        Ok(count)
    }

    /// Creation time for a segment made outside an append (truncation has no clock):
    /// reuse the oldest known creation time, so `segment.ms` does not restart from zero.
    fn segments_created_fallback(&self) -> i64 {
        self.segments.first().map_or(0, |s| s.meta.created_ms)
    }
}

impl Log {
    /// Call `f` with the header of every batch in `[from, log end)`, in order. Reads
    /// only the 61-byte headers, stepping over record bytes; returns how many batches
    /// it visited. The one walk that recovery uses to rebuild state from batch headers
    /// (producer state, the leader-epoch cache).
    pub fn walk_batch_headers(
        &self,
        from: i64,
        mut f: impl FnMut(&crate::storage::BatchHeader) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        use std::os::unix::fs::FileExt;
        let end = self.log_end_offset();
        let mut next = from.max(self.log_start_offset);
        let mut visited = 0;
        let mut buf = [0u8; crate::storage::batch::HEADER_SIZE];
        while next < end {
            let Some(region) = self.read(next, 256 << 20, i64::MAX, true)?.region else {
                break;
            };
            let (mut pos, stop) = (region.position, region.position + region.len);
            let before = next;
            while pos + buf.len() as u64 <= stop {
                region
                    .file
                    .read_exact_at(&mut buf, pos)
                    .map_err(|source| StorageError::Io {
                        path: self.dir.clone(),
                        source,
                    })?;
                let Some(h) = crate::storage::BatchHeader::parse(&buf) else {
                    break;
                };
                if h.last_offset() >= next {
                    f(&h)?;
                    next = h.next_offset();
                    visited += 1;
                }
                pos += h.total_size() as u64;
            }
            if next == before {
                break;
            }
        }
        Ok(visited)
    }

    /// Assign the leader epoch of every batch in `[from, log end)` from its header, for
    /// entries the checkpoint file may have missed (it is written at flush only).
    pub(crate) fn rebuild_epochs_from(&mut self, from: i64) -> Result<(), StorageError> {
        // Only epoch changes matter to the cache; collect those, then assign.
        let mut starts: Vec<(i32, i64)> = Vec::new();
        self.walk_batch_headers(from, |h| {
            if starts
                .last()
                .is_none_or(|(e, _)| *e != h.partition_leader_epoch)
            {
                starts.push((h.partition_leader_epoch, h.base_offset));
            }
            Ok(())
        })?;
        for (epoch, start) in starts {
            self.epochs.assign(epoch, start)?;
        }
        Ok(())
    }
}
