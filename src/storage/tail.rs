//! The log's tail, readable without the log: the positions of the last batches
//! appended to the active segment, shared with the request path.
//!
//! A consumer reading along, and a follower, fetch from the last few batches. The log
//! records each appended batch here (base offset, last offset, file position, size);
//! a Fetch whose offset falls in that range is answered from this index as the same
//! [`FileRegion`] [`Log::read`](crate::storage::Log::read) would return, without a
//! round trip to the thread that owns the log and without reading batch headers from
//! the file. Anything else (an older offset, a tail that was cleared) falls back to the
//! log: [`Tail::read`] answers `None`.
//!
//! The log clears the tail before any change other than an append (roll, truncation,
//! retention, DeleteRecords, compaction), so what it holds always describes bytes at
//! their place in the active segment.

use crate::storage::{FileRegion, ReadInfo};
use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

/// Batches kept: enough for a consumer or follower a few fetches behind; 32 bytes each.
pub const TAIL_BATCHES: usize = 32;

/// One appended batch: its offsets and where it lies in the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub size: u64,
}

/// The last batches of the active segment, contiguous in its file.
#[derive(Debug, Default)]
pub struct Tail {
    /// The active segment's file while `batches` is not empty.
    file: Option<Arc<File>>,
    batches: VecDeque<TailBatch>,
    log_start_offset: i64,
}

impl Tail {
    /// Forget every batch (before the log changes other than by an append).
    pub fn clear(&mut self) {
        self.file = None;
        self.batches.clear();
    }

    /// Record batches just appended to `file`, whose first byte was at `position`.
    /// Batches of another file than the ones held (a new segment) replace them; a batch
    /// not right after the last one held (which the log never appends) clears them.
    pub fn push(
        &mut self,
        file: &Arc<File>,
        batches: impl IntoIterator<Item = TailBatch>,
        log_start_offset: i64,
    ) {
        if !self.file.as_ref().is_some_and(|f| Arc::ptr_eq(f, file)) {
            self.clear();
            self.file = Some(file.clone());
        }
        self.log_start_offset = log_start_offset;
        for b in batches {
            let follows = self.batches.back().is_none_or(|last| {
                last.position + last.size == b.position && last.last_offset < b.base_offset
            });
            if !follows {
                self.batches.clear();
            }
            if self.batches.len() == TAIL_BATCHES {
                self.batches.pop_front();
            }
            self.batches.push_back(b);
        }
    }

    /// The batches held (oldest first).
    pub fn batches(&self) -> impl Iterator<Item = &TailBatch> {
        self.batches.iter()
    }

    /// [`Log::read`](crate::storage::Log::read)'s answer for `start_offset`, if the
    /// tail holds the batch it starts with: whole batches from that one on, up to
    /// `max_bytes` (at least one with `min_one_batch`), each below `max_offset`.
    /// `None`: ask the log (offset before the tail, past its end, or out of range).
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Option<ReadInfo> {
        let file = self.file.as_ref()?;
        let (first, last) = (self.batches.front()?, self.batches.back()?);
        let log_end_offset = last.last_offset + 1;
        if start_offset < first.base_offset.max(self.log_start_offset)
            || start_offset > log_end_offset
        {
            return None;
        }
        let info = |region| {
            Some(ReadInfo {
                region,
                log_start_offset: self.log_start_offset,
                log_end_offset,
            })
        };
        if start_offset == log_end_offset || start_offset >= max_offset {
            return info(None);
        }
        // The first batch whose last offset reaches the start (offsets may have gaps).
        let at = self
            .batches
            .partition_point(|b| b.last_offset < start_offset);
        let head = self.batches.get(at)?;
        let budget = max_bytes as u64;
        if head.last_offset >= max_offset || (head.size > budget && !min_one_batch) {
            return info(None);
        }
        let mut end = head.position + head.size;
        for b in self.batches.range(at + 1..) {
            if b.last_offset >= max_offset || b.position + b.size - head.position > budget {
                break;
            }
            end = b.position + b.size;
        }
        info(Some(FileRegion {
            file: file.clone(),
            position: head.position,
            len: end - head.position,
        }))
    }
}

/// A [`Tail`] shared between the log's owner (who writes it) and readers.
#[derive(Debug, Clone, Default)]
pub struct SharedTail(Arc<Mutex<Tail>>);

impl SharedTail {
    pub fn lock(&self) -> MutexGuard<'_, Tail> {
        // A panic while holding it cannot leave a half-written entry that matters: the
        // worst is a cleared or shorter tail, which only sends reads to the log.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Tail::read`] under the lock.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Option<ReadInfo> {
        self.lock()
            .read(start_offset, max_bytes, max_offset, min_one_batch)
    }
}
