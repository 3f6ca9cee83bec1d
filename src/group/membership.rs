//! The rebalance rules of Kafka's classic group protocol, as methods on [`Group`]
//! that take the moment (`now`) and collect what must happen in a [`Cx`]: answers to
//! waiting requests (possibly other members' JoinGroups when a rebalance completes)
//! and records to append.

use super::group_metadata::{Group, GroupState, Member};
use super::records::{encode_group_value, encode_key, OffsetsKey};
use super::types::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What happens once an append to `__consumer_offsets` completes.
#[derive(Clone, Debug)]
pub(crate) enum AfterAppend {
    Nothing,
    /// The leader's assignment for `generation` was stored: apply and distribute it.
    SyncStore {
        group: String,
        generation: i32,
        assignment: BTreeMap<String, Bytes>,
    },
    /// A static member came back with a new member id while the group was stable.
    StaticRejoin {
        group: String,
        instance_id: String,
        old_member_id: String,
        new_member_id: String,
        old_protocols: Vec<(String, Bytes)>,
        reply: ReplyId,
        /// The leader before the member id changed: what JoinGroup before v9 is told,
        /// so that a restarted leader does not compute an assignment that the stable
        /// group would ignore.
        old_leader: String,
        /// JoinGroup v9+: a restarted leader is told it leads and to skip assigning.
        supports_skip_assignment: bool,
    },
    /// A commit: `written` is applied to the group once appended. Partitions deleted
    /// or expired meanwhile are taken out of it (their tombstones follow the commit in
    /// the log), so the completion does not bring them back.
    Commit {
        group: String,
        reply: ReplyId,
        written: Vec<((String, i32), super::records::OffsetValue)>,
        response: CommitResponse,
    },
    DeleteGroups {
        reply: ReplyId,
        results: Vec<(String, i16)>,
    },
    OffsetDelete {
        reply: ReplyId,
        response: OffsetDeleteResponse,
    },
}

/// Member metadata and assignments arrive as slices of the request frame they were
/// decoded from (zero-copy decoding): kept as they are, each member would hold its
/// connection's whole read buffer for the group's lifetime. What a group stores is
/// copied out.
pub(crate) fn owned_protocols(protocols: &[(String, Bytes)]) -> Vec<(String, Bytes)> {
    protocols
        .iter()
        .map(|(name, metadata)| (name.clone(), Bytes::copy_from_slice(metadata)))
        .collect()
}

/// Appends waiting for their completion.
///
/// Appends are issued in token order and land in the log in that order, but their
/// completions may reach the state machine in any order (actix polls the futures it
/// spawned in no fixed order). Effects are applied in token order, which is log
/// order: a completion that overtakes an earlier append waits in `done` until that
/// one completes. Otherwise two pipelined commits of one partition could be applied
/// newest first, and OffsetFetch would answer the older offset, which a reload of the
/// log would not.
#[derive(Default)]
pub(crate) struct Appends {
    next: AppendToken,
    pub(crate) pending: BTreeMap<AppendToken, AfterAppend>,
    /// Completions of appends whose predecessors are still pending.
    pub(crate) done: BTreeMap<AppendToken, Result<(), i16>>,
}

impl Appends {
    /// Record the completion of `token`; return, in token order, every append whose
    /// effect may now be applied (the oldest pending ones that have completed).
    pub(crate) fn complete(
        &mut self,
        token: AppendToken,
        result: Result<(), i16>,
    ) -> Vec<(AfterAppend, Result<(), i16>)> {
        if !self.pending.contains_key(&token) {
            return Vec::new();
        }
        self.done.insert(token, result);
        let mut ready = Vec::new();
        while let Some(first) = self.pending.first_entry() {
            let Some(result) = self.done.remove(first.key()) else {
                break;
            };
            ready.push((first.remove(), result));
        }
        ready
    }

    /// (group, partition) of every commit still being appended.
    fn commits_in_flight(&self) -> impl Iterator<Item = (&str, &(String, i32))> {
        self.pending.values().flat_map(|after| match after {
            AfterAppend::Commit { group, written, .. } => {
                written.iter().map(|(k, _)| (group.as_str(), k)).collect()
            }
            _ => Vec::new(),
        })
    }

    /// Partitions per group with a commit still being appended: retention must not
    /// count such a group as offset-less, nor expire those partitions (Kafka's
    /// hasOffsets and its pending-commit check).
    pub(crate) fn pending_commits(&self) -> HashMap<String, BTreeSet<(String, i32)>> {
        let mut out: HashMap<String, BTreeSet<(String, i32)>> = HashMap::new();
        for (group, key) in self.commits_in_flight() {
            out.entry(group.to_string())
                .or_default()
                .insert(key.clone());
        }
        out
    }

    /// Partitions of `group` being committed right now.
    pub(crate) fn pending_commits_of(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.commits_in_flight()
            .filter(|(g, _)| *g == group)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// `keys` of `group` were deleted after commits still in flight: those commits
    /// must not apply them when they complete.
    pub(crate) fn forget_pending_commits(&mut self, group: &str, keys: &BTreeSet<(String, i32)>) {
        for after in self.pending.values_mut() {
            if let AfterAppend::Commit {
                group: g, written, ..
            } = after
            {
                if g == group {
                    written.retain(|(k, _)| !keys.contains(k));
                }
            }
        }
    }
}

/// The context of one input: the moment, the config, and where outputs go.
pub(crate) struct Cx<'a> {
    pub now: i64,
    pub config: &'a GroupConfig,
    pub appends: &'a mut Appends,
    pub out: &'a mut Vec<Output>,
}

impl Cx<'_> {
    pub fn reply(&mut self, to: ReplyId, reply: Reply) {
        self.out.push(Output::Reply(to, reply));
    }

    pub fn append(&mut self, records: Vec<OffsetsRecord>, after: AfterAppend) {
        let token = self.appends.next;
        self.appends.next += 1;
        self.appends.pending.insert(token, after);
        self.out.push(Output::Append { token, records });
    }
}

/// The record that stores a group's current membership.
pub(crate) fn group_record(
    g: &Group,
    assignment: Option<&BTreeMap<String, Bytes>>,
) -> OffsetsRecord {
    OffsetsRecord {
        key: encode_key(&OffsetsKey::Group {
            group: g.id.clone(),
        }),
        value: Some(encode_group_value(&g.to_value(assignment))),
    }
}

impl Group {
    /// A member joins with a member id we just made up (or one it got from
    /// MEMBER_ID_REQUIRED): add it and start (or extend) a rebalance.
    pub(crate) fn add_member_and_rebalance(
        &mut self,
        req: &JoinRequest,
        member_id: String,
        reply: ReplyId,
        cx: &mut Cx,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type.clone(),
            protocols: owned_protocols(&req.protocols),
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            last_heartbeat_ms: cx.now,
            is_new: true,
        };
        if self.is(GroupState::PreparingRebalance) && self.generation == 0 {
            self.new_member_added = true;
        }
        self.pending_members.remove(&member_id);
        self.add_member(member);
        self.maybe_prepare_rebalance(cx);
    }

    /// A known member rejoins with (possibly new) protocols: wait for the rebalance.
    pub(crate) fn update_member_and_rebalance(
        &mut self,
        req: &JoinRequest,
        member_id: &str,
        reply: ReplyId,
        cx: &mut Cx,
    ) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = owned_protocols(&req.protocols);
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.last_heartbeat_ms = cx.now;
            if let Some(old) = m.awaiting_join.replace(reply) {
                // A retried JoinGroup supersedes the earlier one, which must still be
                // answered so its connection can move on.
                cx.reply(
                    old,
                    Reply::Join(JoinResponse::error(member_id, codes::REBALANCE_IN_PROGRESS)),
                );
            }
        }
        self.maybe_prepare_rebalance(cx);
    }

    pub(crate) fn maybe_prepare_rebalance(&mut self, cx: &mut Cx) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(cx);
        }
    }

    pub(crate) fn prepare_rebalance(&mut self, cx: &mut Cx) {
        if self.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(codes::REBALANCE_IN_PROGRESS, cx);
        }
        self.sync_deadline = None;
        self.pending_sync.clear();
        let timeout = self.rebalance_timeout_ms();
        let initial_delay = cx.config.initial_rebalance_delay_ms.min(timeout);
        if self.is(GroupState::Empty) && initial_delay > 0 {
            // The first rebalance of an empty group waits a little for more members,
            // so that consumers starting together do not cause one rebalance each.
            self.initial_delay_remaining = Some((timeout - initial_delay).max(0));
            self.new_member_added = false;
            self.join_deadline = Some(cx.now + initial_delay);
        } else {
            self.initial_delay_remaining = None;
            self.join_deadline = Some(cx.now + timeout);
        }
        self.transition(GroupState::PreparingRebalance, cx.now);
        self.try_complete_join(cx);
    }

    /// The join phase ends early once every member (and every promised member id)
    /// has joined; never during the initial delay.
    pub(crate) fn try_complete_join(&mut self, cx: &mut Cx) {
        if self.is(GroupState::PreparingRebalance)
            && self.initial_delay_remaining.is_none()
            && self.has_all_members_joined()
        {
            self.complete_join(cx);
        }
    }

    /// The join deadline passed.
    pub(crate) fn on_join_deadline(&mut self, cx: &mut Cx) {
        self.join_deadline = None;
        if let Some(remaining) = self.initial_delay_remaining {
            if self.new_member_added && remaining > 0 {
                let delay = cx.config.initial_rebalance_delay_ms.min(remaining);
                self.new_member_added = false;
                self.initial_delay_remaining = Some((remaining - delay).max(0));
                self.join_deadline = Some(cx.now + delay);
                return;
            }
        }
        self.complete_join(cx);
    }

    /// End the join phase: drop dynamic members that did not rejoin, start the next
    /// generation and answer every waiting JoinGroup (the leader gets the members).
    fn complete_join(&mut self, cx: &mut Cx) {
        self.join_deadline = None;
        self.initial_delay_remaining = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            if let Some(m) = self.remove_member(&id) {
                if let Some(r) = m.awaiting_sync {
                    cx.reply(
                        r,
                        Reply::Sync(SyncResponse::error(codes::UNKNOWN_MEMBER_ID)),
                    );
                }
            }
        }
        if self.is(GroupState::Dead) {
            return;
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait another round
            // for them (their sessions will remove them if they are really gone).
            self.join_deadline = Some(cx.now + self.rebalance_timeout_ms());
            return;
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.transition(GroupState::Empty, cx.now);
            let rec = group_record(self, None);
            cx.append(vec![rec], AfterAppend::Nothing);
            return;
        }
        self.protocol = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, cx.now);
        let all = self.member_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let mut resp = self.join_response(&id, false);
            if self.is_leader(&id) {
                resp.members = all.clone();
            }
            let m = self
                .members
                .get_mut(&id)
                .expect("id taken from the member map");
            if let Some(r) = m.awaiting_join.take() {
                cx.reply(r, Reply::Join(resp));
            }
            m.last_heartbeat_ms = cx.now;
            m.is_new = false;
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(cx.now + self.rebalance_timeout_ms());
    }

    /// Keep the leader if it rejoined, else hand leadership to a member that did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Answer every waiting SyncGroup with `error` and forget the assignments. A member
    /// that waited did not heartbeat meanwhile: its session starts afresh, so that it
    /// has one to rejoin in (as Kafka's propagateAssignment does).
    pub(crate) fn reset_and_propagate_assignment_error(&mut self, error: i16, cx: &mut Cx) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(r) = m.awaiting_sync.take() {
                cx.reply(r, Reply::Sync(SyncResponse::error(error)));
                m.last_heartbeat_ms = cx.now;
            }
        }
    }

    /// Set the leader's assignment and answer every waiting SyncGroup with its part.
    pub(crate) fn set_and_propagate_assignment(
        &mut self,
        assignment: &BTreeMap<String, Bytes>,
        cx: &mut Cx,
    ) {
        let (ptype, proto) = (self.protocol_type.clone(), self.protocol.clone());
        for m in self.members.values_mut() {
            m.assignment = assignment
                .get(&m.member_id)
                .map(|a| Bytes::copy_from_slice(a))
                .unwrap_or_default();
            if let Some(r) = m.awaiting_sync.take() {
                cx.reply(
                    r,
                    Reply::Sync(SyncResponse {
                        error: codes::NONE,
                        protocol_type: ptype.clone(),
                        protocol_name: proto.clone(),
                        assignment: m.assignment.clone(),
                    }),
                );
            }
            m.last_heartbeat_ms = cx.now;
        }
    }

    /// A member leaves (LeaveGroup) or its session expired.
    pub(crate) fn remove_member_and_update_group(&mut self, member_id: &str, cx: &mut Cx) {
        let Some(m) = self.remove_member(member_id) else {
            return;
        };
        // It may still wait on a JoinGroup (a new member timing out mid-rebalance):
        // UNKNOWN_MEMBER_ID makes a client that is still alive join afresh.
        if let Some(r) = m.awaiting_join {
            cx.reply(
                r,
                Reply::Join(JoinResponse::error("", codes::UNKNOWN_MEMBER_ID)),
            );
        }
        if let Some(r) = m.awaiting_sync {
            cx.reply(
                r,
                Reply::Sync(SyncResponse::error(codes::UNKNOWN_MEMBER_ID)),
            );
        }
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(cx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(cx),
        }
    }

    /// Sessions, promised member ids, join and sync deadlines that have passed.
    pub(crate) fn on_tick(&mut self, cx: &mut Cx) {
        let now = cx.now;
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.expiry_deadline().is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_update_group(&id, cx);
        }
        let pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !pending.is_empty() {
            for id in pending {
                self.pending_members.remove(&id);
            }
            if self.is(GroupState::PreparingRebalance) {
                self.try_complete_join(cx);
            }
        }
        if self.is(GroupState::PreparingRebalance) && self.join_deadline.is_some_and(|d| d <= now) {
            self.on_join_deadline(cx);
        }
        if self.sync_deadline.is_some_and(|d| d <= now) {
            self.sync_deadline = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !self.pending_sync.is_empty()
            {
                let lagging: Vec<String> = self.pending_sync.iter().cloned().collect();
                tracing::info!(group = %self.id, members = ?lagging, "members did not sync in time");
                for id in lagging {
                    if let Some(m) = self.remove_member(&id) {
                        if let Some(r) = m.awaiting_join {
                            cx.reply(
                                r,
                                Reply::Join(JoinResponse::error("", codes::UNKNOWN_MEMBER_ID)),
                            );
                        }
                    }
                }
                self.prepare_rebalance(cx);
            }
        }
    }
}
