//! Pre-vote for the controller quorum, sans IO: a voter asks the others whether they
//! would vote for it before it calls a real Raft election (the Raft thesis, section 9.6;
//! Kafka's KIP-996 for KRaft).
//!
//! Without it, a voter cut off from the others stands again and again, raising its term
//! each time; when the network heals, the leader sees that higher term in the voter's
//! answer to its next heartbeat and steps down, and the whole quorum waits for a new
//! election (about a second per heal in the soak). With it, the cut-off voter's pre-votes
//! find no majority, so its term stays where it was and the leader keeps leading.
//!
//! A voter stands ([`should_stand`]) once it has not heard from a leader for its
//! election timeout, counted from the latest of: the last AppendEntries or
//! InstallSnapshot it accepted from a leader, its last vote change (it voted or stood),
//! and its start. A voter that knew a leader waits out that leader's lease first, as
//! openraft does. Another voter grants a pre-vote ([`grant_prevote`]) when it is not the
//! leader, has not heard from a leader within the lease, and the candidate's log is at
//! least as up to date as its own. A majority of the voters, the candidate included
//! ([`prevote_won`]), lets the candidate call the real election, which decides as Raft
//! always does: the pre-vote only keeps a voter from raising terms it could not win.

use std::collections::BTreeSet;

/// A log position: (term of the leader that wrote the entry, index). Compared as Raft
/// compares logs: the later term wins, then the longer log. `None` is an empty log.
pub type LogPosition = Option<(u64, u64)>;

/// Election timings, in ms (from `controller.quorum.election.timeout.ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// The random election timeout is drawn from `[min, max)`.
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// How long a leader's last message keeps a voter from voting for anyone else
    /// (openraft's leader lease: `election_max_ms`).
    pub lease_ms: u64,
}

impl Timings {
    /// The election timeout for a draw `r` (any u64, uniformly random): in `[min, max)`.
    pub fn election_timeout_ms(&self, r: u64) -> u64 {
        let span = self
            .election_max_ms
            .saturating_sub(self.election_min_ms)
            .max(1);
        self.election_min_ms + r % span
    }
}

/// What a voter knows of itself, when it decides whether to stand or to grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoterView {
    /// This voter leads: it neither stands nor grants.
    pub is_leader: bool,
    /// ms since it last accepted AppendEntries or InstallSnapshot from a leader (`None`:
    /// never, since it started).
    pub since_leader_ms: Option<u64>,
    /// ms since the latest of its start, its last vote change and its last pre-vote.
    pub since_quiet_start_ms: u64,
    /// Whether it knew a leader (a committed vote): then it waits out the lease first.
    pub knew_leader: bool,
    /// The last entry of its log.
    pub last_log: LogPosition,
    /// It is the only voter: it stands after its election timeout, lease or not.
    pub sole_voter: bool,
}

/// Whether a voter should ask for pre-votes now, given its random election timeout.
pub fn should_stand(me: &VoterView, t: &Timings, election_timeout_ms: u64) -> bool {
    if me.is_leader {
        return false;
    }
    if me.sole_voter {
        // Nobody else holds a lease or could lead: the timeout alone, from its start or
        // its last attempt (so a slow vote is not called again at once).
        return me.since_quiet_start_ms >= election_timeout_ms;
    }
    let wait = if me.knew_leader {
        t.lease_ms + election_timeout_ms
    } else {
        election_timeout_ms
    };
    let quiet = me
        .since_leader_ms
        .map_or(me.since_quiet_start_ms, |l| l.min(me.since_quiet_start_ms));
    quiet >= wait
}

/// Whether this voter leads or heard from a leader within the lease: it neither grants
/// pre-votes nor calls an election (one whose pre-vote round ends so drops the result:
/// it voted or heard from a leader meanwhile), and it is not prospective.
pub fn leader_alive(me: &VoterView, t: &Timings) -> bool {
    me.is_leader || me.since_leader_ms.is_some_and(|ms| ms < t.lease_ms)
}

/// Why a pre-vote was refused (for logs and tests); `None` from [`grant_prevote`] grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This voter is the leader: the candidate is not needed.
    IAmTheLeader,
    /// This voter heard from a leader within the lease.
    LeaderAlive,
    /// The candidate's log is behind this voter's: it could not win.
    LogBehind,
}

/// Whether a voter grants a pre-vote to a candidate whose log ends at `candidate_log`.
pub fn grant_prevote(me: &VoterView, t: &Timings, candidate_log: LogPosition) -> Option<Refusal> {
    if me.is_leader {
        return Some(Refusal::IAmTheLeader);
    }
    if me.since_leader_ms.is_some_and(|ms| ms < t.lease_ms) {
        return Some(Refusal::LeaderAlive);
    }
    if candidate_log < me.last_log {
        return Some(Refusal::LogBehind);
    }
    None
}

/// Whether the candidate `me` may call the election: a majority of `voters` (counting
/// itself, and only members of `voters`) granted.
pub fn prevote_won(voters: &BTreeSet<u64>, me: u64, granted: &BTreeSet<u64>) -> bool {
    let yes = voters
        .iter()
        .filter(|v| **v == me || granted.contains(v))
        .count();
    voters.contains(&me) && yes * 2 > voters.len()
}
