//! Messages the `PartitionActor` answers: produce and DeleteRecords as leader, replica
//! fetches from followers (leader side), and what the replica fetcher hands a follower.

use actix::Message;
use bytes::Bytes;
use troupe::config::TopicConfig;
use troupe::metadata::PartitionImage;

/// A Kafka error code with an optional message, as a partition answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionError {
    pub code: i16,
    pub message: Option<String>,
    /// The records that made a batch invalid, by index in the batch (KIP-467), which
    /// Produce answers from v8 so clients fail only those.
    pub record_errors: Vec<troupe::storage::RecordError>,
}

impl PartitionError {
    pub fn new(code: i16, message: impl Into<Option<String>>) -> Self {
        PartitionError {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }

    /// A storage error as a partition answers it, with its record errors.
    pub fn from_storage(e: &troupe::storage::StorageError) -> Self {
        PartitionError {
            record_errors: e.record_errors().to_vec(),
            ..PartitionError::new(e.kafka_error_code(), Some(e.to_string()))
        }
    }
}

/// What a successful produce answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceOk {
    pub base_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Append the records of one partition of a Produce request.
#[derive(Message)]
#[rtype(result = "Result<ProduceOk, PartitionError>")]
pub struct Produce {
    pub records: Bytes,
    /// 0, 1 or -1 (all). acks=0 still goes through here; the connection just does not answer.
    pub acks: i16,
    /// How long an acks=all produce may wait for replication (the request's timeout).
    pub timeout_ms: i64,
}

/// DeleteRecords for this partition; returns the new low watermark (log start offset).
#[derive(Message)]
#[rtype(result = "Result<i64, PartitionError>")]
pub struct DeleteRecords {
    /// -1 means "up to the high watermark", as in Kafka.
    pub offset: i64,
}

/// The controller changed this partition (leader epoch, ISR) or its topic's configs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdatePartition {
    pub image: PartitionImage,
    pub config: TopicConfig,
}

/// Stop serving: close (or, for DeleteTopics, delete) the log, then stop for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub delete: bool,
}

/// Test hook: crash this partition's actors (fault isolation tests).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Leader side: a follower's Fetch for this partition. Answers the diverging epoch
/// `(epoch, end offset)` when the follower's log has left the leader's (it then gets
/// no records and its offset is not counted), or the error to answer the fetch with.
#[derive(Message)]
#[rtype(result = "Result<Option<(i32, i64)>, i16>")]
pub struct ReplicaFetch {
    pub replica_id: i32,
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// Follower side: what one Fetch answer from `leader_epoch`'s leader said about this
/// partition. Ignored unless this replica still follows in that epoch.
#[derive(Message)]
#[rtype(result = "Result<(), i16>")]
pub struct FromLeader {
    pub leader_epoch: i32,
    pub fetch_offset: i64,
    pub answer: LeaderAnswer,
}

pub enum LeaderAnswer {
    /// Records (possibly none) with the leader's high watermark and log start offset.
    Records {
        records: Bytes,
        high_watermark: i64,
        log_start_offset: i64,
    },
    /// The follower's log diverged: truncate with Kafka's rule. `epoch` -1: the leader
    /// knows no end for the follower's epoch.
    Diverging { epoch: i32, end_offset: i64 },
    /// OFFSET_OUT_OF_RANGE: the fetch offset is below the leader's log start (restart
    /// the log there) or beyond its end (cut back to the leader's high watermark).
    OutOfRange {
        log_start_offset: i64,
        high_watermark: i64,
    },
}
