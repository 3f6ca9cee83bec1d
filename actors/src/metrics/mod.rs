//! Operations: the broker's Prometheus metrics, its health endpoints and its status
//! page, served by one small HTTP listener (`metrics.http.listener`).
//!
//! * [`Metrics`] is one broker's registry (a process may run several brokers in
//!   tests). Metrics carry Kafka's JMX names flattened the way the Prometheus JMX
//!   exporter flattens them (`kafka_server_brokertopicmetrics_bytes_in_total`), so
//!   dashboards made for Kafka carry over.
//! * Hot paths never look a metric up: per-topic counters ([`TopicMetrics`]) are
//!   resolved once per topic and travel in the routing table and the partition actor;
//!   per-API request metrics are resolved once per API key. An update is an atomic add.
//! * Gauges that describe state owned elsewhere (partition counts, group states,
//!   consumer lag, connections) are read from their owners when scraped
//!   ([`scrape`]), as Kafka's gauges are.
//! * [`http`] serves `/metrics`, `/health/live`, `/health/ready` and `/` ([`status`]).

pub mod http;
pub mod process;
pub mod scrape;
pub mod status;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use troupe::metadata::MetadataImage;
use troupe::metadata::MetadataRecord;

/// Request latency buckets, in seconds: 100 µs to 10 s (a long-polling fetch waits
/// up to its max.wait.ms, 500 ms by default).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// API keys go up to 80-odd in Kafka 4; anything beyond is not a request we serve.
const MAX_API_KEY: usize = 128;

/// The kinds of supervised actor whose restarts are counted.
#[derive(Clone, Copy, Debug)]
pub enum ActorKind {
    BrokerSupervisor,
    Controller,
    Gateway,
    GroupCoordinator,
    GroupManager,
    Log,
    Partition,
    ReplicaFetcher,
}

impl ActorKind {
    const ALL: [ActorKind; 8] = [
        ActorKind::BrokerSupervisor,
        ActorKind::Controller,
        ActorKind::Gateway,
        ActorKind::GroupCoordinator,
        ActorKind::GroupManager,
        ActorKind::Log,
        ActorKind::Partition,
        ActorKind::ReplicaFetcher,
    ];

    fn label(self) -> &'static str {
        match self {
            ActorKind::BrokerSupervisor => "broker_supervisor",
            ActorKind::Controller => "controller",
            ActorKind::Gateway => "gateway",
            ActorKind::GroupCoordinator => "group_coordinator",
            ActorKind::GroupManager => "group_manager",
            ActorKind::Log => "log",
            ActorKind::Partition => "partition",
            ActorKind::ReplicaFetcher => "replica_fetcher",
        }
    }
}

/// A topic's counters, resolved once (creating a partition, publishing routes) and
/// shared by everything that serves the topic.
pub struct TopicMetrics {
    pub messages_in: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub failed_produce_requests: IntCounter,
    pub failed_fetch_requests: IntCounter,
}

/// One API's request metrics (Kafka's RequestMetrics: `request=Produce`, ...).
pub struct ApiMetrics {
    requests: IntCounter,
    /// From the frame being complete to the response written.
    total_time: Histogram,
    /// From the frame being complete to its handler starting.
    request_queue_time: Histogram,
    /// The handler's own time (Kafka's local plus remote time: waiting on partition
    /// actors and acks=all replication included).
    local_time: Histogram,
    /// From the handler finishing to the writer taking the response (the responses
    /// ahead of it on the connection).
    response_queue_time: Histogram,
    response_send_time: Histogram,
}

/// When a request passed each stage, for its [`ApiMetrics`].
#[derive(Clone, Copy)]
pub struct RequestTiming {
    /// The API key, when the frame decoded.
    pub api: Option<i16>,
    pub received: Instant,
    pub started: Instant,
    pub handled: Instant,
}

pub struct Metrics {
    /// What every node exports: controller, Raft and supervision metrics.
    pub registry: Registry,
    /// What only a broker exports (topics, requests, replicas, logs, groups,
    /// connections). A controller-only node still counts into these (its supervisor
    /// shares the broker's code) but does not export them: it serves no client.
    broker_registry: Registry,
    /// Whether [`Metrics::encode`] includes `broker_registry`.
    is_broker: bool,
    messages_in: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    failed_produce: IntCounterVec,
    failed_fetch: IntCounterVec,
    pub replication_bytes_out: IntCounter,
    pub replication_bytes_in: IntCounter,
    /// Partition reads of Fetch requests, by where they were answered: `tail` (the
    /// log's tail index, on the request's thread) or `log` (the log actor).
    pub fetch_reads: IntCounterVec,
    /// Leader appends by the thread that made them (`LogPort::try_append` or the log
    /// actor): `troupe_log_leader_appends_total{thread="request"|"storage"}`, resolved
    /// once since they are counted on the produce path.
    pub appends_on_request_thread: IntCounter,
    pub appends_on_storage_thread: IntCounter,
    /// Times appends on the request thread were paused after one stalled.
    pub inline_append_pauses: IntCounter,
    topics: Mutex<HashMap<String, Arc<TopicMetrics>>>,

    requests: IntCounterVec,
    total_time: HistogramVec,
    request_queue_time: HistogramVec,
    local_time: HistogramVec,
    response_queue_time: HistogramVec,
    response_send_time: HistogramVec,
    errors: IntCounterVec,
    apis: Vec<OnceLock<ApiMetrics>>,
    error_counters: Mutex<HashMap<(i16, i16), IntCounter>>,

    pub isr_shrinks: IntCounter,
    pub isr_expands: IntCounter,
    pub under_replicated_partitions: IntGauge,
    pub under_min_isr_partitions: IntGauge,
    pub at_min_isr_partitions: IntGauge,
    pub offline_replicas: IntGauge,
    pub partition_count: IntGauge,
    pub leader_count: IntGauge,

    pub active_controller: IntGauge,
    pub controller_epoch: IntGauge,
    pub offline_partitions: IntGauge,
    pub leader_elections: IntCounter,
    pub unclean_leader_elections: IntCounter,
    pub metadata_offset: IntGauge,

    /// Kafka's raft-metrics (`current-state` is a string there: here one series per
    /// state, 1 for the current one).
    pub raft_state: IntGaugeVec,
    pub raft_leader: IntGauge,
    pub raft_epoch: IntGauge,
    pub raft_high_watermark: IntGauge,
    pub raft_log_end_offset: IntGauge,
    /// Requests this node forwarded to the active controller, and the connections it
    /// opened for them (reused: far fewer than requests).
    pub forwarded_requests: IntCounter,
    pub forward_connections: IntCounter,

    pub log_size: IntGaugeVec,
    pub log_segments: IntGaugeVec,
    pub log_flush_time: Histogram,

    pub groups: IntGaugeVec,
    pub rebalances: IntCounter,
    pub consumer_lag: IntGaugeVec,
    pub consumer_offset: IntGaugeVec,

    pub connections: IntGauge,
    pub connections_created: IntCounter,
    pub network_thread_connections: IntGaugeVec,
    pub request_bytes_in_flight: IntGauge,

    restarts: IntCounterVec,
    /// `process_*`: CPU, memory, file descriptors, threads (every node).
    pub process: process::ProcessMetrics,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(g.clone()))
        .expect("each metric is registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = Histogram::with_opts(opts).expect("valid metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("each metric is registered once");
    h
}

fn histogram_vec(registry: &Registry, name: &str, help: &str) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, &["request"]).expect("valid metric definition");
    registry
        .register(Box::new(h.clone()))
        .expect("each metric is registered once");
    h
}

impl Metrics {
    // The names and labels are constants of this function: registering them cannot
    // fail except by a programming error, which the first test that starts a broker
    // shows (hence the `expect`s in the helpers above).
    pub fn new() -> Arc<Self> {
        Self::build(true)
    }

    /// A controller-only node's registry: no broker metric is exported.
    pub fn controller_only() -> Arc<Self> {
        Self::build(false)
    }

    fn build(is_broker: bool) -> Arc<Self> {
        let r = Registry::new();
        let b = Registry::new();
        let topic = &["topic"];
        let leader_appends = counter_vec(&b, "troupe_log_leader_appends_total",
            "Leader appends: thread=request made on the request's thread (they only wrote), thread=storage by the log actor (rolls, flushes, recompression, or while the log was busy).", &["thread"]);
        let m = Metrics {
            messages_in: counter_vec(&b, "kafka_server_brokertopicmetrics_messages_in_total",
                "Records appended by this broker as partition leader (Kafka MessagesInPerSec).", topic),
            bytes_in: counter_vec(&b, "kafka_server_brokertopicmetrics_bytes_in_total",
                "Bytes of record batches produced to partitions this broker leads (BytesInPerSec).", topic),
            bytes_out: counter_vec(&b, "kafka_server_brokertopicmetrics_bytes_out_total",
                "Bytes of record batches sent to consumers, replication excluded (BytesOutPerSec).", topic),
            failed_produce: counter_vec(&b, "kafka_server_brokertopicmetrics_failed_produce_requests_total",
                "Partition produces answered with an error (FailedProduceRequestsPerSec).", topic),
            failed_fetch: counter_vec(&b, "kafka_server_brokertopicmetrics_failed_fetch_requests_total",
                "Partition fetches answered with an error (FailedFetchRequestsPerSec).", topic),
            replication_bytes_out: counter(&b, "kafka_server_brokertopicmetrics_replication_bytes_out_total",
                "Bytes of record batches sent to follower replicas (ReplicationBytesOutPerSec)."),
            replication_bytes_in: counter(&b, "kafka_server_brokertopicmetrics_replication_bytes_in_total",
                "Bytes of record batches appended as a follower (ReplicationBytesInPerSec)."),
            fetch_reads: counter_vec(&b, "troupe_fetch_partition_reads_total",
                "Partition reads of Fetch requests: source=tail answered from the log's last batches without the log actor, source=log by it.", &["source"]),
            appends_on_request_thread: leader_appends.with_label_values(&["request"]),
            appends_on_storage_thread: leader_appends.with_label_values(&["storage"]),
            inline_append_pauses: counter(&b, "troupe_log_inline_append_pauses_total",
                "Times an append on the request's thread blocked in the kernel for 2 ms or more (e.g. in page-cache write-back) and appends went to the storage thread for the next 10 s."),
            topics: Mutex::default(),

            requests: counter_vec(&b, "kafka_network_requestmetrics_requests_total",
                "Requests answered, by API (RequestsPerSec).", &["request"]),
            total_time: histogram_vec(&b, "kafka_network_requestmetrics_total_time_seconds",
                "From the request being read to its response written (TotalTimeMs)."),
            request_queue_time: histogram_vec(&b, "kafka_network_requestmetrics_request_queue_time_seconds",
                "From the request being read to its handler starting (RequestQueueTimeMs)."),
            local_time: histogram_vec(&b, "kafka_network_requestmetrics_local_time_seconds",
                "Time in the handler, waiting for partitions and replication included (LocalTimeMs + RemoteTimeMs)."),
            response_queue_time: histogram_vec(&b, "kafka_network_requestmetrics_response_queue_time_seconds",
                "From the handler finishing to the connection writing its response (ResponseQueueTimeMs)."),
            response_send_time: histogram_vec(&b, "kafka_network_requestmetrics_response_send_time_seconds",
                "Writing the response to the socket (ResponseSendTimeMs)."),
            errors: counter_vec(&b, "kafka_network_requestmetrics_errors_total",
                "Error codes in responses, by API and Kafka error name (ErrorsPerSec, NONE not counted).",
                &["request", "error"]),
            apis: (0..MAX_API_KEY).map(|_| OnceLock::new()).collect(),
            error_counters: Mutex::default(),

            isr_shrinks: counter(&b, "kafka_server_replicamanager_isr_shrinks_total",
                "ISR shrinks committed for partitions this broker leads (IsrShrinksPerSec)."),
            isr_expands: counter(&b, "kafka_server_replicamanager_isr_expands_total",
                "ISR expansions committed for partitions this broker leads (IsrExpandsPerSec)."),
            under_replicated_partitions: gauge(&b, "kafka_server_replicamanager_under_replicated_partitions",
                "Partitions this broker leads whose ISR is smaller than their replica set."),
            under_min_isr_partitions: gauge(&b, "kafka_server_replicamanager_under_min_isr_partition_count",
                "Partitions this broker leads whose ISR is below min.insync.replicas."),
            at_min_isr_partitions: gauge(&b, "kafka_server_replicamanager_at_min_isr_partition_count",
                "Partitions this broker leads whose ISR is exactly min.insync.replicas."),
            offline_replicas: gauge(&b, "kafka_server_replicamanager_offline_replica_count",
                "Replicas hosted here whose log is not open (loading, or failed to open)."),
            partition_count: gauge(&b, "kafka_server_replicamanager_partition_count",
                "Partition replicas hosted by this broker."),
            leader_count: gauge(&b, "kafka_server_replicamanager_leader_count",
                "Partitions this broker leads."),

            active_controller: gauge(&r, "kafka_controller_kafkacontroller_active_controller_count",
                "1 on the active controller, 0 elsewhere."),
            controller_epoch: gauge(&r, "kafka_controller_kafkacontroller_controller_epoch",
                "The controller epoch (Raft term) as this node knows it."),
            offline_partitions: gauge(&r, "kafka_controller_kafkacontroller_offline_partitions_count",
                "Partitions without a live leader, in this node's metadata image."),
            leader_elections: counter(&r, "kafka_controller_controllerstats_leader_elections_total",
                "Partition leader changes committed by this node as active controller (LeaderElectionRateAndTimeMs)."),
            unclean_leader_elections: counter(&r, "kafka_controller_controllerstats_unclean_leader_elections_total",
                "Of those, leaders chosen from outside the ISR (UncleanLeaderElectionsPerSec)."),
            metadata_offset: gauge(&r, "kafka_server_metadata_last_applied_offset",
                "Offset of the last metadata record this node applied."),

            raft_state: gauge_vec(&r, "kafka_server_raft_metrics_current_state",
                "1 for this node's state in the controller quorum (leader, candidate, follower, observer), 0 for the others.",
                &["state"]),
            raft_leader: gauge(&r, "kafka_server_raft_metrics_current_leader",
                "The controller quorum's leader as this node knows it (-1: none)."),
            raft_epoch: gauge(&r, "kafka_server_raft_metrics_current_epoch",
                "The controller quorum's current epoch (Raft term)."),
            raft_high_watermark: gauge(&r, "kafka_server_raft_metrics_high_watermark",
                "Metadata log entries applied by this node (index of the last applied entry + 1)."),
            raft_log_end_offset: gauge(&r, "kafka_server_raft_metrics_log_end_offset",
                "Metadata log entries this node holds (index of the last entry + 1)."),
            forwarded_requests: counter(&r, "troupe_controller_forwarded_requests_total",
                "Controller requests (registration, heartbeats, admin) this node sent to the active controller."),
            forward_connections: counter(&r, "troupe_controller_forward_connections_created_total",
                "Connections this node opened to the active controller to forward requests (kept and reused)."),

            log_size: gauge_vec(&b, "kafka_log_log_size",
                "Bytes of a partition's log segments on this broker (Log Size).", &["topic", "partition"]),
            log_segments: gauge_vec(&b, "kafka_log_log_num_log_segments",
                "Segments of a partition's log on this broker (NumLogSegments).", &["topic", "partition"]),
            log_flush_time: histogram(&b, "kafka_log_logflushstats_log_flush_time_seconds",
                "Time of each log flush (fsync of the unflushed segments and the recovery-point checkpoint) (LogFlushRateAndTimeMs)."),

            groups: gauge_vec(&b, "kafka_coordinator_group_groupmetadatamanager_num_groups",
                "Consumer groups coordinated by this broker, by state.", &["state"]),
            rebalances: counter(&b, "kafka_coordinator_group_rebalances_total",
                "Rebalances completed (a new generation's JoinGroup answered) by this broker's coordinators."),
            consumer_lag: gauge_vec(&b, "kafka_consumergroup_lag",
                "High watermark minus committed offset, per group and partition, computed by the group's coordinator (kafka_exporter's name).",
                &["consumergroup", "topic", "partition"]),
            consumer_offset: gauge_vec(&b, "kafka_consumergroup_current_offset",
                "Committed offset per group and partition (kafka_exporter's name).",
                &["consumergroup", "topic", "partition"]),

            connections: gauge(&b, "kafka_server_socket_server_metrics_connection_count",
                "Client connections open now."),
            connections_created: counter(&b, "kafka_server_socket_server_metrics_connection_creation_total",
                "Client connections accepted since start."),
            network_thread_connections: gauge_vec(&b, "troupe_network_thread_connections",
                "Client connections each network thread serves now (num.network.threads > 1; with 1 the main thread serves them all and this is not set).", &["thread"]),
            request_bytes_in_flight: gauge(&b, "kafka_network_request_bytes_in_flight",
                "Bytes of requests read and not yet answered (against queued.max.request.bytes)."),

            restarts: counter_vec(&r, "troupe_actor_restarts_total",
                "Restarts of supervised actors, by kind.", &["kind"]),
            process: process::ProcessMetrics::register(&r),
            registry: r,
            broker_registry: b,
            is_broker,
        };
        // Every kind exports a series from the start: a restart then shows as an
        // increase from 0, not as a series appearing.
        for kind in ActorKind::ALL {
            let _ = m.restarts.with_label_values(&[kind.label()]);
        }
        Arc::new(m)
    }

    /// The counters of `topic`, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(topic) {
            return t.clone();
        }
        let t = Arc::new(TopicMetrics {
            messages_in: self.messages_in.with_label_values(&[topic]),
            bytes_in: self.bytes_in.with_label_values(&[topic]),
            bytes_out: self.bytes_out.with_label_values(&[topic]),
            failed_produce_requests: self.failed_produce.with_label_values(&[topic]),
            failed_fetch_requests: self.failed_fetch.with_label_values(&[topic]),
        });
        topics.insert(topic.to_string(), t.clone());
        t
    }

    /// Drops the series of topics that are gone (deleted): their counters would
    /// otherwise be exported for ever.
    pub fn retain_topics(&self, keep: impl Fn(&str) -> bool) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.retain(|name, _| {
            if keep(name) {
                return true;
            }
            for v in [
                &self.messages_in,
                &self.bytes_in,
                &self.bytes_out,
                &self.failed_produce,
                &self.failed_fetch,
            ] {
                let _ = v.remove_label_values(&[name]);
            }
            false
        });
    }

    /// A partition's log gauges (its `Log` actor sets them).
    pub fn log_gauges(&self, topic: &str, partition: i32) -> LogGauges {
        let p = partition.to_string();
        LogGauges {
            size: self.log_size.with_label_values(&[topic, p.as_str()]),
            segments: self.log_segments.with_label_values(&[topic, p.as_str()]),
        }
    }

    /// Drops a partition's log gauges once this broker no longer hosts it.
    pub fn forget_log(&self, topic: &str, partition: i32) {
        let p = partition.to_string();
        let _ = self.log_size.remove_label_values(&[topic, p.as_str()]);
        let _ = self.log_segments.remove_label_values(&[topic, p.as_str()]);
    }

    fn api(&self, key: i16) -> Option<&ApiMetrics> {
        let slot = self.apis.get(usize::try_from(key).ok()?)?;
        Some(slot.get_or_init(|| {
            let name = api_name(key);
            ApiMetrics {
                requests: self.requests.with_label_values(&[&name]),
                total_time: self.total_time.with_label_values(&[&name]),
                request_queue_time: self.request_queue_time.with_label_values(&[&name]),
                local_time: self.local_time.with_label_values(&[&name]),
                response_queue_time: self.response_queue_time.with_label_values(&[&name]),
                response_send_time: self.response_send_time.with_label_values(&[&name]),
            }
        }))
    }

    /// A response was written (or dropped, for acks=0): `writing` is when the writer
    /// took it, `now` when it was done.
    pub fn request_done(&self, t: &RequestTiming, writing: Instant, now: Instant) {
        let Some(api) = t.api.and_then(|k| self.api(k)) else {
            return;
        };
        let secs = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
        api.requests.inc();
        api.total_time.observe(secs(t.received, now));
        api.request_queue_time.observe(secs(t.received, t.started));
        api.local_time.observe(secs(t.started, t.handled));
        api.response_queue_time.observe(secs(t.handled, writing));
        api.response_send_time.observe(secs(writing, now));
    }

    /// Counts one error code (not NONE) in a response of API `api`.
    pub fn count_error(&self, api: i16, code: i16) {
        if code == 0 {
            return;
        }
        let mut counters = self
            .error_counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counters
            .entry((api, code))
            .or_insert_with(|| {
                self.errors
                    .with_label_values(&[&api_name(api), &error_name(code)])
            })
            .inc();
    }

    pub fn actor_restarted(&self, kind: ActorKind) {
        self.restarts.with_label_values(&[kind.label()]).inc();
    }

    /// Records elections counted by [`count_elections`], once their records are
    /// committed.
    pub fn elections_committed(&self, (clean, unclean): (u64, u64)) {
        self.leader_elections.inc_by(clean + unclean);
        self.unclean_leader_elections.inc_by(unclean);
    }

    /// The registry in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut families = self.registry.gather();
        if self.is_broker {
            families.extend(self.broker_registry.gather());
            families.sort_by(|a, b| a.name().cmp(b.name()));
        }
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

/// (clean, unclean) leader elections in `records`, about to be committed by the active
/// controller over `image`: a partition record whose leader differs from the one it
/// replaces (unclean when the new leader was not in the old ISR). New partitions and
/// partitions left without a leader are not elections.
pub fn count_elections(image: &MetadataImage, records: &[MetadataRecord]) -> (u64, u64) {
    let (mut clean, mut unclean) = (0, 0);
    for r in records {
        let MetadataRecord::Partition {
            topic_id,
            partition,
            leader,
            ..
        } = r
        else {
            continue;
        };
        let id = uuid::Uuid::from_bytes(*topic_id);
        let Some(before) = image
            .topic_by_id(&id)
            .and_then(|t| t.partitions.get(partition))
        else {
            continue;
        };
        if *leader < 0 || *leader == before.leader {
            continue;
        }
        if before.isr.contains(leader) {
            clean += 1;
        } else {
            unclean += 1;
        }
    }
    (clean, unclean)
}

/// A partition's log gauges, held by its `Log` actor.
#[derive(Clone)]
pub struct LogGauges {
    pub size: IntGauge,
    pub segments: IntGauge,
}

/// Kafka's name of an API (`Produce`, `Fetch`, ...), as RequestMetrics labels it.
fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => format!("ApiKey{key}"),
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`): the core crate's one table.
pub use troupe::protocol::error_name;

#[cfg(test)]
mod tests;
