//! Tests of [`BrokerConfig::load`]: defaults, precedence, warnings, errors, and the
//! shipped `config/server.properties`.

use super::*;
use crate::config::topic::{CleanupPolicy, CompressionType};
use std::path::Path;

fn load(text: &str) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
    BrokerConfig::load_str(text, "test.properties", &[])
}

fn ov(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load_without_warnings() {
    let (c, warnings) = BrokerConfig::load(None, &[]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.node_id, 1);
    assert_eq!(
        c.process_roles,
        [ProcessRole::Broker, ProcessRole::Controller]
    );
    assert!(c.controller_quorum_voters.is_empty());
    assert_eq!(
        c.listeners,
        [Listener::parse("PLAINTEXT://127.0.0.1:9092").unwrap()]
    );
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
    assert_eq!(c.log_dirs, [PathBuf::from("./data")]);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable && c.delete_topic_enable);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.socket_listen_backlog_size, 1024);
    assert_eq!(c.queued_max_requests, 500);
    assert_eq!(c.queued_max_request_bytes, 268_435_456);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.log_flush_offset_checkpoint_interval_ms, 60_000);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(c.offsets_retention_ms, 10_080 * 60_000);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_max_size, i32::MAX as usize);
    assert_eq!(c.replica_lag_time_max_ms, 30_000);
    assert_eq!(c.producer_id_expiration_ms, 86_400_000);
    assert_eq!(c.cluster_id, None);
    assert_eq!(c.topic_defaults, TopicConfig::default());
    assert!(c.raw.is_empty());
    assert_eq!(c, BrokerConfig::default());
}

#[test]
fn retention_precedence_ms_then_minutes_then_hours() {
    let hours = load("log.retention.hours=2").unwrap().0;
    assert_eq!(hours.topic_defaults.retention_ms, 7_200_000);
    let minutes = load("log.retention.hours=2\nlog.retention.minutes=3")
        .unwrap()
        .0;
    assert_eq!(minutes.topic_defaults.retention_ms, 180_000);
    let ms = load("log.retention.ms=5\nlog.retention.hours=2\nlog.retention.minutes=3")
        .unwrap()
        .0;
    assert_eq!(ms.topic_defaults.retention_ms, 5);
    let forever = load("log.retention.hours=-1").unwrap().0;
    assert_eq!(forever.topic_defaults.retention_ms, -1);
    let roll = load("log.roll.hours=1").unwrap().0;
    assert_eq!(roll.topic_defaults.segment_ms, 3_600_000);
    let flush = load("log.flush.scheduler.interval.ms=10").unwrap().0;
    assert_eq!(flush.topic_defaults.flush_ms, 10);
}

#[test]
fn topic_defaults_follow_broker_keys() {
    let text = "log.segment.bytes=2048\nlog.cleanup.policy=compact\nmessage.max.bytes=10\n\
                log.flush.interval.messages=1\nmin.insync.replicas=2\n";
    let t = load(text).unwrap().0.topic_defaults;
    assert_eq!(t.segment_bytes, 2048);
    assert_eq!(t.cleanup_policy, CleanupPolicy::Compact);
    assert_eq!(t.max_message_bytes, 10);
    assert_eq!(t.flush_messages, 1);
    assert_eq!(t.min_insync_replicas, 2);
}

#[test]
fn overrides_beat_the_file_and_aliases_map_to_canonical_names() {
    let text = "num.partitions=3\nbroker.id=4\nlog.dir=/var/a\n";
    let overrides = ov(&[("num.partitions", "7"), ("node.id", "9")]);
    let (c, warnings) = BrokerConfig::load_str(text, "f", &overrides).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.num_partitions, 7);
    assert_eq!(c.node_id, 9);
    assert_eq!(c.log_dirs, [PathBuf::from("/var/a")]);
    assert_eq!(c.raw.get("log.dirs").map(String::as_str), Some("/var/a"));
    assert_eq!(c.get("log.dir").as_deref(), Some("/var/a"));
    assert!(c.is_set("broker.id"));
}

#[test]
fn unknown_topic_level_duplicate_and_ignored_keys_warn() {
    let text =
        "sasl.enabled.mechanisms=PLAIN\nretention.ms=5\nnum.partitions=2\nnum.partitions=3\n\
                compression.type=lz4\n";
    let (c, w) = BrokerConfig::load_str(text, "f", &ov(&[("bogus", "1")])).unwrap();
    assert_eq!(c.num_partitions, 3);
    assert_eq!(c.topic_defaults.compression_type, CompressionType::Lz4);
    // compression.type is applied (batches are recompressed on append): no warning.
    assert_eq!(w.len(), 4, "{w:#?}");
    assert!(w[0].contains("sasl.enabled.mechanisms") && w[0].contains("line 1 of f"));
    assert!(w[1].contains("topic-level") && w[1].contains("log.retention.ms"));
    assert!(w[2].contains("num.partitions") && w[2].contains("twice"));
    assert!(w[3].contains("bogus") && w[3].contains("--override"));
}

#[test]
fn invalid_values_name_key_and_value() {
    let cases = [
        ("num.partitions=three", "num.partitions", "three"),
        ("num.partitions=0", "num.partitions", "0"),
        ("num.network.threads=0", "num.network.threads", "0"),
        (
            "num.network.threads=100000",
            "num.network.threads",
            "100000",
        ),
        (
            "socket.request.max.bytes=4294967296",
            "socket.request.max.bytes",
            "4294967296",
        ),
        (
            "default.replication.factor=40000",
            "default.replication.factor",
            "40000",
        ),
        (
            "auto.create.topics.enable=yes",
            "auto.create.topics.enable",
            "yes",
        ),
        (
            "log.message.timestamp.type=Now",
            "log.message.timestamp.type",
            "Now",
        ),
        (
            "process.roles=broker,leader",
            "process.roles",
            "broker,leader",
        ),
        ("listeners=127.0.0.1:9092", "listeners", "127.0.0.1:9092"),
        (
            "listeners=PLAINTEXT://h:99999",
            "listeners",
            "PLAINTEXT://h:99999",
        ),
        ("listeners=SSL://h:9093", "listeners", "SSL://h:9093"),
        ("listeners=OTHER://h:9093", "listeners", "OTHER://h:9093"),
        ("listeners=A://h:1,a://h:2", "listeners", "A://h:1,a://h:2"),
        (
            "advertised.listeners=OTHER://h:1",
            "advertised.listeners",
            "OTHER://h:1",
        ),
        (
            "advertised.listeners=PLAINTEXT://0.0.0.0:1",
            "advertised.listeners",
            "PLAINTEXT://0.0.0.0:1",
        ),
        ("controller.quorum.voters=2@h:9093", "node.id", "1"),
        (
            "controller.quorum.voters=h:9093",
            "controller.quorum.voters",
            "h:9093",
        ),
        (
            "group.min.session.timeout.ms=2000000",
            "group.min.session.timeout.ms",
            "2000000",
        ),
        ("log.dirs=,", "log.dirs", ","),
        (
            "inter.broker.listener.name=X",
            "inter.broker.listener.name",
            "X",
        ),
        ("log.retention.minutes=x", "log.retention.minutes", "x"),
        ("log.segment.bytes=10", "log.segment.bytes", "10"),
        ("log.cleanup.policy=purge", "log.cleanup.policy", "purge"),
        ("broker.id=-5", "broker.id", "-5"),
    ];
    for (text, key, value) in cases {
        match load(text) {
            Err(ConfigError::Invalid {
                key: k,
                value: v,
                reason,
            }) => {
                assert_eq!((k.as_str(), v.as_str()), (key, value), "{text}: {reason}");
            }
            other => panic!("{text}: expected Invalid, got {other:?}"),
        }
    }
    let msg = load("num.partitions=x").unwrap_err().to_string();
    assert!(msg.contains("num.partitions") && msg.contains("\"x\"") && msg.contains("line 1"));
}

#[test]
fn cluster_settings() {
    let text = "process.roles=broker\nnode.id=4\ncontroller.quorum.voters=1@c1:9093,2@[::1]:9093\n\
                controller.listener.names=CONTROLLER\n\
                listeners=PLAINTEXT://:9092,INTERNAL://10.0.0.4:9094\n\
                listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT\n\
                advertised.listeners=PLAINTEXT://b4.example:9092\n\
                inter.broker.listener.name=internal\ncluster.id=abc\n";
    let (c, w) = load(text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert!(!c.is_controller());
    assert_eq!(c.controller_quorum_voters.len(), 2);
    assert_eq!(c.controller_quorum_voters[1].host, "::1");
    assert_eq!(c.listeners[0].host, "");
    assert_eq!(c.advertised_listeners[0].host, "b4.example");
    assert_eq!(c.inter_broker_listener_name.as_deref(), Some("INTERNAL"));
    assert_eq!(c.cluster_id.as_deref(), Some("abc"));
    assert!(matches!(
        load("process.roles=broker"),
        Err(ConfigError::Invalid { key, .. }) if key == "controller.quorum.voters"
    ));
}

#[test]
fn controller_listeners_are_plaintext_and_not_advertised() {
    let text = "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
                controller.listener.names=CONTROLLER\ncontroller.quorum.voters=1@127.0.0.1:9093\n";
    let (c, _) = load(text).unwrap();
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].name, "PLAINTEXT");
}

#[test]
fn read_errors() {
    let err = BrokerConfig::load(Some(Path::new("/nonexistent/server.properties")), &[]);
    assert!(matches!(err, Err(ConfigError::Io { .. })));
    let err = load("a=1\njunk\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 2, .. }));
    assert!(err.to_string().contains("test.properties"));
}

/// The shipped file must load cleanly and say exactly what the defaults say, except for
/// the lines it sets on purpose.
#[test]
fn shipped_server_properties_matches_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/server.properties");
    let (c, warnings) = BrokerConfig::load(Some(&path), &[]).unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    // Every key in the file is its default value, spelled as the table spells it; so
    // the loaded config equals the defaults once `raw` (what was set) is set aside.
    for (key, value) in &c.raw {
        let def = crate::config::defs::broker_def(key).unwrap();
        assert_eq!(
            def.default,
            Some(value.as_str()),
            "{key} in server.properties"
        );
    }
    let mut without_raw = c.clone();
    without_raw.raw.clear();
    assert_eq!(without_raw, BrokerConfig::default());
    // It documents every setting that has a default.
    for def in crate::config::CONFIG_DEFS
        .iter()
        .filter(|d| d.default.is_some())
    {
        assert!(
            c.raw.contains_key(def.name),
            "{} missing from server.properties",
            def.name
        );
    }
}

#[test]
fn metrics_http_listener_defaults_to_loopback_and_empty_turns_it_off() {
    let c = load("").unwrap().0;
    assert_eq!(
        c.metrics_http_listener,
        Some("127.0.0.1:9644".parse().unwrap())
    );
    let off = load("metrics.http.listener=").unwrap().0;
    assert_eq!(off.metrics_http_listener, None);
    let port0 = load("metrics.http.listener=localhost:0").unwrap().0;
    assert_eq!(
        port0.metrics_http_listener,
        Some("127.0.0.1:0".parse().unwrap())
    );
    let v6 = load("metrics.http.listener=[::1]:9000").unwrap().0;
    assert_eq!(
        v6.metrics_http_listener,
        Some("[::1]:9000".parse().unwrap())
    );
    for bad in ["9644", "example.com:80", "127.0.0.1:99999", "127.0.0.1"] {
        let err = load(&format!("metrics.http.listener={bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.http.listener") && err.contains("IP:PORT"),
            "{bad}: {err}"
        );
    }
}
