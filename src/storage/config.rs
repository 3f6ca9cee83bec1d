//! Per-partition log configuration, with Apache Kafka's topic-level names and defaults.

/// The topic configs that shape a partition's log. Each field is named after its
/// Kafka key; [`LogConfig::default`] holds Kafka's defaults. Configs can change at
/// runtime ([`crate::storage::Log::set_config`]); changes apply from the next append,
/// roll or retention pass.
///
/// Not `Eq`: `min.cleanable.dirty.ratio` is a float, as Kafka's is.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the next append would make the active segment larger.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each offset and time index; a full
    /// index forces a roll.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: appended bytes between two offset index entries; smaller
    /// means faster lookups and bigger indexes.
    pub index_interval_bytes: u64,
    /// `retention.ms`: closed segments whose newest timestamp is older are deleted; -1
    /// keeps them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: oldest segments are deleted while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many records; `u64::MAX` leaves durability to
    /// replication and the page cache, as Kafka recommends.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last flush is older than this; `i64::MAX` = never.
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: usize,
    /// `cleanup.policy` contains `delete`: `retention.ms` / `retention.bytes` apply.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: closed segments keep the last record per
    /// key (see `compact.rs`), and appends as leader must carry a key.
    pub cleanup_compact: bool,
    /// `min.cleanable.dirty.ratio`: clean once the dirty (never cleaned) share of the
    /// cleanable bytes reaches this.
    pub min_cleanable_dirty_ratio: f64,
    /// `delete.retention.ms`: how long a tombstone survives after the cleaner first
    /// rewrote its batch (the batch then carries the horizon, KIP-534 style).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: a segment with a record younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this force a clean whatever the
    /// dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `compression.type`: the codec (attribute bits, see `codec.rs`) every data batch
    /// is stored with; a batch that comes in with another one is recompressed on append
    /// (0 = uncompressed). `None` (`producer`) stores batches as they were sent.
    pub compression: Option<u8>,
    /// `message.timestamp.before.max.ms` / `after.max.ms` (KIP-937) of a CreateTime
    /// topic: a leader append whose records lie further from the append time than
    /// these is refused with INVALID_TIMESTAMP. `i64::MAX` (and LogAppendTime topics):
    /// no check.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `preallocate`: a new segment reserves `segment_bytes` on disk (Linux
    /// `fallocate` with `FALLOC_FL_KEEP_SIZE`: the file's size, and so recovery, are
    /// unchanged); a rolled segment gives back the blocks past its end.
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY_MS: i64 = 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            // 1 MiB plus the 12-byte log overhead, Kafka's historical default.
            max_message_bytes: 1_048_588,
            cleanup_delete: true,
            cleanup_compact: false,
            min_cleanable_dirty_ratio: 0.5,
            delete_retention_ms: DAY_MS,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            compression: None,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            preallocate: false,
        }
    }
}
