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
//! Decisions are made one at a time, each on top of the previous one's records: single
//! node, synchronously in the handler; on the active controller, by whoever holds the
//! `turn` (from the linearizable read to the commit). The periodic [`Tick`] (fencing
//! of silent brokers, preferred-leader rebalance) takes its turn too. Forwarding is
//! not a decision: forwards run side by side and never hold the actor's mailbox, so a
//! paused or unreachable old controller delays only the requests sent to it, and each
//! of those gives way as soon as this node learns of a new leader
//! ([`troupe::controller::routing`]).

pub mod forward;
pub mod lifecycle;
pub mod messages;
pub mod raft;

use crate::errors::*;
use crate::supervisor::{ApplyMetadata, BrokerSupervisor, RoutingTable};
use actix::prelude::*;
use messages::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex as AsyncMutex, OwnedMutexGuard, Semaphore};
use tokio::time::Instant;
use troupe::config::BrokerConfig;
use troupe::controller::routing::{self, Miss, Route};
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
/// Requests forwarded at once, each on its own connection to the active controller
/// (reused afterwards, [`forward::ForwardPool`]): more wait for a slot (after a broker failure every partition it was in may ask for
/// an ISR change together).
const MAX_FORWARDS: usize = 64;

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
    /// Held from the check that this node leads to the commit of what it decided: the
    /// next decision waits for it and sees those records in the image.
    turn: Arc<AsyncMutex<()>>,
    /// Slots for forwards in flight ([`MAX_FORWARDS`]).
    forwards: Arc<Semaphore>,
    /// Connections to the active controller, kept for the next forwards.
    forward_pool: Arc<forward::ForwardPool>,
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
            turn: Arc::default(),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            forward_pool: Arc::new(forward::ForwardPool::new(None)),
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.forward_pool = Arc::new(forward::ForwardPool::new(Some(metrics.clone())));
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
                self.attempt(q, req, forwarded, Instant::now())
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
                    observers: Vec::new(),
                    times: BTreeMap::from([(me, (crate::now_ms(), crate::now_ms()))]),
                },
            )));
        }
        // Decided and written here, synchronously: the next request sees the records.
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

    /// One attempt at `req` (decide here, or forward to the leader), then the next one
    /// if [`routing::next_attempt`] says so, until [`CONTROLLER_WAIT`] after `started`.
    fn attempt(
        &mut self,
        q: Arc<raft::QuorumHandle>,
        req: Q,
        forwarded: bool,
        started: Instant,
    ) -> ResponseActFuture<Self, A> {
        let leader = q.leader();
        let deadline = started + CONTROLLER_WAIT;
        let tried: ResponseActFuture<Self, Result<A, Miss>> =
            match routing::route(self.node_id(), leader, forwarded) {
                Route::Decide => self.decide_in_turn(q.clone(), req.clone()),
                Route::Forward(to) => Box::pin(
                    forward_to(
                        self.config.clone(),
                        q.clone(),
                        self.forwards.clone(),
                        self.forward_pool.clone(),
                        to,
                        req.clone(),
                        deadline,
                    )
                    .into_actor(self),
                ),
                Route::AwaitLeader => Box::pin(actix::fut::ready(Err(Miss::NoLeader))),
                Route::NotController => Box::pin(actix::fut::ready(Ok(A::NotController {
                    leader: leader.map(|l| l as i32),
                }))),
            };
        Box::pin(tried.then(move |tried, act, _| {
            let next: ResponseActFuture<Self, A> = match tried {
                Ok(answer) => Box::pin(actix::fut::ready(answer)),
                Err(miss) => {
                    let now = started.elapsed().as_millis() as i64;
                    let wait = CONTROLLER_WAIT.as_millis() as i64;
                    match routing::next_attempt(miss, forwarded, now, wait) {
                        None => Box::pin(actix::fut::ready(A::NotController {
                            leader: q.leader().map(|l| l as i32),
                        })),
                        Some(0) => act.attempt(q, req, forwarded, started),
                        Some(pause) => Box::pin(
                            tokio::time::sleep(Duration::from_millis(pause))
                                .into_actor(act)
                                .then(move |_, act, _| act.attempt(q, req, forwarded, started)),
                        ),
                    }
                }
            };
            next
        }))
    }

    /// The active controller: in turn with every other decision, make sure every
    /// committed record is applied, decide, write, and answer once this node has applied
    /// the result too (NOT_CONTROLLER when it turned out not to lead).
    fn decide_in_turn(
        &mut self,
        q: Arc<raft::QuorumHandle>,
        req: Q,
    ) -> ResponseActFuture<Self, Result<A, Miss>> {
        if matches!(req, Q::DescribeQuorum) {
            return Box::pin(actix::fut::ready(Ok(A::Quorum(q.describe()))));
        }
        let ready = ready_to_decide(self.turn.clone(), q.clone());
        Box::pin(ready.into_actor(self).then(move |turn, act, _| {
            // A node that cannot confirm its lead answers NOT_CONTROLLER rather than
            // retry: a node cut off from the quorum must not hold a request (and carry
            // it out once healed) after its sender gave up.
            let out: ResponseActFuture<Self, Result<A, Miss>> = match turn {
                None => Box::pin(actix::fut::ready(Ok(A::NotController {
                    leader: q.leader().map(|l| l as i32),
                }))),
                Some(turn) => {
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
                    let routes = act.routes.clone();
                    let metrics = act.metrics.clone();
                    Box::pin(
                        async move {
                            let written = write_quorum(&q, records, metrics).await;
                            drop(turn);
                            match written {
                                Ok(Some(offset)) => {
                                    wait_applied(routes, offset).await;
                                    Ok(answer.committed_at(offset))
                                }
                                Ok(None) => Ok(answer),
                                Err(a) => Ok(a),
                            }
                        }
                        .into_actor(act),
                    )
                }
            };
            out
        }))
    }

    /// Heartbeat clocks start anew when this node becomes the active controller, except
    /// the old leader's: its session runs from the last message this node had from it.
    fn become_active(&mut self, q: &raft::QuorumHandle) {
        if !self.was_active {
            self.was_active = true;
            let now = crate::now_ms();
            self.last_rebalance = now;
            let old_leader = q
                .leader_contact
                .take()
                .filter(|(node, _)| *node != q.node_id);
            let heard: BTreeMap<i32, i64> = old_leader
                .iter()
                .map(|(node, ago)| (*node as i32, now - ago.as_millis() as i64))
                .collect();
            self.liveness = BrokerLiveness::new_active_with(&q.images.borrow(), now, &heard);
            tracing::info!(
                node_id = self.config.node_id,
                term = q.current_term(),
                old_leader = ?old_leader.map(|(n, _)| n),
                old_leader_silent_ms = ?old_leader.map(|(_, ago)| ago.as_millis()),
                "this node is the active controller"
            );
        }
    }
}

/// Wait for the turn to decide, then check that this node still leads with every
/// committed record applied (bounded: without a majority it would never finish). The
/// turn, or `None` when this node does not lead.
async fn ready_to_decide(
    turn: Arc<AsyncMutex<()>>,
    q: Arc<raft::QuorumHandle>,
) -> Option<OwnedMutexGuard<()>> {
    let turn = turn.lock_owned().await;
    let check = q.raft.ensure_linearizable();
    matches!(tokio::time::timeout(WRITE_TIMEOUT, check).await, Ok(Ok(_))).then_some(turn)
}

/// Send `req` to the leader `to`, giving way as soon as this node knows of another
/// leader (or an election): a paused old controller keeps sockets open and answers
/// nothing, and whatever it would say now commits nothing.
async fn forward_to(
    config: Arc<BrokerConfig>,
    q: Arc<raft::QuorumHandle>,
    slots: Arc<Semaphore>,
    pool: Arc<forward::ForwardPool>,
    to: u64,
    req: Q,
    deadline: Instant,
) -> Result<A, Miss> {
    let Some(addr) = leader_addr(&config, &q, to) else {
        return Err(Miss::Unreachable);
    };
    let mut metrics = q.raft.metrics();
    let changed = async move {
        if metrics
            .wait_for(|m| m.current_leader != Some(to))
            .await
            .is_err()
        {
            // Raft stopped: no news will come; the deadline ends the attempt.
            std::future::pending::<()>().await;
        }
    };
    let send = async {
        // Never closed, so acquiring only waits.
        let _slot = slots.acquire().await;
        pool.forward(&addr, req).await
    };
    tokio::select! {
        _ = changed => Err(Miss::LeaderChanged),
        _ = tokio::time::sleep_until(deadline) => Err(Miss::Unreachable),
        answer = send => match answer {
            Ok(A::NotController { .. }) => Err(Miss::NotController),
            Ok(a) => Ok(a),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "forwarding to the controller failed");
                Err(Miss::Unreachable)
            }
        },
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

/// Write `records` (if any): the committed offset (applied to the quorum's image once
/// this returns), `None` when there was nothing to write, or the answer to give.
async fn write_quorum(
    q: &raft::QuorumHandle,
    records: Vec<MetadataRecord>,
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
    match written {
        Ok(o) => {
            if let Some(m) = &metrics {
                m.elections_committed(elections);
            }
            Ok(Some(o))
        }
        Err(raft::WriteError::NotLeader { leader_id, .. }) => Err(A::NotController {
            leader: leader_id.map(|l| l as i32),
        }),
        Err(e) => Err(A::Failed((NOT_CONTROLLER, e.to_string()))),
    }
}

/// Wait until this node's broker serves what was committed at `offset` (bounded: the
/// record is committed either way).
async fn wait_applied(mut routes: watch::Receiver<Arc<RoutingTable>>, offset: i64) {
    let applied = routes.wait_for(|r| r.image.last_offset >= offset);
    let _ = tokio::time::timeout(Duration::from_secs(5), applied).await;
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
        // Whatever was in flight was dropped with the old context, turns included.
        self.was_active = false;
        self.ticking = false;
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
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let Backend::Quorum(q) = &self.backend else {
            return;
        };
        if self.ticking {
            return;
        }
        let q = q.clone();
        if q.leader() != Some(self.node_id()) {
            self.was_active = false;
            return;
        }
        self.ticking = true;
        let ready = ready_to_decide(self.turn.clone(), q.clone());
        ctx.spawn(ready.into_actor(self).then(move |turn, act, _| {
            let Some(turn) = turn else {
                act.ticking = false;
                return Box::pin(actix::fut::ready(())) as ResponseActFuture<Self, ()>;
            };
            act.become_active(&q);
            let image = q.images.borrow().clone();
            let now = crate::now_ms();
            let every = act.config.leader_imbalance_check_interval_seconds as i64 * 1000;
            let rebalance = (act.config.auto_leader_rebalance_enable
                && now - act.last_rebalance >= every)
                .then_some(act.config.leader_imbalance_per_broker_percentage);
            if rebalance.is_some() {
                act.last_rebalance = now;
            }
            let records =
                troupe::controller::tick(&image, &act.liveness, &act.decisions(), now, rebalance);
            let routes = act.routes.clone();
            let metrics = act.metrics.clone();
            Box::pin(
                async move {
                    let written = write_quorum(&q, records, metrics).await;
                    drop(turn);
                    match written {
                        Ok(Some(offset)) => wait_applied(routes, offset).await,
                        Ok(None) => {}
                        Err(A::Failed((_, e))) => {
                            tracing::warn!(error = %e, "controller tick could not commit")
                        }
                        Err(_) => {}
                    }
                }
                .into_actor(act)
                .map(|_, act, _| act.ticking = false),
            )
        }));
    }
}

/// Test hook: stop the controller actor as a failure would; its supervisor restarts
/// it (requests in flight are answered with a mailbox error, which callers retry).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

impl Handler<Crash> for Controller {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!("controller crash requested (fault injection)");
        ctx.stop();
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
    type Result = ResponseActFuture<Self, A>;
    fn handle(&mut self, msg: Submit, _ctx: &mut Context<Self>) -> Self::Result {
        self.run(msg.request, msg.forwarded)
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
    type Result = ResponseActFuture<Self, Vec<Result<CreatedTopic, ApiError>>>;
    fn handle(&mut self, msg: CreateTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let names: Vec<String> = msg.topics.iter().map(|t| t.name.clone()).collect();
        let validate_only = msg.validate_only;
        let req = Q::CreateTopics {
            topics: msg.topics,
            validate_only,
        };
        Box::pin(self.run(req, false).map(move |a, _, _| match a {
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
        }))
    }
}

impl Handler<DeleteTopics> for Controller {
    type Result = ResponseActFuture<Self, Vec<Result<(String, uuid::Uuid), ApiError>>>;
    fn handle(&mut self, msg: DeleteTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let req = Q::DeleteTopics { topics: msg.topics };
        Box::pin(self.run(req, false).map(move |a, _, _| match a {
            A::DeleteTopics(r) => {
                for (name, _) in r.iter().flatten() {
                    tracing::info!(topic = %name, "topic deleted");
                }
                r
            }
            other => vec![Err(unanswered(other)); n],
        }))
    }
}

impl Handler<CreatePartitions> for Controller {
    type Result = ResponseActFuture<Self, Vec<Result<(), ApiError>>>;
    fn handle(&mut self, msg: CreatePartitions, _ctx: &mut Context<Self>) -> Self::Result {
        let n = msg.topics.len();
        let req = Q::CreatePartitions {
            topics: msg.topics,
            validate_only: msg.validate_only,
        };
        Box::pin(self.run(req, false).map(move |a, _, _| match a {
            A::CreatePartitions(r) => r,
            other => vec![Err(unanswered(other)); n],
        }))
    }
}

impl Handler<AllocateProducerIds> for Controller {
    type Result = ResponseActFuture<Self, Result<(i64, i64), ApiError>>;
    fn handle(&mut self, msg: AllocateProducerIds, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AllocateProducerIds {
            node_id: msg.node_id,
        };
        Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::ProducerIds(r) => {
                if let Ok((first, size)) = r {
                    tracing::info!(first, size, "producer id block allocated");
                }
                r
            }
            other => Err(unanswered(other)),
        }))
    }
}

impl Handler<AlterBrokerConfigs> for Controller {
    type Result = ResponseActFuture<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterBrokerConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AlterBrokerConfigs {
            resource: msg.resource,
            ops: msg.ops,
            replace_all: msg.replace_all,
            validate_only: msg.validate_only,
        };
        Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::AlterBrokerConfigs(r) => r,
            other => Err(unanswered(other)),
        }))
    }
}

impl Handler<AlterTopicConfigs> for Controller {
    type Result = ResponseActFuture<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterTopicConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let req = Q::AlterTopicConfigs {
            topic: msg.topic,
            ops: msg.ops,
            replace_all: msg.replace_all,
            validate_only: msg.validate_only,
        };
        Box::pin(self.run(req, false).map(|a, _, _| match a {
            A::AlterTopicConfigs(r) => r,
            other => Err(unanswered(other)),
        }))
    }
}
