//! [`GroupCoordinatorState`]: every group of one `__consumer_offsets` partition, as a
//! sans-IO state machine. The `GroupCoordinator` actor owns one, feeds it requests,
//! completed appends and clock ticks (each with an explicit `now_ms`), and carries out
//! the [`Output`]s it returns.

use super::group_metadata::{Group, GroupState};
use super::membership::{AfterAppend, Appends, Cx};
use super::records::{
    decode_group_value, decode_key, decode_offset_value, encode_key, OffsetsKey, RecordError,
};
use super::requests::replace_static_member;
use super::types::*;
use std::collections::HashMap;

/// How member ids are made: random (Kafka's `<client id>-<uuid>`), or sequential so
/// that tests can name them.
#[derive(Clone, Debug)]
pub enum MemberIds {
    Random,
    Sequential(u64),
}

pub struct GroupCoordinatorState {
    pub(crate) config: GroupConfig,
    pub(crate) groups: HashMap<String, Group>,
    pub(crate) appends: Appends,
    ids: MemberIds,
}

impl GroupCoordinatorState {
    pub fn new(config: GroupConfig) -> Self {
        Self::with_member_ids(config, MemberIds::Random)
    }

    pub fn with_member_ids(config: GroupConfig, ids: MemberIds) -> Self {
        GroupCoordinatorState {
            config,
            groups: HashMap::new(),
            appends: Appends::default(),
            ids,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub(crate) fn new_member_id(&mut self, req: &JoinRequest) -> String {
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let suffix = match &mut self.ids {
            MemberIds::Random => crate::metadata::random_uuid().to_string(),
            MemberIds::Sequential(n) => {
                *n += 1;
                n.to_string()
            }
        };
        format!("{prefix}-{suffix}")
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Replay one record of the partition (coordinator load). Later records win;
    /// tombstones delete. A record we cannot decode is skipped, not fatal.
    pub fn load_record(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        now: i64,
    ) -> Result<(), RecordError> {
        match decode_key(key)? {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => match value {
                Some(v) => {
                    let v = decode_offset_value(v)?;
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, v.commit_timestamp));
                    g.offsets.insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                        if g.offsets.is_empty() && g.members.is_empty() && g.protocol_type.is_none()
                        {
                            self.groups.remove(&group);
                        }
                    }
                }
            },
            OffsetsKey::Group { group } => match value {
                Some(v) => {
                    let v = decode_group_value(v)?;
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(&group, now));
                    g.apply_value(v, now);
                }
                None => {
                    // The group was deleted; offsets committed after that live on in
                    // a fresh empty group.
                    if let Some(g) = self.groups.get_mut(&group) {
                        if g.offsets.is_empty() {
                            self.groups.remove(&group);
                        } else {
                            let offsets = std::mem::take(&mut g.offsets);
                            *g = Group::new(&group, now);
                            g.offsets = offsets;
                        }
                    }
                }
            },
        }
        Ok(())
    }

    /// The earliest moment [`Self::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(|g| g.next_deadline()).min()
    }

    /// Expire sessions and end join/sync phases whose deadline has passed.
    pub fn tick(&mut self, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.next_deadline().is_some_and(|d| d <= now))
            .map(|g| g.id.clone())
            .collect();
        for id in due {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            let mut cx = Cx {
                now,
                config: &self.config,
                appends: &mut self.appends,
                out: &mut out,
            };
            g.on_tick(&mut cx);
        }
        out
    }

    /// An append finished: `Ok` once the records are in the log, or the Kafka error
    /// code to answer with (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, ...).
    pub fn append_done(
        &mut self,
        token: AppendToken,
        result: Result<(), i16>,
        now: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        for (after, result) in self.appends.complete(token, result) {
            self.apply_append(after, result, now, &mut out);
        }
        out
    }

    /// The effect of one completed append (see [`Appends`] for the order).
    fn apply_append(
        &mut self,
        after: AfterAppend,
        result: Result<(), i16>,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out,
        };
        match after {
            AfterAppend::Nothing => {
                if let Err(code) = result {
                    tracing::warn!(code, "group metadata append failed");
                }
            }
            AfterAppend::SyncStore {
                group,
                generation,
                assignment,
            } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                // Members may have (re)joined while the record was being written.
                if g.is(GroupState::CompletingRebalance) && g.generation == generation {
                    match result {
                        Ok(()) => {
                            g.set_and_propagate_assignment(&assignment, &mut cx);
                            g.transition(GroupState::Stable, now);
                        }
                        Err(code) => {
                            g.reset_and_propagate_assignment_error(code, &mut cx);
                            g.maybe_prepare_rebalance(&mut cx);
                        }
                    }
                }
            }
            AfterAppend::StaticRejoin {
                group,
                instance_id,
                old_member_id,
                new_member_id,
                old_protocols,
                reply,
                old_leader,
                supports_skip_assignment,
            } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    cx.reply(
                        reply,
                        Reply::Join(JoinResponse::error("", codes::UNKNOWN_MEMBER_ID)),
                    );
                    return;
                };
                let waiting = g
                    .members
                    .get(&new_member_id)
                    .is_some_and(|m| m.awaiting_join == Some(reply));
                if !waiting {
                    // A rebalance started meanwhile and answered (or will answer) it.
                    return;
                }
                match result {
                    Ok(()) => {
                        // Kafka: v9+ tells a restarted leader it leads, with the
                        // members, and to skip the assignment; older versions name
                        // the previous leader id, which matches nobody's new id.
                        let leader = g.is_leader(&new_member_id);
                        let mut resp =
                            g.join_response(&new_member_id, leader && supports_skip_assignment);
                        if supports_skip_assignment {
                            resp.skip_assignment = leader;
                        } else {
                            resp.leader = old_leader;
                        }
                        if let Some(m) = g.members.get_mut(&new_member_id) {
                            m.awaiting_join = None;
                        }
                        cx.reply(reply, Reply::Join(resp));
                    }
                    Err(code) => {
                        if let Some(m) = g.members.get_mut(&new_member_id) {
                            m.awaiting_join = None;
                        }
                        replace_static_member(
                            g,
                            &instance_id,
                            &new_member_id,
                            &old_member_id,
                            &mut cx,
                        );
                        if let Some(m) = g.members.get_mut(&old_member_id) {
                            m.protocols = old_protocols;
                        }
                        cx.reply(reply, Reply::Join(JoinResponse::error("", code)));
                    }
                }
            }
            AfterAppend::Commit {
                group,
                reply,
                written,
                mut response,
            } => match result {
                Ok(()) => {
                    if !written.is_empty() {
                        // Retention keeps a group with commits in flight, so the group
                        // is there; should it not be, the records just written make it
                        // exist after a reload, so it exists now too.
                        self.groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now))
                            .offsets
                            .extend(written);
                    }
                    cx.reply(reply, Reply::Commit(response));
                }
                Err(code) => {
                    // Every partition answered NONE was in the failed append.
                    for (_, _, c) in response.iter_mut().filter(|(_, _, c)| *c == codes::NONE) {
                        *c = code;
                    }
                    cx.reply(reply, Reply::Commit(response));
                }
            },
            AfterAppend::DeleteGroups { reply, mut results } => {
                if let Err(code) = result {
                    for (_, c) in results.iter_mut().filter(|(_, c)| *c == codes::NONE) {
                        *c = code;
                    }
                }
                cx.reply(reply, Reply::DeleteGroups(results));
            }
            AfterAppend::OffsetDelete {
                reply,
                mut response,
            } => {
                if let Err(code) = result {
                    response.error = code;
                }
                cx.reply(reply, Reply::OffsetDelete(response));
            }
        }
    }

    /// DescribeGroups: unknown groups are described as Dead, as Kafka does.
    pub fn describe_group(&self, id: &str) -> DescribedGroup {
        let Some(g) = self.groups.get(id) else {
            return DescribedGroup {
                group_id: id.to_string(),
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        // Metadata and assignments only mean something once the group is stable.
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol.clone().unwrap_or_default();
        DescribedGroup {
            group_id: id.to_string(),
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Default::default()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                })
                .collect(),
        }
    }

    /// ListGroups, optionally only groups in the given states (case-insensitive).
    pub fn list_groups(&self, states: &[String]) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups: only empty groups; their offsets and metadata get tombstones.
    pub fn delete_groups(&mut self, ids: &[String], reply: ReplyId, now: i64) -> Vec<Output> {
        let mut results = Vec::new();
        let mut records = Vec::new();
        for id in ids {
            let code = match self.groups.get_mut(id) {
                None => codes::GROUP_ID_NOT_FOUND,
                Some(g) if g.is(GroupState::Dead) => codes::GROUP_ID_NOT_FOUND,
                Some(g) if g.is(GroupState::Empty) => {
                    // Commits still being appended are deleted too: they come first
                    // in the log, the tombstones after them.
                    let mut keys = self.appends.pending_commits_of(id);
                    keys.extend(g.offsets.keys().cloned());
                    records.extend(super::offsets::remove_offsets(g, &mut self.appends, &keys));
                    records.push(OffsetsRecord {
                        key: encode_key(&OffsetsKey::Group { group: id.clone() }),
                        value: None,
                    });
                    g.transition(GroupState::Dead, now);
                    self.groups.remove(id);
                    codes::NONE
                }
                Some(_) => codes::NON_EMPTY_GROUP,
            };
            results.push((id.clone(), code));
        }
        let mut out = Vec::new();
        if records.is_empty() {
            out.push(Output::Reply(reply, Reply::DeleteGroups(results)));
            return out;
        }
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        cx.append(records, AfterAppend::DeleteGroups { reply, results });
        out
    }
}
