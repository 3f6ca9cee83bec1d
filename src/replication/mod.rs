//! The replica set of one partition, as its leader sees it: who is in sync, how far each
//! replica has come, and the high watermark that follows from it.
//!
//! Sans-IO: the `PartitionLeader` actor feeds it local appends and (later) follower
//! fetches and acts on what it returns. With replication factor 1 the ISR is the leader
//! alone and the high watermark is the log end offset; the same rules carry over to
//! followers unchanged.

pub mod machine;
#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod sim_tests;

pub use machine::{truncation_offset, PartitionMachine, ReplicationConfig};

use std::collections::BTreeMap;

/// Progress of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaProgress {
    pub log_end_offset: i64,
    /// When this replica last had everything the leader had (ms); drives ISR shrink
    /// after `replica.lag.time.max.ms`.
    pub last_caught_up_ms: i64,
}

#[derive(Clone, Debug)]
pub struct ReplicaSet {
    pub local_id: i32,
    pub leader_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    progress: BTreeMap<i32, ReplicaProgress>,
    high_watermark: i64,
}

/// Why a write cannot be accepted under the partition's durability settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationError {
    /// Fewer in-sync replicas than `min.insync.replicas` (Kafka NOT_ENOUGH_REPLICAS, 19).
    NotEnoughReplicas { isr: usize, min_insync: i32 },
}

impl ReplicaSet {
    /// A leader's view at election: its own log end offset, and the high watermark it
    /// recovered (never above its log end offset).
    pub fn new(
        local_id: i32,
        leader_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        local_leo: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Self {
        let mut progress = BTreeMap::new();
        for r in &replicas {
            let leo = if *r == local_id { local_leo } else { -1 };
            progress.insert(
                *r,
                ReplicaProgress {
                    log_end_offset: leo,
                    last_caught_up_ms: now_ms,
                },
            );
        }
        let mut set = ReplicaSet {
            local_id,
            leader_epoch,
            replicas,
            isr,
            progress,
            high_watermark: high_watermark.min(local_leo).max(0),
        };
        set.recompute_high_watermark();
        set
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn local_log_end_offset(&self) -> i64 {
        self.progress
            .get(&self.local_id)
            .map(|p| p.log_end_offset)
            .unwrap_or(0)
    }

    /// acks=all may only be accepted with at least `min.insync.replicas` in sync.
    pub fn check_min_insync(&self, min_insync: i32) -> Result<(), ReplicationError> {
        if (self.isr.len() as i32) < min_insync {
            return Err(ReplicationError::NotEnoughReplicas {
                isr: self.isr.len(),
                min_insync,
            });
        }
        Ok(())
    }

    /// The leader appended locally; returns the new high watermark if it moved.
    pub fn on_local_append(&mut self, log_end_offset: i64, now_ms: i64) -> Option<i64> {
        let local = self.local_id;
        self.update(local, log_end_offset, now_ms)
    }

    /// A follower fetched from `fetch_offset`, i.e. it holds everything below it.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<i64> {
        self.update(replica, fetch_offset, now_ms)
    }

    /// The log was truncated or records deleted below: the high watermark follows the
    /// leader's log end offset down, never up.
    pub fn on_local_truncate(&mut self, log_end_offset: i64) {
        if let Some(p) = self.progress.get_mut(&self.local_id) {
            p.log_end_offset = log_end_offset;
        }
        self.high_watermark = self.high_watermark.min(log_end_offset);
    }

    fn update(&mut self, replica: i32, leo: i64, now_ms: i64) -> Option<i64> {
        let leader_leo = self.local_log_end_offset();
        let p = self.progress.get_mut(&replica)?;
        p.log_end_offset = leo;
        if leo >= leader_leo || replica == self.local_id {
            p.last_caught_up_ms = now_ms;
        }
        let before = self.high_watermark;
        self.recompute_high_watermark();
        (self.high_watermark != before).then_some(self.high_watermark)
    }

    /// The high watermark is the smallest log end offset in the ISR; it never goes back.
    fn recompute_high_watermark(&mut self) {
        let min = self
            .isr
            .iter()
            .filter_map(|r| self.progress.get(r))
            .map(|p| p.log_end_offset)
            .min();
        if let Some(min) = min {
            if min > self.high_watermark {
                self.high_watermark = min;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_replica_high_watermark_follows_appends() {
        let mut r = ReplicaSet::new(1, 0, vec![1], vec![1], 10, 10, 0);
        assert_eq!(r.high_watermark(), 10);
        assert_eq!(r.on_local_append(15, 1), Some(15));
        assert_eq!(r.on_local_append(15, 2), None);
        assert!(r.check_min_insync(1).is_ok());
        assert_eq!(
            r.check_min_insync(2),
            Err(ReplicationError::NotEnoughReplicas {
                isr: 1,
                min_insync: 2
            })
        );
    }

    #[test]
    fn high_watermark_is_min_of_isr_and_never_regresses() {
        let mut r = ReplicaSet::new(1, 3, vec![1, 2], vec![1, 2], 0, 0, 0);
        assert_eq!(r.on_local_append(10, 1), None, "follower still at -1");
        assert_eq!(r.on_follower_fetch(2, 4, 2), Some(4));
        assert_eq!(r.on_follower_fetch(2, 10, 3), Some(10));
        assert_eq!(
            r.on_follower_fetch(2, 8, 4),
            None,
            "a stale fetch does not move it back"
        );
        assert_eq!(r.high_watermark(), 10);
    }

    #[test]
    fn recovered_high_watermark_is_capped_by_log_end() {
        let r = ReplicaSet::new(1, 0, vec![1], vec![1], 5, 9, 0);
        assert_eq!(r.high_watermark(), 5);
    }
}
