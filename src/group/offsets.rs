//! Committed offsets: OffsetCommit (with Kafka's generation and member checks),
//! OffsetFetch, OffsetDelete, and retention (`offsets.retention.minutes`).
//!
//! A commit is applied to memory only after its records are appended to
//! `__consumer_offsets` ([`GroupCoordinatorState::append_done`]), so a fetch never
//! returns an offset that a coordinator restart could lose.

use super::coordinator::GroupCoordinatorState;
use super::group_metadata::{Group, GroupState};
use super::membership::{AfterAppend, Appends, Cx};
use super::records::{encode_key, encode_offset_value, OffsetValue, OffsetsKey};
use super::types::*;
use std::collections::BTreeSet;

fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    encode_key(&OffsetsKey::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
    })
}

/// Tombstones for some of a group's offsets: those applied (deleted from memory at
/// once) and those whose commit is still being appended (which will not apply them).
/// Either way the tombstone follows the offset in the log, so a reload agrees.
pub(crate) fn remove_offsets(
    g: &mut Group,
    appends: &mut Appends,
    keys: &BTreeSet<(String, i32)>,
) -> Vec<OffsetsRecord> {
    let pending = appends.pending_commits_of(&g.id);
    appends.forget_pending_commits(&g.id, keys);
    keys.iter()
        .filter(|k| g.offsets.remove(*k).is_some() || pending.contains(*k))
        .map(|(t, p)| OffsetsRecord {
            key: offset_key(&g.id, t, *p),
            value: None,
        })
        .collect()
}

impl GroupCoordinatorState {
    /// OffsetCommit. Answered (as [`Reply::Commit`]) once the records are appended.
    pub fn commit_offsets(&mut self, req: CommitRequest, reply: ReplyId, now: i64) -> Vec<Output> {
        let all = |code: i16| {
            let resp = req
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, code))
                .collect();
            vec![Output::Reply(reply, Reply::Commit(resp))]
        };
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a generation of a group we do not know: it is stale.
                return all(codes::ILLEGAL_GENERATION);
            }
            // A consumer that only stores offsets here ("standalone"): no membership.
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let g = self.groups.get_mut(&req.group_id).expect("inserted above");
        let instance = req.group_instance_id.as_deref();
        let check = if g.is(GroupState::Dead) {
            codes::COORDINATOR_NOT_AVAILABLE
        } else if g.is_static_member_fenced(instance, &req.member_id) {
            codes::FENCED_INSTANCE_ID
        } else if req.generation_id < 0 && g.is(GroupState::Empty) {
            codes::NONE
        } else if !g.members.contains_key(&req.member_id) {
            codes::UNKNOWN_MEMBER_ID
        } else if req.generation_id != g.generation {
            codes::ILLEGAL_GENERATION
        } else if g.is(GroupState::CompletingRebalance) {
            // Its partitions are about to be reassigned; it must rejoin first.
            codes::REBALANCE_IN_PROGRESS
        } else {
            if let Some(m) = g.members.get_mut(&req.member_id) {
                m.last_heartbeat_ms = now;
            }
            codes::NONE
        };
        if check != codes::NONE {
            return all(check);
        }
        // OffsetCommit v2-4 may set its own retention: Kafka then stores an expire
        // timestamp (a version 1 value) that retention honours over the broker's.
        let expire_timestamp =
            (req.retention_time_ms != -1).then(|| now.saturating_add(req.retention_time_ms));
        let mut response = Vec::with_capacity(req.partitions.len());
        let mut written = Vec::new();
        let mut records = Vec::new();
        for p in req.partitions {
            let metadata = p.metadata.unwrap_or_default();
            let code = if p.error != codes::NONE {
                p.error
            } else if metadata.len() > self.config.max_metadata_bytes {
                codes::OFFSET_METADATA_TOO_LARGE
            } else {
                let v = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp,
                };
                records.push(OffsetsRecord {
                    key: offset_key(&g.id, &p.topic, p.partition),
                    value: Some(encode_offset_value(&v)),
                });
                written.push(((p.topic.clone(), p.partition), v));
                codes::NONE
            };
            response.push((p.topic, p.partition, code));
        }
        let mut out = Vec::new();
        if records.is_empty() {
            out.push(Output::Reply(reply, Reply::Commit(response)));
            return out;
        }
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        cx.append(
            records,
            AfterAppend::Commit {
                group: g.id.clone(),
                reply,
                written,
                response,
            },
        );
        out
    }

    /// OffsetFetch for one group: the listed partitions (-1 where nothing is
    /// committed), or every committed partition when `topics` is `None`.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<FetchedOffset> {
        let g = self
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead));
        let found = |topic: &str, partition: i32| -> FetchedOffset {
            let v = g.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
            FetchedOffset {
                topic: topic.to_string(),
                partition,
                offset: v.map(|v| v.offset).unwrap_or(-1),
                leader_epoch: v.map(|v| v.leader_epoch).unwrap_or(-1),
                metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
            }
        };
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p)))
                .map(|(t, p)| found(t, p))
                .collect(),
            None => g
                .map(|g| g.offsets.keys().map(|(t, p)| found(t, *p)).collect())
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete: only offsets of topics the group does not consume right now.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
        reply: ReplyId,
        now: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let answer = |error, partitions| {
            vec![Output::Reply(
                reply,
                Reply::OffsetDelete(OffsetDeleteResponse { error, partitions }),
            )]
        };
        let Some(g) = self
            .groups
            .get_mut(group_id)
            .filter(|g| !g.is(GroupState::Dead))
        else {
            return answer(codes::GROUP_ID_NOT_FOUND, Vec::new());
        };
        let subscribed = if g.is(GroupState::Empty) {
            Some(Default::default())
        } else if g.protocol_type.as_deref() == Some("consumer") {
            g.subscribed_topics()
        } else {
            return answer(codes::NON_EMPTY_GROUP, Vec::new());
        };
        let mut result = Vec::new();
        let mut eligible = BTreeSet::new();
        for (t, p) in partitions {
            // Unknown subscriptions count as "subscribed to everything".
            let consumed = subscribed.as_ref().is_none_or(|s| s.contains(t));
            let code = if consumed {
                codes::GROUP_SUBSCRIBED_TO_TOPIC
            } else {
                eligible.insert((t.clone(), *p));
                codes::NONE
            };
            result.push((t.clone(), *p, code));
        }
        let records = remove_offsets(g, &mut self.appends, &eligible);
        if records.is_empty() {
            return answer(codes::NONE, result);
        }
        let mut cx = Cx {
            now,
            config: &self.config,
            appends: &mut self.appends,
            out: &mut out,
        };
        cx.append(
            records,
            AfterAppend::OffsetDelete {
                reply,
                response: OffsetDeleteResponse {
                    error: codes::NONE,
                    partitions: result,
                },
            },
        );
        out
    }

    /// Retention: drop offsets of empty groups `offsets.retention.minutes` after the
    /// group became empty (or after the commit, for groups that never had members),
    /// and offsets of topics a stable consumer group no longer subscribes to. Groups
    /// left empty with no offsets are deleted. One append of tombstones for all.
    pub fn expire_offsets(&mut self, now: i64) -> Vec<Output> {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut dead = Vec::new();
        // Groups with commits in flight, and those partitions (never expired: the
        // commit being written is newer than what retention would remove).
        let in_flight = self.appends.pending_commits();
        for g in self.groups.values_mut() {
            let pending = in_flight.get(&g.id);
            let expired_by = |key: &(String, i32), base: i64, v: &OffsetValue| {
                !pending.is_some_and(|p| p.contains(key))
                    && match v.expire_timestamp {
                        Some(at) => now >= at,
                        None => now - base >= retention,
                    }
            };
            let expired: BTreeSet<(String, i32)> = match (&g.protocol_type, g.state) {
                (None, GroupState::Empty) => g
                    .offsets
                    .iter()
                    .filter(|(k, v)| expired_by(k, v.commit_timestamp, v))
                    .map(|(k, _)| k.clone())
                    .collect(),
                (Some(_), GroupState::Empty) => g
                    .offsets
                    .iter()
                    .filter(|(k, v)| {
                        expired_by(k, g.state_timestamp_ms.unwrap_or(v.commit_timestamp), v)
                    })
                    .map(|(k, _)| k.clone())
                    .collect(),
                (Some(t), GroupState::Stable) if t == "consumer" => match g.subscribed_topics() {
                    Some(subscribed) => g
                        .offsets
                        .iter()
                        .filter(|(k, v)| {
                            !subscribed.contains(&k.0) && expired_by(k, v.commit_timestamp, v)
                        })
                        .map(|(k, _)| k.clone())
                        .collect(),
                    None => BTreeSet::new(),
                },
                _ => BTreeSet::new(),
            };
            if !expired.is_empty() {
                tracing::info!(group = %g.id, partitions = expired.len(), "expiring committed offsets");
                records.extend(remove_offsets(g, &mut self.appends, &expired));
            }
            if g.is(GroupState::Empty)
                && g.offsets.is_empty()
                && pending.is_none()
                && g.pending_members.is_empty()
            {
                g.transition(GroupState::Dead, now);
                dead.push(g.id.clone());
            }
        }
        for id in dead {
            self.groups.remove(&id);
            records.push(OffsetsRecord {
                key: encode_key(&OffsetsKey::Group { group: id }),
                value: None,
            });
        }
        let mut out = Vec::new();
        if !records.is_empty() {
            let mut cx = Cx {
                now,
                config: &self.config,
                appends: &mut self.appends,
                out: &mut out,
            };
            cx.append(records, AfterAppend::Nothing);
        }
        out
    }
}
