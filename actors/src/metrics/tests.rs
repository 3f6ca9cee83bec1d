use super::*;
use std::collections::BTreeMap;
use troupe::metadata::{PartitionImage, TopicImage};

#[test]
fn error_names_are_kafkas() {
    assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
    assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
    assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    assert_eq!(error_name(0), "NONE");
    assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
}

#[test]
fn topic_counters_are_shared_and_removed_with_the_topic() {
    let m = Metrics::new();
    let a = m.topic("orders");
    a.messages_in.inc_by(3);
    m.topic("orders").bytes_in.inc_by(100);
    let text = m.encode();
    assert!(
        text.contains("kafka_server_brokertopicmetrics_messages_in_total{topic=\"orders\"} 3"),
        "{text}"
    );
    assert!(text.contains("kafka_server_brokertopicmetrics_bytes_in_total{topic=\"orders\"} 100"));
    m.retain_topics(|t| t != "orders");
    assert!(!m.encode().contains("topic=\"orders\""));
}

#[test]
fn request_timing_lands_in_the_apis_histograms_and_errors_by_name() {
    let m = Metrics::new();
    let t0 = Instant::now();
    let ms = std::time::Duration::from_millis;
    let timing = RequestTiming {
        api: Some(0),
        received: t0,
        started: t0 + ms(1),
        handled: t0 + ms(3),
    };
    m.request_done(&timing, t0 + ms(4), t0 + ms(5));
    m.count_error(0, 6);
    m.count_error(0, 6);
    m.count_error(0, 0);
    let text = m.encode();
    assert!(text.contains("kafka_network_requestmetrics_requests_total{request=\"Produce\"} 1"));
    assert!(text.contains(
        "kafka_network_requestmetrics_total_time_seconds_bucket{request=\"Produce\",le=\"0.005\"} 1"
    ));
    assert!(text.contains(
        "kafka_network_requestmetrics_total_time_seconds_bucket{request=\"Produce\",le=\"0.0025\"} 0"
    ));
    assert!(text.contains(
        "kafka_network_requestmetrics_local_time_seconds_sum{request=\"Produce\"} 0.002"
    ));
    assert!(text.contains(
        "kafka_network_requestmetrics_errors_total{error=\"NOT_LEADER_OR_FOLLOWER\",request=\"Produce\"} 2"
    ), "{text}");
    assert!(!text.contains("error=\"NONE\""));
    // A frame that did not decode has no API: nothing is recorded.
    m.request_done(
        &RequestTiming {
            api: None,
            ..timing
        },
        t0,
        t0,
    );
    m.request_done(
        &RequestTiming {
            api: Some(9999),
            ..timing
        },
        t0,
        t0,
    );
    assert!(m
        .encode()
        .contains("kafka_network_requestmetrics_requests_total{request=\"Produce\"} 1"));
}

fn image_with(leader: i32, isr: Vec<i32>) -> (MetadataImage, uuid::Uuid) {
    let id = uuid::Uuid::from_bytes([7; 16]);
    let mut partitions = BTreeMap::new();
    partitions.insert(
        0,
        PartitionImage {
            partition: 0,
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 4,
            partition_epoch: 4,
        },
    );
    let mut image = MetadataImage::default();
    image.topics.insert(
        "t".into(),
        std::sync::Arc::new(TopicImage {
            name: "t".into(),
            topic_id: id,
            partitions,
            configs: BTreeMap::new(),
        }),
    );
    image.topic_names.insert(id, "t".into());
    (image, id)
}

fn partition(id: uuid::Uuid, p: i32, leader: i32, isr: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: *id.as_bytes(),
        partition: p,
        replicas: vec![1, 2, 3],
        isr,
        leader,
        leader_epoch: 5,
        partition_epoch: 5,
    }
}

#[test]
fn elections_are_leader_changes_of_existing_partitions() {
    let (image, id) = image_with(1, vec![1, 2]);
    // ISR change only, same leader: no election.
    assert_eq!(
        count_elections(&image, &[partition(id, 0, 1, vec![1])]),
        (0, 0)
    );
    // From the ISR: clean.
    assert_eq!(
        count_elections(&image, &[partition(id, 0, 2, vec![2])]),
        (1, 0)
    );
    // From outside the ISR: unclean.
    assert_eq!(
        count_elections(&image, &[partition(id, 0, 3, vec![3])]),
        (0, 1)
    );
    // Leaderless: no election; a new partition: not an election either.
    assert_eq!(
        count_elections(&image, &[partition(id, 0, -1, vec![])]),
        (0, 0)
    );
    assert_eq!(
        count_elections(&image, &[partition(id, 1, 1, vec![1])]),
        (0, 0)
    );
    let m = Metrics::new();
    m.elections_committed(count_elections(&image, &[partition(id, 0, 3, vec![3])]));
    assert_eq!(m.leader_elections.get(), 1);
    assert_eq!(m.unclean_leader_elections.get(), 1);
}

#[test]
fn restarts_are_counted_by_kind() {
    let m = Metrics::new();
    m.actor_restarted(ActorKind::Partition);
    m.actor_restarted(ActorKind::Partition);
    m.actor_restarted(ActorKind::Log);
    let text = m.encode();
    assert!(text.contains("troupe_actor_restarts_total{kind=\"partition\"} 2"));
    assert!(text.contains("troupe_actor_restarts_total{kind=\"log\"} 1"));
}

/// Every series the shipped Grafana dashboard queries is one the broker exports.
#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let m = Metrics::new();
    // Labelled families export once they have a series.
    m.topic("t");
    let _ = m.log_gauges("t", 0);
    m.count_error(0, 6);
    m.groups.with_label_values(&["Stable"]).set(1);
    m.consumer_lag.with_label_values(&["g", "t", "0"]).set(1);
    m.consumer_offset.with_label_values(&["g", "t", "0"]).set(1);
    m.actor_restarted(ActorKind::Log);
    m.raft_state.with_label_values(&["leader"]).set(1);
    let t0 = Instant::now();
    m.request_done(
        &RequestTiming {
            api: Some(0),
            received: t0,
            started: t0,
            handled: t0,
        },
        t0,
        t0,
    );
    let exported = m.encode();
    let dashboard = include_str!("../../../config/grafana/troupe-dashboard.json");
    let mut checked = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !(word.starts_with("kafka_") || word.starts_with("troupe_")) {
            continue;
        }
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| word.strip_suffix(s))
            .unwrap_or(word);
        assert!(
            exported.contains(&format!("\n{name}")) || exported.starts_with(name),
            "the dashboard queries {word}, which the broker does not export"
        );
        checked += 1;
    }
    assert!(
        checked > 20,
        "only {checked} metric names found in the dashboard"
    );
}

#[test]
fn a_controller_only_node_exports_no_broker_metric() {
    let m = Metrics::controller_only();
    // Its supervisor shares the broker's code and may count into broker metrics.
    m.topic("t").messages_in.inc();
    let text = m.encode();
    for common in [
        "kafka_controller_kafkacontroller_active_controller_count",
        "kafka_server_raft_metrics_current_epoch",
        "troupe_controller_forwarded_requests_total",
        "troupe_actor_restarts_total",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(common), "{common} missing");
    }
    for broker_only in [
        "kafka_server_brokertopicmetrics",
        "kafka_server_replicamanager",
        "kafka_network_",
        "kafka_server_socket_server_metrics",
        "kafka_coordinator_",
    ] {
        assert!(!text.contains(broker_only), "{broker_only} exported");
    }
    let broker = Metrics::new().encode();
    assert!(broker.contains("kafka_server_replicamanager_partition_count"));
    assert!(broker.contains("kafka_controller_kafkacontroller_active_controller_count"));
    assert!(broker.contains("process_resident_memory_bytes"));
}
