//! The `GroupManager`: keeps one supervised `GroupCoordinator` running per
//! `__consumer_offsets` partition this broker leads, following the routing table the
//! `BrokerSupervisor` publishes, and publishes the [`CoordinatorTable`] the group
//! handlers read (no hop through this actor per request).

use super::coordinator::GroupCoordinator;
use super::messages::{Crash, Shutdown};
use crate::partition::PartitionActor;
use crate::supervisor::RoutingTable;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use troupe::group::OFFSETS_TOPIC;

/// Which coordinator serves which partition of `__consumer_offsets`, right now.
#[derive(Default)]
pub struct CoordinatorTable {
    /// Partition count of `__consumer_offsets`; `None` until the topic exists.
    pub num_partitions: Option<i32>,
    pub coordinators: HashMap<i32, Addr<GroupCoordinator>>,
}

struct Running {
    /// The partition the coordinator appends through, and the leader epoch it loaded
    /// in: a new partition actor, or leadership lost and won back, needs a new
    /// coordinator (it reloads what happened in between).
    leader: Addr<PartitionActor>,
    epoch: i32,
    coordinator: Addr<GroupCoordinator>,
}

pub struct GroupManager {
    config: Arc<BrokerConfig>,
    routes: watch::Receiver<Arc<RoutingTable>>,
    running: HashMap<i32, Running>,
    table: watch::Sender<Arc<CoordinatorTable>>,
    /// The task that forwards routing-table changes runs once: it holds only a weak
    /// address, which stays valid across restarts.
    watching: bool,
    metrics: Arc<crate::metrics::Metrics>,
}

impl GroupManager {
    pub fn new(
        config: Arc<BrokerConfig>,
        routes: watch::Receiver<Arc<RoutingTable>>,
        table: watch::Sender<Arc<CoordinatorTable>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        GroupManager {
            config,
            routes,
            running: HashMap::new(),
            table,
            watching: false,
            metrics,
        }
    }

    fn sync_with_routes(&mut self) {
        let routes = self.routes.borrow().clone();
        let topic = routes.topics.get(OFFSETS_TOPIC);
        // Coordinators run where the committed metadata makes this broker the leader.
        let node_id = self.config.node_id;
        let images = routes.image.topics.get(OFFSETS_TOPIC);
        let led: HashMap<i32, _> = topic
            .map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter_map(|(p, r)| {
                        let image = images.and_then(|i| i.partitions.get(&(p as i32)))?;
                        (image.leader == node_id)
                            .then(|| {
                                r.as_ref()
                                    .map(|r| (p as i32, (r.clone(), image.leader_epoch)))
                            })
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let gone: Vec<i32> = self
            .running
            .iter()
            .filter(|(p, r)| {
                led.get(p)
                    .is_none_or(|(route, epoch)| route.leader != r.leader || *epoch != r.epoch)
            })
            .map(|(p, _)| *p)
            .collect();
        for p in gone {
            if let Some(r) = self.running.remove(&p) {
                r.coordinator.do_send(Shutdown);
            }
        }
        let group_config = super::group_config(&self.config);
        let retention_check =
            Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(100));
        for (p, (route, epoch)) in led {
            if self.running.contains_key(&p) {
                continue;
            }
            let (cfg, r, m) = (group_config.clone(), route.clone(), self.metrics.clone());
            let coordinator = Supervisor::start(move |_| {
                GroupCoordinator::new(p, r, cfg, retention_check).with_metrics(m)
            });
            self.running.insert(
                p,
                Running {
                    leader: route.leader,
                    epoch,
                    coordinator,
                },
            );
        }
        let table = CoordinatorTable {
            num_partitions: topic.map(|t| t.partitions.len() as i32),
            coordinators: self
                .running
                .iter()
                .map(|(p, r)| (*p, r.coordinator.clone()))
                .collect(),
        };
        self.table.send_replace(Arc::new(table));
    }
}

impl Actor for GroupManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a restart too: changes made while it was down are picked up here.
        self.sync_with_routes();
        if self.watching {
            return;
        }
        self.watching = true;
        let mut routes = self.routes.clone();
        let me = ctx.address().downgrade();
        actix_rt::spawn(async move {
            while routes.changed().await.is_ok() {
                match me.upgrade() {
                    Some(addr) => addr.do_send(RoutesChanged),
                    None => break,
                }
            }
        });
    }
}

/// Supervised like the other actors: its state (the running coordinators) survives a
/// restart, and `started` syncs with the routing table again.
impl Supervised for GroupManager {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(
            coordinators = self.running.len(),
            "group manager restarting"
        );
        self.metrics
            .actor_restarted(crate::metrics::ActorKind::GroupManager);
    }
}

/// The routing table changed (topics or leadership).
#[derive(Message)]
#[rtype(result = "()")]
struct RoutesChanged;

impl Handler<RoutesChanged> for GroupManager {
    type Result = ();
    fn handle(&mut self, _: RoutesChanged, _ctx: &mut Context<Self>) {
        self.sync_with_routes();
    }
}

/// Test hook: crash the coordinator of one `__consumer_offsets` partition.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CrashCoordinator {
    pub partition: i32,
}

impl Handler<CrashCoordinator> for GroupManager {
    type Result = bool;
    fn handle(&mut self, msg: CrashCoordinator, _ctx: &mut Context<Self>) -> bool {
        match self.running.get(&msg.partition) {
            Some(r) => {
                r.coordinator.do_send(Crash);
                true
            }
            None => false,
        }
    }
}

/// Test hook: stop the manager as a failure would; its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CrashManager;

impl Handler<CrashManager> for GroupManager {
    type Result = ();
    fn handle(&mut self, _: CrashManager, ctx: &mut Context<Self>) {
        tracing::warn!("group manager crash requested (fault injection)");
        ctx.stop();
    }
}
