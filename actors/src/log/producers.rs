//! The idempotence check on the append path, and keeping the producer state in step
//! with the log (snapshots at segment rolls and on close, eviction with the log start,
//! expiry by `producer.id.expiration.ms`).
//!
//! The check runs inside the log's append (the `Log` actor's synchronous handler, or
//! the partition's `LogPort`, under the same lock), right before offsets are assigned,
//! so batches of one producer are checked and written in one order: pipelined requests
//! (up to 5 in flight) cannot race past each other.

use super::messages::Append;
use super::LogCore;
use troupe::producer::{self, ProducerBatch, ProducerStateManager, Verdict};
use troupe::storage::{validate_batches, AppendInfo, BatchHeader, Log, StorageError};

pub(super) fn load(log: &Log) -> Result<ProducerStateManager, StorageError> {
    let (state, stats) = producer::load(log)?;
    if stats.producers > 0 || stats.batches_replayed > 0 {
        tracing::info!(
            dir = %log.dir().display(),
            snapshot = ?stats.snapshot_offset,
            batches_replayed = stats.batches_replayed,
            producers = stats.producers,
            "producer state loaded"
        );
    }
    Ok(state)
}

/// Snapshot failures are logged, not fatal: the next open replays a longer tail.
pub(super) fn write_snapshot(log: &Log, state: &ProducerStateManager) {
    if state.is_empty() {
        return;
    }
    if let Err(e) = producer::snapshot::write_snapshot(log.dir(), log.log_end_offset(), state) {
        tracing::warn!(dir = %log.dir().display(), error = %e, "producer snapshot failed");
    }
}

/// The single idempotent batch of an append, if it carries a producer id. Kafka
/// requires exactly one batch per partition in a v2 produce request; with a producer
/// id we insist, since the sequence check is per batch.
fn idempotent_batch(records: &[u8]) -> Result<Option<ProducerBatch>, StorageError> {
    let Some(first) = BatchHeader::parse(records) else {
        return Ok(None);
    };
    if first.producer_id < 0 {
        return Ok(None);
    }
    if records.len() != first.total_size() {
        return Err(StorageError::InvalidRecord(
            "an idempotent produce must carry exactly one record batch per partition".into(),
        ));
    }
    // The sequence range comes from these two fields: refuse forged ones before the
    // check (the full validation, CRC included, runs in the append itself).
    if first.last_offset_delta < 0
        || i64::from(first.record_count) != i64::from(first.last_offset_delta) + 1
    {
        return Err(StorageError::InvalidRecord(format!(
            "record count {} does not match last offset delta {}",
            first.record_count, first.last_offset_delta
        )));
    }
    Ok(Some(ProducerBatch::from_header(&first)))
}

impl LogCore {
    pub(super) fn append_checked(&mut self, msg: &Append) -> Result<AppendInfo, StorageError> {
        let batch = idempotent_batch(&msg.records)?;
        if let Some(b) = &batch {
            if let Verdict::Duplicate {
                first_offset,
                last_offset,
            } = self.producers.check(b)?
            {
                // A retry is only acknowledged if it is intact: a corrupt copy of a
                // written batch gets CORRUPT_MESSAGE, as any corrupt batch does.
                let max = self.log()?.config().max_message_bytes;
                validate_batches(&msg.records, max)?;
                tracing::debug!(
                    producer_id = b.producer_id,
                    seq = b.first_seq,
                    "duplicate batch"
                );
                let log = self.log()?;
                // No batch headers: nothing was written, the leader moves no offsets.
                return Ok(AppendInfo {
                    first_offset,
                    last_offset,
                    max_timestamp: -1,
                    offset_of_max_timestamp: -1,
                    record_count: 0,
                    bytes: 0,
                    log_start_offset: log.log_start_offset(),
                    batches: Vec::new(),
                });
            }
        }
        let log = self.log()?;
        let segments_before = log.segment_count();
        let info = log.append_as_leader_shared(&msg.records, msg.leader_epoch, msg.now_ms)?;
        let rolled = log.segment_count() > segments_before;
        if batch.is_some() {
            for h in &info.batches {
                self.producers.record(h, msg.now_ms);
            }
        }
        if rolled {
            // Kafka snapshots producer state at every roll, so recovery replays at
            // most the active segment.
            if let Some(log) = self.log.as_ref() {
                write_snapshot(log, &self.producers);
            }
        }
        Ok(info)
    }

    /// A follower's append: the leader's batches as they are. Every batch with a
    /// producer id updates the producer state (no duplicate check: the leader did it),
    /// so a follower that becomes leader keeps deduplicating retries.
    pub(super) fn append_replica(
        &mut self,
        msg: &super::messages::AppendReplica,
    ) -> Result<AppendInfo, StorageError> {
        let log = self.log()?;
        let segments_before = log.segment_count();
        let info = log.append_as_follower(&msg.records, msg.now_ms)?;
        let rolled = log.segment_count() > segments_before;
        for h in info.batches.iter().filter(|h| h.producer_id >= 0) {
            self.producers.record(h, msg.now_ms);
        }
        if rolled {
            if let Some(log) = self.log.as_ref() {
                write_snapshot(log, &self.producers);
            }
        }
        Ok(info)
    }

    pub(super) fn snapshot_producers(&mut self) {
        if let Some(log) = self.log.as_ref() {
            write_snapshot(log, &self.producers);
        }
    }

    /// After retention: forget producers whose data is gone or who have been idle
    /// longer than `producer.id.expiration.ms`.
    pub(super) fn maintain_producers(&mut self, now_ms: i64) {
        let Some(log) = self.log.as_ref() else { return };
        let evicted = self.producers.evict_below(log.log_start_offset());
        let expired = self.producers.expire(now_ms, self.producer_expiration_ms);
        if evicted + expired > 0 {
            tracing::info!(dir = %log.dir().display(), evicted, expired, "producer state trimmed");
        }
    }
}
