//! The partition log on disk: segments, indexes, recovery, retention, file regions.
//!
//! A partition directory (`<log.dirs>/<topic>-<partition>`, chosen by the caller) holds
//! Kafka's layout:
//!
//! ```text
//! 00000000000000000000.log        record batches (magic v2), stored as received
//! 00000000000000000000.index      sparse offset -> position, memory-mapped
//! 00000000000000000000.timeindex  sparse timestamp -> offset, memory-mapped
//! leader-epoch-checkpoint         Kafka's text format: version, count, "epoch offset" lines
//! recovery-point                  offset below which everything is fsynced
//! log-start-offset                first offset visible to readers
//! cleaner-offset-checkpoint       compacted topics: offset below which the log is clean
//! ```
//!
//! The two offset checkpoints are per partition, not per log directory as in Kafka,
//! because each partition's log is owned by its own actor (see [`checkpoint`]).
//!
//! [`Log`] is the entry point; [`batch`] validates what producers send; [`records`]
//! builds and decodes batches for tests, benches and timestamp lookups; [`compact`]
//! is the log cleaner of `cleanup.policy=compact` topics.

pub mod batch;
pub mod checkpoint;
pub mod codec;
mod compact;
mod compact_records;
mod compact_swap;
mod config;
mod epoch;
mod error;
pub mod identity;
pub mod index;
mod log;
pub mod log_dir;
mod maintenance;
pub mod records;
mod recovery;
mod region;
mod scan;
mod segment;
pub mod tail;

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod maintenance_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tail_tests;

pub use batch::{validate_batches, BatchHeader};
pub use compact::{CleanOptions, CleanPass, CleanStep, CleanerStats};
pub use compact_records::DELETE_HORIZON_FLAG;
pub use compact_swap::CLEANER_CHECKPOINT_FILE;
pub use config::LogConfig;
pub use error::{codes, is_disk_full, RecordError, RecordRule, StorageError};
pub use log::{AppendInfo, Log, ReadInfo};
pub use records::{build_batch, check_records, decode_records, BatchBuilder, KeyValue, Record};
pub use region::FileRegion;
pub use tail::{SharedTail, Tail, TailBatch, TAIL_BATCHES};
