//! The controller quorum's own bookkeeping, sans IO: what the Raft leader knows of the
//! link to each replica of the metadata log (voters and learners), which learners it
//! drops from the membership, and who may attach as a learner.
//!
//! * [`ReplicaLinks`]: per replica, the last RPC it answered ("fetch", as Kafka calls a
//!   follower's request), the last time it was caught up with the leader's log end,
//!   and whether the link is up. Link changes come back to the caller so it logs once
//!   per change, not once per retry. DescribeQuorum reports these times.
//! * [`learners_to_remove`]: a broker-only node (a Raft learner) that the controller has
//!   fenced and that has answered no Raft RPC for [`ReplicaLinks`]' bound leaves the
//!   membership; it is added again when it attaches after a restart.
//! * [`attach_refusal`]: a learner from another cluster, or under a voter's id, is
//!   refused.

use crate::metadata::MetadataImage;
use std::collections::BTreeMap;

/// What the leader knows of one replica's link (times in ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaLink {
    /// When it last answered an RPC (AppendEntries, heartbeat or snapshot), or attached
    /// a connection: the time DescribeQuorum calls its last fetch.
    pub last_fetch_ms: Option<i64>,
    /// When an answer last showed it holding every entry the leader had when the RPC
    /// was sent.
    pub last_caught_up_ms: Option<i64>,
    /// When this node first had to do with it (the start of its silence when it has
    /// never answered).
    pub first_seen_ms: i64,
    /// The last RPC to it failed.
    pub down: bool,
}

/// A change of a link, to log once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// The first failure after a success (or the first RPC ever failing).
    Lost,
    /// The first success after failures; `silent_ms` since its previous answer.
    Back { silent_ms: Option<i64> },
}

/// The leader's view of every replica's link: see [`ReplicaLink`].
#[derive(Clone, Debug, Default)]
pub struct ReplicaLinks {
    links: BTreeMap<u64, ReplicaLink>,
}

impl ReplicaLinks {
    fn entry(&mut self, node: u64, now: i64) -> &mut ReplicaLink {
        self.links.entry(node).or_insert(ReplicaLink {
            first_seen_ms: now,
            ..ReplicaLink::default()
        })
    }

    /// `node` answered an RPC at `now`. `replica_end` is the end of its log as the answer
    /// shows it (`None` when the answer says nothing of it, as a snapshot's), and
    /// `leader_end` the end of the leader's log when the RPC was sent.
    pub fn on_reply(
        &mut self,
        node: u64,
        now: i64,
        replica_end: Option<u64>,
        leader_end: u64,
    ) -> Option<LinkChange> {
        let link = self.entry(node, now);
        let change = link.down.then(|| LinkChange::Back {
            silent_ms: link.last_fetch_ms.map(|t| now - t),
        });
        link.down = false;
        link.last_fetch_ms = Some(now);
        if replica_end.is_some_and(|end| end >= leader_end) {
            link.last_caught_up_ms = Some(now);
        }
        change
    }

    /// An RPC to `node` failed at `now`.
    pub fn on_failure(&mut self, node: u64, now: i64) -> Option<LinkChange> {
        let link = self.entry(node, now);
        let change = (!link.down).then_some(LinkChange::Lost);
        link.down = true;
        change
    }

    /// `node` (a learner) attached a connection at `now`: it is alive, as if it answered.
    pub fn on_attach(&mut self, node: u64, now: i64) {
        let link = self.entry(node, now);
        link.last_fetch_ms = Some(now);
    }

    /// Forget `node` (it left the membership): if it comes back, it starts anew.
    pub fn forget(&mut self, node: u64) {
        self.links.remove(&node);
    }

    pub fn get(&self, node: u64) -> Option<&ReplicaLink> {
        self.links.get(&node)
    }

    /// How long `node` has been silent at `now`; `None` when this node never dealt with it.
    pub fn silent_ms(&self, node: u64, now: i64) -> Option<i64> {
        self.links
            .get(&node)
            .map(|l| now - l.last_fetch_ms.unwrap_or(l.first_seen_ms))
    }
}

/// The learners (broker-only nodes) the leader removes from the Raft membership: those
/// whose broker the controller has fenced (or that never registered one) and that
/// answered nothing for longer than `bound_ms`.
///
/// The shell passes `broker.session.timeout.ms` as the bound. Fencing already takes a
/// session of missed broker heartbeats (or a controlled shutdown), so a dead broker
/// leaves the membership about one session after it fell silent, and its retries stop.
/// A broker that restarts re-attaches (and answers) within a second or so, well inside
/// a session, so it keeps its place; one that is fenced but alive (still loading, or
/// told to stay fenced) keeps answering Raft RPCs and is never removed. Removal costs
/// little: a learner that comes back is added again and catches up from the log tail,
/// or a snapshot when the tail was purged. A learner this node never dealt with (it
/// just became the leader) is kept until its own link has been silent that long.
pub fn learners_to_remove(
    image: &MetadataImage,
    learners: impl IntoIterator<Item = u64>,
    links: &ReplicaLinks,
    now: i64,
    bound_ms: i64,
) -> Vec<u64> {
    learners
        .into_iter()
        .filter(|id| {
            let fenced = i32::try_from(*id)
                .map(|b| !image.is_live(b))
                .unwrap_or(true);
            fenced && links.silent_ms(*id, now).is_some_and(|s| s > bound_ms)
        })
        .collect()
}

/// Why a voter refuses a learner's Attach from `node_id` claiming `their_cluster`
/// (`None`: a node too old to say), or `None` to accept it.
pub fn attach_refusal(
    node_id: u64,
    is_voter: bool,
    our_cluster: Option<&str>,
    their_cluster: Option<&str>,
) -> Option<String> {
    if is_voter {
        return Some(format!(
            "node {node_id} is a voter of controller.quorum.voters, not a learner"
        ));
    }
    match (our_cluster, their_cluster) {
        (Some(ours), Some(theirs)) if ours != theirs => Some(format!(
            "node {node_id} belongs to cluster.id={theirs}, this quorum to cluster.id={ours}"
        )),
        _ => None,
    }
}
