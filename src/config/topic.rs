//! A topic's effective configuration: the broker's defaults plus the topic's overrides.
//!
//! Topic configs arrive from clients (CreateTopics, AlterConfigs) as `key → value`
//! strings with Kafka's topic-level names. [`validate_topic_config`] checks one before it
//! is stored in the metadata log; [`TopicConfig::resolve`] turns a topic's stored
//! overrides into the typed values the partition and log actors use.

use std::collections::BTreeMap;

use super::defs::{broker_def, topic_def, topic_defs, CONFIG_DEFS};
use super::kind::{ConfigKind, Parsed, Ratio, TimeUnit};
use super::ConfigError;

/// What happens to closed segments (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Delete by `retention.ms` / `retention.bytes`.
    Delete,
    /// Keep the last record of each key.
    Compact,
    /// Compact, and also delete by retention (`delete,compact`).
    Both,
}

impl CleanupPolicy {
    /// As Kafka writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::Both => "delete,compact",
        }
    }
}

/// Which timestamp a stored batch carries (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// `compression.type`: [`CompressionType::Producer`] (the default) stores batches as
/// the producer sent them; any other value makes the partition recompress, on append,
/// every batch that arrives with another codec (as Kafka does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// The codec batches are stored with (record-batch attribute bits), or `None` to
    /// keep the producer's.
    pub fn codec(self) -> Option<u8> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(0),
            CompressionType::Gzip => Some(1),
            CompressionType::Snappy => Some(2),
            CompressionType::Lz4 => Some(3),
            CompressionType::Zstd => Some(4),
        }
    }

    /// As Kafka writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

/// Effective settings of one topic. Field names are the topic keys with `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Closed segments older than this are deleted; -1 keeps them forever.
    pub retention_ms: i64,
    /// The oldest closed segments are deleted while a partition is larger; -1: no limit.
    pub retention_bytes: i64,
    pub segment_bytes: u64,
    /// A segment older than this rolls even when not full.
    pub segment_ms: i64,
    /// Preallocated size of each offset/time index; a full index rolls the segment.
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    /// fsync after this many messages; `u64::MAX` (Kafka's Long.MAX) means never.
    pub flush_messages: u64,
    /// fsync when unflushed data is this old; `i64::MAX` means never.
    pub flush_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub max_message_bytes: usize,
    pub min_insync_replicas: i32,
    pub message_timestamp_type: TimestampType,
    /// CreateTime topics: records older than the broker's clock by more than this are
    /// refused (KIP-937); `i64::MAX`: no bound.
    pub message_timestamp_before_max_ms: i64,
    /// CreateTime topics: records newer than the broker's clock by more than this are
    /// refused (KIP-937); `i64::MAX`: no bound.
    pub message_timestamp_after_max_ms: i64,
    pub unclean_leader_election_enable: bool,
    /// `preallocate`: reserve each new segment's `segment.bytes` on disk.
    pub preallocate: bool,
    pub compression_type: CompressionType,
    /// How long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    /// Delay before a retired segment's files are deleted, so in-flight reads finish.
    pub file_delete_delay_ms: i64,
    /// Compact once this share of the cleanable bytes was never cleaned.
    pub min_cleanable_dirty_ratio: Ratio,
    /// Records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// Dirty records older than this force a compaction whatever the ratio.
    pub max_compaction_lag_ms: i64,
}

impl Default for TopicConfig {
    /// Kafka's defaults, as the broker rows of the table give them.
    fn default() -> Self {
        let defaults = |key: &str| broker_def(key).and_then(|d| d.default.map(str::to_string));
        // The table's defaults are checked by `defaults_resolve` below, so this
        // cannot fail.
        TopicConfig::from_broker(&defaults).expect("built-in defaults are valid")
    }
}

impl TopicConfig {
    /// `defaults` (the broker's topic defaults) with the topic's `overrides` applied.
    /// Fails on an unknown key or a bad value, naming it.
    pub fn resolve(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = defaults.clone();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Sets one topic-level key from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let def = topic_def(key).ok_or_else(|| ConfigError::Unknown {
            key: key.to_string(),
        })?;
        let bad = |reason: &str| ConfigError::invalid(key, value, reason);
        let parsed = def.kind.parse(value).map_err(|r| bad(&r))?;
        // The table's ranges keep sizes non-negative; try_from guards the casts anyway.
        let unsigned = |n: i64| u64::try_from(n).map_err(|_| bad("must not be negative"));
        match (key, parsed) {
            ("retention.ms", Parsed::Number(n)) => self.retention_ms = n,
            ("retention.bytes", Parsed::Number(n)) => self.retention_bytes = n,
            ("segment.bytes", Parsed::Number(n)) => self.segment_bytes = unsigned(n)?,
            ("segment.ms", Parsed::Number(n)) => self.segment_ms = n,
            ("segment.index.bytes", Parsed::Number(n)) => self.segment_index_bytes = unsigned(n)?,
            ("index.interval.bytes", Parsed::Number(n)) => self.index_interval_bytes = unsigned(n)?,
            ("flush.messages", Parsed::Number(n)) => {
                // Kafka's "never" is Long.MAX; keep it "never" rather than a huge count.
                self.flush_messages = if n == i64::MAX {
                    u64::MAX
                } else {
                    unsigned(n)?
                }
            }
            ("flush.ms", Parsed::Number(n)) => self.flush_ms = n,
            ("cleanup.policy", Parsed::List(items)) => {
                let delete = items.iter().any(|i| i == "delete");
                let compact = items.iter().any(|i| i == "compact");
                self.cleanup_policy = match (delete, compact) {
                    (true, true) => CleanupPolicy::Both,
                    (true, false) => CleanupPolicy::Delete,
                    (false, true) => CleanupPolicy::Compact,
                    (false, false) => return Err(bad("must name delete, compact or both")),
                }
            }
            ("max.message.bytes", Parsed::Number(n)) => {
                self.max_message_bytes = usize::try_from(n).map_err(|_| bad("out of range"))?
            }
            ("min.insync.replicas", Parsed::Number(n)) => {
                self.min_insync_replicas = i32::try_from(n).map_err(|_| bad("out of range"))?
            }
            ("message.timestamp.type", Parsed::Text(t)) => {
                self.message_timestamp_type = if t == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            ("message.timestamp.before.max.ms", Parsed::Number(n)) => {
                self.message_timestamp_before_max_ms = n
            }
            ("message.timestamp.after.max.ms", Parsed::Number(n)) => {
                self.message_timestamp_after_max_ms = n
            }
            ("unclean.leader.election.enable", Parsed::Bool(b)) => {
                self.unclean_leader_election_enable = b
            }
            ("preallocate", Parsed::Bool(b)) => self.preallocate = b,
            ("compression.type", Parsed::Text(t)) => {
                self.compression_type = match t.as_str() {
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => CompressionType::Producer,
                }
            }
            ("delete.retention.ms", Parsed::Number(n)) => self.delete_retention_ms = n,
            ("file.delete.delay.ms", Parsed::Number(n)) => self.file_delete_delay_ms = n,
            ("min.cleanable.dirty.ratio", Parsed::Ratio(r)) => self.min_cleanable_dirty_ratio = r,
            ("min.compaction.lag.ms", Parsed::Number(n)) => self.min_compaction_lag_ms = n,
            ("max.compaction.lag.ms", Parsed::Number(n)) => self.max_compaction_lag_ms = n,
            // A table row without a field here; `every_topic_key_round_trips` catches it.
            _ => return Err(bad("not supported by TopicConfig")),
        }
        Ok(())
    }

    /// The value of a topic-level key as Kafka shows it in DescribeConfigs.
    pub fn get(&self, key: &str) -> Option<String> {
        let flush_messages = if self.flush_messages == u64::MAX {
            i64::MAX.to_string()
        } else {
            self.flush_messages.to_string()
        };
        Some(match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "flush.messages" => flush_messages,
            "flush.ms" => self.flush_ms.to_string(),
            "cleanup.policy" => self.cleanup_policy.as_str().to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "message.timestamp.type" => format!("{:?}", self.message_timestamp_type),
            "message.timestamp.before.max.ms" => self.message_timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.message_timestamp_after_max_ms.to_string(),
            "unclean.leader.election.enable" => self.unclean_leader_election_enable.to_string(),
            "preallocate" => self.preallocate.to_string(),
            "compression.type" => self.compression_type.as_str().to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "file.delete.delay.ms" => self.file_delete_delay_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            _ => return None,
        })
    }

    /// Topic defaults from broker settings: for each topic key, the first of its broker
    /// keys (`log.retention.ms`, then `.minutes`, then `.hours`) that `lookup` has a value
    /// for, converted to the topic key's unit. `lookup` answers with the set value, else
    /// the default, else `None`; the higher-precedence keys have no default, so a set
    /// `log.retention.minutes` beats the default `log.retention.hours`, as in Kafka.
    pub(crate) fn from_broker(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::placeholder();
        for def in topic_defs() {
            // `topic_defs` yields only rows with a topic key.
            let Some(topic_key) = def.topic else { continue };
            let source = std::iter::once(def.name)
                .chain(def.fallbacks.iter().copied())
                .find_map(|key| Some((key, lookup(key)?)));
            let Some((key, value)) = source else {
                return Err(ConfigError::invalid(
                    def.name,
                    "",
                    "no value and no default",
                ));
            };
            let kind = broker_def(key).map(|d| d.kind).unwrap_or(def.kind);
            let millis = in_millis(key, &value, kind)?;
            config.set(topic_key, &millis).map_err(|e| match e {
                // Report the broker key the operator actually wrote.
                ConfigError::Invalid { reason, .. } => ConfigError::invalid(key, &value, reason),
                other => other,
            })?;
        }
        Ok(config)
    }

    /// Every field before `from_broker` fills it; never escapes that function.
    fn placeholder() -> TopicConfig {
        TopicConfig {
            retention_ms: 0,
            retention_bytes: 0,
            segment_bytes: 0,
            segment_ms: 0,
            segment_index_bytes: 0,
            index_interval_bytes: 0,
            flush_messages: 0,
            flush_ms: 0,
            cleanup_policy: CleanupPolicy::Delete,
            max_message_bytes: 0,
            min_insync_replicas: 0,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: 0,
            message_timestamp_after_max_ms: 0,
            unclean_leader_election_enable: false,
            preallocate: false,
            compression_type: CompressionType::Producer,
            delete_retention_ms: 0,
            file_delete_delay_ms: 0,
            min_cleanable_dirty_ratio: Ratio { millionths: 0 },
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: 0,
        }
    }
}

/// A broker value written in minutes or hours, as milliseconds. Negative means
/// "unlimited" and becomes -1, as Kafka's `logRetentionTimeMillis` does.
fn in_millis(key: &str, value: &str, kind: ConfigKind) -> Result<String, ConfigError> {
    let ConfigKind::Duration { unit, .. } = kind else {
        return Ok(value.to_string());
    };
    if unit == TimeUnit::Millis {
        return Ok(value.to_string());
    }
    let Ok(Parsed::Number(n)) = kind.parse(value) else {
        // Let the caller's parse produce the error message naming the reason.
        return Ok(value.to_string());
    };
    if n < 0 {
        return Ok("-1".to_string());
    }
    n.checked_mul(unit.millis())
        .map(|ms| ms.to_string())
        .ok_or_else(|| ConfigError::invalid(key, value, "too large in milliseconds"))
}

/// Checks one topic-level key and value as sent by a client. An unknown key is
/// [`ConfigError::Unknown`], a bad value [`ConfigError::Invalid`]; both map to
/// INVALID_CONFIG (40) at the protocol edge.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    // Setting it on a scratch copy runs exactly the checks `resolve` will run later,
    // so a value accepted here can never fail when the topic is loaded.
    TopicConfig::default().set(key, value)
}

/// Every topic-level key we support, in table order.
pub fn topic_keys() -> impl Iterator<Item = &'static str> {
    CONFIG_DEFS.iter().filter_map(|d| d.topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_resolve_to_kafkas() {
        let d = TopicConfig::default();
        assert_eq!(d.retention_ms, 604_800_000);
        assert_eq!(d.retention_bytes, -1);
        assert_eq!(d.segment_bytes, 1_073_741_824);
        assert_eq!(d.segment_ms, 604_800_000);
        assert_eq!(d.segment_index_bytes, 10_485_760);
        assert_eq!(d.index_interval_bytes, 4096);
        assert_eq!(d.flush_messages, u64::MAX);
        assert_eq!(d.flush_ms, i64::MAX);
        assert_eq!(d.cleanup_policy, CleanupPolicy::Delete);
        assert_eq!(d.max_message_bytes, 1_048_588);
        assert_eq!(d.min_insync_replicas, 1);
        assert_eq!(d.message_timestamp_type, TimestampType::CreateTime);
        assert!(!d.unclean_leader_election_enable);
        assert_eq!(d.compression_type, CompressionType::Producer);
        assert_eq!(d.delete_retention_ms, 86_400_000);
        assert_eq!(d.file_delete_delay_ms, 60_000);
        assert_eq!(d.min_cleanable_dirty_ratio.as_f64(), 0.5);
        assert_eq!(d.min_compaction_lag_ms, 0);
        assert_eq!(d.max_compaction_lag_ms, i64::MAX);
    }

    #[test]
    fn compaction_keys_resolve() {
        let t = TopicConfig::resolve(
            &TopicConfig::default(),
            &map(&[
                ("cleanup.policy", "compact"),
                ("min.cleanable.dirty.ratio", "0.01"),
                ("min.compaction.lag.ms", "5000"),
                ("max.compaction.lag.ms", "60000"),
                ("delete.retention.ms", "100"),
            ]),
        )
        .unwrap();
        assert_eq!(t.cleanup_policy, CleanupPolicy::Compact);
        assert_eq!(t.min_cleanable_dirty_ratio.millionths, 10_000);
        assert_eq!(t.get("min.cleanable.dirty.ratio").unwrap(), "0.01");
        assert_eq!(
            (t.min_compaction_lag_ms, t.max_compaction_lag_ms),
            (5000, 60000)
        );
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "2").is_err());
        assert!(validate_topic_config("max.compaction.lag.ms", "0").is_err());
    }

    #[test]
    fn every_topic_key_round_trips() {
        let d = TopicConfig::default();
        for key in topic_keys() {
            let shown = d.get(key).unwrap_or_else(|| panic!("{key} has no getter"));
            let mut c = d.clone();
            c.set(key, &shown).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(c, d, "{key}");
        }
    }

    #[test]
    fn resolve_applies_overrides_over_defaults() {
        let d = TopicConfig::default();
        let t = TopicConfig::resolve(
            &d,
            &map(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "-1"),
                ("segment.bytes", "1024"),
                ("flush.messages", "1"),
                ("message.timestamp.type", "LogAppendTime"),
                ("compression.type", "zstd"),
            ]),
        )
        .unwrap();
        assert_eq!(t.cleanup_policy, CleanupPolicy::Both);
        assert_eq!(t.retention_ms, -1);
        assert_eq!(t.segment_bytes, 1024);
        assert_eq!(t.flush_messages, 1);
        assert_eq!(t.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(t.compression_type, CompressionType::Zstd);
        assert_eq!(t.retention_bytes, d.retention_bytes);
        assert_eq!(t.get("cleanup.policy").unwrap(), "delete,compact");
    }

    #[test]
    fn validate_names_unknown_and_invalid() {
        assert!(validate_topic_config("retention.ms", "1000").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact").is_ok());
        match validate_topic_config("log.retention.ms", "1") {
            Err(ConfigError::Unknown { key }) => assert_eq!(key, "log.retention.ms"),
            other => panic!("{other:?}"),
        }
        for (key, value) in [
            ("retention.ms", "ten"),
            ("segment.bytes", "13"),
            ("segment.bytes", "4294967296"),
            ("cleanup.policy", "purge"),
            ("cleanup.policy", ""),
            ("message.timestamp.type", "createtime"),
            ("unclean.leader.election.enable", "yes"),
            ("min.insync.replicas", "0"),
        ] {
            match validate_topic_config(key, value) {
                Err(e @ ConfigError::Invalid { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(key) && msg.contains(&format!("{value:?}")),
                        "{msg}"
                    );
                }
                other => panic!("{key}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn resolve_rejects_bad_override() {
        let err = TopicConfig::resolve(&TopicConfig::default(), &map(&[("segment.ms", "0")]));
        assert!(matches!(err, Err(ConfigError::Invalid { key, .. }) if key == "segment.ms"));
    }

    #[test]
    fn hours_and_minutes_convert_and_negative_means_unlimited() {
        let kind = broker_def("log.retention.hours").unwrap().kind;
        assert_eq!(in_millis("h", "2", kind).unwrap(), "7200000");
        assert_eq!(in_millis("h", "-1", kind).unwrap(), "-1");
        let kind = broker_def("log.retention.minutes").unwrap().kind;
        assert_eq!(in_millis("m", "3", kind).unwrap(), "180000");
    }
}
