//! The `PartitionLeader` actor: one per partition this broker leads.
//!
//! It owns what a leader decides: the leader epoch stamped on appended batches, the
//! replica set (ISR, log end offsets, high watermark; [`troupe::replication`]), acks
//! handling and `min.insync.replicas`, the retention timer. Records go to its `Log` actor;
//! reads go straight from connections to the `Log` actor, bounded by the high watermark
//! that this actor publishes in a `watch` channel (no hop through the leader per fetch).

pub mod messages;

use crate::errors::{FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH};
use crate::log::messages as logm;
use crate::log::LogActor;
use actix::prelude::*;
use bytes::BytesMut;
use messages::*;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use troupe::config::{TimestampType, TopicConfig};
use troupe::metadata::PartitionImage;
use troupe::replication::ReplicaSet;
use troupe::storage::batch::set_log_append_time;
use troupe::storage::validate_batches;

/// What readers need without asking the actor: published after every change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionState {
    pub online: bool,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub leader_epoch: i32,
}

impl PartitionState {
    /// Kafka's check of a request's `current_leader_epoch` (-1: not given) against this
    /// leader (KIP-320): the error code to answer with, if any.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Option<i16> {
        if !self.online {
            Some(NOT_LEADER_OR_FOLLOWER)
        } else if current_leader_epoch >= 0 && current_leader_epoch < self.leader_epoch {
            Some(FENCED_LEADER_EPOCH)
        } else if current_leader_epoch > self.leader_epoch {
            Some(UNKNOWN_LEADER_EPOCH)
        } else {
            None
        }
    }
}

pub struct PartitionLeader {
    topic: String,
    partition: i32,
    node_id: i32,
    image: PartitionImage,
    config: TopicConfig,
    log: Addr<LogActor>,
    retention_check: Duration,
    /// `None` until the log has told us its offsets (and again after a restart).
    replicas: Option<ReplicaSet>,
    log_start_offset: i64,
    state: watch::Sender<PartitionState>,
    /// acks=all produces waiting for the high watermark to pass their last offset.
    waiting: VecDeque<(i64, oneshot::Sender<()>)>,
    shut_down: bool,
    /// Failed attempts to load the log's offsets in a row: the retry delay doubles
    /// with each one (see [`load_retry_delay`]), so a broker whose logs cannot open
    /// (e.g. out of file descriptors) does not retry and warn for every partition
    /// every second.
    load_failures: u32,
}

/// The first retry of an unavailable log comes after 1 s, then 2, 4, ... up to 60 s.
fn load_retry_delay(failures: u32) -> Duration {
    const MAX: Duration = Duration::from_secs(60);
    Duration::from_secs(1u64 << failures.min(6)).min(MAX)
}

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_ENOUGH_REPLICAS: i16 = 19;
const KAFKA_STORAGE_ERROR: i16 = 56;
const OFFSET_OUT_OF_RANGE: i16 = 1;

impl PartitionLeader {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        partition: i32,
        node_id: i32,
        image: PartitionImage,
        config: TopicConfig,
        log: Addr<LogActor>,
        retention_check: Duration,
        state: watch::Sender<PartitionState>,
    ) -> Self {
        PartitionLeader {
            topic,
            partition,
            node_id,
            image,
            config,
            log,
            retention_check,
            replicas: None,
            log_start_offset: 0,
            state,
            waiting: VecDeque::new(),
            shut_down: false,
            load_failures: 0,
        }
    }

    fn publish(&self) {
        let s = match &self.replicas {
            Some(r) => PartitionState {
                online: true,
                high_watermark: r.high_watermark(),
                log_start_offset: self.log_start_offset,
                log_end_offset: r.local_log_end_offset(),
                leader_epoch: self.image.leader_epoch,
            },
            None => PartitionState {
                online: false,
                ..*self.state.borrow()
            },
        };
        self.state.send_replace(s);
    }

    /// Ask the log for its offsets and (re)build the replica set from them.
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
                    act.replicas = Some(ReplicaSet::new(
                        act.node_id,
                        act.image.leader_epoch,
                        act.image.replicas.clone(),
                        act.image.isr.clone(),
                        o.log_end_offset,
                        // Single replica: everything in the local log is committed.
                        o.log_end_offset,
                        crate::now_ms(),
                    ));
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

    fn complete_waiting(&mut self) {
        let hw = self
            .replicas
            .as_ref()
            .map(|r| r.high_watermark())
            .unwrap_or(0);
        while let Some((last, _)) = self.waiting.front() {
            if *last >= hw {
                break;
            }
            let (_, tx) = self.waiting.pop_front().expect("front exists");
            let _ = tx.send(());
        }
    }

    fn refresh_offsets(&mut self, ctx: &mut Context<Self>) {
        let fut = self
            .log
            .send(logm::GetOffsets)
            .into_actor(self)
            .map(|res, act, _| {
                if let Ok(Ok(o)) = res {
                    act.log_start_offset = o.log_start_offset;
                    act.publish();
                }
            });
        ctx.spawn(fut);
    }
}

impl Actor for PartitionLeader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        if self.shut_down {
            return;
        }
        self.load(ctx);
        ctx.run_interval(self.retention_check, |act, ctx| {
            let fut = act
                .log
                .send(logm::EnforceRetention {
                    now_ms: crate::now_ms(),
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
    }
}

impl Supervised for PartitionLeader {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!(topic = %self.topic, partition = self.partition, "partition leader restarting");
        self.replicas = None;
        // Producers waiting on acks=all learn of the restart by their channel closing.
        self.waiting.clear();
        self.publish();
    }
}

impl Handler<Produce> for PartitionLeader {
    type Result = ResponseActFuture<Self, Result<ProduceOk, PartitionError>>;

    fn handle(&mut self, msg: Produce, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(replicas) = self.replicas.as_ref() else {
            let code = if self.shut_down {
                NOT_LEADER_OR_FOLLOWER
            } else {
                KAFKA_STORAGE_ERROR
            };
            return Box::pin(actix::fut::ready(Err(PartitionError::new(code, None))));
        };
        if msg.acks == -1 {
            if let Err(e) = replicas.check_min_insync(self.config.min_insync_replicas) {
                return Box::pin(actix::fut::ready(Err(PartitionError::new(
                    NOT_ENOUGH_REPLICAS,
                    Some(format!("{e:?}")),
                ))));
            }
        }
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
        let append = self.log.send(logm::Append {
            records,
            leader_epoch: self.image.leader_epoch,
            now_ms: now,
        });
        let acks = msg.acks;
        Box::pin(
            append
                .into_actor(self)
                .map(move |res, act, _ctx| match res {
                    Ok(Ok(info)) => {
                        // A duplicate of an idempotent batch wrote nothing (no headers):
                        // the log end offset stays where it is.
                        if let Some(r) = act.replicas.as_mut().filter(|_| !info.batches.is_empty())
                        {
                            r.on_local_append(info.last_offset + 1, now);
                        }
                        act.log_start_offset = info.log_start_offset;
                        act.publish();
                        act.complete_waiting();
                        let ok = ProduceOk {
                            base_offset: info.first_offset,
                            log_append_time_ms: if log_append_time { now } else { -1 },
                            log_start_offset: info.log_start_offset,
                        };
                        let hw = act
                            .replicas
                            .as_ref()
                            .map(|r| r.high_watermark())
                            .unwrap_or(0);
                        if acks == -1 && hw <= info.last_offset {
                            // acks=all: answer once the high watermark passes the batch.
                            let (tx, rx) = oneshot::channel();
                            act.waiting.push_back((info.last_offset, tx));
                            Ok((ok, Some(rx)))
                        } else {
                            Ok((ok, None))
                        }
                    }
                    Ok(Err(e)) => Err(PartitionError::from_storage(&e)),
                    Err(_mailbox) => Err(PartitionError::new(KAFKA_STORAGE_ERROR, None)),
                })
                .then(|res, _act, _ctx| {
                    actix::fut::wrap_future(async move {
                        match res {
                            Ok((ok, None)) => Ok(ok),
                            Ok((ok, Some(rx))) => rx
                                .await
                                .map(|_| ok)
                                .map_err(|_| PartitionError::new(NOT_LEADER_OR_FOLLOWER, None)),
                            Err(e) => Err(e),
                        }
                    })
                }),
        )
    }
}

impl Handler<DeleteRecords> for PartitionLeader {
    type Result = ResponseActFuture<Self, Result<i64, PartitionError>>;

    fn handle(&mut self, msg: DeleteRecords, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(r) = self.replicas.as_ref() else {
            return Box::pin(actix::fut::ready(Err(PartitionError::new(
                KAFKA_STORAGE_ERROR,
                None,
            ))));
        };
        let hw = r.high_watermark();
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

impl Handler<UpdatePartition> for PartitionLeader {
    type Result = ();
    fn handle(&mut self, msg: UpdatePartition, _ctx: &mut Context<Self>) {
        self.log
            .do_send(logm::SetConfig(crate::broker::log_config(&msg.config)));
        self.config = msg.config;
        if msg.image.leader_epoch != self.image.leader_epoch {
            if let Some(r) = self.replicas.as_mut() {
                r.leader_epoch = msg.image.leader_epoch;
            }
        }
        self.image = msg.image;
        self.publish();
    }
}

impl Handler<Shutdown> for PartitionLeader {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        self.shut_down = true;
        self.replicas = None;
        self.waiting.clear();
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

impl Handler<Crash> for PartitionLeader {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(topic = %self.topic, partition = self.partition, "crash requested (fault injection)");
        self.log.do_send(logm::Crash);
        ctx.stop();
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
