//! Errors of the storage layer, and their Kafka error codes.
//!
//! Every fallible storage call returns [`StorageError`]. The partition actors turn it
//! into a wire answer with [`StorageError::kafka_error_code`], so this file is the one
//! place where storage failures meet Kafka's (never renumbered) error codes.

use std::io;
use std::path::{Path, PathBuf};

/// Kafka error codes the storage layer answers with: the crate's one table.
pub use crate::protocol::codes;

/// One offending record of a refused batch (KIP-467): its index in its batch (0 for the
/// batch's first record) and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub message: String,
}

/// Which rule the records of a [`StorageError::RecordsRejected`] broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRule {
    /// A record without a key on a compacted topic, or offset deltas out of sequence:
    /// `INVALID_RECORD` (87).
    Invalid,
    /// A timestamp outside `message.timestamp.before/after.max.ms`: `INVALID_TIMESTAMP` (32).
    Timestamp,
    /// A record whose fields do not parse or fill its declared length:
    /// `CORRUPT_MESSAGE` (2).
    Malformed,
}

/// What can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A batch failed its CRC-32C check or is cut short (torn write, bad input).
    /// Kafka code `CORRUPT_MESSAGE` (2).
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),

    /// A batch is structurally invalid: length too small for a v2 header, a record
    /// count that disagrees with its offset delta, offsets that go backwards.
    /// Kafka code `INVALID_RECORD` (87).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),

    /// A batch uses a magic byte other than 2; Troupe only stores v2 batches (as
    /// Kafka 4 does). Kafka code `CORRUPT_MESSAGE` (2), which is what Kafka answers
    /// for a record set it cannot parse.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),

    /// Records of a batch broke `rule`: the append is refused whole, and `errors` names
    /// each offending record by its index in its batch, so a client fails only those
    /// records and can resend the rest of the batch (Produce v8's `record_errors`).
    #[error("{}", rejected_message(.rule, .errors))]
    RecordsRejected {
        rule: RecordRule,
        errors: Vec<RecordError>,
    },

    /// A single batch exceeds `max.message.bytes`. Kafka code `MESSAGE_TOO_LARGE` (10).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: usize },

    /// The batches of one append together exceed `segment.bytes`, so no segment can
    /// hold them. Kafka code `RECORD_LIST_TOO_LARGE` (18).
    #[error("append of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge { size: u64, max: u64 },

    /// An offset outside `[log_start, log_end]` was asked for.
    /// Kafka code `OFFSET_OUT_OF_RANGE` (1).
    #[error("offset {requested} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },

    /// A follower append does not continue the log: its first offset is not the log
    /// end offset or its offsets do not increase. This is a replication bug, not bad
    /// client input, so Kafka code `UNKNOWN_SERVER_ERROR` (-1).
    #[error("unexpected append offset {first} (log end offset {expected})")]
    UnexpectedAppendOffset { expected: i64, first: i64 },

    /// An operating-system I/O error on `path`. Kafka code `KAFKA_STORAGE_ERROR` (56).
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    /// A checkpoint file exists but cannot be parsed. Kafka code `KAFKA_STORAGE_ERROR` (56).
    #[error("invalid checkpoint file {path}: {reason}")]
    InvalidCheckpoint { path: PathBuf, reason: String },

    /// An idempotent producer's batch was refused (epoch, sequence, unknown producer);
    /// the code is the producer error's own (45, 47, 59, ...).
    #[error(transparent)]
    Producer(#[from] crate::producer::ProducerError),
}

impl StorageError {
    /// The Kafka error code to answer a client with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::CorruptMessage(_) | StorageError::UnsupportedMagic(_) => {
                codes::CORRUPT_MESSAGE
            }
            StorageError::InvalidRecord(_) => codes::INVALID_RECORD,
            StorageError::RecordsRejected { rule, .. } => match rule {
                RecordRule::Invalid => codes::INVALID_RECORD,
                RecordRule::Timestamp => codes::INVALID_TIMESTAMP,
                RecordRule::Malformed => codes::CORRUPT_MESSAGE,
            },
            StorageError::RecordTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            StorageError::RecordListTooLarge { .. } => codes::RECORD_LIST_TOO_LARGE,
            StorageError::OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
            StorageError::UnexpectedAppendOffset { .. } => codes::UNKNOWN_SERVER_ERROR,
            StorageError::Io { .. } | StorageError::InvalidCheckpoint { .. } => {
                codes::KAFKA_STORAGE_ERROR
            }
            StorageError::Producer(e) => e.kafka_error_code(),
        }
    }
}

/// The partition-level message of a [`StorageError::RecordsRejected`], which Produce
/// answers beside the record errors: how many records were refused and the first few.
fn rejected_message(rule: &RecordRule, errors: &[RecordError]) -> String {
    const SHOWN: usize = 3;
    let what = match rule {
        RecordRule::Invalid => "invalid",
        RecordRule::Timestamp => "with an invalid timestamp",
        RecordRule::Malformed => "malformed",
    };
    let shown: Vec<String> = errors
        .iter()
        .take(SHOWN)
        .map(|e| format!("record {}: {}", e.batch_index, e.message))
        .collect();
    format!(
        "{} record(s) {what} in the batch, which is refused whole{}: {}",
        errors.len(),
        if errors.len() > SHOWN {
            " (the first 3 shown)"
        } else {
            ""
        },
        shown.join("; ")
    )
}

impl StorageError {
    /// The filesystem is full (`ENOSPC`, or a quota: `EDQUOT`). Unlike other IO errors
    /// this is no reason to distrust the open log: a write that failed this way was
    /// cut back (see [`crate::storage::segment::LogSegment::append`]), reads still work, and the
    /// same append succeeds once space is freed. Kafka answers `KAFKA_STORAGE_ERROR`.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => is_disk_full(source),
            _ => false,
        }
    }

    /// The offending records, for Produce's `record_errors` (empty for other errors).
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            StorageError::RecordsRejected { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// `ENOSPC` or `EDQUOT`, by kind or by raw OS error (the kinds are recent).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Attach a path to an `io::Error`, so a storage error names the file that failed.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_kafka() {
        let io = StorageError::Io {
            path: "x".into(),
            source: io::Error::other("boom"),
        };
        assert_eq!(io.kafka_error_code(), 56);
        assert_eq!(
            StorageError::CorruptMessage("crc".into()).kafka_error_code(),
            2
        );
        assert_eq!(StorageError::UnsupportedMagic(1).kafka_error_code(), 2);
        assert_eq!(
            StorageError::InvalidRecord("n".into()).kafka_error_code(),
            87
        );
        assert_eq!(
            StorageError::RecordTooLarge { size: 2, max: 1 }.kafka_error_code(),
            10
        );
        let oor = StorageError::OffsetOutOfRange {
            requested: 9,
            log_start: 0,
            log_end: 1,
        };
        assert_eq!(oor.kafka_error_code(), 1);
    }

    #[test]
    fn only_a_full_disk_is_disk_full() {
        let io = |source| StorageError::Io {
            path: "x".into(),
            source,
        };
        let full = io(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(full.is_disk_full());
        assert_eq!(full.kafka_error_code(), codes::KAFKA_STORAGE_ERROR);
        assert!(io(io::Error::from_raw_os_error(libc::EDQUOT)).is_disk_full());
        assert!(io(io::Error::from(io::ErrorKind::StorageFull)).is_disk_full());
        assert!(!io(io::Error::from_raw_os_error(libc::EIO)).is_disk_full());
        assert!(!io(io::Error::other("closed")).is_disk_full());
        assert!(!StorageError::CorruptMessage("crc".into()).is_disk_full());
    }
}
