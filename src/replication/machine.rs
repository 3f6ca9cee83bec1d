//! [`PartitionMachine`]: one hosted replica of a partition, leader or follower, as a
//! sans-IO state machine. The partition actor feeds it what happens (local appends,
//! follower fetches, answers to its ISR changes, metadata, the clock) and carries out
//! the [`Output`]s: answer a waiting produce, send an AlterPartition, truncate.
//!
//! The leader's rules are Kafka's:
//! * A follower's fetch offset is its log end offset. It is *caught up* when that
//!   reaches the leader's log end offset, or the leader's log end offset as of its
//!   previous fetch (then it was caught up at that previous fetch's time): under
//!   steady produce a healthy follower is never quite at the current end.
//! * A follower not caught up for `replica.lag.time.max.ms` leaves the ISR; one out of
//!   the ISR whose log end offset reaches the high watermark (and the start of the
//!   current leader epoch) rejoins. Each change is an AlterPartition to the controller
//!   carrying the partition epoch; one is in flight at a time, and until it is
//!   answered the high watermark counts the larger of the two sets (the "maximal ISR").
//! * The high watermark is the smallest log end offset over the (maximal) ISR and
//!   never goes back.
//! * acks=all: refused up front with fewer in-sync replicas than `min.insync.replicas`
//!   (NOT_ENOUGH_REPLICAS); otherwise the produce waits until the high watermark
//!   passes it (answered NOT_ENOUGH_REPLICAS_AFTER_APPEND if by then the ISR is below
//!   the minimum), its timeout (REQUEST_TIMED_OUT) or the loss of leadership
//!   (NOT_LEADER_OR_FOLLOWER).

use crate::metadata::PartitionImage;
use std::collections::BTreeMap;

/// Kafka's error codes the machine answers with: the crate's one table.
pub use crate::protocol::codes;

/// Settings of one partition that the rules use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub replica_lag_time_max_ms: i64,
    pub min_insync_replicas: i32,
}

/// Identifies a waiting acks=all produce to the shell.
pub type ProduceId = u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Answer a waiting produce (`codes::NONE` once replicated).
    Complete(ProduceId, i16),
    /// Ask the controller to set the ISR (leader epoch and partition epoch included).
    AlterIsr {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// The high watermark moved (to checkpoint and to release waiting fetches).
    HighWatermark(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (-1: none right now).
    Follower {
        leader: i32,
    },
}

/// A follower's progress, as its leader sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    log_end_offset: i64,
    last_caught_up_ms: i64,
    /// The leader's log end offset and the time of this follower's previous fetch.
    last_fetch_leader_leo: i64,
    last_fetch_ms: i64,
}

#[derive(Clone, Copy, Debug)]
struct Waiting {
    /// Replicated once the high watermark is above this offset.
    last_offset: i64,
    deadline_ms: i64,
}

#[derive(Clone, Debug)]
pub struct PartitionMachine {
    local_id: i32,
    config: ReplicationConfig,
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The ISR as committed by the controller.
    isr: Vec<i32>,
    /// An AlterPartition in flight: the ISR asked for.
    pending_isr: Option<Vec<i32>>,
    progress: BTreeMap<i32, Progress>,
    log_end_offset: i64,
    /// Where this leader's epoch began: a follower below it cannot rejoin the ISR.
    epoch_start_offset: i64,
    high_watermark: i64,
    waiting: BTreeMap<ProduceId, Waiting>,
}

impl PartitionMachine {
    /// A replica that knows its log (`log_end_offset`) and the checkpointed high
    /// watermark, before any role: call [`Self::apply`] with the partition's image.
    pub fn new(
        local_id: i32,
        config: ReplicationConfig,
        log_end_offset: i64,
        high_watermark: i64,
    ) -> Self {
        PartitionMachine {
            local_id,
            config,
            role: Role::Follower { leader: -1 },
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            progress: BTreeMap::new(),
            log_end_offset,
            epoch_start_offset: log_end_offset,
            high_watermark: high_watermark.clamp(0, log_end_offset.max(0)),
            waiting: BTreeMap::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }
    /// Produces waiting for replication.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
    /// A topic config changed (`min.insync.replicas`) or the broker's lag setting.
    pub fn set_config(&mut self, config: ReplicationConfig) {
        self.config = config;
    }
    /// Give up on every waiting produce (the partition stops or restarts).
    pub fn fail_waiting(&mut self, code: i16) -> Vec<Output> {
        std::mem::take(&mut self.waiting)
            .into_keys()
            .map(|id| Output::Complete(id, code))
            .collect()
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// The set the high watermark counts: the ISR plus any replica being added.
    /// The ISR change waiting for the controller's answer, if any.
    pub fn pending_isr(&self) -> Option<&[i32]> {
        self.pending_isr.as_deref()
    }

    /// Each follower's log end offset as its last fetch showed it (-1: none yet).
    pub fn follower_offsets(&self) -> Vec<(i32, i64)> {
        self.progress
            .iter()
            .map(|(r, p)| (*r, p.log_end_offset))
            .collect()
    }

    fn maximal_isr(&self) -> Vec<i32> {
        let mut m = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            for r in p {
                if !m.contains(r) {
                    m.push(*r);
                }
            }
        }
        m
    }

    /// New metadata for this partition (a committed image). A new leader epoch makes
    /// this replica leader or follower; the same epoch only updates ISR and partition
    /// epoch (the answer to an AlterPartition shows up here too). Stale images are
    /// ignored.
    pub fn apply(&mut self, p: &PartitionImage, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if p.leader_epoch < self.leader_epoch
            || (p.leader_epoch == self.leader_epoch && p.partition_epoch <= self.partition_epoch)
        {
            return out;
        }
        let new_epoch = p.leader_epoch != self.leader_epoch;
        self.leader_epoch = p.leader_epoch;
        self.partition_epoch = p.partition_epoch;
        self.replicas = p.replicas.clone();
        self.isr = p.isr.clone();
        self.pending_isr = None;
        if p.leader == self.local_id {
            if new_epoch || self.role != Role::Leader {
                self.role = Role::Leader;
                self.epoch_start_offset = self.log_end_offset;
                // Every follower starts unknown and "caught up now": it gets a full
                // lag time to show it keeps up with the new leader.
                self.progress = p
                    .replicas
                    .iter()
                    .filter(|r| **r != self.local_id)
                    .map(|r| {
                        (
                            *r,
                            Progress {
                                log_end_offset: -1,
                                last_caught_up_ms: now_ms,
                                last_fetch_leader_leo: -1,
                                last_fetch_ms: now_ms,
                            },
                        )
                    })
                    .collect();
            }
            self.advance_high_watermark(now_ms, &mut out);
        } else {
            let lost = self.role == Role::Leader;
            self.role = Role::Follower { leader: p.leader };
            self.progress.clear();
            if lost || new_epoch {
                for (id, _) in std::mem::take(&mut self.waiting) {
                    out.push(Output::Complete(id, codes::NOT_LEADER_OR_FOLLOWER));
                }
            }
        }
        out
    }

    /// May an acks=all produce be appended now? (Checked before the append.)
    pub fn check_produce(&self, acks: i16) -> Result<(), i16> {
        if self.role != Role::Leader {
            return Err(codes::NOT_LEADER_OR_FOLLOWER);
        }
        if acks == -1 && (self.isr.len() as i32) < self.config.min_insync_replicas {
            return Err(codes::NOT_ENOUGH_REPLICAS);
        }
        Ok(())
    }

    /// The local log grew to `log_end_offset` (leader append, or follower append).
    ///
    /// Reports may come out of order: the shell completes concurrent appends in
    /// whatever order its runtime polls them (actix reorders an actor's ready futures),
    /// so an earlier append's lower end can be reported after a later one's. It never
    /// moves the log end back; only [`on_local_truncate`](Self::on_local_truncate)
    /// does. (It did once: the leader's end stuck below its log's, the high watermark
    /// could not pass it, and the last acks=all produce of a burst waited for its whole
    /// timeout.)
    pub fn on_local_append(&mut self, log_end_offset: i64, now_ms: i64) -> Vec<Output> {
        self.log_end_offset = self.log_end_offset.max(log_end_offset);
        let mut out = Vec::new();
        if self.role == Role::Leader {
            self.advance_high_watermark(now_ms, &mut out);
        }
        out
    }

    /// The local log was truncated (a follower cutting what a new leader lacks).
    pub fn on_local_truncate(&mut self, log_end_offset: i64) {
        self.log_end_offset = log_end_offset;
        self.high_watermark = self.high_watermark.min(log_end_offset);
    }

    /// A follower learns the leader's high watermark from a fetch answer.
    pub fn on_leader_high_watermark(&mut self, hw: i64) -> Vec<Output> {
        let next = hw.min(self.log_end_offset);
        if next > self.high_watermark {
            self.high_watermark = next;
            return vec![Output::HighWatermark(next)];
        }
        Vec::new()
    }

    /// An acks=all produce whose records end at `last_offset` waits for replication
    /// (answered at once when already replicated).
    pub fn wait_for_replication(
        &mut self,
        id: ProduceId,
        last_offset: i64,
        deadline_ms: i64,
    ) -> Vec<Output> {
        if self.role != Role::Leader {
            return vec![Output::Complete(id, codes::NOT_LEADER_OR_FOLLOWER)];
        }
        self.waiting.insert(
            id,
            Waiting {
                last_offset,
                deadline_ms,
            },
        );
        let mut out = Vec::new();
        self.complete_replicated(&mut out);
        out
    }

    /// A follower's fetch (its `fetch_offset` is its log end offset) in
    /// `current_leader_epoch`. Returns the error to answer the fetch with, if any.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        current_leader_epoch: i32,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), i16> {
        if self.role != Role::Leader {
            return Err(codes::NOT_LEADER_OR_FOLLOWER);
        }
        if current_leader_epoch != -1 {
            if current_leader_epoch < self.leader_epoch {
                return Err(codes::FENCED_LEADER_EPOCH);
            }
            if current_leader_epoch > self.leader_epoch {
                return Err(codes::UNKNOWN_LEADER_EPOCH);
            }
        }
        let leader_leo = self.log_end_offset;
        let Some(p) = self.progress.get_mut(&replica) else {
            return Err(codes::NOT_LEADER_OR_FOLLOWER);
        };
        if fetch_offset >= leader_leo {
            p.last_caught_up_ms = now_ms;
        } else if fetch_offset >= p.last_fetch_leader_leo && p.last_fetch_leader_leo >= 0 {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end_offset = fetch_offset;
        p.last_fetch_leader_leo = leader_leo;
        p.last_fetch_ms = now_ms;
        self.maybe_expand(replica, out);
        self.advance_high_watermark(now_ms, out);
        Ok(())
    }

    /// A follower out of the ISR that reached the high watermark (and this epoch's
    /// start) rejoins, through an AlterPartition.
    fn maybe_expand(&mut self, replica: i32, out: &mut Vec<Output>) {
        if self.pending_isr.is_some() || self.isr.contains(&replica) {
            return;
        }
        let Some(p) = self.progress.get(&replica) else {
            return;
        };
        if p.log_end_offset >= self.high_watermark && p.log_end_offset >= self.epoch_start_offset {
            let mut isr = self.isr.clone();
            isr.push(replica);
            self.propose(isr, out);
        }
    }

    fn propose(&mut self, isr: Vec<i32>, out: &mut Vec<Output>) {
        let isr: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        self.pending_isr = Some(isr.clone());
        out.push(Output::AlterIsr {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr,
        });
    }

    /// The controller refused the AlterPartition (stale epochs, ineligible replica...):
    /// forget it; newer metadata or the next tick decides again.
    pub fn on_alter_isr_failed(&mut self) {
        self.pending_isr = None;
    }

    /// The clock: shrink the ISR of followers that fell behind for longer than
    /// `replica.lag.time.max.ms`, and expire waiting produces.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let expired: Vec<ProduceId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.waiting.remove(&id);
            out.push(Output::Complete(id, codes::REQUEST_TIMED_OUT));
        }
        if self.role != Role::Leader || self.pending_isr.is_some() {
            return out;
        }
        let lag = self.config.replica_lag_time_max_ms;
        let out_of_sync: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.local_id)
            .filter(|r| {
                self.progress
                    .get(r)
                    .is_some_and(|p| now_ms - p.last_caught_up_ms > lag)
            })
            .collect();
        if !out_of_sync.is_empty() {
            let isr = self
                .isr
                .iter()
                .copied()
                .filter(|r| !out_of_sync.contains(r))
                .collect();
            self.propose(isr, &mut out);
        }
        out
    }

    /// The earliest deadline of a waiting produce (for the shell's timer).
    pub fn next_deadline(&self) -> Option<i64> {
        self.waiting.values().map(|w| w.deadline_ms).min()
    }

    fn advance_high_watermark(&mut self, _now_ms: i64, out: &mut Vec<Output>) {
        let members = self.maximal_isr();
        let min = members
            .iter()
            .map(|r| {
                if *r == self.local_id {
                    self.log_end_offset
                } else {
                    self.progress.get(r).map_or(-1, |p| p.log_end_offset)
                }
            })
            .min();
        if let Some(min) = min {
            // Never past what the leader has, never back.
            let next = min.min(self.log_end_offset);
            if next > self.high_watermark {
                self.high_watermark = next;
                out.push(Output::HighWatermark(next));
            }
        }
        self.complete_replicated(out);
    }

    fn complete_replicated(&mut self, out: &mut Vec<Output>) {
        let hw = self.high_watermark;
        let done: Vec<ProduceId> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.last_offset < hw)
            .map(|(id, _)| *id)
            .collect();
        let enough = (self.isr.len() as i32) >= self.config.min_insync_replicas;
        for id in done {
            self.waiting.remove(&id);
            let code = if enough {
                codes::NONE
            } else {
                codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            };
            out.push(Output::Complete(id, code));
        }
    }
}

/// Where a follower must cut its log before fetching from a new leader (Kafka's
/// rule). `leader_answer` is the leader's (epoch, end offset) for the follower's latest
/// epoch (OffsetForLeaderEpoch, or a Fetch answer's diverging epoch); `local_end_for`
/// is the follower's own answer for an epoch. When both know the leader's epoch, keep
/// the shorter of the two ends; when the follower lacks it, the leader's end (or the
/// follower's log end, if shorter); an undefined answer keeps only what is below the
/// high watermark.
pub fn truncation_offset(
    leader_answer: Option<(i32, i64)>,
    local_end_for: impl Fn(i32) -> Option<(i32, i64)>,
    local_log_end: i64,
    high_watermark: i64,
) -> i64 {
    match leader_answer {
        None => high_watermark.min(local_log_end),
        Some((epoch, leader_end)) => match local_end_for(epoch) {
            Some((e, local_end)) if e == epoch => leader_end.min(local_end),
            _ => leader_end.min(local_log_end),
        },
    }
}
