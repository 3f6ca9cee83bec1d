//! The `GroupCoordinator` actor: one per `__consumer_offsets` partition this broker
//! leads. It owns a [`GroupCoordinatorState`] and carries out what it decides:
//! answers go to the waiting requests' channels, records go to the partition's
//! `PartitionLeader` (acks=all), deadlines become an actix timer.
//!
//! On (re)start it reads its partition ([`super::load`]); until then requests are
//! answered COORDINATOR_LOAD_IN_PROGRESS. A restart drops every waiting request (the
//! handlers answer NOT_COORDINATOR, so clients find the coordinator again and rejoin)
//! and rebuilds groups and offsets from the log, never from memory.

use super::load::load_partition;
use super::messages::*;
use crate::partition::messages::Produce;
use crate::supervisor::PartitionRoute;
use actix::prelude::*;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;
use troupe::group::{
    codes, AppendToken, GroupConfig, GroupCoordinatorState, OffsetsRecord, Output, Reply, ReplyId,
};
use troupe::storage::{BatchBuilder, KeyValue};

pub struct GroupCoordinator {
    partition: i32,
    route: PartitionRoute,
    config: GroupConfig,
    retention_check: Duration,
    /// `None` while loading (and after shutdown).
    state: Option<GroupCoordinatorState>,
    /// Requests waiting for an answer, by the id the state machine knows them by.
    waiting: HashMap<ReplyId, oneshot::Sender<Reply>>,
    next_reply: ReplyId,
    /// The armed timer and the deadline it is for.
    timer: Option<(i64, SpawnHandle)>,
    retention: Option<SpawnHandle>,
    shut_down: bool,
    /// Bumped at every (re)start: completions of appends or loads started by an
    /// earlier incarnation must not touch the new state.
    incarnation: u64,
    /// Rebalances and restarts are counted there (`None` in tests without one).
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl GroupCoordinator {
    pub fn new(
        partition: i32,
        route: PartitionRoute,
        config: GroupConfig,
        retention_check: Duration,
    ) -> Self {
        GroupCoordinator {
            partition,
            route,
            config,
            retention_check,
            state: None,
            waiting: HashMap::new(),
            next_reply: 0,
            timer: None,
            retention: None,
            shut_down: false,
            incarnation: 0,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn unavailable(&self) -> i16 {
        if self.shut_down {
            codes::NOT_COORDINATOR
        } else {
            codes::COORDINATOR_LOAD_IN_PROGRESS
        }
    }

    fn load(&mut self, ctx: &mut Context<Self>) {
        let incarnation = self.incarnation;
        let fut = load_partition(self.route.clone(), self.config.clone());
        let started = std::time::Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if act.incarnation != incarnation || act.shut_down {
                return;
            }
            match res {
                Ok((state, stats)) => {
                    tracing::info!(partition = act.partition, groups = state.group_count(),
                        records = stats.records, skipped = stats.skipped, end_offset = stats.end_offset,
                        elapsed_ms = started.elapsed().as_millis() as u64, "group coordinator loaded");
                    act.state = Some(state);
                    act.reschedule(ctx);
                }
                Err(e) => {
                    tracing::warn!(partition = act.partition, error = %e, "group coordinator load failed, retrying in 1s");
                    ctx.run_later(Duration::from_secs(1), |act, ctx| act.load(ctx));
                }
            }
        }));
    }

    /// Run `f` on the loaded state for a request that may have to wait.
    fn submit(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut GroupCoordinatorState, ReplyId, i64) -> Vec<Output>,
    ) -> Pending {
        let unavailable = self.unavailable();
        let Some(state) = self.state.as_mut() else {
            return Err(unavailable);
        };
        self.next_reply += 1;
        let id = self.next_reply;
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id, tx);
        let outs = f(state, id, crate::now_ms());
        self.carry_out(outs, ctx);
        Ok(rx)
    }

    fn carry_out(&mut self, outs: Vec<Output>, ctx: &mut Context<Self>) {
        for o in outs {
            match o {
                Output::Reply(id, reply) => {
                    // A rebalance completes with the JoinGroup answers of its new
                    // generation; the leader's is sent exactly once per generation.
                    if let (Reply::Join(j), Some(m)) = (&reply, &self.metrics) {
                        if j.error == codes::NONE && !j.leader.is_empty() && j.leader == j.member_id
                        {
                            m.rebalances.inc();
                        }
                    }
                    if let Some(tx) = self.waiting.remove(&id) {
                        let _ = tx.send(reply);
                    }
                }
                Output::Append { token, records } => self.append(token, records, ctx),
            }
        }
        self.reschedule(ctx);
    }

    /// Append one batch through the partition leader; its completion goes back to the
    /// state machine. Sends are issued in order, so appends land in order.
    fn append(&mut self, token: AppendToken, records: Vec<OffsetsRecord>, ctx: &mut Context<Self>) {
        let now = crate::now_ms();
        let kvs: Vec<KeyValue<'_>> = records
            .iter()
            .map(|r| (Some(r.key.as_slice()), r.value.as_deref()))
            .collect();
        let batch = BatchBuilder::new(0, now).build(&kvs);
        let incarnation = self.incarnation;
        let fut = self.route.leader.send(Produce {
            records: batch,
            acks: -1,
            timeout_ms: self.config.commit_timeout_ms,
        });
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if act.incarnation != incarnation {
                return;
            }
            let result = match res {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(coordinator_error(e.code)),
                Err(_) => Err(codes::COORDINATOR_NOT_AVAILABLE),
            };
            if let Err(code) = result {
                tracing::warn!(
                    partition = act.partition,
                    code,
                    "append to __consumer_offsets failed"
                );
            }
            if let Some(state) = act.state.as_mut() {
                let outs = state.append_done(token, result, crate::now_ms());
                act.carry_out(outs, ctx);
            }
        }));
    }

    /// Keep one timer armed for the state machine's next deadline.
    fn reschedule(&mut self, ctx: &mut Context<Self>) {
        let next = self.state.as_ref().and_then(|s| s.next_deadline());
        if self.timer.as_ref().map(|t| t.0) == next {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let Some(at) = next else { return };
        // +1 ms: the timer runs on the monotonic clock and may fire a hair early.
        let delay = (at - crate::now_ms()).max(0) as u64 + 1;
        let handle = ctx.run_later(Duration::from_millis(delay), |act, ctx| {
            act.timer = None;
            if let Some(state) = act.state.as_mut() {
                let outs = state.tick(crate::now_ms());
                act.carry_out(outs, ctx);
            }
        });
        self.timer = Some((at, handle));
    }
}

/// Kafka's mapping of append failures to what group clients understand.
fn coordinator_error(code: i16) -> i16 {
    if code == codes::NOT_LEADER_OR_FOLLOWER || code == codes::KAFKA_STORAGE_ERROR {
        codes::NOT_COORDINATOR
    } else if code == codes::MESSAGE_TOO_LARGE || code == codes::RECORD_LIST_TOO_LARGE {
        codes::UNKNOWN_SERVER_ERROR
    } else {
        codes::COORDINATOR_NOT_AVAILABLE
    }
}

impl Actor for GroupCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        if self.shut_down {
            return;
        }
        self.incarnation += 1;
        self.load(ctx);
        let every = self.retention_check;
        self.retention = Some(ctx.run_interval(every, |act, ctx| {
            if let Some(state) = act.state.as_mut() {
                let outs = state.expire_offsets(crate::now_ms());
                act.carry_out(outs, ctx);
            }
        }));
    }
}

impl Supervised for GroupCoordinator {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(
            partition = self.partition,
            "group coordinator restarting, reloading from its partition"
        );
        if let Some(m) = &self.metrics {
            m.actor_restarted(crate::metrics::ActorKind::GroupCoordinator);
        }
        self.state = None;
        // Waiting requests learn of the restart by their channel closing.
        self.waiting.clear();
        self.timer = None;
        self.retention = None;
    }
}

impl Handler<JoinGroup> for GroupCoordinator {
    type Result = Pending;
    fn handle(&mut self, msg: JoinGroup, ctx: &mut Context<Self>) -> Pending {
        // Kafka checks the group id before the coordinator's state: an empty one is
        // INVALID_GROUP_ID even while the partition loads.
        if msg.0.group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        self.submit(ctx, |s, id, now| s.join_group(msg.0, id, now))
    }
}

impl Handler<SyncGroup> for GroupCoordinator {
    type Result = Pending;
    fn handle(&mut self, msg: SyncGroup, ctx: &mut Context<Self>) -> Pending {
        if msg.0.group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        self.submit(ctx, |s, id, now| s.sync_group(msg.0, id, now))
    }
}

impl Handler<CommitOffsets> for GroupCoordinator {
    type Result = Pending;
    fn handle(&mut self, msg: CommitOffsets, ctx: &mut Context<Self>) -> Pending {
        self.submit(ctx, |s, id, now| s.commit_offsets(msg.0, id, now))
    }
}

impl Handler<DeleteGroups> for GroupCoordinator {
    type Result = Pending;
    fn handle(&mut self, msg: DeleteGroups, ctx: &mut Context<Self>) -> Pending {
        self.submit(ctx, |s, id, now| s.delete_groups(&msg.0, id, now))
    }
}

impl Handler<DeleteOffsets> for GroupCoordinator {
    type Result = Pending;
    fn handle(&mut self, msg: DeleteOffsets, ctx: &mut Context<Self>) -> Pending {
        self.submit(ctx, |s, id, now| {
            s.delete_offsets(&msg.group_id, &msg.partitions, id, now)
        })
    }
}

impl Handler<Heartbeat> for GroupCoordinator {
    type Result = Result<i16, i16>;
    fn handle(&mut self, msg: Heartbeat, ctx: &mut Context<Self>) -> Self::Result {
        if msg.0.group_id.is_empty() {
            return Err(codes::INVALID_GROUP_ID);
        }
        let unavailable = self.unavailable();
        let state = self.state.as_mut().ok_or(unavailable)?;
        let code = state.heartbeat(&msg.0, crate::now_ms());
        self.reschedule(ctx);
        Ok(code)
    }
}

impl Handler<LeaveGroup> for GroupCoordinator {
    type Result = Result<troupe::group::LeaveResponse, i16>;
    fn handle(&mut self, msg: LeaveGroup, ctx: &mut Context<Self>) -> Self::Result {
        let unavailable = self.unavailable();
        let state = self.state.as_mut().ok_or(unavailable)?;
        let (resp, outs) = state.leave_group(&msg.group_id, &msg.members, crate::now_ms());
        self.carry_out(outs, ctx);
        Ok(resp)
    }
}

impl Handler<FetchOffsets> for GroupCoordinator {
    type Result = Result<Vec<troupe::group::FetchedOffset>, i16>;
    fn handle(&mut self, msg: FetchOffsets, _ctx: &mut Context<Self>) -> Self::Result {
        let state = self.state.as_ref().ok_or(self.unavailable())?;
        Ok(state.fetch_offsets(&msg.group_id, msg.topics.as_deref()))
    }
}

impl Handler<DescribeGroups> for GroupCoordinator {
    type Result = Result<Vec<troupe::group::DescribedGroup>, i16>;
    fn handle(&mut self, msg: DescribeGroups, _ctx: &mut Context<Self>) -> Self::Result {
        let state = self.state.as_ref().ok_or(self.unavailable())?;
        Ok(msg.0.iter().map(|g| state.describe_group(g)).collect())
    }
}

impl Handler<ListGroups> for GroupCoordinator {
    type Result = Result<Vec<troupe::group::ListedGroup>, i16>;
    fn handle(&mut self, msg: ListGroups, _ctx: &mut Context<Self>) -> Self::Result {
        let state = self.state.as_ref().ok_or(self.unavailable())?;
        Ok(state.list_groups(&msg.states))
    }
}

impl Handler<Loaded> for GroupCoordinator {
    type Result = Option<usize>;
    fn handle(&mut self, _: Loaded, _ctx: &mut Context<Self>) -> Option<usize> {
        self.state.as_ref().map(|s| s.group_count())
    }
}

impl Handler<Shutdown> for GroupCoordinator {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        tracing::info!(
            partition = self.partition,
            "group coordinator stopping (partition no longer led here)"
        );
        self.shut_down = true;
        self.state = None;
        self.waiting.clear();
        for h in [self.timer.take().map(|t| t.1), self.retention.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(h);
        }
        // The actor ends once its owner drops the last address; stopping now would
        // only make the supervisor restart it.
    }
}

impl Handler<Crash> for GroupCoordinator {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(
            partition = self.partition,
            "crash requested (fault injection)"
        );
        ctx.stop();
    }
}
