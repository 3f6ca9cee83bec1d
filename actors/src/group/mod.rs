//! Consumer groups on the broker: `GroupCoordinator` actors (one per
//! `__consumer_offsets` partition led here, supervised) around the sans-IO
//! [`troupe::group`] state machine, and the [`GroupRouter`] that the group handlers
//! use to find the coordinator of a group.
//!
//! ```text
//!  JoinGroup ─▶ handler ─▶ GroupRouter: partition_for(group) ─▶ GroupCoordinator(p)
//!                 ▲                                                │ state machine
//!                 └──── oneshot (answered now or after rebalance) ─┤
//!                                                                  └─▶ PartitionLeader(__consumer_offsets, p)
//! ```

pub mod coordinator;
mod load;
pub mod manager;
pub mod messages;

use crate::broker::BrokerContext;
use crate::controller::messages::{CreateTopics, NewTopic};
use actix::prelude::*;
use coordinator::GroupCoordinator;
use manager::{CoordinatorTable, GroupManager};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use troupe::group::{codes, partition_for, GroupConfig, Reply, OFFSETS_TOPIC};

/// How long FindCoordinator waits for a just-created `__consumer_offsets` partition
/// to get its coordinator, before answering COORDINATOR_NOT_AVAILABLE.
const COORDINATOR_START_WAIT: Duration = Duration::from_secs(5);

/// The broker settings the group state machine needs.
pub fn group_config(c: &BrokerConfig) -> GroupConfig {
    let clamp = |v: u64| v.min(i32::MAX as u64) as i32;
    GroupConfig {
        initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms.min(i64::MAX as u64) as i64,
        min_session_timeout_ms: clamp(c.group_min_session_timeout_ms),
        max_session_timeout_ms: clamp(c.group_max_session_timeout_ms),
        max_size: c.group_max_size,
        offsets_retention_ms: c.offsets_retention_ms.min(i64::MAX as u64) as i64,
        max_metadata_bytes: c.offset_metadata_max_bytes,
        commit_timeout_ms: c.offsets_commit_timeout_ms as i64,
    }
}

/// What the handlers hold: the manager (for test hooks) and the coordinator table.
#[derive(Clone)]
pub struct GroupRouter {
    pub manager: Addr<GroupManager>,
    pub table: watch::Receiver<Arc<CoordinatorTable>>,
}

impl GroupRouter {
    /// Start the group manager; it follows `routes` from then on.
    pub fn start(
        config: Arc<BrokerConfig>,
        routes: watch::Receiver<Arc<crate::supervisor::RoutingTable>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let (tx, rx) = watch::channel(Arc::new(CoordinatorTable::default()));
        let manager = Supervisor::start(move |_| GroupManager::new(config, routes, tx, metrics));
        GroupRouter { manager, table: rx }
    }

    /// The `__consumer_offsets` partition of a group, once the topic exists.
    pub fn partition_of(&self, group_id: &str) -> Option<i32> {
        let n = self.table.borrow().num_partitions?;
        Some(partition_for(group_id, n))
    }

    /// The local coordinator of a group, or the error to answer with.
    pub fn coordinator_for(&self, group_id: &str) -> Result<Addr<GroupCoordinator>, i16> {
        let table = self.table.borrow().clone();
        let n = table
            .num_partitions
            .ok_or(codes::COORDINATOR_NOT_AVAILABLE)?;
        table
            .coordinators
            .get(&partition_for(group_id, n))
            .cloned()
            .ok_or(codes::NOT_COORDINATOR)
    }

    /// Wait (briefly) until partition `p` has a coordinator here that has loaded its
    /// groups, so that a client's first JoinGroup after a fresh `__consumer_offsets`
    /// does not bounce off COORDINATOR_LOAD_IN_PROGRESS and into its retry backoff.
    pub async fn wait_for_coordinator(&self, p: i32) -> bool {
        let mut rx = self.table.clone();
        let ready = async move {
            let addr = rx
                .wait_for(|t| t.coordinators.contains_key(&p))
                .await
                .ok()
                .and_then(|t| t.coordinators.get(&p).cloned())?;
            loop {
                match addr.send(messages::Loaded).await {
                    Ok(Some(_)) => return Some(()),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(_) => return None,
                }
            }
        };
        matches!(
            tokio::time::timeout(COORDINATOR_START_WAIT, ready).await,
            Ok(Some(()))
        )
    }
}

/// Create `__consumer_offsets` on first use, as Kafka does: compacted (the latest
/// record per group and partition is what matters), with its own partition count,
/// replication factor and segment size.
pub async fn ensure_offsets_topic(ctx: &BrokerContext) -> Result<(), i16> {
    if ctx.routes().image.topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    let c = &ctx.config;
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        // As Kafka: a broker-wide compression.type must not recompress the group log.
        ("compression.type".to_string(), "producer".to_string()),
        (
            "segment.bytes".to_string(),
            c.offsets_topic_segment_bytes.to_string(),
        ),
    ]);
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: c.offsets_topic_num_partitions,
        replication_factor: c.offsets_topic_replication_factor,
        assignments: BTreeMap::new(),
        configs,
    };
    let created = ctx
        .controller
        .send(CreateTopics {
            topics: vec![topic],
            validate_only: false,
        })
        .await
        .map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
    match created.into_iter().next() {
        Some(Ok(t)) => {
            tracing::info!(partitions = t.num_partitions, "created __consumer_offsets");
            Ok(())
        }
        // Another request created it meanwhile.
        Some(Err(_)) if ctx.routes().image.topics.contains_key(OFFSETS_TOPIC) => Ok(()),
        Some(Err((code, msg))) => {
            tracing::warn!(code, %msg, "cannot create __consumer_offsets");
            Err(codes::COORDINATOR_NOT_AVAILABLE)
        }
        None => Err(codes::COORDINATOR_NOT_AVAILABLE),
    }
}

/// Await a coordinator's delayed answer. A closed channel means the coordinator
/// restarted or stopped: NOT_COORDINATOR sends the client to find it again.
pub async fn await_reply(pending: Result<messages::Pending, MailboxError>) -> Result<Reply, i16> {
    match pending {
        Ok(Ok(rx)) => rx.await.map_err(|_| codes::NOT_COORDINATOR),
        Ok(Err(code)) => Err(code),
        Err(_) => Err(codes::NOT_COORDINATOR),
    }
}
