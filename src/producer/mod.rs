//! The idempotent producer, broker side: per-partition producer state ([`state`]),
//! its snapshots ([`snapshot`]), and rebuilding it from a log when the log opens.
//!
//! The state lives beside the log that holds the batches it describes (the `Log` actor
//! owns both), so offsets assignment and the duplicate/sequence check happen in one
//! sequential place: two in-flight batches of one producer can never both pass the check
//! for the same sequence.

pub mod snapshot;
pub mod state;

#[cfg(test)]
mod tests;

pub use state::{
    increment_seq, BatchMeta, ProducerBatch, ProducerEntry, ProducerError, ProducerStateManager,
    Verdict, MAX_CACHED_BATCHES, NO_PRODUCER_EPOCH,
};

use crate::storage::{Log, StorageError};

/// What loading found, for the lifecycle log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Offset of the snapshot the state started from (`None`: replayed from log start).
    pub snapshot_offset: Option<i64>,
    /// Batch headers replayed after the snapshot.
    pub batches_replayed: u64,
    pub producers: usize,
}

/// Rebuild the producer state of `log`: the newest intact snapshot at or below the log
/// end offset, then the headers of every batch after it. Snapshots above the log end
/// (left by a truncation) are deleted.
pub fn load(log: &Log) -> Result<(ProducerStateManager, LoadStats), StorageError> {
    let dir = log.dir();
    let leo = log.log_end_offset();
    snapshot::delete_snapshots_above(dir, leo)?;
    let mut stats = LoadStats::default();
    let mut state = ProducerStateManager::new();
    let mut from = log.log_start_offset();
    for offset in snapshot::list_snapshots(dir)?.into_iter().rev() {
        if let Some((at, s)) = snapshot::read_snapshot(&snapshot::snapshot_path(dir, offset))? {
            if at >= from {
                state = s;
                from = at;
                stats.snapshot_offset = Some(at);
            }
            break;
        }
    }
    stats.batches_replayed = replay(log, &mut state, from)?;
    state.evict_below(log.log_start_offset());
    stats.producers = state.len();
    Ok((state, stats))
}

/// Feed the headers of the batches in `[from, log end)` to `state`. Reads only the
/// 61-byte headers, stepping over record bytes.
pub fn replay(log: &Log, state: &mut ProducerStateManager, from: i64) -> Result<u64, StorageError> {
    log.walk_batch_headers(from, |h| {
        // Replay keeps the batch's own time, so a restart does not revive producers
        // that were about to expire.
        state.record(h, h.max_timestamp);
        Ok(())
    })
}
