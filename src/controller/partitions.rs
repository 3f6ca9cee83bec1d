//! Partition leadership and ISR decisions.
//!
//! * A leader is elected from the ISR, among live (registered, unfenced) replicas, in
//!   replica order (so the preferred replica wins when it can). Outside the ISR only
//!   where `unclean.leader.election.enable` allows (or ElectLeaders UNCLEAN asks), and
//!   then the ISR restarts as just the new leader: whatever it lacks is lost.
//! * The ISR is never empty: when its last member is fenced it stays in the ISR and
//!   the partition has no leader (-1) until that replica comes back, so the one copy
//!   with every acknowledged record is the one that leads next (Kafka's rule).
//! * Every leader change bumps the leader epoch; every change of leader or ISR bumps
//!   the partition epoch. A stale AlterPartition (old leader epoch or partition epoch)
//!   is refused: this is what fences a zombie leader.

use super::{codes, ApiError, ControllerConfig};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage};

/// No leader: the partition is offline.
pub const NO_LEADER: i32 = -1;

/// The record that moves `p` to (`leader`, `isr`), with the epochs bumped as the
/// change requires; `None` when nothing changes.
fn change(
    topic: &TopicImage,
    p: &PartitionImage,
    leader: i32,
    isr: Vec<i32>,
) -> Option<MetadataRecord> {
    if leader == p.leader && isr == p.isr {
        return None;
    }
    let leader_epoch = if leader != p.leader {
        p.leader_epoch + 1
    } else {
        p.leader_epoch
    };
    Some(MetadataRecord::Partition {
        topic_id: *topic.topic_id.as_bytes(),
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr,
        leader,
        leader_epoch,
        partition_epoch: p.partition_epoch + 1,
    })
}

/// The clean choice: the first replica (replica order) in `isr` that `eligible` allows.
fn clean_leader(p: &PartitionImage, isr: &[i32], eligible: &impl Fn(i32) -> bool) -> Option<i32> {
    p.replicas
        .iter()
        .copied()
        .find(|r| isr.contains(r) && eligible(*r))
}

/// Leader and ISR for `p` once `gone` (fenced or shutting down) may no longer lead or
/// be in sync, given who else is live. `unclean` allows an out-of-ISR leader.
fn without(image: &MetadataImage, p: &PartitionImage, gone: i32, unclean: bool) -> (i32, Vec<i32>) {
    let eligible = |b: i32| b != gone && image.is_live(b);
    let mut isr: Vec<i32> = p.isr.iter().copied().filter(|b| *b != gone).collect();
    if isr.is_empty() {
        // Keep the last in-sync replica in the ISR, leaderless (see the module comment).
        isr = p.isr.clone();
    }
    let leader_ok = p.leader != NO_LEADER && eligible(p.leader) && isr.contains(&p.leader);
    if leader_ok {
        return (p.leader, isr);
    }
    if let Some(l) = clean_leader(p, &isr, &eligible) {
        return (l, isr);
    }
    if unclean {
        if let Some(l) = p.replicas.iter().copied().find(|r| eligible(*r)) {
            tracing::warn!(partition = p.partition, leader = l, isr = ?p.isr,
                "unclean leader election: a replica outside the ISR leads, records it lacks are lost");
            return (l, vec![l]);
        }
    }
    (NO_LEADER, isr)
}

/// Partition changes when broker `node` is fenced (missed heartbeats) or shuts down:
/// it leaves every ISR (unless it is the last member) and every leadership it held
/// moves to another in-sync replica.
pub fn on_broker_gone(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    node: i32,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        let unclean = cfg.unclean_allowed(t);
        for p in t.partitions.values().filter(|p| p.replicas.contains(&node)) {
            let (leader, isr) = without(image, p, node, unclean);
            out.extend(change(t, p, leader, isr));
        }
    }
    out
}

/// Partition changes when broker `node` becomes live again: leaderless partitions
/// whose ISR holds it get it as leader (or, where unclean election is allowed, any
/// leaderless partition it is a replica of). `image` must already show it unfenced.
pub fn on_broker_back(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    node: i32,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for t in image.topics.values() {
        let unclean = cfg.unclean_allowed(t);
        for p in t
            .partitions
            .values()
            .filter(|p| p.leader == NO_LEADER && p.replicas.contains(&node))
        {
            let (leader, isr) = without(image, p, i32::MIN, unclean);
            out.extend(change(t, p, leader, isr));
        }
    }
    out
}

/// AlterPartition from a partition leader: a new ISR (shrink or expand).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartition {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// Check and carry out an AlterPartition: the records and the partition as it will
/// be, or the error code (Kafka's) for the partition.
pub fn alter_partition(
    image: &MetadataImage,
    req: &AlterPartition,
) -> Result<(Vec<MetadataRecord>, PartitionImage), i16> {
    match image.brokers.get(&req.broker_id) {
        Some(b) if b.epoch == req.broker_epoch && !b.fenced => {}
        _ => return Err(codes::STALE_BROKER_EPOCH),
    }
    let t = image
        .topic_by_id(&req.topic_id)
        .ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION)?;
    let p = t
        .partitions
        .get(&req.partition)
        .ok_or(codes::UNKNOWN_TOPIC_OR_PARTITION)?;
    if p.leader != req.broker_id {
        return Err(codes::NOT_LEADER_OR_FOLLOWER);
    }
    if req.leader_epoch != p.leader_epoch {
        return Err(codes::FENCED_LEADER_EPOCH);
    }
    if req.partition_epoch != p.partition_epoch {
        return Err(codes::INVALID_UPDATE_VERSION);
    }
    let mut isr = req.new_isr.clone();
    isr.sort_unstable();
    isr.dedup();
    if isr.len() != req.new_isr.len()
        || !isr.contains(&req.broker_id)
        || isr.iter().any(|b| !p.replicas.contains(b))
    {
        return Err(codes::INVALID_REQUEST);
    }
    // Only live replicas may join; a fenced one still in the ISR may stay (shrinks).
    if req
        .new_isr
        .iter()
        .any(|b| !p.isr.contains(b) && !image.is_live(*b))
    {
        return Err(codes::INELIGIBLE_REPLICA);
    }
    // Keep replica order in the ISR, as the records elsewhere do.
    let isr: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| req.new_isr.contains(r))
        .collect();
    match change(t, p, p.leader, isr.clone()) {
        None => Ok((Vec::new(), p.clone())),
        Some(record) => {
            let mut next = p.clone();
            next.isr = isr;
            next.partition_epoch += 1;
            Ok((vec![record], next))
        }
    }
}

/// ElectLeaders' election types (the request's `election_type`: 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionKind {
    Preferred,
    Unclean,
}

/// ElectLeaders for one partition.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    kind: ElectionKind,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let unknown = || {
        (
            codes::UNKNOWN_TOPIC_OR_PARTITION,
            format!("{topic}-{partition} does not exist."),
        )
    };
    let t = image.topics.get(topic).ok_or_else(unknown)?;
    let p = t.partitions.get(&partition).ok_or_else(unknown)?;
    let live = |b: i32| image.is_live(b);
    let leader_live = p.leader != NO_LEADER && live(p.leader);
    match kind {
        ElectionKind::Preferred => {
            let preferred = p.replicas[0];
            if p.leader == preferred {
                return Err((
                    codes::ELECTION_NOT_NEEDED,
                    "Leader is already the preferred replica.".into(),
                ));
            }
            if !p.isr.contains(&preferred) || !live(preferred) {
                return Err((
                    codes::PREFERRED_LEADER_NOT_AVAILABLE,
                    format!("Preferred replica {preferred} is not live and in sync."),
                ));
            }
            Ok(change(t, p, preferred, p.isr.clone()).into_iter().collect())
        }
        ElectionKind::Unclean => {
            if leader_live {
                return Err((
                    codes::ELECTION_NOT_NEEDED,
                    "The partition has a live leader.".into(),
                ));
            }
            let (leader, isr) = without(image, p, i32::MIN, true);
            if leader == NO_LEADER {
                return Err((
                    codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    "No live replica to elect.".into(),
                ));
            }
            Ok(change(t, p, leader, isr).into_iter().collect())
        }
    }
}

/// `auto.leader.rebalance.enable`: preferred-leader elections for every broker whose
/// share of partitions it should lead but does not exceeds
/// `leader.imbalance.per.broker.percentage`.
pub fn rebalance_preferred(image: &MetadataImage, imbalance_percent: u32) -> Vec<MetadataRecord> {
    use std::collections::BTreeMap;
    /// Partitions a broker prefers, and those of them led by someone else.
    #[derive(Default)]
    struct Preferred<'a> {
        total: u32,
        elsewhere: Vec<(&'a str, i32)>,
    }
    let mut per: BTreeMap<i32, Preferred> = BTreeMap::new();
    for t in image.topics.values() {
        for p in t.partitions.values() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            let e = per.entry(preferred).or_default();
            e.total += 1;
            if p.leader != preferred {
                e.elsewhere.push((t.name.as_str(), p.partition));
            }
        }
    }
    let mut out = Vec::new();
    for Preferred {
        total,
        elsewhere: off,
    } in per.into_values()
    {
        if total == 0 || (off.len() as u64 * 100) <= u64::from(imbalance_percent) * u64::from(total)
        {
            continue;
        }
        for (topic, partition) in off {
            if let Ok(records) = elect_leader(image, topic, partition, ElectionKind::Preferred) {
                out.extend(records);
            }
        }
    }
    out
}
