//! What a scrape or the status page reads from the actors that own the state: the
//! metadata image and partition states (routing table), the group coordinators
//! (groups, committed offsets), the connection quotas. Nothing here is cached: each
//! scrape asks the owners, so a gauge is never staler than the scrape.

use super::Metrics;
use crate::broker::BrokerContext;
use crate::group::messages::{DescribeGroups, FetchOffsets, ListGroups};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;
use troupe::metadata::MetadataImage;

/// Everything the HTTP listener serves from.
pub struct Ops {
    pub ctx: Arc<BrokerContext>,
    /// Cluster mode: the latest committed metadata image, so readiness can tell
    /// whether this broker has applied all of it. `None` on a single node, where the
    /// controller applies each image before answering.
    pub committed: Option<watch::Receiver<Arc<MetadataImage>>>,
    /// One scrape at a time: a scrape resets and refills the per-group gauges.
    pub scrape_lock: tokio::sync::Mutex<()>,
}

impl Ops {
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }
}

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

/// Set the gauges whose state lives elsewhere, just before encoding.
pub async fn refresh(ops: &Ops) {
    let ctx = &ops.ctx;
    let m = ops.metrics();
    let routes = ctx.routes();
    let image = &routes.image;
    let node = ctx.config.node_id;
    let (mut hosted, mut leading, mut urp, mut under_min, mut at_min, mut offline_replicas) =
        (0, 0, 0, 0, 0, 0);
    let mut offline_partitions = 0;
    for t in image.topics.values() {
        let min_isr = routes
            .topics
            .get(&t.name)
            .map(|r| r.config.min_insync_replicas)
            .unwrap_or(1) as usize;
        for p in t.partitions.values() {
            if p.leader < 0 || !image.is_live(p.leader) {
                offline_partitions += 1;
            }
            if !p.replicas.contains(&node) {
                continue;
            }
            hosted += 1;
            let online = routes
                .partition(&t.name, p.partition)
                .is_some_and(|r| r.state.borrow().online);
            if !online {
                offline_replicas += 1;
            }
            if p.leader != node {
                continue;
            }
            leading += 1;
            if p.isr.len() < p.replicas.len() {
                urp += 1;
            }
            if p.isr.len() < min_isr {
                under_min += 1;
            } else if p.isr.len() == min_isr {
                at_min += 1;
            }
        }
    }
    m.partition_count.set(hosted);
    m.leader_count.set(leading);
    m.under_replicated_partitions.set(urp);
    m.under_min_isr_partitions.set(under_min);
    m.at_min_isr_partitions.set(at_min);
    m.offline_replicas.set(offline_replicas);
    m.offline_partitions.set(offline_partitions);
    m.active_controller
        .set(i64::from(ctx.controller_id() == node));
    m.controller_epoch.set(image.epoch as i64);
    m.metadata_offset.set(image.last_offset);
    m.connections.set(ctx.connections.open() as i64);
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

/// `/health/ready`: `Ok` when this broker has applied the committed metadata, is
/// registered and unfenced, knows the active controller and has every partition it
/// hosts open; otherwise what is missing.
pub fn readiness(ops: &Ops) -> Result<String, Vec<String>> {
    let ctx = &ops.ctx;
    let routes = ctx.routes();
    let image = &routes.image;
    let node = ctx.config.node_id;
    let mut missing = Vec::new();
    if image.last_offset < 0 {
        missing.push("no metadata applied yet".to_string());
    }
    if let Some(committed) = &ops.committed {
        let latest = committed.borrow().last_offset;
        if image.last_offset < latest {
            missing.push(format!(
                "metadata applied up to offset {} of {latest}",
                image.last_offset
            ));
        }
        match image.brokers.get(&node) {
            None => missing.push(format!("broker {node} is not registered")),
            Some(b) if b.fenced => missing.push(format!("broker {node} is fenced")),
            Some(_) => {}
        }
    }
    if ctx.controller_id() < 0 {
        missing.push("no active controller known".to_string());
    }
    let (mut hosted, mut loading) = (0, 0);
    for t in image.topics.values() {
        for p in t.partitions.values().filter(|p| p.replicas.contains(&node)) {
            hosted += 1;
            let online = routes
                .partition(&t.name, p.partition)
                .is_some_and(|r| r.state.borrow().online);
            if !online {
                loading += 1;
            }
        }
    }
    if loading > 0 {
        missing.push(format!("{loading} of {hosted} partitions not serving yet"));
    }
    if missing.is_empty() {
        Ok(format!(
            "ready: metadata offset {}, {hosted} partitions serving",
            image.last_offset
        ))
    } else {
        Err(missing)
    }
}
