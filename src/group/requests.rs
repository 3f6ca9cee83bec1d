//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the checks Kafka makes before a
//! request reaches the rebalance rules of [`super::membership`].

use super::coordinator::GroupCoordinatorState;
use super::group_metadata::{Group, GroupState};
use super::membership::{group_record, AfterAppend, Cx};
use super::types::*;
use std::collections::BTreeMap;

impl GroupCoordinatorState {
    /// JoinGroup. The answer may come now or when the rebalance completes; either way it
    /// arrives as an [`Output::Reply`] for `reply`.
    pub fn join_group(&mut self, req: JoinRequest, reply: ReplyId, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let err = |code| {
            vec![Output::Reply(
                reply,
                Reply::Join(JoinResponse::error(&req.member_id, code)),
            )]
        };
        if req.group_id.is_empty() {
            return err(codes::INVALID_GROUP_ID);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return err(codes::INVALID_SESSION_TIMEOUT);
        }
        let unknown = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown {
                return err(codes::UNKNOWN_MEMBER_ID);
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let new_id = unknown.then(|| self.new_member_id(&req));
        let g = self.groups.get_mut(&req.group_id).expect("inserted above");
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        if !accept_joining_member(g, &req.member_id, cx.config.max_size) {
            g.remove_member_and_update_group(&req.member_id, &mut cx);
            cx.reply(
                reply,
                Reply::Join(JoinResponse::error("", codes::GROUP_MAX_SIZE_REACHED)),
            );
        } else if g.is(GroupState::Dead) {
            cx.reply(
                reply,
                Reply::Join(JoinResponse::error(
                    &req.member_id,
                    codes::COORDINATOR_NOT_AVAILABLE,
                )),
            );
        } else if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            cx.reply(
                reply,
                Reply::Join(JoinResponse::error(
                    &req.member_id,
                    codes::INCONSISTENT_GROUP_PROTOCOL,
                )),
            );
        } else if let Some(new_id) = new_id {
            join_new_member(g, &req, new_id, reply, &mut cx);
        } else if g.pending_members.contains_key(&req.member_id) {
            g.add_member_and_rebalance(&req, req.member_id.clone(), reply, &mut cx);
        } else {
            join_known_member(g, &req, reply, &mut cx);
        }
        if g.is(GroupState::PreparingRebalance) {
            g.try_complete_join(&mut cx);
        }
        out
    }

    /// SyncGroup: followers wait for the leader's assignment; the leader's is stored
    /// in `__consumer_offsets` before anyone gets an answer.
    pub fn sync_group(&mut self, req: SyncRequest, reply: ReplyId, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let err = |code| vec![Output::Reply(reply, Reply::Sync(SyncResponse::error(code)))];
        if req.group_id.is_empty() {
            return err(codes::INVALID_GROUP_ID);
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return err(codes::UNKNOWN_MEMBER_ID);
        };
        let code = if g.is(GroupState::Dead) {
            codes::COORDINATOR_NOT_AVAILABLE
        } else if g.is_static_member_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            codes::FENCED_INSTANCE_ID
        } else if !g.members.contains_key(&req.member_id) {
            codes::UNKNOWN_MEMBER_ID
        } else if req.generation_id != g.generation {
            codes::ILLEGAL_GENERATION
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| g.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| g.protocol.as_ref() != Some(p))
        {
            codes::INCONSISTENT_GROUP_PROTOCOL
        } else {
            match g.state {
                GroupState::Empty => codes::UNKNOWN_MEMBER_ID,
                GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
                _ => codes::NONE,
            }
        };
        if code != codes::NONE {
            return err(code);
        }
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        g.pending_sync.remove(&req.member_id);
        if g.is(GroupState::Stable) {
            let m = g.members.get_mut(&req.member_id).expect("checked above");
            m.last_heartbeat_ms = now;
            let resp = SyncResponse {
                error: codes::NONE,
                protocol_type: g.protocol_type.clone(),
                protocol_name: g.protocol.clone(),
                assignment: m.assignment.clone(),
            };
            cx.reply(reply, Reply::Sync(resp));
            return out;
        }
        // CompletingRebalance.
        let m = g.members.get_mut(&req.member_id).expect("checked above");
        m.last_heartbeat_ms = now;
        if let Some(old) = m.awaiting_sync.replace(reply) {
            cx.reply(
                old,
                Reply::Sync(SyncResponse::error(codes::REBALANCE_IN_PROGRESS)),
            );
        }
        if g.is_leader(&req.member_id) {
            // Members the leader left out get an empty assignment.
            let mut assignment: BTreeMap<String, bytes::Bytes> = g
                .members
                .keys()
                .map(|id| (id.clone(), bytes::Bytes::new()))
                .collect();
            for (id, a) in req.assignments {
                if assignment.contains_key(&id) {
                    assignment.insert(id, a);
                }
            }
            let rec = group_record(g, Some(&assignment));
            cx.append(
                vec![rec],
                AfterAppend::SyncStore {
                    group: g.id.clone(),
                    generation: g.generation,
                    assignment,
                },
            );
        }
        out
    }

    /// Heartbeat: keeps a member's session alive and tells it when to rejoin.
    pub fn heartbeat(&mut self, req: &HeartbeatRequest, now: i64) -> i16 {
        if req.group_id.is_empty() {
            return codes::INVALID_GROUP_ID;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if g.is(GroupState::Dead) {
            return codes::COORDINATOR_NOT_AVAILABLE;
        }
        if g.is_static_member_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return codes::FENCED_INSTANCE_ID;
        }
        let generation = g.generation;
        let state = g.state;
        let Some(m) = g.members.get_mut(&req.member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation {
            return codes::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty | GroupState::Dead => codes::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                m.last_heartbeat_ms = now;
                codes::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.last_heartbeat_ms = now;
                codes::NONE
            }
        }
    }

    /// LeaveGroup for one or more members (by member id, or by instance id alone for
    /// administrative removal of static members).
    pub fn leave_group(
        &mut self,
        group_id: &str,
        leaving: &[LeavingMember],
        now: i64,
    ) -> (LeaveResponse, Vec<Output>) {
        let mut out = Vec::new();
        let unknown = |l: &LeavingMember| {
            (
                l.member_id.clone(),
                l.group_instance_id.clone(),
                codes::UNKNOWN_MEMBER_ID,
            )
        };
        let Some(g) = self.groups.get_mut(group_id) else {
            let members = leaving.iter().map(unknown).collect();
            return (
                LeaveResponse {
                    error: codes::NONE,
                    members,
                },
                out,
            );
        };
        if g.is(GroupState::Dead) {
            let resp = LeaveResponse {
                error: codes::COORDINATOR_NOT_AVAILABLE,
                members: Vec::new(),
            };
            return (resp, out);
        }
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        let mut members = Vec::new();
        for l in leaving {
            let code = if l.member_id.is_empty() {
                match l
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| g.static_members.get(i))
                    .cloned()
                {
                    Some(current) => {
                        g.remove_member_and_update_group(&current, &mut cx);
                        codes::NONE
                    }
                    None => codes::UNKNOWN_MEMBER_ID,
                }
            } else if g.pending_members.remove(&l.member_id).is_some() {
                if g.is(GroupState::PreparingRebalance) {
                    g.try_complete_join(&mut cx);
                }
                codes::NONE
            } else if g.is_static_member_fenced(l.group_instance_id.as_deref(), &l.member_id) {
                codes::FENCED_INSTANCE_ID
            } else if g.members.contains_key(&l.member_id) {
                g.remove_member_and_update_group(&l.member_id, &mut cx);
                codes::NONE
            } else {
                codes::UNKNOWN_MEMBER_ID
            };
            members.push((l.member_id.clone(), l.group_instance_id.clone(), code));
        }
        (
            LeaveResponse {
                error: codes::NONE,
                members,
            },
            out,
        )
    }
}

/// group.max.size: an existing member is always let back in; new ones only while
/// there is room (counting those waiting in a rebalance, so that a lowered limit
/// drops the last ones to rejoin). A member id handed out with MEMBER_ID_REQUIRED
/// already holds its slot.
fn accept_joining_member(g: &Group, member_id: &str, max_size: usize) -> bool {
    if g.pending_members.contains_key(member_id) {
        return true;
    }
    match g.state {
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            g.members
                .get(member_id)
                .is_some_and(|m| m.awaiting_join.is_some())
                || g.num_awaiting_join() + g.pending_members.len() < max_size
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.members.contains_key(member_id) || g.size() < max_size
        }
    }
}

fn join_new_member(g: &mut Group, req: &JoinRequest, new_id: String, reply: ReplyId, cx: &mut Cx) {
    if let Some(instance) = &req.group_instance_id {
        match g.static_members.get(instance).cloned() {
            Some(old) => rejoin_static_member(g, req, instance, old, new_id, reply, cx),
            None => g.add_member_and_rebalance(req, new_id, reply, cx),
        }
    } else if req.require_known_member_id {
        // The client must come back with this id; until it does, the id holds a slot
        // (and delays the rebalance) for at most one session timeout.
        g.pending_members
            .insert(new_id.clone(), cx.now + req.session_timeout_ms as i64);
        cx.reply(
            reply,
            Reply::Join(JoinResponse::error(&new_id, codes::MEMBER_ID_REQUIRED)),
        );
    } else {
        g.add_member_and_rebalance(req, new_id, reply, cx);
    }
}

fn join_known_member(g: &mut Group, req: &JoinRequest, reply: ReplyId, cx: &mut Cx) {
    let instance = req.group_instance_id.as_deref();
    if g.is_static_member_fenced(instance, &req.member_id) {
        cx.reply(
            reply,
            Reply::Join(JoinResponse::error(
                &req.member_id,
                codes::FENCED_INSTANCE_ID,
            )),
        );
        return;
    }
    let instance_unknown = instance.is_some_and(|i| !g.static_members.contains_key(i));
    if !g.members.contains_key(&req.member_id) || instance_unknown {
        cx.reply(
            reply,
            Reply::Join(JoinResponse::error(
                &req.member_id,
                codes::UNKNOWN_MEMBER_ID,
            )),
        );
        return;
    }
    let m = &g.members[&req.member_id];
    let same = m.matches(&req.protocols);
    match g.state {
        GroupState::PreparingRebalance => {
            g.update_member_and_rebalance(req, &req.member_id, reply, cx)
        }
        GroupState::CompletingRebalance if same => {
            // It missed the JoinGroup answer: give it the current generation again.
            let leader = g.is_leader(&req.member_id);
            cx.reply(reply, Reply::Join(g.join_response(&req.member_id, leader)));
        }
        GroupState::Stable if same && !g.is_leader(&req.member_id) => {
            let resp = g.join_response(&req.member_id, false);
            if let Some(m) = g.members.get_mut(&req.member_id) {
                m.last_heartbeat_ms = cx.now;
            }
            cx.reply(reply, Reply::Join(resp));
        }
        // A changed subscription, or the leader asking for a rebalance (e.g. after a
        // metadata change the member protocol does not show).
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.update_member_and_rebalance(req, &req.member_id, reply, cx)
        }
        GroupState::Empty | GroupState::Dead => cx.reply(
            reply,
            Reply::Join(JoinResponse::error(
                &req.member_id,
                codes::UNKNOWN_MEMBER_ID,
            )),
        ),
    }
}

/// A static member restarted (new member id, same instance id). In a stable group it
/// gets its old assignment back without a rebalance, once the new member id is stored.
fn rejoin_static_member(
    g: &mut Group,
    req: &JoinRequest,
    instance: &str,
    old_id: String,
    new_id: String,
    reply: ReplyId,
    cx: &mut Cx,
) {
    // Before JoinGroup v9 the answer names the leader as it was before the restart.
    let old_leader = g.leader.clone().unwrap_or_default();
    let Some(old_protocols) = replace_static_member(g, instance, &old_id, &new_id, cx) else {
        g.add_member_and_rebalance(req, new_id, reply, cx);
        return;
    };
    if let Some(m) = g.members.get_mut(&new_id) {
        m.protocols = super::membership::owned_protocols(&req.protocols);
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.last_heartbeat_ms = cx.now;
        m.awaiting_join = Some(reply);
    }
    match g.state {
        GroupState::Stable => {
            if g.select_protocol() == g.protocol {
                let rec = group_record(g, None);
                cx.append(
                    vec![rec],
                    AfterAppend::StaticRejoin {
                        group: g.id.clone(),
                        instance_id: instance.to_string(),
                        old_member_id: old_id,
                        new_member_id: new_id.clone(),
                        old_protocols,
                        reply,
                        old_leader,
                        supports_skip_assignment: req.supports_skip_assignment,
                    },
                );
            } else {
                g.maybe_prepare_rebalance(cx);
            }
        }
        // The leader may already have been told the old member id: start over.
        GroupState::CompletingRebalance => g.prepare_rebalance(cx),
        _ => {}
    }
}

/// Move a static member to a new member id, fencing whatever the old one waits on.
/// Returns the member's previous protocols, or `None` if the old id is gone.
pub(crate) fn replace_static_member(
    g: &mut Group,
    instance: &str,
    old_id: &str,
    new_id: &str,
    cx: &mut Cx,
) -> Option<Vec<(String, bytes::Bytes)>> {
    let mut m = g.members.remove(old_id)?;
    if let Some(r) = m.awaiting_join.take() {
        cx.reply(
            r,
            Reply::Join(JoinResponse::error(old_id, codes::FENCED_INSTANCE_ID)),
        );
    }
    if let Some(r) = m.awaiting_sync.take() {
        cx.reply(
            r,
            Reply::Sync(SyncResponse::error(codes::FENCED_INSTANCE_ID)),
        );
    }
    let old_protocols = m.protocols.clone();
    m.member_id = new_id.to_string();
    g.members.insert(new_id.to_string(), m);
    if g.is_leader(old_id) {
        g.leader = Some(new_id.to_string());
    }
    if g.pending_sync.remove(old_id) {
        g.pending_sync.insert(new_id.to_string());
    }
    g.static_members
        .insert(instance.to_string(), new_id.to_string());
    Some(old_protocols)
}
