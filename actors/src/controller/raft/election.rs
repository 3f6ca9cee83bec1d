//! A voter's election timer, with pre-vote ([`troupe::controller::prevote`] has the
//! rules). openraft's own timer is off (`enable_elect = false`): it would raise the term
//! of a voter cut off from the others on every timeout, and the leader steps down when
//! that higher term reaches it after the network heals. This task calls the election
//! instead (`Raft::trigger().elect()`), and only after a majority of the voters granted a
//! pre-vote; the election itself is openraft's, unchanged.

use super::log_store::LogReader;
use super::network::{LeaderContact, Network, PreVoteAnswer};
use super::types::{MetaRaft, NodeId};
use openraft::{Raft, ServerState};
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use troupe::controller::prevote::{
    grant_prevote, leader_alive, prevote_won, should_stand, LogPosition, Timings, VoterView,
};

/// What a voter needs to stand and to answer pre-votes.
#[derive(Clone)]
pub(crate) struct Elector {
    pub me: NodeId,
    pub raft: Raft<MetaRaft>,
    pub log: LogReader,
    pub contacts: Arc<LeaderContact>,
    pub network: Network,
    pub timings: Timings,
    /// Set while no leader is heard from and the pre-vote is lost (`QuorumHandle::leader`).
    pub prospective: Arc<tokio::sync::watch::Sender<bool>>,
}

/// A uniformly random u64 (std's hasher keys are random per process and per call).
fn draw() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Elector {
    /// Timings for an openraft config: its election range, and its leader lease
    /// (openraft takes `election_timeout_max`).
    pub fn timings(config: &openraft::Config) -> Timings {
        Timings {
            election_min_ms: config.election_timeout_min,
            election_max_ms: config.election_timeout_max,
            lease_ms: config.election_timeout_max,
        }
    }

    fn view(&self, since_quiet_start: Duration) -> VoterView {
        let (is_leader, knew_leader, sole_voter) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let mut voters = m.membership_config.membership().voter_ids();
            let sole = voters.next() == Some(self.me) && voters.next().is_none();
            (m.state == ServerState::Leader, m.vote.is_committed(), sole)
        };
        VoterView {
            is_leader,
            since_leader_ms: self.contacts.since_accepted().map(ms),
            since_quiet_start_ms: ms(since_quiet_start),
            knew_leader,
            last_log: self.last_log(),
            sole_voter,
        }
    }

    fn last_log(&self) -> LogPosition {
        self.log
            .last_log_id()
            .map(|id| (super::types::term_of(&id), id.index))
    }

    /// The CONTROLLER listener's answer to a pre-vote.
    pub fn answerer(&self) -> PreVoteAnswer {
        let me = self.clone();
        Arc::new(move |candidate, candidate_log| {
            // The quiet start does not matter for an answer: only the leader's contact.
            let view = me.view(Duration::ZERO);
            let refusal = grant_prevote(&view, &me.timings, candidate_log);
            tracing::debug!(
                node_id = me.me,
                candidate,
                ?candidate_log,
                my_log = ?view.last_log,
                ?refusal,
                "controller quorum: pre-vote asked"
            );
            refusal.map(|r| format!("{r:?}"))
        })
    }

    /// Stand when the rules say so, until the task is aborted (with the listener).
    pub async fn run(self) {
        let t = self.timings;
        let tick = Duration::from_millis((t.election_min_ms / 10).clamp(5, 50));
        let mut quiet_start = Instant::now();
        let mut vote = self.raft.metrics().borrow().vote;
        let mut timeout = t.election_timeout_ms(draw());
        let mut last_lost: Option<usize> = None;
        loop {
            tokio::time::sleep(tick).await;
            let (voters, now_vote) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                let voters: BTreeSet<NodeId> =
                    m.membership_config.membership().voter_ids().collect();
                (voters, m.vote)
            };
            if now_vote != vote {
                // It voted, stood, or learned of a new leader: the clock starts again.
                vote = now_vote;
                quiet_start = Instant::now();
            }
            if !voters.contains(&self.me) {
                continue;
            }
            let view = self.view(quiet_start.elapsed());
            if leader_alive(&view, &t) {
                self.set_prospective(false);
            }
            if !should_stand(&view, &t, timeout) {
                continue;
            }
            let granted = self.ask(&voters, view.last_log).await;
            quiet_start = Instant::now();
            timeout = t.election_timeout_ms(draw());
            // The answers are only good for the world they were given in: if this node
            // voted meanwhile (another candidate won, or stood) or heard from a leader,
            // an election now would depose that leader with a higher term.
            let after = self.view(Duration::ZERO);
            let now_vote = self.raft.metrics().borrow().vote;
            if now_vote != vote || leader_alive(&after, &t) {
                tracing::debug!(
                    node_id = self.me,
                    "controller quorum: the vote or the leader changed during the pre-vote: not standing"
                );
                continue;
            }
            if prevote_won(&voters, self.me, &granted) {
                tracing::info!(
                    node_id = self.me,
                    term = vote.leader_id().term,
                    granted = ?granted,
                    "controller quorum: no leader heard from; pre-vote won, calling an election"
                );
                last_lost = None;
                if let Err(e) = self.raft.trigger().elect().await {
                    tracing::warn!(node_id = self.me, error = %e, "controller quorum: cannot call an election");
                    return;
                }
            } else {
                self.set_prospective(true);
                if last_lost != Some(granted.len()) {
                    // Once per change: a cut-off voter would say it every second.
                    tracing::info!(
                        node_id = self.me,
                        granted = ?granted,
                        "controller quorum: no leader heard from, and no majority would vote for this node (cut off?): not standing"
                    );
                    last_lost = Some(granted.len());
                }
            }
        }
    }

    fn set_prospective(&self, now: bool) {
        self.prospective
            .send_if_modified(|p| std::mem::replace(p, now) != now);
    }

    /// Ask every other voter at once; who granted within the shortest election timeout.
    async fn ask(&self, voters: &BTreeSet<NodeId>, last_log: LogPosition) -> BTreeSet<NodeId> {
        let ttl = Duration::from_millis(self.timings.election_min_ms.max(10));
        let mut asks = JoinSet::new();
        for &v in voters.iter().filter(|v| **v != self.me) {
            let network = self.network.clone();
            asks.spawn(async move { (v, network.prevote(v, last_log, ttl).await) });
        }
        let mut granted = BTreeSet::new();
        while let Some(done) = asks.join_next().await {
            if let Ok((v, Some(None))) = done {
                granted.insert(v);
            }
        }
        granted
    }
}
