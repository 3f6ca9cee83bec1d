//! What a scrape or the status page reads from the actors that own the state: the
//! metadata image and partition states (routing table), the group coordinators
//! (groups, committed offsets), the connection quotas. Nothing here is cached: each
//! scrape asks the owners, so a gauge is never staler than the scrape.

use super::Metrics;
use crate::broker::BrokerContext;
use crate::controller::raft::QuorumHandle;
use crate::group::messages::{DescribeGroups, FetchOffsets, ListGroups};
use crate::supervisor::RoutingTable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use troupe::ops::{BrokerState, NodeState, Registration};

/// Everything the HTTP listener serves from: what every node has (its config, the
/// metadata it applied, the quorum), and a broker's own context when it is one.
pub struct Ops {
    pub config: Arc<BrokerConfig>,
    pub cluster_id: String,
    pub metrics: Arc<Metrics>,
    /// The routing table, with the metadata image this node applied.
    pub routes: watch::Receiver<Arc<RoutingTable>>,
    /// The active controller (Raft leader) as this node knows it; -1: none.
    pub active_controller: Arc<AtomicI32>,
    /// Cluster mode: this node's place in the controller quorum (voter or learner).
    /// `None` on a single node, where the controller applies each image before
    /// answering.
    pub quorum: Option<Arc<QuorumHandle>>,
    /// The broker's context; `None` on a controller-only node (no groups, no
    /// connections, no partitions of its own).
    pub broker: Option<Arc<BrokerContext>>,
    /// One scrape at a time: a scrape resets and refills the per-group gauges.
    pub scrape_lock: tokio::sync::Mutex<()>,
}

impl Ops {
    /// A broker's (alone, or with the controller role).
    pub fn broker(ctx: Arc<BrokerContext>, quorum: Option<Arc<QuorumHandle>>) -> Self {
        Ops {
            config: ctx.config.clone(),
            cluster_id: ctx.cluster_id.clone(),
            metrics: ctx.metrics.clone(),
            routes: ctx.routes.clone(),
            active_controller: ctx.controller_id.clone(),
            quorum,
            broker: Some(ctx),
            scrape_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// A controller-only node's (`process.roles=controller`).
    pub fn controller(
        config: Arc<BrokerConfig>,
        cluster_id: String,
        metrics: Arc<Metrics>,
        routes: watch::Receiver<Arc<RoutingTable>>,
        active_controller: Arc<AtomicI32>,
        quorum: Arc<QuorumHandle>,
    ) -> Self {
        Ops {
            config,
            cluster_id,
            metrics,
            routes,
            active_controller,
            quorum: Some(quorum),
            broker: None,
            scrape_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes.borrow().clone()
    }

    /// The active controller's node id (the Raft leader; on a single node, itself).
    pub fn active_controller(&self) -> Option<i32> {
        let id = self.active_controller.load(Ordering::Relaxed);
        (id >= 0).then_some(id)
    }

    /// This node's Raft view, `None` on a single node.
    pub fn raft(&self) -> Option<RaftView> {
        let q = self.quorum.as_ref()?;
        let m = q.raft.metrics().borrow().clone();
        use openraft::ServerState as S;
        Some(RaftView {
            state: match m.state {
                S::Leader => "leader",
                S::Candidate => "candidate",
                // KIP-996: a voter past its election timeout that could not win a pre-vote.
                S::Follower if q.is_prospective() => "prospective",
                S::Follower => "follower",
                // Kafka calls a non-voter following the log an observer.
                S::Learner => "observer",
                S::Shutdown => "shutdown",
            },
            leader: q.leader().map_or(-1, |l| l as i64),
            epoch: m.current_term as i64,
            high_watermark: m.last_applied.map_or(0, |l| l.index as i64 + 1),
            log_end_offset: m.last_log_index.map_or(0, |i| i as i64 + 1),
            voters: m.membership_config.membership().voter_ids().collect(),
            committed_offset: q.images.borrow().last_offset,
        })
    }
}

/// This node's place in the controller quorum, read from openraft's metrics.
pub struct RaftView {
    /// Kafka's raft-metrics `current-state` names.
    pub state: &'static str,
    pub leader: i64,
    pub epoch: i64,
    pub high_watermark: i64,
    pub log_end_offset: i64,
    pub voters: Vec<u64>,
    /// The latest committed metadata this node received (its state machine's image).
    pub committed_offset: i64,
}

/// The Raft states exported, so each has a series (zero included).
const RAFT_STATES: &[&str] = &[
    "leader",
    "candidate",
    "prospective",
    "follower",
    "observer",
    "shutdown",
];

/// A committed offset of a group and how far behind the partition's end it is.
pub struct GroupPartition {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// The partition's high watermark: this broker's replica's, else its leader's
    /// (ListOffsets); `None` when neither could be had.
    pub high_watermark: Option<i64>,
}

impl GroupPartition {
    /// Records the group has not read (committed) yet; `None` when the high watermark
    /// could not be had.
    pub fn lag(&self) -> Option<i64> {
        self.high_watermark.map(|hw| (hw - self.committed).max(0))
    }
}

pub struct GroupView {
    pub group_id: String,
    pub state: &'static str,
    pub members: usize,
    pub partitions: Vec<GroupPartition>,
}

/// Every group coordinated by this broker, with its committed offsets and lag,
/// sorted by group id. Coordinators still loading (or gone) are skipped.
pub async fn groups(ctx: &BrokerContext) -> Vec<GroupView> {
    let table = ctx.groups.table.borrow().clone();
    let routes = ctx.routes();
    let mut out = Vec::new();
    for coordinator in table.coordinators.values() {
        let Ok(Ok(listed)) = coordinator.send(ListGroups { states: Vec::new() }).await else {
            continue;
        };
        let ids: Vec<String> = listed.iter().map(|g| g.group_id.clone()).collect();
        let members: BTreeMap<String, usize> = match coordinator.send(DescribeGroups(ids)).await {
            Ok(Ok(described)) => described
                .into_iter()
                .map(|g| (g.group_id, g.members.len()))
                .collect(),
            _ => BTreeMap::new(),
        };
        for g in listed {
            let fetch = FetchOffsets {
                group_id: g.group_id.clone(),
                topics: None,
            };
            let offsets = match coordinator.send(fetch).await {
                Ok(Ok(o)) => o,
                _ => Vec::new(),
            };
            let mut partitions: Vec<GroupPartition> = offsets
                .into_iter()
                .filter(|o| o.offset >= 0)
                .map(|o| GroupPartition {
                    high_watermark: routes
                        .partition(&o.topic, o.partition)
                        .map(|r| r.state.borrow().high_watermark),
                    topic: o.topic,
                    partition: o.partition,
                    committed: o.offset,
                })
                .collect();
            partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            out.push(GroupView {
                members: members.get(&g.group_id).copied().unwrap_or(0),
                group_id: g.group_id,
                state: g.state,
                partitions,
            });
        }
    }
    fill_remote_high_watermarks(ctx, &mut out).await;
    out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    out
}

/// How long a scrape waits for the high watermarks of partitions led elsewhere.
const REMOTE_OFFSETS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The lag of a committed partition this broker hosts no replica of needs its high
/// watermark from the leader: one ListOffsets (latest) per leader, through the shared
/// client, bootstrapped from this broker. Partitions whose leader does not answer in
/// time keep no lag (rather than a wrong one).
async fn fill_remote_high_watermarks(ctx: &BrokerContext, groups: &mut [GroupView]) {
    let mut missing: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for p in groups.iter().flat_map(|g| &g.partitions) {
        if p.high_watermark.is_none() {
            missing
                .entry(p.topic.clone())
                .or_default()
                .push(p.partition);
        }
    }
    if missing.is_empty() {
        return;
    }
    let bootstrap = format!("{}:{}", ctx.advertised.0, ctx.advertised.1);
    let work = async {
        let mut client =
            crate::client::KafkaClient::connect(&bootstrap, "troupe-lag", REMOTE_OFFSETS_TIMEOUT)
                .await
                .ok()?;
        let mut found: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for (topic, mut parts) in missing {
            parts.sort_unstable();
            parts.dedup();
            let latest = crate::client::offsets::LATEST;
            match crate::client::offsets::list_offsets(&mut client, &topic, &parts, latest).await {
                Ok(offsets) => {
                    found.extend(offsets.into_iter().map(|(p, o)| ((topic.clone(), p), o)))
                }
                Err(e) => {
                    tracing::debug!(%topic, error = %e, "no high watermarks for the lag metrics")
                }
            }
        }
        Some(found)
    };
    let Ok(Some(found)) = tokio::time::timeout(REMOTE_OFFSETS_TIMEOUT * 2, work).await else {
        return;
    };
    for p in groups.iter_mut().flat_map(|g| g.partitions.iter_mut()) {
        if p.high_watermark.is_none() {
            p.high_watermark = found.get(&(p.topic.clone(), p.partition)).copied();
        }
    }
}

/// Kafka's group states, so every state has a series (zero included).
const GROUP_STATES: &[&str] = &[
    "Empty",
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
];

/// Partition counts of the applied image, for this node (gauges and readiness).
#[derive(Default)]
struct PartitionCounts {
    hosted: i64,
    leading: i64,
    under_replicated: i64,
    under_min_isr: i64,
    at_min_isr: i64,
    /// Hosted here and not open (loading, or failed to open).
    offline_replicas: i64,
    /// Without a live leader, cluster-wide.
    offline_partitions: i64,
}

fn partition_counts(routes: &RoutingTable, node: i32) -> PartitionCounts {
    let image = &routes.image;
    let mut c = PartitionCounts::default();
    for t in image.topics.values() {
        let min_isr = routes
            .topics
            .get(&t.name)
            .map(|r| r.config.min_insync_replicas)
            .unwrap_or(1) as usize;
        for p in t.partitions.values() {
            if p.leader < 0 || !image.is_live(p.leader) {
                c.offline_partitions += 1;
            }
            if !p.replicas.contains(&node) {
                continue;
            }
            c.hosted += 1;
            let online = routes
                .partition(&t.name, p.partition)
                .is_some_and(|r| r.state.borrow().online);
            if !online {
                c.offline_replicas += 1;
            }
            if p.leader != node {
                continue;
            }
            c.leading += 1;
            if p.isr.len() < p.replicas.len() {
                c.under_replicated += 1;
            }
            if p.isr.len() < min_isr {
                c.under_min_isr += 1;
            } else if p.isr.len() == min_isr {
                c.at_min_isr += 1;
            }
        }
    }
    c
}

/// Set the gauges whose state lives elsewhere, just before encoding: the controller
/// and Raft ones on every node, the broker's own on a broker.
pub async fn refresh(ops: &Ops) {
    let m = ops.metrics();
    let routes = ops.routes();
    let image = &routes.image;
    let node = ops.node_id();
    let c = partition_counts(&routes, node);
    m.offline_partitions.set(c.offline_partitions);
    m.active_controller
        .set(i64::from(ops.active_controller() == Some(node)));
    m.metadata_offset.set(image.last_offset);
    m.process.refresh();
    match ops.raft() {
        Some(r) => {
            // The Raft term is the controller epoch.
            m.controller_epoch.set(r.epoch);
            for s in RAFT_STATES {
                m.raft_state
                    .with_label_values(&[s])
                    .set(i64::from(*s == r.state));
            }
            m.raft_leader.set(r.leader);
            m.raft_epoch.set(r.epoch);
            m.raft_high_watermark.set(r.high_watermark);
            m.raft_log_end_offset.set(r.log_end_offset);
        }
        None => {
            // A single node is a quorum of one, always its leader.
            m.controller_epoch.set(image.epoch as i64);
            for s in RAFT_STATES {
                m.raft_state
                    .with_label_values(&[s])
                    .set(i64::from(*s == "leader"));
            }
            m.raft_leader.set(i64::from(node));
            m.raft_epoch.set(image.epoch as i64);
            m.raft_high_watermark.set(image.last_offset + 1);
            m.raft_log_end_offset.set(image.last_offset + 1);
        }
    }
    let Some(ctx) = &ops.broker else {
        return;
    };
    m.partition_count.set(c.hosted);
    m.leader_count.set(c.leading);
    m.under_replicated_partitions.set(c.under_replicated);
    m.under_min_isr_partitions.set(c.under_min_isr);
    m.at_min_isr_partitions.set(c.at_min_isr);
    m.offline_replicas.set(c.offline_replicas);
    m.connections.set(ctx.connections.open() as i64);
    for (thread, n) in ctx.network.loads().into_iter().enumerate() {
        m.network_thread_connections
            .with_label_values(&[thread.to_string().as_str()])
            .set(n as i64);
    }
    let budget = crate::broker::request_byte_permits(&ctx.config);
    let free = ctx.request_bytes.available_permits().min(budget);
    m.request_bytes_in_flight.set((budget - free) as i64);

    let groups = groups(ctx).await;
    m.groups.reset();
    for s in GROUP_STATES {
        m.groups.with_label_values(&[s]).set(0);
    }
    m.consumer_lag.reset();
    m.consumer_offset.reset();
    for g in &groups {
        m.groups.with_label_values(&[g.state]).inc();
        for p in &g.partitions {
            let part = p.partition.to_string();
            let labels = [g.group_id.as_str(), p.topic.as_str(), part.as_str()];
            m.consumer_offset
                .with_label_values(&labels)
                .set(p.committed);
            if let Some(lag) = p.lag() {
                m.consumer_lag.with_label_values(&labels).set(lag);
            }
        }
    }
}

/// `/health/ready` ([`troupe::ops::readiness`]): `Ok` when this node knows the active
/// controller and has applied the committed metadata and, on a broker, is registered
/// and unfenced with every partition it hosts open; otherwise what is missing.
pub fn readiness(ops: &Ops) -> Result<String, Vec<String>> {
    let routes = ops.routes();
    let image = &routes.image;
    let node = ops.node_id();
    let broker = ops.broker.as_ref().map(|_| {
        let c = partition_counts(&routes, node);
        BrokerState {
            registration: ops.quorum.as_ref().map(|_| match image.brokers.get(&node) {
                None => Registration::Unregistered,
                Some(b) if b.fenced => Registration::Fenced,
                Some(_) => Registration::Live,
            }),
            hosted: c.hosted as usize,
            loading: c.offline_replicas as usize,
        }
    });
    troupe::ops::readiness(&NodeState {
        node_id: node,
        applied_offset: image.last_offset,
        committed_offset: ops.quorum.as_ref().map(|q| q.images.borrow().last_offset),
        controller: ops.active_controller(),
        broker,
    })
}
