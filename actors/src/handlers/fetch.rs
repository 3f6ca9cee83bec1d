//! Fetch: record batches straight from segment files to the socket.
//!
//! Each partition's read goes to its `Log` actor, which answers with a file region
//! (never a copy of the records), bounded by the high watermark the partition leader
//! publishes; a read at the log's end (a consumer or follower reading along) is
//! answered here from the log's tail index, the same region without the round trip.
//! The response envelope is encoded around those regions and the connection sends
//! them with `sendfile(2)`. If fewer than `min_bytes` are available the request
//! waits, up to `max_wait_ms`, for any of its partitions' high watermarks to move.

use crate::broker::BrokerContext;
use crate::errors::*;
use crate::log::messages::Read;
use crate::partition::messages::ReplicaFetch;
use crate::supervisor::RoutingTable;
use futures_util::future::{join_all, ready, select_all, Either};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::protocol::EncodedFetch;
use troupe::storage::{FileRegion, StorageError};

pub async fn handle(
    req: FetchRequest,
    correlation_id: i32,
    version: i16,
    ctx: &BrokerContext,
) -> Result<EncodedFetch, String> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    loop {
        let routes = ctx.routes();
        let selector = ctx
            .config
            .rack_aware_replica_selector
            .then_some(ctx.config.node_id);
        let round = read_round(&req, version, &routes, selector, &ctx.metrics).await;
        let done = round.bytes >= req.min_bytes.max(0) as u64
            || round.any_error
            || req.max_wait_ms <= 0
            || tokio::time::Instant::now() >= deadline;
        if done {
            round.count(&ctx.metrics);
            return troupe::protocol::encode_fetch_response(
                correlation_id,
                version,
                &round.response,
                &round.regions,
            )
            .map_err(|e| e.to_string());
        }
        let mut watchers = round.watchers;
        if watchers.is_empty() {
            tokio::time::sleep_until(deadline).await;
        } else {
            let any = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            let _ = tokio::time::timeout_at(deadline, any).await;
        }
    }
}

struct Round {
    response: FetchResponse,
    regions: Vec<Vec<Option<FileRegion>>>,
    bytes: u64,
    any_error: bool,
    watchers: Vec<watch::Receiver<crate::partition::PartitionState>>,
    /// Bytes read per topic for consumers, and for followers: counted only for the
    /// round that is answered (a long poll may read again).
    sent: Vec<(Arc<crate::metrics::TopicMetrics>, u64)>,
    replication_bytes: u64,
    /// Error codes answered, and the topics of the partitions that got them.
    errors: Vec<i16>,
    failed: Vec<Arc<crate::metrics::TopicMetrics>>,
}

impl Round {
    fn count(&self, metrics: &crate::metrics::Metrics) {
        for (t, n) in &self.sent {
            t.bytes_out.inc_by(*n);
        }
        if self.replication_bytes > 0 {
            metrics.replication_bytes_out.inc_by(self.replication_bytes);
        }
        for t in &self.failed {
            t.failed_fetch_requests.inc();
        }
        for code in &self.errors {
            metrics.count_error(FETCH_API_KEY, *code);
        }
    }
}

const FETCH_API_KEY: i16 = kafka_protocol::messages::ApiKey::Fetch as i16;

/// KIP-392: where a consumer in `client_rack` should read a partition this node
/// leads: an in-sync, live replica in its rack (`None`: here, the leader).
fn preferred_replica(
    routes: &RoutingTable,
    topic: &str,
    partition: i32,
    node_id: i32,
    client_rack: &str,
) -> Option<i32> {
    let image = &routes.image;
    let p = image.topics.get(topic)?.partitions.get(&partition)?;
    let rack = |id: i32| image.brokers.get(&id).and_then(|b| b.rack.as_deref());
    if client_rack.is_empty() || rack(node_id) == Some(client_rack) {
        return None;
    }
    p.isr
        .iter()
        .copied()
        .filter(|r| *r != node_id && image.is_live(*r) && rack(*r) == Some(client_rack))
        .min()
}

/// What one partition of a round still needs after its checks.
enum Step {
    /// Answered without reading: this error code (`NONE` for nothing to read).
    Answer(i16),
    /// Read from the log: the fetch offset, the exclusive bound (high watermark or log
    /// end) and the partition's own byte limit.
    Read {
        offset: i64,
        max_offset: i64,
        partition_max: u64,
    },
}

/// A partition's read: answered at once from the log's tail when it holds the
/// offset (a consumer or follower reading along), else by the log actor.
fn read_log(
    route: &crate::supervisor::PartitionRoute,
    read: Read,
    from_tail: &prometheus::IntCounter,
    from_log: &prometheus::IntCounter,
) -> impl std::future::Future<
    Output = Result<Result<troupe::storage::ReadInfo, StorageError>, actix::MailboxError>,
> {
    match route.tail.read(
        read.offset,
        read.max_bytes,
        read.max_offset,
        read.min_one_batch,
    ) {
        Some(info) => {
            from_tail.inc();
            Either::Left(ready(Ok(Ok(info))))
        }
        None => {
            from_log.inc();
            Either::Right(route.log.send(read))
        }
    }
}

/// One partition of the response being built.
struct Slot<'a> {
    topic: usize,
    data: PartitionData,
    route: Option<&'a crate::supervisor::PartitionRoute>,
    step: Step,
}

/// `selector`: this node's id when `replica.selector.class` is the rack-aware one.
///
/// The partitions' reads go to their log actors all at once (one wake-up of the
/// storage thread for the round instead of a round trip per partition), then are
/// taken in request order against the request's byte budget exactly as reading them
/// one after another would: each is asked with `min_one_batch` and the budget the
/// round started with; a region that only the first-batch rule let through is
/// dropped when an earlier partition already returned bytes, and a partition whose
/// budget has shrunk below what it was asked with is read again, alone.
async fn read_round(
    req: &FetchRequest,
    version: i16,
    routes: &Arc<RoutingTable>,
    selector: Option<i32>,
    metrics: &crate::metrics::Metrics,
) -> Round {
    let from_tail = metrics.fetch_reads.with_label_values(&["tail"]);
    let from_log = metrics.fetch_reads.with_label_values(&["log"]);
    let read_partition = |route, read| read_log(route, read, &from_tail, &from_log);
    let replica_id = req.replica_id.0.max(req.replica_state.replica_id.0);
    let is_replica = replica_id >= 0;
    // Consumers that send their rack (v11+) may read from followers, up to the
    // follower's high watermark (Kafka serves them whether or not it points them there).
    let follower_read = !is_replica && version >= 11;
    let mut budget = if req.max_bytes > 0 {
        req.max_bytes as u64
    } else {
        u64::MAX
    };
    let mut round = Round {
        response: FetchResponse::default(),
        regions: Vec::with_capacity(req.topics.len()),
        bytes: 0,
        any_error: false,
        watchers: Vec::new(),
        sent: Vec::new(),
        replication_bytes: 0,
        errors: Vec::new(),
        failed: Vec::new(),
    };
    let mut slots: Vec<Slot<'_>> = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let name: Option<String> = if version >= 13 {
            routes.topic_name(&topic.topic_id).map(str::to_string)
        } else {
            Some(topic.topic.0.as_str().to_string())
        };
        for p in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
            let route = name
                .as_deref()
                .and_then(|n| routes.partition(n, p.partition));
            let step = match (name.as_deref(), route) {
                (None, _) => Step::Answer(UNKNOWN_TOPIC_ID),
                (Some(n), None) => Step::Answer(routes.unrouted_code(n, p.partition)),
                (Some(_), Some(route)) => {
                    let mut rx = route.state.clone();
                    let mut state = *rx.borrow_and_update();
                    // A follower's fetch: its fetch offset is its progress at the
                    // leader, unless its log diverged (then it learns where to cut).
                    let mut replica_check = None;
                    if is_replica {
                        let asked = ReplicaFetch {
                            replica_id,
                            fetch_offset: p.fetch_offset,
                            current_leader_epoch: p.current_leader_epoch,
                            last_fetched_epoch: p.last_fetched_epoch,
                        };
                        replica_check = Some(match route.leader.send(asked).await {
                            Ok(r) => r,
                            Err(_) => Err(NOT_LEADER_OR_FOLLOWER),
                        });
                        state = *rx.borrow_and_update();
                    }
                    round.watchers.push(rx);
                    let max_offset = if is_replica {
                        state.log_end_offset
                    } else {
                        state.high_watermark
                    };
                    data = data
                        .with_high_watermark(state.high_watermark)
                        .with_last_stable_offset(state.high_watermark)
                        .with_log_start_offset(state.log_start_offset);
                    if let Some(check) = replica_check.filter(|c| !matches!(c, Ok(None))) {
                        match check {
                            Ok(Some((epoch, end_offset))) => {
                                data.diverging_epoch = EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end_offset);
                                // Answer now: the follower must truncate first.
                                round.any_error = true;
                                Step::Answer(NONE)
                            }
                            Err(code) => Step::Answer(code),
                            Ok(None) => Step::Answer(NONE),
                        }
                    } else if let Some(code) = if follower_read {
                        state.check_read_epoch(p.current_leader_epoch)
                    } else {
                        state.check_leader_epoch(p.current_leader_epoch)
                    } {
                        Step::Answer(code)
                    } else if let Some(preferred) = selector
                        .filter(|_| follower_read && state.is_leader)
                        .and_then(|node| {
                            let topic = name.as_deref().unwrap_or("");
                            preferred_replica(
                                routes,
                                topic,
                                p.partition,
                                node,
                                req.rack_id.as_str(),
                            )
                        })
                    {
                        // Sent elsewhere: no records here, answer at once.
                        data = data.with_preferred_read_replica(
                            kafka_protocol::messages::BrokerId(preferred),
                        );
                        round.any_error = true;
                        Step::Answer(NONE)
                    } else if p.fetch_offset == max_offset && p.fetch_offset <= state.log_end_offset
                    {
                        // Caught up: nothing to read, no actor hop.
                        Step::Answer(NONE)
                    } else {
                        Step::Read {
                            offset: p.fetch_offset,
                            max_offset,
                            partition_max: p.partition_max_bytes.max(0) as u64,
                        }
                    }
                }
            };
            slots.push(Slot {
                topic: t,
                data,
                route,
                step,
            });
        }
        round.response.responses.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(super::sb(name.as_deref().unwrap_or(""))))
                .with_topic_id(topic.topic_id),
        );
        round.regions.push(Vec::new());
    }

    // Every read at once, each with the budget the round starts with.
    let start_budget = budget;
    let asked = move |partition_max: u64| partition_max.min(start_budget) as usize;
    let reads = slots
        .iter()
        .filter_map(|slot| match (&slot.step, slot.route) {
            (
                Step::Read {
                    offset,
                    max_offset,
                    partition_max,
                },
                Some(route),
            ) => {
                let read = Read {
                    offset: *offset,
                    max_bytes: asked(*partition_max),
                    max_offset: *max_offset,
                    min_one_batch: true,
                };
                Some(read_partition(route, read))
            }
            _ => None,
        });
    let mut answers = join_all(reads).await.into_iter();

    for slot in slots {
        let Slot {
            topic,
            mut data,
            route,
            step,
        } = slot;
        let mut region = None;
        let code = match (step, route) {
            (Step::Answer(code), _) => code,
            (
                Step::Read {
                    offset,
                    max_offset,
                    partition_max,
                },
                Some(route),
            ) => {
                let answer = answers.next().expect("one answer per read");
                let max_bytes = partition_max.min(budget) as usize;
                // Kafka's rule: the first partition with data returns at least one
                // whole batch even if it exceeds the limits, so a large batch can
                // never stall a consumer.
                let min_one_batch = round.bytes == 0;
                let answer = if max_bytes == asked(partition_max) {
                    answer.map(|r| {
                        r.map(|mut info| {
                            // Asked with `min_one_batch`: a region larger than the
                            // budget is the first batch alone, which only that rule
                            // lets through.
                            if !min_one_batch
                                && info
                                    .region
                                    .as_ref()
                                    .is_some_and(|r| r.len > max_bytes as u64)
                            {
                                info.region = None;
                            }
                            info
                        })
                    })
                } else {
                    let read = Read {
                        offset,
                        max_bytes,
                        max_offset,
                        min_one_batch,
                    };
                    read_partition(route, read).await
                };
                match answer {
                    Ok(Ok(info)) => {
                        data = data.with_log_start_offset(info.log_start_offset);
                        if let Some(r) = info.region {
                            if is_replica {
                                round.replication_bytes += r.len;
                            } else {
                                round.sent.push((route.metrics.clone(), r.len));
                            }
                            round.bytes += r.len;
                            budget = budget.saturating_sub(r.len);
                            region = Some(r);
                        }
                        NONE
                    }
                    Ok(Err(e @ StorageError::OffsetOutOfRange { .. })) => {
                        tracing::debug!(error = %e, "fetch out of range");
                        OFFSET_OUT_OF_RANGE
                    }
                    Ok(Err(e)) => e.kafka_error_code(),
                    Err(_) => NOT_LEADER_OR_FOLLOWER,
                }
            }
            // Reads are planned for routed partitions only (and none was sent for this).
            (Step::Read { .. }, None) => NOT_LEADER_OR_FOLLOWER,
        };
        if code != NONE {
            round.any_error = true;
            round.errors.push(code);
            if let Some(r) = route {
                round.failed.push(r.metrics.clone());
            }
        }
        data = data.with_error_code(code);
        if region.is_none() {
            data = data.with_records(Some(bytes::Bytes::new()));
        }
        round.response.responses[topic].partitions.push(data);
        round.regions[topic].push(region);
    }
    round
}
