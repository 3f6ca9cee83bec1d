//! The `ReplicaFetcher`: one per source broker, copying every partition this broker
//! follows from that leader with Kafka's Fetch API, as Kafka's replica fetcher thread
//! does (one connection and one request for all of them, not one per partition).
//!
//! Each round asks, for every followed partition, from its log end offset with the
//! leader epoch it follows (`current_leader_epoch`) and the epoch of its last batch
//! (`last_fetched_epoch`, so the leader can answer a diverging epoch); `replica_id` is
//! this broker. What comes back goes to the partition's actor ([`FromLeader`]), which
//! appends the batches as they are, truncates, or restarts its log, and learns the
//! leader's high watermark. A fetch waits at the leader up to
//! `replica.fetch.wait.max.ms` for `replica.fetch.min.bytes`; a failed one (connection,
//! every partition refused) pauses `replica.fetch.backoff.ms`.

use crate::client::BrokerConnection;
use crate::partition::messages::{FromLeader, LeaderAnswer};
use crate::partition::{PartitionActor, PartitionState};
use actix::prelude::*;
use futures_util::future::join_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use uuid::Uuid;

/// Fetch v12: topics by name, `last_fetched_epoch` and diverging epochs (KIP-595/320),
/// `replica_id` in the request body (moved to `replica_state` in v15).
const FETCH_VERSION: i16 = 12;
/// Longest an answer may take beyond the fetch's own wait.
const ANSWER_SLACK: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A partition that the leader refused (not leader yet, epoch not known yet) is asked
/// for again after this; the metadata that fixes it arrives in the meantime.
const REFUSED_RETRY: Duration = Duration::from_millis(100);

/// A partition to fetch, with its actor and the state it publishes.
#[derive(Clone)]
pub struct FetchedPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub actor: Addr<PartitionActor>,
    pub state: watch::Receiver<PartitionState>,
}

/// Replace the set of partitions fetched (empty: stop fetching; the actor then ends
/// once its owner drops it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPartitions(pub Vec<FetchedPartition>);

pub struct ReplicaFetcher {
    config: Arc<BrokerConfig>,
    leader: i32,
    endpoint: String,
    partitions: watch::Sender<Arc<Vec<FetchedPartition>>>,
    /// Restarts are counted there (`None` in tests without one).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ReplicaFetcher {
    pub fn new(config: Arc<BrokerConfig>, leader: i32, endpoint: String) -> Self {
        ReplicaFetcher {
            config,
            leader,
            endpoint,
            partitions: watch::channel(Arc::new(Vec::new())).0,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl Actor for ReplicaFetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let run = Run {
            config: self.config.clone(),
            leader: self.leader,
            endpoint: self.endpoint.clone(),
            partitions: self.partitions.subscribe(),
            conn: None,
        };
        ctx.spawn(run.run().into_actor(self));
    }
}

impl Supervised for ReplicaFetcher {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(leader = self.leader, "replica fetcher restarting");
        if let Some(m) = &self.metrics {
            m.actor_restarted(crate::metrics::ActorKind::ReplicaFetcher);
        }
    }
}

impl Handler<SetPartitions> for ReplicaFetcher {
    type Result = ();
    fn handle(&mut self, msg: SetPartitions, ctx: &mut Context<Self>) {
        let stop = msg.0.is_empty();
        self.partitions.send_replace(Arc::new(msg.0));
        if stop {
            // Ending the loop: the actor has nothing left to do.
            ctx.terminate();
        }
    }
}

/// The fetch loop's own state (a future spawned in the actor's context).
struct Run {
    config: Arc<BrokerConfig>,
    leader: i32,
    endpoint: String,
    partitions: watch::Receiver<Arc<Vec<FetchedPartition>>>,
    /// Dropped after any failed exchange (it may be out of step) and made again.
    conn: Option<BrokerConnection>,
}

/// What one round asked of one partition.
struct Asked {
    part: FetchedPartition,
    fetch_offset: i64,
    leader_epoch: i32,
}

impl Run {
    async fn run(mut self) {
        let backoff = Duration::from_millis(self.config.replica_fetch_backoff_ms.max(10));
        loop {
            let parts = self.partitions.borrow_and_update().clone();
            if parts.is_empty() {
                if self.partitions.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let asked: Vec<Asked> = parts
                .iter()
                .filter_map(|p| {
                    let s = *p.state.borrow();
                    (s.online && !s.is_leader && s.leader_epoch >= 0).then(|| Asked {
                        part: p.clone(),
                        fetch_offset: s.log_end_offset,
                        leader_epoch: s.leader_epoch,
                    })
                })
                .collect();
            if asked.is_empty() {
                // Partitions still loading or not yet following: wait for a change.
                tokio::time::sleep(REFUSED_RETRY).await;
                continue;
            }
            let latest: Vec<i32> = asked
                .iter()
                .map(|a| a.part.state.borrow().latest_epoch)
                .collect();
            match self.fetch(&asked, &latest).await {
                Ok(resp) => {
                    if !self.deliver(asked, resp).await {
                        tokio::time::sleep(REFUSED_RETRY).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(leader = self.leader, endpoint = %self.endpoint, error = %e,
                        retry_in_ms = backoff.as_millis() as u64, "replica fetch failed");
                    self.conn = None;
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// One Fetch round trip.
    async fn fetch(&mut self, asked: &[Asked], latest: &[i32]) -> std::io::Result<FetchResponse> {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (a, last_epoch) in asked.iter().zip(latest) {
            let fp = FetchPartition::default()
                .with_partition(a.part.partition)
                .with_current_leader_epoch(a.leader_epoch)
                .with_fetch_offset(a.fetch_offset)
                .with_last_fetched_epoch(*last_epoch)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.replica_fetch_max_bytes);
            match topics.last_mut() {
                Some(t) if t.topic.0.as_str() == a.part.topic => t.partitions.push(fp),
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(a.part.topic.clone())))
                        .with_topic_id(a.part.topic_id)
                        .with_partitions(vec![fp]),
                ),
            }
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(self.config.node_id))
            .with_max_wait_ms(self.config.replica_fetch_wait_max_ms)
            .with_min_bytes(self.config.replica_fetch_min_bytes)
            .with_max_bytes(self.config.replica_fetch_response_max_bytes)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics);
        if self.conn.is_none() {
            let client_id = format!("broker-{}-fetcher", self.config.node_id);
            let conn = BrokerConnection::connect_raw(&self.endpoint, &client_id, CONNECT_TIMEOUT)
                .await
                .map_err(std::io::Error::other)?;
            self.conn = Some(conn);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let wait = Duration::from_millis(self.config.replica_fetch_wait_max_ms.max(0) as u64);
        let resp = conn
            .send_timeout(&req, FETCH_VERSION, wait + ANSWER_SLACK)
            .await
            .map_err(std::io::Error::other)?;
        if resp.error_code != 0 {
            return Err(std::io::Error::other(format!(
                "fetch refused with error {}",
                resp.error_code
            )));
        }
        Ok(resp)
    }

    /// Hand each partition its answer; false when no partition made progress (every
    /// one refused or in error), so the loop pauses before asking again.
    async fn deliver(&mut self, asked: Vec<Asked>, resp: FetchResponse) -> bool {
        let mut sends = Vec::new();
        let mut any_ok = false;
        for t in resp.responses {
            for p in t.partitions {
                let Some(a) = asked.iter().find(|a| {
                    a.part.topic == t.topic.0.as_str() && a.part.partition == p.partition_index
                }) else {
                    continue;
                };
                let answer = match p.error_code {
                    0 if p.diverging_epoch.epoch >= 0 || p.diverging_epoch.end_offset >= 0 => {
                        LeaderAnswer::Diverging {
                            epoch: p.diverging_epoch.epoch,
                            end_offset: p.diverging_epoch.end_offset,
                        }
                    }
                    0 => LeaderAnswer::Records {
                        records: p.records.unwrap_or_default(),
                        high_watermark: p.high_watermark,
                        log_start_offset: p.log_start_offset,
                    },
                    1 if p.log_start_offset >= 0 => LeaderAnswer::OutOfRange {
                        log_start_offset: p.log_start_offset,
                        high_watermark: p.high_watermark,
                    },
                    code => {
                        tracing::debug!(leader = self.leader, topic = %a.part.topic,
                            partition = a.part.partition, code, "leader refused a replica fetch");
                        continue;
                    }
                };
                any_ok = true;
                sends.push(a.part.actor.send(FromLeader {
                    leader_epoch: a.leader_epoch,
                    fetch_offset: a.fetch_offset,
                    answer,
                }));
            }
        }
        for r in join_all(sends).await {
            if !matches!(r, Ok(Ok(()))) {
                tracing::debug!(
                    leader = self.leader,
                    "a followed partition did not take its answer"
                );
            }
        }
        any_ok
    }
}
