//! The one table of every setting Troupe knows, with Kafka's names and defaults.
//!
//! Each row is a broker key (as written in `server.properties`). A row whose `topic` is
//! set is also the broker-level default of that topic-level key: the topic's effective
//! value is its own override, else the first of `[name, fallbacks...]` that the broker
//! config sets or has a default for. This is Kafka's synonym order, so
//! `log.retention.ms` beats `log.retention.minutes` beats `log.retention.hours`. Topic
//! keys carry no default of their own; theirs comes from these rows, so no default is
//! written twice.
//!
//! Defaults are Kafka's unless the doc says why not. `default: None` means Kafka's
//! "null": unset, so a fallback or a derived value applies.

use super::kind::{ConfigKind, ConfigType, TimeUnit};

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// The broker key.
    pub name: &'static str,
    pub kind: ConfigKind,
    /// The default as written in a file; `None` for Kafka's "no default".
    pub default: Option<&'static str>,
    /// One line for DescribeConfigs and for readers of this table.
    pub doc: &'static str,
    /// The topic-level key this row is the broker default of.
    pub topic: Option<&'static str>,
    /// Lower-precedence broker keys for the same topic setting, possibly in another unit.
    pub fallbacks: &'static [&'static str],
    /// Older names accepted for this key; the canonical name wins when both are set.
    pub aliases: &'static [&'static str],
}

impl ConfigDef {
    /// The type DescribeConfigs reports.
    pub fn config_type(&self) -> ConfigType {
        self.kind.config_type()
    }
}

/// The row for a broker key or one of its aliases.
pub fn broker_def(key: &str) -> Option<&'static ConfigDef> {
    CONFIG_DEFS
        .iter()
        .find(|d| d.name == key || d.aliases.contains(&key))
}

/// The row holding a topic-level key.
pub fn topic_def(key: &str) -> Option<&'static ConfigDef> {
    CONFIG_DEFS.iter().find(|d| d.topic == Some(key))
}

/// Rows that define topic-level keys, in table order.
pub fn topic_defs() -> impl Iterator<Item = &'static ConfigDef> {
    CONFIG_DEFS.iter().filter(|d| d.topic.is_some())
}

const I32: i64 = i32::MAX as i64;
const I16: i64 = i16::MAX as i64;
const LONG_MAX: &str = "9223372036854775807";
/// Bound on `num.network.threads`: each is an OS thread started at start-up, and a
/// value the OS cannot spawn must be refused with a message, not fail the spawn.
const MAX_NETWORK_THREADS: i64 = 256;

const fn int(min: i64) -> ConfigKind {
    ConfigKind::Int { min, max: I32 }
}
const fn long(min: i64) -> ConfigKind {
    ConfigKind::Long { min, max: i64::MAX }
}
const fn short(min: i64) -> ConfigKind {
    ConfigKind::Short { min, max: I16 }
}
const fn dur(unit: TimeUnit, wire: ConfigType, min: i64) -> ConfigKind {
    ConfigKind::Duration { unit, wire, min }
}
const fn ms_int(min: i64) -> ConfigKind {
    dur(TimeUnit::Millis, ConfigType::Int, min)
}
const fn ms_long(min: i64) -> ConfigKind {
    dur(TimeUnit::Millis, ConfigType::Long, min)
}

/// A broker-only row.
const fn b(
    name: &'static str,
    kind: ConfigKind,
    default: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        kind,
        default,
        doc,
        topic: None,
        fallbacks: &[],
        aliases: &[],
    }
}

/// A row that is also the broker default of topic key `topic`.
const fn t(
    name: &'static str,
    topic: &'static str,
    fallbacks: &'static [&'static str],
    kind: ConfigKind,
    default: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        topic: Some(topic),
        fallbacks,
        ..b(name, kind, default, doc)
    }
}

/// Every setting. Order is the order of DescribeConfigs answers and of
/// `config/server.properties`. Kept one row to a few lines (rustfmt would spread each
/// call over six) so the whole table reads like Kafka's config reference.
#[rustfmt::skip]
pub static CONFIG_DEFS: &[ConfigDef] = &[
    // ---- Node identity and cluster membership (KRaft) ----
    ConfigDef {
        aliases: &["broker.id"],
        ..b("node.id", int(0), Some("1"),
            "This node's id. Kafka has no default in KRaft mode; 1 lets a single node start with an empty config.")
    },
    b("process.roles", ConfigKind::List(&["broker", "controller"]), Some("broker,controller"),
        "Roles of this node. Default: both, a single node is its own controller (Kafka requires it set)."),
    b("controller.quorum.voters", ConfigKind::List(&[]), Some(""),
        "Controller voters as id@host:port. Empty: this node is the only voter (single node)."),
    b("controller.listener.names", ConfigKind::List(&[]), None,
        "Listeners that carry controller traffic; they are PLAINTEXT even if absent from the protocol map."),
    b("cluster.id", ConfigKind::String, None,
        "Cluster id. Unset: generated on first start and kept in meta.properties."),
    b("controller.quorum.election.timeout.ms", ms_int(1), Some("1000"),
        "How long a voter waits without a leader before it calls an election."),
    b("controller.quorum.fetch.timeout.ms", ms_int(1), Some("2000"),
        "How long a follower voter waits without a fetch answer before it suspects the leader."),
    b("broker.heartbeat.interval.ms", ms_int(1), Some("2000"),
        "Interval between a broker's heartbeats to the controller."),
    b("broker.session.timeout.ms", ms_int(1), Some("9000"),
        "A broker that sends no heartbeat for this long is fenced and its partitions move."),
    b("broker.rack", ConfigKind::String, None,
        "This broker's rack: replica placement spreads each partition's replicas over racks."),
    b("auto.leader.rebalance.enable", ConfigKind::Boolean, Some("true"),
        "The active controller moves leadership back to preferred replicas when a broker's share is off by more than leader.imbalance.per.broker.percentage."),
    b("leader.imbalance.per.broker.percentage", int(0), Some("10"),
        "How many of a broker's preferred partitions (percent) may be led elsewhere before a rebalance."),
    b("leader.imbalance.check.interval.seconds", int(1), Some("300"),
        "How often the active controller checks leader imbalance."),
    // ---- Listeners and the network ----
    b("listeners", ConfigKind::List(&[]), Some("PLAINTEXT://127.0.0.1:9092"),
        "Addresses to accept clients on, NAME://host:port. Kafka binds all interfaces; we bind loopback so a dev broker is not exposed."),
    b("advertised.listeners", ConfigKind::List(&[]), None,
        "Addresses given to clients in Metadata. Unset: the same as listeners."),
    b("listener.security.protocol.map", ConfigKind::List(&[]),
        Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
        "Listener name to security protocol. Only PLAINTEXT is implemented; other protocols are refused."),
    b("inter.broker.listener.name", ConfigKind::String, None,
        "Listener followers fetch from. Unset: the first listener."),
    b("num.network.threads", ConfigKind::Int { min: 1, max: MAX_NETWORK_THREADS }, Some("1"),
        "Threads that serve client connections (read requests, write answers). 1: the main thread serves them beside the partition actors, the fewest hand-offs and the least CPU per request. N > 1: N threads of their own, each new connection on the one serving the fewest; a consumer woken by an append answers at once instead of waiting behind the Produce requests the main thread works through, at the cost of a thread hand-off per request. At most 256. Kafka's default is 3."),
    b("num.io.threads", int(1), Some("8"),
        "Accepted for Kafka compatibility; requests run in partition actors, the runtime may use it to size blocking-IO workers."),
    b("socket.send.buffer.bytes", int(-1), Some("-1"),
        "SO_SNDBUF of client sockets; -1 keeps the OS default. Kafka: 102400; Linux autotunes a socket's buffers only while none is set, so Troupe keeps the OS default."),
    b("socket.receive.buffer.bytes", int(-1), Some("-1"),
        "SO_RCVBUF of client sockets; -1 keeps the OS default. Kafka: 102400, see socket.send.buffer.bytes."),
    b("socket.listen.backlog.size", int(1), Some("1024"),
        "Accept queue length of each listener (the listen(2) backlog; Linux caps it at net.core.somaxconn). Kafka: 50 (KIP-764); Troupe takes 1024 so a burst of connects, a client fleet restarting, is queued rather than dropped into one-second SYN retransmits."),
    b("socket.request.max.bytes", int(1), Some("104857600"),
        "Largest request frame accepted; a bigger one closes the connection."),
    b("queued.max.requests", int(1), Some("500"),
        "Requests in flight per connection before we stop reading from it (Kafka: a broker-wide queue)."),
    b("queued.max.request.bytes", long(-1), Some("268435456"),
        "Bytes of requests read but not yet handled, broker-wide, before connections stop being read; -1: no bound. Kafka's default is -1 because it handles one request per connection at a time; Troupe pipelines up to queued.max.requests per connection, so it bounds the bytes."),
    b("connections.max.idle.ms", ms_long(1), Some("600000"),
        "Connections with no request in flight and no bytes read or written for this long are closed."),
    b("max.connections", int(0), Some("2147483647"),
        "Client connections open at once, broker-wide; at the limit the broker stops accepting until one closes (Kafka's default: no limit)."),
    b("max.connections.per.ip", int(0), Some("2147483647"),
        "Client connections open at once from one IP address; a connection over it is closed as soon as it is accepted (Kafka's default: no limit)."),
    // ---- Log directories and topic creation ----
    ConfigDef {
        aliases: &["log.dir"],
        ..b("log.dirs", ConfigKind::List(&[]), Some("./data"),
            "Directories holding partition logs. Kafka uses /tmp/kafka-logs, which tmp cleaners and reboots wipe; ./data survives and stays beside the checkout.")
    },
    b("num.partitions", int(1), Some("1"), "Partitions of an auto-created topic, or a created one that names none."),
    b("default.replication.factor", ConfigKind::Int { min: 1, max: I16 }, Some("1"),
        "Replication factor of an auto-created topic, or a created one that names none."),
    b("auto.create.topics.enable", ConfigKind::Boolean, Some("true"),
        "Create a topic when a client asks Metadata or produces to one that does not exist."),
    b("delete.topic.enable", ConfigKind::Boolean, Some("true"), "Allow DeleteTopics."),
    b("max.partitions", int(1), Some("200000"),
        "Partitions in the whole cluster (KIP-578); a CreateTopics or CreatePartitions past it is refused with POLICY_VIOLATION, one asking for more than this in a single request with INVALID_PARTITIONS. Kafka: no limit."),
    b("max.broker.partitions", int(1), Some("4000"),
        "Partition replicas one broker may hold (KIP-578), further bounded by what its open-files limit can hold; POLICY_VIOLATION beyond. Kafka: no limit; 4000 is the usual per-broker guidance."),
    b("num.recovery.threads.per.data.dir", int(1), Some("1"),
        "Threads per log dir that recover segments at start-up."),
    b("log.retention.check.interval.ms", ms_long(1), Some("300000"),
        "How often closed segments are checked against retention."),
    b("log.flush.offset.checkpoint.interval.ms", ms_int(0), Some("60000"),
        "How often the recovery-point checkpoint (what recovery may skip) is written."),
    b("log.flush.scheduler.interval.ms", ms_long(0), Some(LONG_MAX),
        "How often logs are checked for a due flush; also flush.ms when log.flush.interval.ms is unset."),
    // ---- Topic defaults: each row is the broker default of the topic key beside it ----
    t("log.retention.ms", "retention.ms", &["log.retention.minutes", "log.retention.hours"],
        ms_long(-1), None, "Delete closed segments older than this; -1: keep forever."),
    b("log.retention.minutes", dur(TimeUnit::Minutes, ConfigType::Int, -1), None,
        "retention.ms in minutes, used when log.retention.ms is unset."),
    b("log.retention.hours", dur(TimeUnit::Hours, ConfigType::Int, -1), Some("168"),
        "retention.ms in hours, used when neither log.retention.ms nor log.retention.minutes is set."),
    t("log.retention.bytes", "retention.bytes", &[], long(-1), Some("-1"),
        "Delete the oldest closed segments while a partition is larger than this; -1: no limit."),
    t("log.segment.bytes", "segment.bytes", &[], int(14), Some("1073741824"),
        "Roll to a new segment at this size. Minimum 14 as in Kafka 3 (Kafka 4 raised it to 1 MiB); tests use tiny segments."),
    t("log.roll.ms", "segment.ms", &["log.roll.hours"], ms_long(1), None,
        "Roll to a new segment after this long even if it is not full."),
    b("log.roll.hours", dur(TimeUnit::Hours, ConfigType::Int, 1), Some("168"),
        "segment.ms in hours, used when log.roll.ms is unset."),
    t("log.index.size.max.bytes", "segment.index.bytes", &[], int(4), Some("10485760"),
        "Size each offset and time index is preallocated (mmapped) to; a full index rolls the segment."),
    t("log.index.interval.bytes", "index.interval.bytes", &[], int(0), Some("4096"),
        "Bytes of batches between two index entries."),
    t("log.flush.interval.messages", "flush.messages", &[], long(1), Some(LONG_MAX),
        "fsync after this many messages; the Long.MAX default means never (replication is the durability)."),
    t("log.flush.interval.ms", "flush.ms", &["log.flush.scheduler.interval.ms"], ms_long(0), None,
        "fsync when the oldest unflushed message is this old."),
    t("log.cleanup.policy", "cleanup.policy", &[], ConfigKind::List(&["delete", "compact"]), Some("delete"),
        "delete (retention), compact (keep the last record per key), or both."),
    t("message.max.bytes", "max.message.bytes", &[], int(0), Some("1048588"),
        "Largest record batch accepted (MESSAGE_TOO_LARGE beyond it)."),
    t("min.insync.replicas", "min.insync.replicas", &[], int(1), Some("1"),
        "With acks=all, fewer in-sync replicas than this answers NOT_ENOUGH_REPLICAS."),
    t("log.message.timestamp.type", "message.timestamp.type", &[],
        ConfigKind::Enum(&["CreateTime", "LogAppendTime"]), Some("CreateTime"),
        "Keep the producer's timestamps, or overwrite them with the broker's append time."),
    t("log.message.timestamp.before.max.ms", "message.timestamp.before.max.ms", &[],
        ms_long(0), Some(LONG_MAX),
        "CreateTime topics: a record timestamped more than this before the broker's clock is refused (INVALID_TIMESTAMP)."),
    t("log.message.timestamp.after.max.ms", "message.timestamp.after.max.ms", &[],
        ms_long(0), Some(LONG_MAX),
        "CreateTime topics: a record timestamped more than this after the broker's clock is refused (INVALID_TIMESTAMP); Kafka 4 lowered the default to 1 hour."),
    t("log.preallocate", "preallocate", &[], ConfigKind::Boolean, Some("false"),
        "Reserve a new segment's blocks (segment.bytes) on disk when it is created, so appends and the kernel's write-back find them allocated (Linux fallocate, file size unchanged); a rolled segment gives back what it did not use."),
    t("unclean.leader.election.enable", "unclean.leader.election.enable", &[],
        ConfigKind::Boolean, Some("false"),
        "Allow a replica outside the ISR to become leader, losing acknowledged records."),
    t("compression.type", "compression.type", &[],
        ConfigKind::Enum(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("producer"),
        "producer stores batches as sent; any other codec makes appends recompress batches that use another one."),
    t("log.cleaner.delete.retention.ms", "delete.retention.ms", &[], ms_long(0), Some("86400000"),
        "How long compaction keeps delete markers (tombstones)."),
    t("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio", &[], ConfigKind::Ratio, Some("0.5"),
        "Compact once the never-cleaned share of a log's closed segments reaches this."),
    t("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms", &[], ms_long(0), Some("0"),
        "A record stays uncompacted at least this long."),
    t("log.cleaner.max.compaction.lag.ms", "max.compaction.lag.ms", &[], ms_long(1), Some(LONG_MAX),
        "A record waits at most this long to be compacted, whatever the dirty ratio."),
    b("log.cleaner.enable", ConfigKind::Boolean, Some("true"),
        "Run the log cleaner for topics with cleanup.policy=compact."),
    b("log.cleaner.backoff.ms", ms_long(0), Some("15000"),
        "How often each compacted log checks whether cleaning is due."),
    b("log.cleaner.dedupe.buffer.size", long(1024), Some("134217728"),
        "Memory for the key map of one cleaning pass; a larger dirty section is cleaned over several passes."),
    t("log.segment.delete.delay.ms", "file.delete.delay.ms", &[], ms_long(0), Some("60000"),
        "Delay between retiring a segment and deleting its files, so in-flight reads finish."),
    // ---- Consumer groups and __consumer_offsets ----
    b("offsets.topic.num.partitions", int(1), Some("50"),
        "Partitions of __consumer_offsets; fixed once the topic exists."),
    b("offsets.topic.replication.factor", short(1), Some("1"),
        "Replication factor of __consumer_offsets. Kafka: 3, which a single node cannot satisfy."),
    b("offsets.topic.segment.bytes", int(1), Some("104857600"),
        "Segment size of __consumer_offsets, small so compaction and loading stay fast."),
    b("offsets.retention.minutes", dur(TimeUnit::Minutes, ConfigType::Int, 1), Some("10080"),
        "Committed offsets of an empty group are dropped after this long."),
    b("offset.metadata.max.bytes", ConfigKind::Int { min: 0, max: i16::MAX as i64 }, Some("4096"),
        "Largest metadata string an offset commit may carry (OFFSET_METADATA_TOO_LARGE beyond). At most 32767: it is stored as a Kafka string."),
    b("offsets.retention.check.interval.ms", ms_long(1), Some("600000"),
        "How often expired offsets are looked for."),
    b("offsets.commit.timeout.ms", ms_int(1), Some("5000"),
        "An offset commit waits this long for __consumer_offsets replication."),
    b("group.initial.rebalance.delay.ms", ms_int(0), Some("3000"),
        "Wait this long for more members before the first rebalance of an empty group."),
    b("group.min.session.timeout.ms", ms_int(0), Some("6000"), "Smallest session timeout a member may ask for."),
    b("group.max.session.timeout.ms", ms_int(0), Some("1800000"), "Largest session timeout a member may ask for."),
    b("group.max.size", int(1), Some("2147483647"), "Most members in one group."),
    // ---- Replication ----
    b("replica.lag.time.max.ms", ms_long(1), Some("30000"),
        "A follower that has not caught up for this long leaves the ISR."),
    b("replica.fetch.max.bytes", int(0), Some("1048576"), "Bytes a follower asks for per partition."),
    b("replica.fetch.min.bytes", int(1), Some("1"), "Bytes a follower's fetch waits for."),
    b("replica.fetch.wait.max.ms", ms_int(0), Some("500"), "Longest a follower's fetch waits at the leader."),
    b("replica.fetch.response.max.bytes", int(0), Some("10485760"), "Bytes a follower asks for per fetch."),
    b("replica.fetch.backoff.ms", ms_int(0), Some("1000"), "Pause after a failed follower fetch."),
    b("replica.selector.class", ConfigKind::String, None,
        "Where consumers may read (KIP-392): unset, the leader only; org.apache.kafka.common.replica.RackAwareReplicaSelector, an in-sync replica in the consumer's client.rack."),
    b("replica.high.watermark.checkpoint.interval.ms", ms_long(1), Some("5000"),
        "How often a partition's high watermark is written to its replication-offset-checkpoint."),
    // ---- Producers and transactions ----
    b("producer.id.expiration.ms", ms_int(1), Some("86400000"),
        "Idempotence state of a producer id idle this long is dropped."),
    b("transactional.id.expiration.ms", ms_int(1), Some("604800000"),
        "A transactional id with no transaction for this long is dropped."),
    b("transaction.max.timeout.ms", ms_int(1), Some("900000"), "Largest transaction timeout a producer may ask for."),
    b("transaction.state.log.num.partitions", int(1), Some("50"), "Partitions of __transaction_state."),
    b("transaction.state.log.replication.factor", short(1), Some("1"),
        "Replication factor of __transaction_state. Kafka: 3, which a single node cannot satisfy."),
    b("transaction.state.log.min.isr", int(1), Some("1"),
        "min.insync.replicas of __transaction_state. Kafka: 2; 1 for the same reason."),
    // ---- Metrics (Prometheus text format) ----
    b("metrics.sample.window.ms", ms_long(1), Some("30000"), "Window over which rates are computed."),
    b("metrics.num.samples", int(1), Some("2"), "Windows kept per rate."),
    b("metrics.recording.level", ConfigKind::Enum(&["INFO", "DEBUG", "TRACE"]), Some("INFO"),
        "Record metrics of this level and above."),
    b("metrics.http.listener", ConfigKind::String, Some("127.0.0.1:9644"),
        "HOST:PORT of the HTTP listener serving /metrics (Prometheus text), /health/live, \
         /health/ready and the status page at /; empty turns it off. Troupe's own key \
         (Kafka exports JMX): loopback by default, port 9644 as Redpanda's admin API."),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_references_resolve() {
        let mut seen = BTreeSet::new();
        for d in CONFIG_DEFS {
            for n in std::iter::once(&d.name).chain(d.aliases) {
                assert!(seen.insert(*n), "{n} defined twice");
            }
            for f in d.fallbacks {
                assert!(broker_def(f).is_some(), "{}: fallback {f} missing", d.name);
            }
        }
        let topics: Vec<_> = topic_defs().filter_map(|d| d.topic).collect();
        assert_eq!(topics.len(), topics.iter().collect::<BTreeSet<_>>().len());
    }

    #[test]
    fn every_default_parses_as_its_kind() {
        for d in CONFIG_DEFS {
            if let Some(v) = d.default {
                assert!(d.kind.parse(v).is_ok(), "{} default {v:?}", d.name);
            }
        }
    }

    #[test]
    fn topic_rows_have_a_default_through_their_fallbacks() {
        for d in topic_defs() {
            let any = d.default.is_some()
                || d.fallbacks
                    .iter()
                    .any(|f| broker_def(f).unwrap().default.is_some());
            assert!(any, "{} has no default", d.name);
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(broker_def("broker.id").unwrap().name, "node.id");
        assert_eq!(broker_def("log.dir").unwrap().name, "log.dirs");
        assert_eq!(topic_def("segment.ms").unwrap().name, "log.roll.ms");
        assert!(topic_def("log.roll.ms").is_none());
        assert!(broker_def("retention.ms").is_none());
    }
}
