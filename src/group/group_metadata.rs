//! One consumer group: its state, members and committed offsets, and the small
//! queries the rebalance rules ask of it. The rules themselves are in
//! [`super::membership`] (join, sync, heartbeat, leave, timeouts) and
//! [`super::offsets`] (commits, fetches, retention).

use super::records::{GroupValue, MemberValue, OffsetValue};
use super::types::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Kafka's classic group states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join before a new generation starts.
    PreparingRebalance,
    /// The generation started; waiting for the leader's assignment (SyncGroup).
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted (or expired); about to disappear.
    Dead,
}

impl GroupState {
    /// The names DescribeGroups and ListGroups answer, as Kafka spells them.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// How long a new member's first JoinGroup may wait before it is dropped (Kafka's
/// NewMemberJoinTimeoutMs): a client that disconnected mid-rebalance must not stay a
/// member forever, and it cannot heartbeat before it has a member id.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// The JoinGroup this member waits on, if any.
    pub awaiting_join: Option<ReplyId>,
    /// The SyncGroup this member waits on, if any.
    pub awaiting_sync: Option<ReplyId>,
    /// Heartbeats, joins, syncs and commits all count as signs of life.
    pub last_heartbeat_ms: i64,
    /// Joined but not yet part of a generation: may not heartbeat yet.
    pub is_new: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Same protocols with the same metadata, in the same order.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// When this member is due to be expired, if it can expire now.
    pub fn expiry_deadline(&self) -> Option<i64> {
        if self.awaiting_join.is_some() && self.is_new {
            // A brand-new member has a (long) bound, see NEW_MEMBER_JOIN_TIMEOUT_MS.
            Some(self.last_heartbeat_ms + NEW_MEMBER_JOIN_TIMEOUT_MS)
        } else if self.awaiting_join.is_some() || self.awaiting_sync.is_some() {
            // A member inside its JoinGroup or SyncGroup cannot heartbeat (kafka-python
            // does not until SyncGroup returns): it is alive, as in Kafka's
            // hasSatisfiedHeartbeat. The join and sync deadlines bound the wait.
            None
        } else {
            Some(self.last_heartbeat_ms + self.session_timeout_ms as i64)
        }
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the group entered its state; `None` for groups loaded from old records.
    /// Retention of an empty group's offsets counts from here.
    pub state_timestamp_ms: Option<i64>,
    pub generation: i32,
    /// `None` for groups that only store offsets ("standalone" commits).
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id of the static member holding it.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    /// When the current join phase ends (PreparingRebalance).
    pub join_deadline: Option<i64>,
    /// Set while the first rebalance of an empty group is delayed by
    /// group.initial.rebalance.delay.ms: the part of the rebalance timeout left.
    pub initial_delay_remaining: Option<i64>,
    /// A member joined during the initial delay, which may extend it once more.
    pub new_member_added: bool,
    /// When members that have not sent SyncGroup are removed.
    pub sync_deadline: Option<i64>,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: Some(now),
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial_delay_remaining: None,
            new_member_added: false,
            sync_deadline: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp_ms = Some(now);
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// Members plus ids handed out but not yet used: what group.max.size bounds.
    pub fn size(&self) -> usize {
        self.members.len() + self.pending_members.len()
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The longest rebalance timeout of any member: how long a join phase may last.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// A static member whose instance id now belongs to another member id is a zombie
    /// of an earlier incarnation and must be told so (FENCED_INSTANCE_ID).
    pub fn is_static_member_fenced(&self, instance: Option<&str>, member_id: &str) -> bool {
        instance
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|m| m != member_id)
    }

    /// Protocols every member supports, in the order the first member prefers them.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Can a member with these protocols join? An empty group takes any non-empty set;
    /// otherwise the type must match and one protocol must be shared by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(p, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
    }

    /// Each member votes for the first candidate it lists; the most votes wins (ties
    /// go to the candidate the first member prefers).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.member_id.clone());
        }
        if let Some(i) = &member.group_instance_id {
            self.static_members
                .insert(i.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Remove a member; the leader passes to another member if it was the leader.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        if let Some(i) = &m.group_instance_id {
            if self.static_members.get(i).map(String::as_str) == Some(member_id) {
                self.static_members.remove(i);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(m)
    }

    /// Every member with its metadata for the selected protocol (the leader's list).
    pub fn member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    /// The JoinGroup answer for a member of the current generation.
    pub fn join_response(&self, member_id: &str, with_members: bool) -> JoinResponse {
        JoinResponse {
            error: codes::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members {
                self.member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    /// The topics the group's consumers subscribe to; `None` when unknown (not a
    /// consumer group, or metadata we cannot read), which callers treat as "all".
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut all = BTreeSet::new();
        for m in self.members.values() {
            let topics = super::records::subscribed_topics(&m.metadata_for(protocol))?;
            all.extend(topics);
        }
        Some(all)
    }

    /// The GroupMetadataValue record for the current generation, with `assignment`
    /// overriding the members' stored assignments (the leader's, before it is applied).
    pub fn to_value(&self, assignment: Option<&BTreeMap<String, Bytes>>) -> GroupValue {
        let protocol = self.protocol.as_deref().unwrap_or("");
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(protocol),
                    assignment: assignment
                        .and_then(|a| a.get(&m.member_id).cloned())
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    /// Rebuild membership from a stored record (coordinator load). Loaded members get
    /// a fresh session from `now`: those that are gone expire and trigger a rebalance.
    pub fn apply_value(&mut self, v: GroupValue, now: i64) {
        self.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        self.generation = v.generation;
        self.protocol = v.protocol.clone();
        self.leader = v.leader;
        self.state_timestamp_ms =
            (v.current_state_timestamp >= 0).then_some(v.current_state_timestamp);
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        let protocol = v.protocol.unwrap_or_default();
        for m in v.members {
            if let Some(i) = &m.group_instance_id {
                self.static_members.insert(i.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    protocol_type: self.protocol_type.clone().unwrap_or_default(),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    last_heartbeat_ms: now,
                    is_new: false,
                },
            );
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if self
            .leader
            .as_ref()
            .is_some_and(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// The earliest moment something in this group times out.
    pub fn next_deadline(&self) -> Option<i64> {
        let join = self
            .join_deadline
            .filter(|_| self.is(GroupState::PreparingRebalance));
        let sync = self.sync_deadline;
        let pending = self.pending_members.values().copied().min();
        let members = self
            .members
            .values()
            .filter_map(|m| m.expiry_deadline())
            .min();
        [join, sync, pending, members].into_iter().flatten().min()
    }
}
