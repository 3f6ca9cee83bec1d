//! Messages the `Log` actor answers. Every reply says what can go wrong: a
//! [`StorageError`] that the handlers map to a Kafka error code.

use actix::Message;
use bytes::Bytes;
use troupe::storage::{AppendInfo, CleanerStats, LogConfig, ReadInfo, StorageError};

/// Append record batches as the leader: the log assigns offsets and stamps `leader_epoch`
/// on what it writes. `records` is the request's buffer, shared and never modified: the
/// stamped fields are written from a small copy of each batch's head.
#[derive(Message)]
#[rtype(result = "Result<AppendInfo, StorageError>")]
pub struct Append {
    pub records: Bytes,
    pub leader_epoch: i32,
    pub now_ms: i64,
}

/// Read whole batches from `offset` as a file region for `sendfile`.
#[derive(Message)]
#[rtype(result = "Result<ReadInfo, StorageError>")]
pub struct Read {
    pub offset: i64,
    pub max_bytes: usize,
    /// Exclusive bound: the high watermark for consumers, the log end for replicas.
    pub max_offset: i64,
    pub min_one_batch: bool,
}

/// Offsets of the log right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub latest_epoch: Option<i32>,
    /// The high watermark last checkpointed (`replication-offset-checkpoint`), if any.
    pub high_watermark: Option<i64>,
}

#[derive(Message)]
#[rtype(result = "Result<LogOffsets, StorageError>")]
pub struct GetOffsets;

/// ListOffsets by timestamp (>= 0) or max timestamp (-3): `(offset, timestamp)`.
#[derive(Message)]
#[rtype(result = "Result<Option<(i64, i64)>, StorageError>")]
pub struct OffsetForTimestamp {
    pub timestamp: i64,
}

/// OffsetForLeaderEpoch: `(epoch, end offset)` of the largest epoch <= the one asked
/// (`None`: the log knows no such epoch). An offline log answers a storage error, not
/// `None`: a follower would take "no such epoch" as an answer and act on it.
#[derive(Message)]
#[rtype(result = "Result<Option<(i32, i64)>, StorageError>")]
pub struct EndOffsetForEpoch {
    pub epoch: i32,
}

/// DeleteRecords: advance the log start offset; returns the new one.
#[derive(Message)]
#[rtype(result = "Result<i64, StorageError>")]
pub struct DeleteRecordsBefore {
    pub offset: i64,
}

/// Apply retention now (the broker ticks it every `log.retention.check.interval.ms`).
#[derive(Message)]
#[rtype(result = "Result<usize, StorageError>")]
pub struct EnforceRetention {
    pub now_ms: i64,
    /// Segments with offsets at or above it stay (not every replica has them yet).
    pub high_watermark: i64,
}

/// A topic config changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetConfig(pub LogConfig);

/// Flush to disk and write checkpoints (shutdown and the checkpoint interval).
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct Flush;

/// Close files and, when `delete` is set (DeleteTopics), remove the partition directory.
/// The actor stops afterwards and is not restarted.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct Close {
    pub delete: bool,
}

/// Cut the log back to `offset` (exclusive): a follower that diverged from its new
/// leader. Producer state is rebuilt to match (snapshot at or below, then replay).
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct TruncateTo {
    pub offset: i64,
}

/// Test hook: fail as if the disk returned an error, so supervision can be exercised.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// An append made outside the actor ([`super::LogPort::try_append`]) hit a fatal
/// storage error: restart as the actor's own handlers do.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle;

/// Run a log cleaning pass now, whole (tools and tests; compacted logs also clean by
/// themselves every `log.cleaner.backoff.ms`). `force` ignores the dirty ratio. `None`:
/// nothing was due (or the topic is not compacted).
#[derive(Message)]
#[rtype(result = "Result<Option<CleanerStats>, StorageError>")]
pub struct Clean {
    pub now_ms: i64,
    pub force: bool,
}

/// The partition's high watermark moved: the cleaner may not touch offsets at or above
/// it (a replicated partition must not compact what could still be truncated), and it
/// is checkpointed (`replication-offset-checkpoint`) at most every `checkpoint_ms` and
/// at flush and close, so a restarted replica starts from it. The partition actor
/// shares every move through a `SharedHighWatermark` and sends this only when a
/// checkpoint may be due (at most once per `checkpoint_ms`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHighWatermark {
    pub high_watermark: i64,
    pub checkpoint_ms: i64,
}

/// Append batches fetched from the leader as they are (offsets, epochs, producer ids
/// kept); producer state and the epoch cache follow, so idempotence survives a failover.
#[derive(Message)]
#[rtype(result = "Result<troupe::storage::AppendInfo, StorageError>")]
pub struct AppendReplica {
    pub records: Bytes,
    pub now_ms: i64,
}

/// This replica became leader in `epoch`: record where the epoch starts.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct BeginLeaderEpoch {
    pub epoch: i32,
}

/// A follower whose fetch offset is below its leader's log start: empty the log and
/// restart it at `offset`.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct TruncateFullyAndStartAt {
    pub offset: i64,
}
