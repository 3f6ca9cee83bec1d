//! The `Controller` actor: the glue between the controller's decisions (plain functions
//! in [`troupe::controller`]) and where their records are committed.
//!
//! * **Single node** (no `controller.quorum.voters`): records go to the fsynced
//!   [`MetadataLog`] in the node's own log dir, as before the cluster existed.
//! * **Quorum** (`controller.quorum.voters` set): records go to the openraft quorum
//!   ([`raft`]). On the active controller (the Raft leader) a request is decided against
//!   the image with every committed record applied, written, and answered once
//!   committed. On any other node it is forwarded to the leader over the CONTROLLER
//!   listener ([`forward`]) and retried across a leader change.
//!
//! Requests are handled one at a time (`AtomicResponse`): each decision is made on top
//! of the previous one's records. The periodic [`Tick`] (fencing of silent brokers,
//! preferred-leader rebalance) is such a request too.

pub mod forward;
pub mod lifecycle;
pub mod messages;
pub mod raft;

use crate::errors::*;
use crate::supervisor::{ApplyMetadata, BrokerSupervisor, RoutingTable};
use actix::prelude::*;
use messages::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use troupe::controller::{
    BrokerLiveness, ControllerConfig, ControllerRequest as Q, ControllerResponse as A, Entropy,
};
use troupe::metadata::{MetadataImage, MetadataLog, MetadataRecord};

/// How long a request keeps trying to reach an active controller.
const CONTROLLER_WAIT: Duration = Duration::from_secs(15);
/// How long a commit (or the check that this leader still leads) may take: without a
/// majority of voters it would never finish.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the active controller checks for silent brokers.
const TICK: Duration = Duration::from_millis(250);

/// Where records are committed.
enum Backend {
    /// Single node: the local metadata log (`None` once it failed).
    Local(Option<MetadataLog>),
    Quorum(Arc<raft::QuorumHandle>),
}

pub struct Controller {
    config: Arc<BrokerConfig>,
    dir: PathBuf,
    broker: Addr<BrokerSupervisor>,
    backend: Backend,
    /// The image of the local backend (the quorum's is its state machine's).
    image: Arc<MetadataImage>,
    /// Single node: bumped at every (re)start, like a Raft term.
    epoch: i32,
    /// Heartbeat clocks, valid while this node is the active controller.
    liveness: BrokerLiveness,
    was_active: bool,
    /// A tick is being committed: later ticks are skipped, not queued.
    ticking: bool,
    /// When the preferred-leader rebalance last ran (ms).
    last_rebalance: i64,
    /// The broker's routing table: a commit is answered once this node applied it.
    routes: watch::Receiver<Arc<RoutingTable>>,
    /// Leader elections and restarts are counted here (`None` in tests without one).
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// Random ids and placement starts (the decisions take them as inputs).
struct Random;
impl Entropy for Random {
    fn topic_id(&mut self) -> uuid::Uuid {
        troupe::metadata::random_uuid()
    }
    fn placement_start(&mut self) -> u64 {
        u64::from_le_bytes(
            troupe::metadata::random_uuid().as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        )
    }
}

impl Controller {
    /// Single node: open the metadata log and replay it. Runs before the actor starts
    /// so start-up fails loudly on a broken metadata log instead of serving an empty
    /// cluster.
    pub fn open(
        config: Arc<BrokerConfig>,
        dir: PathBuf,
        broker: Addr<BrokerSupervisor>,
        routes: watch::Receiver<Arc<RoutingTable>>,
    ) -> Result<Self, troupe::metadata::MetadataLogError> {
        let mut c = Self::new(config, dir, broker, routes, Backend::Local(None));
        c.reload()?;
        Ok(c)
    }

    /// A voter of the controller quorum (already started).
    pub fn quorum(
        config: Arc<BrokerConfig>,
        dir: PathBuf,
        broker: Addr<BrokerSupervisor>,
        routes: watch::Receiver<Arc<RoutingTable>>,
        quorum: Arc<raft::QuorumHandle>,
    ) -> Self {
        let image = quorum.images.borrow().clone();
        let mut c = Self::new(config, dir, broker, routes, Backend::Quorum(quorum));
        c.image = image;
        c
    }

    fn new(
        config: Arc<BrokerConfig>,
        dir: PathBuf,
        broker: Addr<BrokerSupervisor>,
        routes: watch::Receiver<Arc<RoutingTable>>,
        backend: Backend,
    ) -> Self {
        Controller {
            config,
            dir,
            broker,
            backend,
            image: Arc::new(MetadataImage::new()),
            epoch: 0,
            liveness: BrokerLiveness::default(),
            was_active: false,
            last_rebalance: 0,
            ticking: false,
            routes,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn reload(&mut self) -> Result<(), troupe::metadata::MetadataLogError> {
        if matches!(self.backend, Backend::Quorum(_)) {
            return Ok(());
        }
        let (log, entries) = MetadataLog::open(&self.dir)?;
        let mut image = MetadataImage::new();
        for e in &entries {
            image.apply(e);
        }
        self.epoch = image.epoch + 1;
        tracing::info!(
            records = entries.len(),
            epoch = self.epoch,
            topics = image.topics.len(),
            "controller loaded metadata log"
        );
        self.backend = Backend::Local(Some(log));
        self.image = Arc::new(image);
        let node_id = self.config.node_id;
        let (host, port) = crate::broker::advertised(&self.config);
        let current = self.image.brokers.get(&node_id);
        let same = current.is_some_and(|b| b.host == host && b.port == port && !b.fenced);
        if !same {
            // The single node is its own controller: registered unfenced at once.
            self.commit_local(vec![MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack: self.config.broker_rack.clone(),
                incarnation_id: *troupe::metadata::random_uuid().as_bytes(),
                fenced: false,
            }])
            .map_err(|(_, m)| troupe::metadata::MetadataLogError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(m),
            })?;
        }
        Ok(())
    }

    /// The current image (the quorum's latest applied one).
    pub fn image(&self) -> Arc<MetadataImage> {
        match &self.backend {
            Backend::Local(_) => self.image.clone(),
            Backend::Quorum(q) => q.images.borrow().clone(),
        }
    }

    /// Single node: append records durably, apply them; the offset of the last one.
    fn commit_local(&mut self, records: Vec<MetadataRecord>) -> Result<i64, ApiError> {
        let Backend::Local(log) = &mut self.backend else {
            return Err((UNKNOWN_SERVER_ERROR, "not a local controller".into()));
        };
        let log = log
            .as_mut()
            .ok_or((KAFKA_STORAGE_ERROR, "metadata log is offline".to_string()))?;
        let elections = crate::metrics::count_elections(&self.image, &records);
        let entries = log.append(self.epoch, records).map_err(|e| {
            (
                KAFKA_STORAGE_ERROR,
                format!("metadata log append failed: {e}"),
            )
        })?;
        if let Some(m) = &self.metrics {
            m.elections_committed(elections);
        }
        let mut image = (*self.image).clone();
        for e in &entries {
            image.apply(e);
        }
        self.image = Arc::new(image);
        Ok(self.image.last_offset)
    }

    fn decisions(&self) -> ControllerConfig {
        ControllerConfig {
            descriptor_partitions: crate::net::limits::descriptor_partitions(
                self.config.max_connections,
            ),
            ..ControllerConfig::from_broker(&self.config)
        }
    }

    fn node_id(&self) -> u64 {
        self.config.node_id as u64
    }

    /// Serve one request; the future resolves with the answer once its records are
    /// committed and applied here.
    fn run(&mut self, req: Q, forwarded: bool) -> ResponseActFuture<Self, A> {
        match &self.backend {
            Backend::Local(_) => self.run_local(req),
            Backend::Quorum(q) => {
                let q = q.clone();
                let deadline = tokio::time::Instant::now() + CONTROLLER_WAIT;
                self.run_quorum(q, req, forwarded, deadline)
            }
        }
    }

    fn run_local(&mut self, req: Q) -> ResponseActFuture<Self, A> {
        if matches!(req, Q::DescribeQuorum) {
            // The single node is the whole quorum.
            let me = self.config.node_id;
            let end = self.image.last_offset + 1;
            return Box::pin(actix::fut::ready(A::Quorum(
                troupe::controller::QuorumState {
                    leader_id: me,
                    leader_epoch: 1,
                    high_watermark: end,
                    voters: vec![(me, end)],
                },
            )));
        }
        let image = self.image.clone();
        let cfg = self.decisions();
        let (records, answer) = troupe::controller::handle(
            &image,
            &mut self.liveness,
            &cfg,
            &req,
            crate::now_ms(),
            &mut Random,
        );
        if records.is_empty() {
            return Box::pin(actix::fut::ready(answer));
        }
        match self.commit_local(records) {
            Err(e) => Box::pin(actix::fut::ready(A::Failed(e))),
            Ok(offset) => {
                let answer = answer.committed_at(offset);
                let fut = self.broker.send(ApplyMetadata {
                    image: self.image.clone(),
                });
                Box::pin(fut.into_actor(self).map(move |res, _, _| {
                    if res.is_err() {
                        tracing::error!("broker supervisor is gone; metadata not applied");
                    }
                    answer
                }))
            }
        }
    }

    fn run_quorum(
        &mut self,
        q: Arc<raft::QuorumHandle>,
        req: Q,
        forwarded: bool,
        deadline: tokio::time::Instant,
    ) -> ResponseActFuture<Self, A> {
        let me = self.node_id();
        let leader = q.leader();
        if leader == Some(me) {
            if matches!(req, Q::DescribeQuorum) {
                return Box::pin(actix::fut::ready(A::Quorum(q.describe())));
            }
            return self.decide_as_leader(q, req);
        }
        if forwarded {
            return Box::pin(actix::fut::ready(A::NotController {
                leader: leader.map(|l| l as i32),
            }));
        }
        // Forward to the leader (when there is one), else wait for an election.
        let addr = leader.and_then(|l| leader_addr(&self.config, &q, l));
        let attempt = {
            let req = req.clone();
            async move {
                match addr {
                    Some(addr) => match forward::forward(&addr, req).await {
                        Ok(A::NotController { .. }) => None,
                        Ok(a) => Some(a),
                        Err(e) => {
                            tracing::debug!(%addr, error = %e, "forwarding to the controller failed");
                            None
                        }
                    },
                    None => None,
                }
            }
        };
        Box::pin(attempt.into_actor(self).then(move |answer, act, _| {
            let next: ResponseActFuture<Self, A> = match answer {
                Some(a) => Box::pin(actix::fut::ready(a)),
                None if tokio::time::Instant::now() >= deadline => {
                    Box::pin(actix::fut::ready(A::NotController {
                        leader: q.leader().map(|l| l as i32),
                    }))
                }
                None => {
                    let pause = tokio::time::sleep(Duration::from_millis(100));
                    Box::pin(
                        pause
                            .into_actor(act)
                            .then(move |_, act, _| act.run_quorum(q, req, false, deadline)),
                    )
                }
            };
            next
        }))
    }

    /// The active controller: make sure every committed record is applied, decide,
    /// write, and answer once this node has applied the result too.
    fn decide_as_leader(
        &mut self,
        q: Arc<raft::QuorumHandle>,
        req: Q,
    ) -> ResponseActFuture<Self, A> {
        let q2 = q.clone();
        // Without a majority this would wait forever: bounded, it answers NOT_CONTROLLER.
        let ready = async move {
            let check = q2.raft.ensure_linearizable();
            matches!(tokio::time::timeout(WRITE_TIMEOUT, check).await, Ok(Ok(_)))
        };
        Box::pin(ready.into_actor(self).then(move |ok, act, _| {
            let out: ResponseActFuture<Self, A> = if !ok {
                Box::pin(actix::fut::ready(A::NotController {
                    leader: q.leader().map(|l| l as i32),
                }))
            } else {
                act.become_active(&q);
                let image = q.images.borrow().clone();
                let cfg = act.decisions();
                let (records, answer) = troupe::controller::handle(
                    &image,
                    &mut act.liveness,
                    &cfg,
                    &req,
                    crate::now_ms(),
                    &mut Random,
                );
                Box::pin(
                    commit_quorum(q, records, act.routes.clone(), act.metrics.clone())
                        .into_actor(act)
                        .map(move |res, _, _| match res {
                            Ok(Some(offset)) => answer.committed_at(offset),
                            Ok(None) => answer,
                            Err(a) => a,
                        }),
                )
            };
            out
        }))
    }

    /// Heartbeat clocks start anew when this node becomes the active controller.
    fn become_active(&mut self, q: &raft::QuorumHandle) {
        if !self.was_active {
            self.was_active = true;
            self.last_rebalance = crate::now_ms();
            self.liveness = BrokerLiveness::new_active(&q.images.borrow(), crate::now_ms());
            tracing::info!(
                node_id = self.config.node_id,
                term = q.current_term(),
                "this node is the active controller"
            );
        }
    }
}

/// The CONTROLLER address of `leader`: this node's `controller.quorum.voters` entry,
/// else the quorum's membership.
fn leader_addr(config: &BrokerConfig, q: &raft::QuorumHandle, leader: u64) -> Option<String> {
    if let Some(v) = config
        .controller_quorum_voters
        .iter()
        .find(|v| v.id as u64 == leader)
    {
        return Some(format!("{}:{}", v.host, v.port));
    }
    let metrics = q.raft.metrics();
    let m = metrics.borrow();
    m.membership_config
        .membership()
        .get_node(&leader)
        .map(|n| n.addr.clone())
}

/// Write `records` (if any) and wait until this node's broker applied them: the
/// committed offset, `None` when there was nothing to write, or the answer to give.
async fn commit_quorum(
    q: Arc<raft::QuorumHandle>,
    records: Vec<MetadataRecord>,
    mut routes: watch::Receiver<Arc<RoutingTable>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
) -> Result<Option<i64>, A> {
    if records.is_empty() {
        return Ok(None);
    }
    // Decided against the latest committed image, which the records change.
    let elections = crate::metrics::count_elections(&q.images.borrow(), &records);
    let write = tokio::time::timeout(WRITE_TIMEOUT, q.write(records));
    let Ok(written) = write.await else {
        return Err(A::Failed((
            REQUEST_TIMED_OUT,
            "the controller quorum did not commit in time (no majority?)".into(),
        )));
    };
    let offset = match written {
        Ok(o) => o,
        Err(raft::WriteError::NotLeader { leader_id, .. }) => {
            return Err(A::NotController {
                leader: leader_id.map(|l| l as i32),
            })
        }
        Err(e) => return Err(A::Failed((NOT_CONTROLLER, e.to_string()))),
    };
    if let Some(m) = &metrics {
        m.elections_committed(elections);
    }
    // Answer once this node serves what was committed (bounded: the record is
    // committed either way).
    let applied = routes.wait_for(|r| r.image.last_offset >= offset);
    let _ = tokio::time::timeout(Duration::from_secs(5), applied).await;
    Ok(Some(offset))
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.backend, Backend::Quorum(_)) {
            ctx.run_interval(TICK, |_, ctx| ctx.notify(Tick));
        }
    }
}

impl Supervised for Controller {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!("controller restarting");
        if let Some(m) = &self.metrics {
            m.actor_restarted(crate::metrics::ActorKind::Controller);
        }
        self.was_active = false;
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "controller cannot reload the metadata log");
            self.backend = Backend::Local(None);
        }
    }
}

/// The active controller's periodic work (fencing silent brokers, preferred leaders).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

impl Handler<Tick> for Controller {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Tick, _ctx: &mut Context<Self>) -> Self::Result {
        let Backend::Quorum(q) = &self.backend else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        };
        if self.ticking {
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        let q = q.clone();
        if q.leader() != Some(self.node_id()) {
            self.was_active = false;
            return AtomicResponse::new(Box::pin(actix::fut::ready(())));
        }
        self.become_active(&q);
        let image = q.images.borrow().clone();
        let now = crate::now_ms();
        let every = self.config.leader_imbalance_check_interval_seconds as i64 * 1000;
        let rebalance = (self.config.auto_leader_rebalance_enable
            && now - self.last_rebalance >= every)
            .then_some(self.config.leader_imbalance_per_broker_percentage);
        if rebalance.is_some() {
            self.last_rebalance = now;
        }
        let records =
            troupe::controller::tick(&image, &self.liveness, &self.decisions(), now, rebalance);
        let routes = self.routes.clone();
        let metrics = self.metrics.clone();
        self.ticking = true;
        AtomicResponse::new(Box::pin(
            async move {
                if let Err(A::Failed((_, e))) = commit_quorum(q, records, routes, metrics).await {
                    tracing::warn!(error = %e, "controller tick could not commit");
                }
            }
            .into_actor(self)
            .map(|_, act, _| act.ticking = false),
        ))
    }
}

/// Any controller request; `forwarded` ones came from another node and are not
/// forwarded again.
#[derive(Message)]
#[rtype(result = "troupe::controller::ControllerResponse")]
pub struct Submit {
    pub request: Q,
    pub forwarded: bool,
}

impl Handler<Submit> for Controller {
    type Result = AtomicResponse<Self, A>;
    fn handle(&mut self, msg: Submit, _ctx: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(self.run(msg.request, msg.forwarded))
    }
}

impl Handler<GetImage> for Controller {
    type Result = MessageResult<GetImage>;
    fn handle(&mut self, _: GetImage, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.image())
    }
}

/// The error a typed request answers when no controller decided it.
fn unanswered(a: A) -> ApiError {
    match a {
        A::Failed(e) => e,
        A::NotController { .. } => (
            NOT_CONTROLLER,
            "No active controller could be reached.".into(),
        ),
        other => (
            UNKNOWN_SERVER_ERROR,
            format!("unexpected controller answer {other:?}"),
        ),
    }
}

impl Handler<CreateTopics> for Controller {
    type Result = AtomicResponse<Self, Vec<Result<CreatedTopic, ApiError>>>;
    fn handle(&mut self, msg: CreateTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let names: Vec<String> = msg.topics.iter().map(|t| t.name.clone()).collect();
        let validate_only = msg.validate_only;
        let req = Q::CreateTopics {
            topics: msg.topics,
            validate_only,
        };
        AtomicResponse::new(Box::pin(self.run(req, false).map(move |a, _, _| match a {
            A::CreateTopics(r) => {
                for (name, res) in names.iter().zip(&r) {
                    if let (Ok(c), false) = (res, validate_only) {
                        tracing::info!(topic = %name, partitions = c.num_partitions,
                            replication_factor = c.replication_factor, "topic created");
                    }
                }
                r
            }
            other => vec![Err(unanswered(other)); n],
        })))
    }
}

impl Handler<DeleteTopics> for Controller {
    type Result = AtomicResponse<Self, Vec<Result<(String, uuid::Uuid), ApiError>>>;
    fn handle(&mut self, msg: DeleteTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let req = Q::DeleteTopics { topics: msg.topics };
        AtomicResponse::new(Box::pin(self.run(req, false).map(move |a, _, _| match a {
            A::DeleteTopics(r) => {
                for (name, _) in r.iter().flatten() {
                    tracing::info!(topic = %name, "topic deleted");
                }
                r
            }
            other => vec![Err(unanswered(other)); n],
        })))
    }
}

impl Handler<CreatePartitions> for Controller {
    type Result = AtomicResponse<Self, Vec<Result<(), ApiError>>>;
    fn handle(&mut self, msg: CreatePartitions, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let req = Q::CreatePartitions {
            topics: msg.topics,
            validate_only: msg.validate_only,
        };
        AtomicResponse::new(Box::pin(self.run(req, false).map(move |a, _, _| match a {
            A::CreatePartitions(r) => r,
            other => vec![Err(unanswered(other)); n],
        })))
    }
}

impl Handler<AllocateProducerIds> for Controller {
    type Result = AtomicResponse<Self, Result<(i64, i64), ApiError>>;
    fn handle(&mut self, msg: AllocateProducerIds, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AllocateProducerIds {
            node_id: msg.node_id,
        };
        AtomicResponse::new(Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::ProducerIds(r) => {
                if let Ok((first, size)) = r {
                    tracing::info!(first, size, "producer id block allocated");
                }
                r
            }
            other => Err(unanswered(other)),
        })))
    }
}

impl Handler<AlterBrokerConfigs> for Controller {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterBrokerConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AlterBrokerConfigs {
            resource: msg.resource,
            ops: msg.ops,
            replace_all: msg.replace_all,
            validate_only: msg.validate_only,
        };
        AtomicResponse::new(Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::AlterBrokerConfigs(r) => r,
            other => Err(unanswered(other)),
        })))
    }
}

impl Handler<AlterTopicConfigs> for Controller {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterTopicConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AlterTopicConfigs {
            topic: msg.topic,
            ops: msg.ops,
            replace_all: msg.replace_all,
            validate_only: msg.validate_only,
        };
        AtomicResponse::new(Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::AlterTopicConfigs(r) => r,
            other => Err(unanswered(other)),
        })))
    }
}
