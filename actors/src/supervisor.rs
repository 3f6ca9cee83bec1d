//! The `BrokerSupervisor`: starts, watches and stops the broker's partition actors.
//!
//! It receives every new metadata image from the controller and makes the running set of
//! actors match it: a `PartitionActor` (on the main arbiter) and a `Log` (on the storage
//! arbiter) per replica this broker hosts, leader or follower, each under an actix
//! `Supervisor` so that a failed actor is restarted and rebuilds from disk; role changes
//! go to the running actor (the log stays open). Followed partitions are handed to one
//! `ReplicaFetcher` per source broker. After each change it publishes a new
//! [`RoutingTable`], which the gateway's connections read without a hop per request.

use crate::controller::Controller;
use crate::log::{LogActor, LogPort};
use crate::partition::messages::{Shutdown as PartitionShutdown, UpdatePartition};
use crate::partition::{PartitionActor, PartitionEnv, PartitionState};
use crate::replica_fetcher::{FetchedPartition, ReplicaFetcher, SetPartitions};
use actix::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::{BrokerConfig, DynamicLayers, TopicConfig};
use troupe::metadata::{MetadataImage, PartitionImage, TopicImage};
use uuid::Uuid;

/// Where requests for a partition go, and its offsets without asking anyone.
#[derive(Clone)]
pub struct PartitionRoute {
    /// The partition actor (named for what clients reach it for: its leader role).
    pub leader: Addr<PartitionActor>,
    pub log: Addr<LogActor>,
    pub state: watch::Receiver<PartitionState>,
    /// The topic's counters (bytes out are counted where fetches are served).
    pub metrics: Arc<crate::metrics::TopicMetrics>,
    /// The log's last batches: Fetch reads at the log end are answered from it on the
    /// request's thread, without a round trip to `log` (`troupe::storage::tail`).
    pub tail: troupe::storage::SharedTail,
}

impl PartitionRoute {
    /// The partition's state once its log is open, waiting at most `max`: a replica
    /// this broker was just given (at start-up, while its log is recovered, or for a
    /// new topic) answers once loaded instead of with NOT_LEADER_OR_FOLLOWER, as a
    /// Kafka broker serves clients only after its logs are loaded. After `max`, the
    /// state as it is (offline: the caller answers NOT_LEADER_OR_FOLLOWER).
    pub async fn state_once_online(&self, max: Duration) -> PartitionState {
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(max, rx.wait_for(|s| s.online)).await;
        match waited {
            Ok(Ok(state)) => *state,
            _ => *self.state.borrow(),
        }
    }
}

pub struct TopicRoute {
    pub topic_id: Uuid,
    pub config: Arc<TopicConfig>,
    /// Indexed by partition id; `None` for partitions this broker hosts no replica of.
    pub partitions: Vec<Option<PartitionRoute>>,
}

/// The routing table: an immutable snapshot, replaced as a whole on every change.
#[derive(Default)]
pub struct RoutingTable {
    pub image: Arc<MetadataImage>,
    /// Shared with the previous table for every topic the last metadata delta did not
    /// touch, so publishing a table costs O(changed topics) route builds.
    pub topics: HashMap<String, Arc<TopicRoute>>,
}

impl RoutingTable {
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionRoute> {
        let t = self.topics.get(topic)?;
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p))
            .and_then(|r| r.as_ref())
    }

    /// The error for a partition this broker has no route to: NOT_LEADER_OR_FOLLOWER
    /// when it exists (another broker leads it, or it has no leader right now), so the
    /// client refreshes its metadata; UNKNOWN_TOPIC_OR_PARTITION when it does not.
    pub fn unrouted_code(&self, topic: &str, partition: i32) -> i16 {
        let exists = self
            .image
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition));
        if exists {
            crate::errors::NOT_LEADER_OR_FOLLOWER
        } else {
            crate::errors::UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    pub fn topic_name(&self, id: &Uuid) -> Option<&str> {
        self.image.topic_names.get(id).map(|s| s.as_str())
    }
}

struct Running {
    topic: String,
    route: PartitionRoute,
    image: PartitionImage,
    config: TopicConfig,
}

/// One replica fetcher: the endpoint it fetches from.
struct Fetcher {
    endpoint: String,
    addr: Addr<ReplicaFetcher>,
}

pub struct BrokerSupervisor {
    config: Arc<BrokerConfig>,
    storage: ArbiterHandle,
    running: HashMap<(Uuid, i32), Running>,
    routes: watch::Sender<Arc<RoutingTable>>,
    image: Arc<MetadataImage>,
    /// Where partitions send AlterPartition (set once the controller exists).
    controller: Option<Addr<Controller>>,
    /// Replica fetchers by source broker.
    fetchers: HashMap<i32, Fetcher>,
    /// The leader each followed partition is fetched from (and its topic), so a delta
    /// moves only the partitions it touched between fetchers.
    followed: HashMap<(Uuid, i32), (i32, String)>,
    /// What the fetcher of each source broker is to fetch, by (topic, partition).
    wanted: HashMap<i32, BTreeMap<(String, i32), FetchedPartition>>,
    /// Partitions the last [`Self::sync_fetchers`] looked at (see [`FetcherSyncStats`]).
    fetch_sync_visits: usize,
    metrics: Arc<crate::metrics::Metrics>,
}

impl BrokerSupervisor {
    pub fn new(
        config: Arc<BrokerConfig>,
        storage: ArbiterHandle,
        routes: watch::Sender<Arc<RoutingTable>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        BrokerSupervisor {
            config,
            storage,
            running: HashMap::new(),
            routes,
            image: Arc::default(),
            controller: None,
            fetchers: HashMap::new(),
            followed: HashMap::new(),
            wanted: HashMap::new(),
            fetch_sync_visits: 0,
            metrics,
        }
    }

    /// Start, update or stop replica fetchers so that every partition this broker
    /// follows is fetched from its leader, one fetcher per leader. Only the partitions in
    /// `touched` (those of the topics the delta changed) are looked at; the fetchers of
    /// every leader all are when `brokers_changed` (an endpoint may have moved, or its
    /// broker been fenced or unfenced), which costs O(brokers).
    fn sync_fetchers(&mut self, touched: &HashSet<(Uuid, i32)>, brokers_changed: bool) {
        let node_id = self.config.node_id;
        // Leaders whose set of partitions changed.
        let mut moved: HashSet<i32> = HashSet::new();
        self.fetch_sync_visits = touched.len();
        for key in touched {
            let want = self
                .running
                .get(key)
                .filter(|r| r.image.leader != node_id && r.image.leader >= 0);
            let old = self.followed.get(key).map(|(l, _)| *l);
            if let (Some(old), Some(r)) = (old, want) {
                if old == r.image.leader {
                    continue;
                }
            }
            if let Some((leader, topic)) = self.followed.remove(key) {
                if let Some(w) = self.wanted.get_mut(&leader) {
                    w.remove(&(topic, key.1));
                }
                moved.insert(leader);
            }
            if let Some(r) = want {
                let leader = r.image.leader;
                self.followed.insert(*key, (leader, r.topic.clone()));
                self.wanted.entry(leader).or_default().insert(
                    (r.topic.clone(), key.1),
                    FetchedPartition {
                        topic: r.topic.clone(),
                        topic_id: key.0,
                        partition: key.1,
                        actor: r.route.leader.clone(),
                        state: r.route.state.clone(),
                    },
                );
                moved.insert(leader);
            }
        }
        let mut dirty = moved.clone();
        if brokers_changed {
            dirty.extend(self.wanted.keys().chain(self.fetchers.keys()).copied());
        }
        let endpoint = |id: i32| {
            self.image
                .brokers
                .get(&id)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port))
        };
        for leader in dirty {
            let parts = self.wanted.get(&leader).filter(|w| !w.is_empty());
            let ep = parts.and(endpoint(leader));
            // A fetcher with nothing to fetch, or whose leader moved or is fenced, stops.
            let stale = self
                .fetchers
                .get(&leader)
                .is_some_and(|f| ep.as_deref() != Some(&f.endpoint));
            if stale {
                if let Some(f) = self.fetchers.remove(&leader) {
                    tracing::info!(leader, endpoint = %f.endpoint, "stopping replica fetcher");
                    f.addr.do_send(SetPartitions(Vec::new()));
                }
            }
            let Some(parts) = parts else {
                self.wanted.remove(&leader);
                continue;
            };
            let Some(ep) = ep else { continue };
            let list = || -> Vec<FetchedPartition> { parts.values().cloned().collect() };
            match self.fetchers.get(&leader) {
                Some(f) if moved.contains(&leader) => f.addr.do_send(SetPartitions(list())),
                Some(_) => {}
                None => {
                    let list = list();
                    tracing::info!(leader, endpoint = %ep, partitions = list.len(), "starting replica fetcher");
                    let (cfg, e, m) = (self.config.clone(), ep.clone(), self.metrics.clone());
                    let addr = Supervisor::start(move |_| {
                        ReplicaFetcher::new(cfg, leader, e).with_metrics(m)
                    });
                    addr.do_send(SetPartitions(list));
                    self.fetchers.insert(leader, Fetcher { endpoint: ep, addr });
                }
            }
        }
    }

    /// The directory of a partition: where it already is, else the emptiest log dir.
    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        let name = format!("{topic}-{partition}");
        let dirs = &self.config.log_dirs;
        if let Some(d) = dirs.iter().find(|d| d.join(&name).is_dir()) {
            return d.join(name);
        }
        // With one log dir there is nothing to choose. Counting lists the whole dir,
        // once per new partition: creating 10,000 partitions read ~50 M entries.
        if let [only] = dirs.as_slice() {
            return only.join(name);
        }
        let count = |d: &PathBuf| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
        let best = dirs
            .iter()
            .min_by_key(|d| count(d))
            .expect("config guarantees at least one log dir");
        best.join(name)
    }

    fn start_partition(
        &mut self,
        topic: &str,
        topic_id: Uuid,
        p: &PartitionImage,
        config: TopicConfig,
    ) {
        let dir = self.partition_dir(topic, p.partition);
        // The directory must be this topic's: a leftover of a deleted topic of the same
        // name (a crash before its removal) is removed, never served.
        match troupe::storage::identity::claim_dir(&dir, topic_id) {
            Ok(true) => tracing::warn!(dir = %dir.display(), %topic_id,
                "removed a leftover partition directory of a deleted topic with the same name"),
            Ok(false) => {}
            Err(e) => tracing::error!(dir = %dir.display(), error = %e,
                "cannot record the partition's topic id"),
        }
        let log_config = crate::broker::log_config(&config);
        let expiration = self.config.producer_id_expiration_ms as i64;
        let cleaner = crate::log::CleanerSettings::from_broker(&self.config);
        let gauges = self.metrics.log_gauges(topic, p.partition);
        let metrics = self.metrics.clone();
        let hw = crate::log::SharedHighWatermark::default();
        let log_hw = hw.clone();
        let tail = troupe::storage::SharedTail::default();
        let log_tail = tail.clone();
        let actor = LogActor::new(dir, log_config)
            .with_producer_expiration(expiration)
            .with_cleaner(cleaner)
            .with_metrics(gauges, metrics)
            .with_high_watermark(log_hw)
            .with_tail(log_tail);
        let core = actor.core();
        let log = Supervisor::start_in_arbiter(&self.storage, move |_| actor);
        let (tx, rx) = watch::channel(PartitionState::default());
        let port = LogPort::new(log.clone(), core);
        let (t, image, cfg, log2) = (topic.to_string(), p.clone(), config.clone(), port);
        let env = PartitionEnv {
            node_id: self.config.node_id,
            retention_check: Duration::from_millis(
                self.config.log_retention_check_interval_ms.max(100),
            ),
            replica_lag_time_max_ms: self.config.replica_lag_time_max_ms as i64,
            hw_checkpoint_ms: self.config.replica_high_watermark_checkpoint_interval_ms as i64,
            controller: self.controller.clone(),
            routes: self.routes.subscribe(),
            metrics: self.metrics.clone(),
        };
        let topic_metrics = self.metrics.topic(topic);
        let partition = p.partition;
        let leader = Supervisor::start(move |_| {
            PartitionActor::new(t, topic_id, partition, env, image, cfg, log2, tx)
                .with_high_watermark(hw)
        });
        self.running.insert(
            (topic_id, p.partition),
            Running {
                topic: topic.to_string(),
                route: PartitionRoute {
                    leader,
                    log,
                    state: rx,
                    metrics: topic_metrics,
                    tail,
                },
                image: p.clone(),
                config,
            },
        );
    }

    /// Topic defaults as the image's dynamic broker configs set them over the static
    /// config (Kafka's DynamicLogConfig): a change reaches every topic without its own
    /// value, without a restart.
    fn topic_defaults(&self, image: &MetadataImage) -> TopicConfig {
        let layers = DynamicLayers::of(&image.broker_configs, self.config.node_id);
        layers.topic_defaults(&self.config).unwrap_or_else(|e| {
            // The controller validates every layer before committing it.
            tracing::warn!(error = %e, "bad dynamic broker config, using static defaults");
            self.config.topic_defaults.clone()
        })
    }

    /// Publish the routing table of `self.image`. `reuse` (the image the current table
    /// was built from) lets every topic whose image is the very same `Arc` keep its
    /// route: its partitions were neither started nor stopped by this delta. `None`
    /// rebuilds every route (new broker-level defaults, a restart).
    fn publish_routes(&self, reuse: Option<&MetadataImage>) {
        let previous = self.routes.borrow().clone();
        let defaults = self.topic_defaults(&self.image);
        let mut topics: HashMap<String, Arc<TopicRoute>> =
            HashMap::with_capacity(self.image.topics.len());
        let (mut built, mut kept) = (0usize, 0usize);
        for (name, t) in &self.image.topics {
            let same = reuse
                .and_then(|old| old.topics.get(name))
                .is_some_and(|old| Arc::ptr_eq(old, t));
            if let Some(route) = previous.topics.get(name).filter(|_| same) {
                topics.insert(name.clone(), route.clone());
                kept += 1;
                continue;
            }
            built += 1;
            let config =
                TopicConfig::resolve(&defaults, &t.configs).unwrap_or_else(|_| defaults.clone());
            let n = t
                .partitions
                .keys()
                .max()
                .map(|m| *m as usize + 1)
                .unwrap_or(0);
            let mut partitions = vec![None; n];
            for p in t.partitions.keys() {
                if let Some(r) = self.running.get(&(t.topic_id, *p)) {
                    partitions[*p as usize] = Some(r.route.clone());
                }
            }
            topics.insert(
                t.name.clone(),
                Arc::new(TopicRoute {
                    topic_id: t.topic_id,
                    config: Arc::new(config),
                    partitions,
                }),
            );
        }
        tracing::debug!(built, kept, "routing table published");
        self.metrics
            .retain_topics(|t| self.image.topics.contains_key(t));
        self.routes.send_replace(Arc::new(RoutingTable {
            image: self.image.clone(),
            topics,
        }));
    }
}

impl Actor for BrokerSupervisor {
    type Context = Context<Self>;
}

/// A new metadata image from the controller: make the running actors match it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyMetadata {
    pub image: Arc<MetadataImage>,
}

/// Images are applied strictly one after another: `AtomicResponse` keeps the mailbox
/// closed until the previous image's partitions have stopped and its routing table is
/// published. (A `ResponseActFuture` runs concurrently with later messages: an older
/// image waiting for a shutdown could finish after a newer one and publish itself over
/// it, or start partitions the newer image had deleted.)
impl Handler<ApplyMetadata> for BrokerSupervisor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: ApplyMetadata, _ctx: &mut Context<Self>) -> Self::Result {
        let image = msg.image;
        let node_id = self.config.node_id;
        // Work per changed topic only: a topic whose image is the very one applied last
        // (`Arc::ptr_eq`, see `MetadataImage::topics`) needs nothing. Every running
        // partition belongs to a topic of the last applied image, so the candidates to
        // stop are the partitions of its topics that changed or went away.
        let previous = self.image.clone();
        let unchanged = move |name: &str, t: &Arc<TopicImage>| {
            previous
                .topics
                .get(name)
                .is_some_and(|old| Arc::ptr_eq(old, t))
        };
        // Every partition of the old image's changed topics: those followed until now
        // among them may have to move (more are added below: the new image's).
        let mut touched: HashSet<(Uuid, i32)> = self
            .image
            .topics
            .iter()
            .filter(|(name, old)| {
                !image
                    .topics
                    .get(*name)
                    .is_some_and(|new| Arc::ptr_eq(old, new))
            })
            .flat_map(|(_, old)| old.partitions.keys().map(|p| (old.topic_id, *p)))
            .collect();
        let stop: Vec<(Uuid, i32)> = touched
            .iter()
            .copied()
            .filter(|key| self.running.contains_key(key))
            .filter(|(id, p)| {
                image
                    .topic_by_id(id)
                    .and_then(|t| t.partitions.get(p))
                    .map(|pi| !pi.replicas.contains(&node_id))
                    .unwrap_or(true)
            })
            .collect();
        let mut shutdowns = Vec::new();
        for key in stop {
            let r = self.running.remove(&key).expect("key from running");
            let delete = image.topic_by_id(&key.0).is_none();
            tracing::info!(topic = %r.topic, partition = key.1, delete, "stopping partition");
            self.metrics.forget_log(&r.topic, key.1);
            shutdowns.push(r.route.leader.send(PartitionShutdown { delete }));
        }
        let done = async move {
            for s in shutdowns {
                let _ = s.await;
            }
        };
        AtomicResponse::new(Box::pin(done.into_actor(self).map(move |_, act, _| {
            let defaults = act.topic_defaults(&image);
            // New broker-level defaults can change every topic's effective config.
            let all = image.broker_configs != act.image.broker_configs;
            if all {
                tracing::info!(configs = ?image.broker_configs, "dynamic broker configs applied");
            }
            for (name, t) in &image.topics {
                if !all && unchanged(name, t) {
                    continue;
                }
                let config = match TopicConfig::resolve(&defaults, &t.configs) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(topic = %t.name, error = %e, "bad topic config, using defaults");
                        defaults.clone()
                    }
                };
                for p in t.partitions.values().filter(|p| p.replicas.contains(&node_id)) {
                    touched.insert((t.topic_id, p.partition));
                    match act.running.get_mut(&(t.topic_id, p.partition)) {
                        None => act.start_partition(&t.name, t.topic_id, p, config.clone()),
                        Some(r) if r.image != *p || r.config != config => {
                            r.image = p.clone();
                            r.config = config.clone();
                            r.route.leader.do_send(UpdatePartition { image: p.clone(), config: config.clone() });
                        }
                        Some(_) => {}
                    }
                }
            }
            let previous = std::mem::replace(&mut act.image, image);
            act.publish_routes((!all).then_some(&*previous));
            let brokers_changed = previous.brokers != act.image.brokers;
            act.sync_fetchers(&touched, brokers_changed);
        })))
    }
}

/// The controller exists: partitions send their ISR changes there.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetController(pub Addr<Controller>);

impl Handler<SetController> for BrokerSupervisor {
    type Result = ();
    fn handle(&mut self, msg: SetController, _ctx: &mut Context<Self>) {
        self.controller = Some(msg.0);
    }
}

/// Broker shutdown: close every partition (flushing logs and checkpoints).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

impl Handler<StopAll> for BrokerSupervisor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: StopAll, _ctx: &mut Context<Self>) -> Self::Result {
        for (_, f) in self.fetchers.drain() {
            f.addr.do_send(SetPartitions(Vec::new()));
        }
        self.followed.clear();
        self.wanted.clear();
        let shutdowns: Vec<_> = self
            .running
            .drain()
            .map(|(_, r)| r.route.leader.send(PartitionShutdown { delete: false }))
            .collect();
        tracing::info!(partitions = shutdowns.len(), "closing partitions");
        AtomicResponse::new(Box::pin(
            async move {
                for s in shutdowns {
                    let _ = s.await;
                }
            }
            .into_actor(self)
            .map(|_, act, _| {
                act.routes.send_replace(Arc::new(RoutingTable::default()));
            }),
        ))
    }
}

/// Test hook: how many partitions the last metadata delta made the supervisor look at
/// to keep the replica fetchers right (the partitions of the topics it changed), and
/// how many partitions each running fetcher fetches, by source broker.
#[derive(Message)]
#[rtype(result = "(usize, BTreeMap<i32, usize>)")]
pub struct FetcherSyncStats;

impl Handler<FetcherSyncStats> for BrokerSupervisor {
    type Result = MessageResult<FetcherSyncStats>;
    fn handle(&mut self, _: FetcherSyncStats, _ctx: &mut Context<Self>) -> Self::Result {
        let fetching = self
            .fetchers
            .keys()
            .map(|l| (*l, self.wanted.get(l).map_or(0, |w| w.len())))
            .collect();
        MessageResult((self.fetch_sync_visits, fetching))
    }
}

/// Test hook: crash the actors of one partition (fault isolation tests).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CrashPartition {
    pub topic: String,
    pub partition: i32,
}

impl Handler<CrashPartition> for BrokerSupervisor {
    type Result = bool;
    fn handle(&mut self, msg: CrashPartition, _ctx: &mut Context<Self>) -> bool {
        match self
            .running
            .values()
            .find(|r| r.topic == msg.topic && r.image.partition == msg.partition)
        {
            Some(r) => {
                r.route.leader.do_send(crate::partition::messages::Crash);
                true
            }
            None => false,
        }
    }
}

/// Supervised like the actors it starts: its state (the running partitions, the last
/// image) survives a restart; an image whose apply was cut short is applied in full by
/// the next one, since every image is complete.
impl Supervised for BrokerSupervisor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(
            partitions = self.running.len(),
            "broker supervisor restarting"
        );
        self.metrics
            .actor_restarted(crate::metrics::ActorKind::BrokerSupervisor);
    }
}

/// Test hook: stop the supervisor as a failure would; its own supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

impl Handler<Crash> for BrokerSupervisor {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!("broker supervisor crash requested (fault injection)");
        ctx.stop();
    }
}
