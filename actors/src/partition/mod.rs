//! The `PartitionActor`: one per replica this broker hosts, leader or follower.
//!
//! The rules live in the sans-IO [`PartitionMachine`] (role and leader epoch, ISR and
//! follower progress, high watermark, acks=all purgatory, AlterPartition proposals);
//! this actor feeds it what happens (metadata, local appends, follower fetches, the
//! clock) and carries out what it decides: answer waiting produces, send AlterPartition
//! to the controller, checkpoint the high watermark. Its `Log` actor stays across role
//! changes. Reads go straight from connections to the `Log` actor, bounded by the high
//! watermark this actor publishes in a `watch` channel (no hop through it per fetch).

pub mod messages;

use crate::controller::{Controller, Submit};
use crate::errors::{FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH};
use crate::log::messages as logm;
use crate::log::LogPort;
use crate::supervisor::RoutingTable;
use actix::prelude::*;
use bytes::BytesMut;
use futures_util::future::Either;
use messages::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use troupe::config::{TimestampType, TopicConfig};
use troupe::controller::{AlterPartition, ControllerRequest as Q, ControllerResponse as A};
use troupe::metadata::PartitionImage;
use troupe::replication::machine::{codes, Output, ProduceId};
use troupe::replication::{truncation_offset, PartitionMachine, ReplicationConfig};
use troupe::storage::batch::set_log_append_time;
use troupe::storage::validate_batches;
use uuid::Uuid;

/// What readers need without asking the actor: published after every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionState {
    /// The log is open and the replica knows its offsets.
    pub online: bool,
    /// This replica leads the partition (consumers and producers are served only then).
    pub is_leader: bool,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
    /// The epoch of the last batch in the local log (-1: none): a follower's
    /// `last_fetched_epoch`.
    pub latest_epoch: i32,
    /// The last append failed for lack of disk space: produces get KAFKA_STORAGE_ERROR
    /// while reads go on, until an append succeeds again. For Metadata and
    /// DescribeLogDirs to show; the log actor logs when it starts and ends.
    pub disk_full: bool,
}

impl PartitionState {
    /// [`Self::check_leader_epoch`] for a consumer that may read from a follower
    /// (KIP-392): any online replica that knows its leader epoch serves it.
    pub fn check_read_epoch(&self, current_leader_epoch: i32) -> Option<i16> {
        if !self.online || self.leader_epoch < 0 {
            Some(NOT_LEADER_OR_FOLLOWER)
        } else if current_leader_epoch >= 0 && current_leader_epoch < self.leader_epoch {
            Some(FENCED_LEADER_EPOCH)
        } else if current_leader_epoch > self.leader_epoch {
            Some(UNKNOWN_LEADER_EPOCH)
        } else {
            None
        }
    }

    /// Kafka's check of a client request's `current_leader_epoch` (-1: not given)
    /// against this leader (KIP-320): the error code to answer with, if any.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Option<i16> {
        if !self.is_leader {
            return Some(NOT_LEADER_OR_FOLLOWER);
        }
        self.check_read_epoch(current_leader_epoch)
    }
}

/// What a partition needs of the broker around it.
#[derive(Clone)]
pub struct PartitionEnv {
    pub node_id: i32,
    pub retention_check: Duration,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_ms: i64,
    /// Where AlterPartition goes (`None` in tests without a controller).
    pub controller: Option<Addr<Controller>>,
    /// The latest routing table: this broker's epoch for AlterPartition.
    pub routes: watch::Receiver<Arc<RoutingTable>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub struct PartitionActor {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    env: PartitionEnv,
    image: PartitionImage,
    config: TopicConfig,
    log: LogPort,
    /// The periodic ticks (ISR rules, retention), cancelled on `Shutdown`: a running
    /// interval keeps an actor alive, and a deleted partition's would tick its closed
    /// log forever.
    timers: Vec<SpawnHandle>,
    /// `None` until the log has told us its offsets (and again after a restart).
    machine: Option<PartitionMachine>,
    log_start_offset: i64,
    latest_epoch: i32,
    state: watch::Sender<PartitionState>,
    /// acks=all produces waiting for the high watermark to pass their last offset.
    waiting: HashMap<ProduceId, oneshot::Sender<i16>>,
    next_produce: ProduceId,
    /// When a replication timeout was last logged (rate limit).
    last_timeout_log_ms: i64,
    shut_down: bool,
    /// Failed attempts to load the log's offsets in a row: the retry delay doubles
    /// with each one (see [`load_retry_delay`]), so a broker whose logs cannot open
    /// (e.g. out of file descriptors) does not retry and warn for every partition
    /// every second.
    load_failures: u32,
    /// See [`PartitionState::disk_full`]; kept here because `publish` rebuilds the state.
    disk_full: bool,
    /// The topic's counters, resolved once: a produce only adds to them.
    topic_metrics: Arc<crate::metrics::TopicMetrics>,
    /// The high watermark the log actor reads (cleaner bound, checkpoint): set at every
    /// move without a message; `SetHighWatermark` goes only when a checkpoint may be
    /// due (`hw_sent_ms`), instead of waking the storage thread after every append.
    shared_hw: crate::log::SharedHighWatermark,
    hw_sent_ms: i64,
}

/// The first retry of an unavailable log comes after 1 s, then 2, 4, ... up to 60 s.
fn load_retry_delay(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(60);
    Duration::from_secs(1u64 << failures.min(6)).min(MAX)
}

/// How often the ISR rules and purgatory deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// After a refused AlterPartition, wait this long before proposing again.
const ALTER_RETRY: Duration = Duration::from_millis(500);

use crate::errors::{KAFKA_STORAGE_ERROR, NOT_LEADER_OR_FOLLOWER, OFFSET_OUT_OF_RANGE};

impl PartitionActor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        topic_id: Uuid,
        partition: i32,
        env: PartitionEnv,
        image: PartitionImage,
        config: TopicConfig,
        log: LogPort,
        state: watch::Sender<PartitionState>,
    ) -> Self {
        PartitionActor {
            topic_metrics: env.metrics.topic(&topic),
            topic,
            topic_id,
            partition,
            env,
            image,
            config,
            log,
            machine: None,
            timers: Vec::new(),
            log_start_offset: 0,
            latest_epoch: -1,
            state,
            waiting: HashMap::new(),
            next_produce: 0,
            last_timeout_log_ms: 0,
            shut_down: false,
            load_failures: 0,
            disk_full: false,
            shared_hw: Default::default(),
            hw_sent_ms: i64::MIN,
        }
    }

    /// Share the high watermark with this partition's log actor.
    pub fn with_high_watermark(mut self, cell: crate::log::SharedHighWatermark) -> Self {
        self.shared_hw = cell;
        self
    }

    fn replication_config(&self) -> ReplicationConfig {
        ReplicationConfig {
            replica_lag_time_max_ms: self.env.replica_lag_time_max_ms,
            min_insync_replicas: self.config.min_insync_replicas,
        }
    }

    fn publish(&self) {
        let s = match &self.machine {
            Some(m) => PartitionState {
                online: true,
                is_leader: m.is_leader(),
                high_watermark: m.high_watermark(),
                log_start_offset: self.log_start_offset,
                log_end_offset: m.log_end_offset(),
                leader_epoch: m.leader_epoch(),
                latest_epoch: self.latest_epoch,
                disk_full: self.disk_full,
            },
            None => PartitionState {
                online: false,
                is_leader: false,
                disk_full: self.disk_full,
                ..*self.state.borrow()
            },
        };
        self.state.send_replace(s);
    }

    /// Ask the log for its offsets and (re)build the state machine from them.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let fut = self
            .log
            .send(logm::GetOffsets)
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(Ok(o)) => {
                    if act.load_failures > 0 {
                        tracing::info!(topic = %act.topic, partition = act.partition,
                        failed_attempts = act.load_failures, "partition log available again");
                        act.load_failures = 0;
                    }
                    act.log_start_offset = o.log_start_offset;
                    act.latest_epoch = o.latest_epoch.unwrap_or(-1);
                    let hw = o.high_watermark.unwrap_or(0);
                    act.machine = Some(PartitionMachine::new(
                        act.env.node_id,
                        act.replication_config(),
                        o.log_end_offset,
                        hw,
                    ));
                    let image = act.image.clone();
                    act.apply_image(&image, ctx);
                    act.publish();
                }
                Ok(Err(e)) => act.retry_load(e.to_string(), ctx),
                Err(e) => act.retry_load(e.to_string(), ctx),
            });
        ctx.wait(fut);
    }

    /// One warning per backoff step, then ask again (the log actor retries its open).
    fn retry_load(&mut self, error: String, ctx: &mut Context<Self>) {
        let delay = load_retry_delay(self.load_failures);
        self.load_failures = self.load_failures.saturating_add(1);
        tracing::warn!(topic = %self.topic, partition = self.partition, %error,
            attempt = self.load_failures, retry_in_s = delay.as_secs(),
            "partition log not available");
        ctx.run_later(delay, |act, ctx| {
            if !act.shut_down {
                act.load(ctx);
            }
        });
    }

    /// Feed the machine a (newer) image of this partition; a replica that becomes
    /// leader records the start of its epoch in the log's epoch cache first.
    fn apply_image(&mut self, image: &PartitionImage, ctx: &mut Context<Self>) {
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        let (was_leader, old_epoch) = (m.is_leader(), m.leader_epoch());
        let out = m.apply(image, crate::now_ms());
        let (is_leader, epoch) = (m.is_leader(), m.leader_epoch());
        if is_leader && (!was_leader || epoch != old_epoch) {
            self.log.do_send(logm::BeginLeaderEpoch { epoch });
            tracing::info!(topic = %self.topic, partition = self.partition, leader_epoch = epoch,
                isr = ?image.isr, log_end_offset = m.log_end_offset(),
                high_watermark = m.high_watermark(), "became leader");
        } else if !is_leader && (was_leader || epoch != old_epoch) {
            tracing::info!(topic = %self.topic, partition = self.partition, leader_epoch = epoch,
                leader = image.leader, log_end_offset = m.log_end_offset(), "following");
        }
        self.carry_out(out, ctx);
    }

    /// Do what the machine decided.
    fn carry_out(&mut self, out: Vec<Output>, ctx: &mut Context<Self>) {
        let mut publish = false;
        let mut timed_out = 0usize;
        for o in out {
            match o {
                Output::Complete(id, code) => {
                    if code == codes::REQUEST_TIMED_OUT {
                        timed_out += 1;
                    }
                    if let Some(tx) = self.waiting.remove(&id) {
                        let _ = tx.send(code);
                    }
                }
                Output::HighWatermark(hw) => {
                    self.shared_hw.set(hw);
                    let now = crate::now_ms();
                    if now.saturating_sub(self.hw_sent_ms) >= self.env.hw_checkpoint_ms {
                        self.hw_sent_ms = now;
                        self.log.do_send(logm::SetHighWatermark {
                            high_watermark: hw,
                            checkpoint_ms: self.env.hw_checkpoint_ms,
                        });
                    }
                    publish = true;
                }
                Output::AlterIsr {
                    leader_epoch,
                    partition_epoch,
                    isr,
                } => self.alter_isr(leader_epoch, partition_epoch, isr, ctx),
            }
        }
        if publish {
            self.publish();
        }
        if timed_out > 0 {
            // Replication did not keep up with a request's timeout: say where it stands
            // (at most once every 10 s per partition).
            let now = crate::now_ms();
            if now - self.last_timeout_log_ms >= 10_000 {
                self.last_timeout_log_ms = now;
                if let Some(m) = self.machine.as_ref() {
                    tracing::warn!(topic = %self.topic, partition = self.partition, timed_out,
                        still_waiting = m.waiting(), high_watermark = m.high_watermark(),
                        log_end_offset = m.log_end_offset(), isr = ?m.isr(),
                        pending_isr = ?m.pending_isr(), followers = ?m.follower_offsets(),
                        leader_epoch = m.leader_epoch(), "acks=all produces timed out waiting for replication");
                }
            }
        }
    }

    /// Send the machine's ISR change to the controller; the committed partition comes
    /// back as the answer (and later in the metadata too).
    fn alter_isr(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
        ctx: &mut Context<Self>,
    ) {
        let node_id = self.env.node_id;
        let broker_epoch = self
            .env
            .routes
            .borrow()
            .image
            .brokers
            .get(&node_id)
            .map(|b| b.epoch);
        let (Some(controller), Some(broker_epoch)) = (self.env.controller.clone(), broker_epoch)
        else {
            ctx.run_later(ALTER_RETRY, |act, _| {
                if let Some(m) = act.machine.as_mut() {
                    m.on_alter_isr_failed();
                }
            });
            return;
        };
        let before = self.machine.as_ref().map_or(0, |m| m.isr().len());
        tracing::info!(topic = %self.topic, partition = self.partition, leader_epoch,
            partition_epoch, from = ?self.machine.as_ref().map(|m| m.isr().to_vec()), to = ?isr,
            "proposing ISR change");
        let req = Q::AlterPartition(AlterPartition {
            broker_id: node_id,
            broker_epoch,
            topic_id: self.topic_id,
            partition: self.partition,
            leader_epoch,
            partition_epoch,
            new_isr: isr,
        });
        let fut = controller
            .send(Submit {
                request: req,
                forwarded: false,
            })
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                Ok(A::AlterPartition(Ok(p))) => {
                    // Counted once committed, as Kafka counts IsrShrinks/IsrExpands.
                    match p.isr.len().cmp(&before) {
                        std::cmp::Ordering::Less => act.env.metrics.isr_shrinks.inc(),
                        std::cmp::Ordering::Greater => act.env.metrics.isr_expands.inc(),
                        std::cmp::Ordering::Equal => {}
                    }
                    // Metadata may have brought a newer image meanwhile: keep it.
                    if (p.leader_epoch, p.partition_epoch)
                        >= (act.image.leader_epoch, act.image.partition_epoch)
                    {
                        act.image = p.clone();
                    }
                    act.apply_image(&p, ctx);
                    act.publish();
                }
                other => {
                    tracing::info!(topic = %act.topic, partition = act.partition,
                        answer = ?other.as_ref().map_err(|e| e.to_string()), "ISR change refused");
                    ctx.run_later(ALTER_RETRY, |act, _| {
                        if let Some(m) = act.machine.as_mut() {
                            m.on_alter_isr_failed();
                        }
                    });
                }
            });
        ctx.spawn(fut);
    }

    fn refresh_offsets(&mut self, ctx: &mut Context<Self>) {
        let fut = self
            .log
            .send(logm::GetOffsets)
            .into_actor(self)
            .map(|res, act, _| {
                if let Ok(Ok(o)) = res {
                    act.log_start_offset = o.log_start_offset;
                    act.latest_epoch = o.latest_epoch.unwrap_or(-1);
                    if let Some(m) = act.machine.as_mut() {
                        if o.log_end_offset < m.log_end_offset() {
                            m.on_local_truncate(o.log_end_offset);
                        }
                    }
                    act.publish();
                }
            });
        ctx.spawn(fut);
    }

    fn fail_all_waiting(&mut self, code: i16) {
        if let Some(m) = self.machine.as_mut() {
            m.fail_waiting(code);
        }
        for (_, tx) in self.waiting.drain() {
            let _ = tx.send(code);
        }
    }

    /// Is this replica following `leader_epoch` right now?
    fn follows(&self, leader_epoch: i32) -> bool {
        self.machine
            .as_ref()
            .is_some_and(|m| !m.is_leader() && m.leader_epoch() == leader_epoch)
    }
}

impl Actor for PartitionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        if self.shut_down {
            return;
        }
        self.load(ctx);
        let tick = ctx.run_interval(TICK, |act, ctx| {
            let Some(m) = act.machine.as_mut() else {
                return;
            };
            if m.replicas().len() <= 1 && m.waiting() == 0 {
                return;
            }
            let out = m.tick(crate::now_ms());
            act.carry_out(out, ctx);
        });
        let retention = ctx.run_interval(self.env.retention_check, |act, ctx| {
            // Only the leader deletes by retention, below its high watermark;
            // followers follow its log start.
            let Some(hw) = act
                .machine
                .as_ref()
                .filter(|m| m.is_leader())
                .map(|m| m.high_watermark())
            else {
                return;
            };
            let fut = act
                .log
                .send(logm::EnforceRetention {
                    now_ms: crate::now_ms(),
                    high_watermark: hw,
                })
                .into_actor(act)
                .map(|res, act, ctx| {
                    if let Ok(Ok(n)) = res {
                        if n > 0 {
                            act.refresh_offsets(ctx);
                        }
                    }
                });
            ctx.spawn(fut);
        });
        self.timers = vec![tick, retention];
    }
}

impl Supervised for PartitionActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(topic = %self.topic, partition = self.partition, "partition restarting");
        self.env
            .metrics
            .actor_restarted(crate::metrics::ActorKind::Partition);
        self.fail_all_waiting(NOT_LEADER_OR_FOLLOWER);
        self.machine = None;
        self.publish();
    }
}

impl Handler<Produce> for PartitionActor {
    type Result = ResponseActFuture<Self, Result<ProduceOk, PartitionError>>;

    fn handle(&mut self, msg: Produce, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(machine) = self.machine.as_ref() else {
            let code = if self.shut_down {
                NOT_LEADER_OR_FOLLOWER
            } else {
                KAFKA_STORAGE_ERROR
            };
            return Box::pin(actix::fut::ready(Err(PartitionError::new(code, None))));
        };
        if let Err(code) = machine.check_produce(msg.acks) {
            let message = (code == codes::NOT_ENOUGH_REPLICAS).then(|| {
                format!(
                    "The ISR has {} replicas, min.insync.replicas is {}",
                    machine.isr().len(),
                    self.config.min_insync_replicas
                )
            });
            return Box::pin(actix::fut::ready(Err(PartitionError::new(code, message))));
        }
        let leader_epoch = machine.leader_epoch();
        let now = crate::now_ms();
        // The request's buffer goes to the log as is: the log stamps base offset and
        // leader epoch on what it writes without copying or changing the records.
        let mut records = msg.records;
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        if log_append_time {
            // Checked here because re-stamping re-checksums: a corrupt batch must be
            // refused before it could come out with a valid CRC.
            if let Err(e) = validate_batches(&records, self.config.max_message_bytes) {
                return Box::pin(actix::fut::ready(Err(PartitionError::new(
                    e.kafka_error_code(),
                    Some(e.to_string()),
                ))));
            }
            // LogAppendTime changes fields under the CRC: this path needs its own copy.
            let mut stamped = BytesMut::from(&records[..]);
            set_log_append_time(&mut stamped, now);
            records = stamped.freeze();
        }
        let request_bytes = records.len() as u64;
        let append = logm::Append {
            records,
            leader_epoch,
            now_ms: now,
        };
        // On this thread if the append only writes, else on the storage thread.
        let append = match self.log.try_append(&append) {
            Some(written) => Either::Left(std::future::ready(Ok(written))),
            None => Either::Right(self.log.send(append)),
        };
        let (acks, timeout_ms) = (msg.acks, msg.timeout_ms);
        Box::pin(
            append
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Ok(info)) => {
                        if info.bytes > 0 {
                            act.disk_full = false;
                        }
                        // Concurrent appends complete in any order: never back.
                        act.log_start_offset = act.log_start_offset.max(info.log_start_offset);
                        // A duplicate of an idempotent batch wrote nothing (no headers):
                        // the log end offset stays where it is.
                        if let Some(last) = info.batches.last() {
                            let m = &act.topic_metrics;
                            m.messages_in
                                .inc_by((info.last_offset - info.first_offset + 1).max(0) as u64);
                            m.bytes_in.inc_by(request_bytes);
                            act.latest_epoch = last.partition_leader_epoch.max(act.latest_epoch);
                            if let Some(m) = act.machine.as_mut() {
                                if info.last_offset + 1 < m.log_end_offset() {
                                    tracing::debug!(topic = %act.topic, partition = act.partition,
                                        reported = info.last_offset + 1, log_end_offset = m.log_end_offset(),
                                        "an earlier append completed after a later one");
                                }
                                let out = m.on_local_append(info.last_offset + 1, now);
                                act.carry_out(out, ctx);
                            }
                        }
                        act.publish();
                        let ok = ProduceOk {
                            base_offset: info.first_offset,
                            log_append_time_ms: if log_append_time { now } else { -1 },
                            log_start_offset: info.log_start_offset,
                        };
                        if acks != -1 {
                            return Ok((ok, None));
                        }
                        // acks=all: answered once the high watermark passes the batch.
                        let Some(m) = act.machine.as_mut() else {
                            return Err(PartitionError::new(NOT_LEADER_OR_FOLLOWER, None));
                        };
                        let id = act.next_produce;
                        act.next_produce += 1;
                        let (tx, rx) = oneshot::channel();
                        act.waiting.insert(id, tx);
                        let deadline = crate::now_ms() + timeout_ms.max(1);
                        let out = m.wait_for_replication(id, info.last_offset, deadline);
                        act.carry_out(out, ctx);
                        Ok((ok, Some(rx)))
                    }
                    Ok(Err(e)) => {
                        if e.is_disk_full() && !act.disk_full {
                            act.disk_full = true;
                            act.publish();
                        }
                        Err(PartitionError::from_storage(&e))
                    }
                    Err(_mailbox) => Err(PartitionError::new(KAFKA_STORAGE_ERROR, None)),
                })
                .then(|res, _act, _ctx| {
                    actix::fut::wrap_future(async move {
                        match res {
                            Ok((ok, None)) => Ok(ok),
                            Ok((ok, Some(rx))) => match rx.await {
                                Ok(codes::NONE) => Ok(ok),
                                Ok(code) => Err(PartitionError::new(code, None)),
                                Err(_) => Err(PartitionError::new(NOT_LEADER_OR_FOLLOWER, None)),
                            },
                            Err(e) => Err(e),
                        }
                    })
                }),
        )
    }
}

impl Handler<DeleteRecords> for PartitionActor {
    type Result = ResponseActFuture<Self, Result<i64, PartitionError>>;

    fn handle(&mut self, msg: DeleteRecords, _ctx: &mut Context<Self>) -> Self::Result {
        let hw = match self.machine.as_ref() {
            None => {
                return Box::pin(actix::fut::ready(Err(PartitionError::new(
                    KAFKA_STORAGE_ERROR,
                    None,
                ))))
            }
            Some(m) if !m.is_leader() => {
                return Box::pin(actix::fut::ready(Err(PartitionError::new(
                    NOT_LEADER_OR_FOLLOWER,
                    None,
                ))))
            }
            Some(m) => m.high_watermark(),
        };
        let offset = if msg.offset == -1 { hw } else { msg.offset };
        if offset < 0 || offset > hw {
            return Box::pin(actix::fut::ready(Err(PartitionError::new(
                OFFSET_OUT_OF_RANGE,
                Some(format!("offset {offset} is beyond the high watermark {hw}")),
            ))));
        }
        let fut = self.log.send(logm::DeleteRecordsBefore { offset });
        Box::pin(fut.into_actor(self).map(|res, act, _| match res {
            Ok(Ok(start)) => {
                act.log_start_offset = start;
                act.publish();
                Ok(start)
            }
            Ok(Err(e)) => Err(PartitionError::new(
                e.kafka_error_code(),
                Some(e.to_string()),
            )),
            Err(_) => Err(PartitionError::new(KAFKA_STORAGE_ERROR, None)),
        }))
    }
}

impl Handler<ReplicaFetch> for PartitionActor {
    type Result = ResponseActFuture<Self, Result<Option<(i32, i64)>, i16>>;

    fn handle(&mut self, msg: ReplicaFetch, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        let Some(m) = self.machine.as_ref() else {
            return ready(Err(KAFKA_STORAGE_ERROR));
        };
        if !m.is_leader() {
            return ready(Err(NOT_LEADER_OR_FOLLOWER));
        }
        let epoch = m.leader_epoch();
        if msg.current_leader_epoch != -1 {
            if msg.current_leader_epoch < epoch {
                return ready(Err(FENCED_LEADER_EPOCH));
            }
            if msg.current_leader_epoch > epoch {
                return ready(Err(UNKNOWN_LEADER_EPOCH));
            }
        }
        if msg.fetch_offset > m.log_end_offset() || msg.fetch_offset < self.log_start_offset {
            return ready(Err(OFFSET_OUT_OF_RANGE));
        }
        // Kafka's divergence check: the follower's last fetched epoch must end, in the
        // leader's log, at or after the fetch offset; otherwise it gets the leader's end
        // of that epoch and truncates, and this fetch does not count as its progress.
        let check = (msg.last_fetched_epoch >= 0).then(|| {
            self.log.send(logm::EndOffsetForEpoch {
                epoch: msg.last_fetched_epoch,
            })
        });
        let fut = async move {
            match check {
                None => Ok(None),
                Some(f) => match f.await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(e)) => Err(e.kafka_error_code()),
                    Err(_) => Err(KAFKA_STORAGE_ERROR),
                },
            }
        };
        Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
            let answer = res?;
            if msg.last_fetched_epoch >= 0 {
                match answer {
                    Some((e, end)) if e == msg.last_fetched_epoch && end >= msg.fetch_offset => {}
                    Some((e, end)) => return Ok(Some((e, end))),
                    // The leader knows no end for that epoch (newer than any of its
                    // own: an unclean election): cut back to the high watermark.
                    None => {
                        let hw = act.machine.as_ref().map_or(0, |m| m.high_watermark());
                        return Ok(Some((-1, hw)));
                    }
                }
            }
            let Some(m) = act.machine.as_mut() else {
                return Err(KAFKA_STORAGE_ERROR);
            };
            let mut out = Vec::new();
            m.on_follower_fetch(
                msg.replica_id,
                msg.fetch_offset,
                msg.current_leader_epoch,
                crate::now_ms(),
                &mut out,
            )?;
            act.carry_out(out, ctx);
            Ok(None)
        }))
    }
}

impl Handler<FromLeader> for PartitionActor {
    type Result = ResponseActFuture<Self, Result<(), i16>>;

    fn handle(&mut self, msg: FromLeader, _ctx: &mut Context<Self>) -> Self::Result {
        let ready = |r| -> Self::Result { Box::pin(actix::fut::ready(r)) };
        if !self.follows(msg.leader_epoch) {
            return ready(Err(FENCED_LEADER_EPOCH));
        }
        let Some(m) = self.machine.as_ref() else {
            return ready(Err(KAFKA_STORAGE_ERROR));
        };
        if m.log_end_offset() != msg.fetch_offset {
            // An answer to a fetch from before a truncation or an earlier answer: the
            // next fetch asks again from the current end.
            return ready(Ok(()));
        }
        let (leo, hw) = (m.log_end_offset(), m.high_watermark());
        match msg.answer {
            LeaderAnswer::Records {
                records,
                high_watermark,
                log_start_offset,
            } => {
                let append = (!records.is_empty()).then(|| {
                    self.log.send(logm::AppendReplica {
                        records,
                        now_ms: crate::now_ms(),
                    })
                });
                let fut = async move {
                    match append {
                        None => Ok(None),
                        Some(f) => match f.await {
                            Ok(Ok(info)) => Ok(Some(info)),
                            Ok(Err(e)) => Err((e.is_disk_full(), e.to_string(), log_end_past(&e))),
                            Err(e) => Err((false, e.to_string(), None)),
                        },
                    }
                };
                Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
                    let info = res.map_err(|(full, e, log_end)| {
                        // A full disk is logged by the log actor, once; the fetcher
                        // keeps retrying until space is freed.
                        if let Some(log_end) = log_end {
                            // The log holds records past where this follower fetches
                            // from: an append from its time as leader that landed after
                            // the role changed (and after any truncation). Nothing past
                            // this replica's end offset was counted (it is at or above
                            // the high watermark), and the leader's copy replaces it:
                            // cut it, as a follower facing a new leader does.
                            tracing::warn!(topic = %act.topic, partition = act.partition,
                                log_end_offset = log_end, truncate_to = leo,
                                "follower log runs past its fetch position, truncating");
                            act.log.do_send(logm::TruncateTo { offset: leo });
                        } else if !full {
                            tracing::warn!(topic = %act.topic, partition = act.partition,
                                error = %e, "follower append failed");
                        } else if !act.disk_full {
                            act.disk_full = true;
                            act.publish();
                        }
                        KAFKA_STORAGE_ERROR
                    })?;
                    if let Some(i) = info.as_ref().filter(|i| i.bytes > 0) {
                        act.disk_full = false;
                        act.env.metrics.replication_bytes_in.inc_by(i.bytes);
                    }
                    let Some(m) = act.machine.as_mut() else {
                        return Err(KAFKA_STORAGE_ERROR);
                    };
                    let now = crate::now_ms();
                    let mut out = Vec::new();
                    if let Some(info) = info.filter(|i| !i.batches.is_empty()) {
                        if let Some(last) = info.batches.last() {
                            act.latest_epoch = last.partition_leader_epoch;
                        }
                        out.extend(m.on_local_append(info.last_offset + 1, now));
                    }
                    out.extend(m.on_leader_high_watermark(high_watermark));
                    // The leader's log start (retention, DeleteRecords) reaches followers.
                    let start = log_start_offset.min(m.high_watermark());
                    if start > act.log_start_offset {
                        act.log.do_send(logm::DeleteRecordsBefore { offset: start });
                        act.log_start_offset = start;
                    }
                    act.carry_out(out, ctx);
                    act.publish();
                    Ok(())
                }))
            }
            LeaderAnswer::Diverging { epoch, end_offset } => {
                let local = (epoch >= 0).then(|| self.log.send(logm::EndOffsetForEpoch { epoch }));
                let log = self.log.clone();
                let fut = async move {
                    let local = match local {
                        Some(f) => f
                            .await
                            .map_err(|_| KAFKA_STORAGE_ERROR)?
                            .map_err(|e| e.kafka_error_code())?,
                        None => None,
                    };
                    let leader = (epoch >= 0).then_some((epoch, end_offset));
                    let target = truncation_offset(leader, |_| local, leo, hw);
                    match log.send(logm::TruncateTo { offset: target }).await {
                        Ok(Ok(())) => Ok(target),
                        _ => Err(KAFKA_STORAGE_ERROR),
                    }
                };
                Box::pin(fut.into_actor(self).map(move |res, act, ctx| {
                    let target = res?;
                    tracing::info!(topic = %act.topic, partition = act.partition,
                        leader_epoch = epoch, leader_end_offset = end_offset,
                        log_end_offset = leo, truncate_to = target, "follower diverged, truncating");
                    if let Some(m) = act.machine.as_mut() {
                        m.on_local_truncate(target.min(leo));
                    }
                    act.refresh_offsets(ctx);
                    Ok(())
                }))
            }
            LeaderAnswer::OutOfRange {
                log_start_offset,
                high_watermark,
            } => {
                let fut = if leo < log_start_offset {
                    // Behind the leader's log start: restart empty there.
                    tracing::info!(topic = %self.topic, partition = self.partition, log_end_offset = leo,
                        leader_log_start = log_start_offset, "follower behind the leader's log start");
                    let f = self.log.send(logm::TruncateFullyAndStartAt {
                        offset: log_start_offset,
                    });
                    Box::pin(async move { matches!(f.await, Ok(Ok(()))) })
                        as std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>
                } else {
                    // Ahead of the leader (an unclean election): cut back to what the
                    // leader says is committed and fetch the rest again.
                    let target = high_watermark.max(0).min(leo);
                    tracing::info!(topic = %self.topic, partition = self.partition, log_end_offset = leo,
                        truncate_to = target, "follower ahead of its leader, truncating");
                    let f = self.log.send(logm::TruncateTo { offset: target });
                    Box::pin(async move { matches!(f.await, Ok(Ok(()))) })
                };
                Box::pin(fut.into_actor(self).map(move |ok, act, ctx| {
                    if !ok {
                        return Err(KAFKA_STORAGE_ERROR);
                    }
                    let load = act
                        .log
                        .send(logm::GetOffsets)
                        .into_actor(act)
                        .map(|res, act, _| {
                            if let (Ok(Ok(o)), Some(m)) = (res, act.machine.as_mut()) {
                                act.log_start_offset = o.log_start_offset;
                                act.latest_epoch = o.latest_epoch.unwrap_or(-1);
                                if o.log_end_offset < m.log_end_offset() {
                                    m.on_local_truncate(o.log_end_offset);
                                } else {
                                    m.on_local_append(o.log_end_offset, crate::now_ms());
                                }
                                act.publish();
                            }
                        });
                    ctx.wait(load);
                    Ok(())
                }))
            }
        }
    }
}

impl Handler<UpdatePartition> for PartitionActor {
    type Result = ();
    fn handle(&mut self, msg: UpdatePartition, ctx: &mut Context<Self>) {
        self.log
            .do_send(logm::SetConfig(crate::broker::log_config(&msg.config)));
        self.config = msg.config;
        let cfg = self.replication_config();
        if let Some(m) = self.machine.as_mut() {
            m.set_config(cfg);
        }
        self.image = msg.image.clone();
        self.apply_image(&msg.image, ctx);
        self.publish();
    }
}

impl Handler<Shutdown> for PartitionActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.shut_down = true;
        for timer in self.timers.drain(..) {
            ctx.cancel_future(timer);
        }
        self.fail_all_waiting(NOT_LEADER_OR_FOLLOWER);
        self.machine = None;
        self.publish();
        let fut = self.log.send(logm::Close { delete: msg.delete });
        let (topic, partition) = (self.topic.clone(), self.partition);
        Box::pin(fut.into_actor(self).map(move |res, _act, ctx| {
            if let Ok(Err(e)) = res {
                tracing::warn!(%topic, partition, error = %e, "closing log failed");
            }
            // Once the owner drops our address the actor ends; stopping now would only
            // make the supervisor restart us.
            let _ = ctx;
        }))
    }
}

impl Handler<Crash> for PartitionActor {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(topic = %self.topic, partition = self.partition, "crash requested (fault injection)");
        self.log.do_send(logm::Crash);
        ctx.stop();
    }
}

/// Where a follower append failed because the log already runs past the append's first
/// offset: the log's end offset.
fn log_end_past(e: &troupe::storage::StorageError) -> Option<i64> {
    match e {
        troupe::storage::StorageError::UnexpectedAppendOffset { expected, first }
            if expected > first =>
        {
            Some(*expected)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::load_retry_delay;
    use std::time::Duration;

    #[test]
    fn load_retries_back_off_exponentially_to_a_minute() {
        let delays: Vec<u64> = (0..9).map(|n| load_retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(load_retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
