//! Membership of a consumer group with Kafka's classic protocol, for `consume -g`:
//! JoinGroup (with the MEMBER_ID_REQUIRED round of KIP-394), the leader computing a
//! `range` assignment for everyone, SyncGroup, Heartbeat, OffsetCommit with the
//! generation, LeaveGroup. Members run by other clients (librdkafka, the Java client)
//! share the group with us, since `range` is an assignor they all offer.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use troupe_actors::client::{check, ClientError, KafkaClient};

const JOIN_GROUP_VERSIONS: (i16, i16) = (2, 7);
const SYNC_GROUP_VERSIONS: (i16, i16) = (0, 5);
const HEARTBEAT_VERSIONS: (i16, i16) = (0, 4);
const LEAVE_GROUP_VERSIONS: (i16, i16) = (0, 5);
pub const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 8);
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const ASSIGNOR: &str = "range";

fn code(e: kafka_protocol::ResponseError) -> i16 {
    e.code()
}

pub struct Member {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    /// Partitions of each topic this member was given.
    pub assignment: BTreeMap<String, Vec<i32>>,
    topics: Vec<String>,
    pub last_heartbeat: Instant,
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// `version` (i16) then the struct, as consumer protocol payloads are laid out.
fn versioned<T: Encodable>(v: i16, t: &T) -> Result<Bytes, ClientError> {
    let mut b = BytesMut::new();
    b.put_i16(v);
    t.encode(&mut b, v)
        .map_err(|e| ClientError::Invalid(format!("cannot encode consumer protocol data: {e}")))?;
    Ok(b.freeze())
}

/// A member's assignment from its SyncGroup / DescribeGroups bytes (empty when the
/// bytes are empty or not the consumer protocol).
pub fn decode_assignment(bytes: &Bytes) -> Vec<(String, Vec<i32>)> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let mut b = bytes.clone();
    let v = i16::from_be_bytes([b[0], b[1]]);
    let _ = b.split_to(2);
    // Later versions only add fields at the end: read them as the last one we know.
    match ConsumerProtocolAssignment::decode(&mut b, v.clamp(0, 3)) {
        Ok(a) => a
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Kafka's range assignor: for each topic, its partitions in order, split into
/// contiguous ranges over the members subscribed to it (sorted by member id), the
/// first members taking one extra when it does not divide.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &n) in partitions {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() || n <= 0 {
            continue;
        }
        let per = n / members.len() as i32;
        let extra = n % members.len() as i32;
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            let ps: Vec<i32> = (next..next + count).collect();
            next += count;
            if !ps.is_empty() {
                out.entry((*m).clone())
                    .or_default()
                    .insert(topic.clone(), ps);
            }
        }
    }
    out
}

impl Member {
    /// Join `group` subscribed to `topics` and wait for this member's assignment.
    pub async fn join(
        client: &mut KafkaClient,
        group: &str,
        topics: &[String],
    ) -> Result<Member, ClientError> {
        let mut member = Member {
            group: group.to_string(),
            member_id: String::new(),
            generation: -1,
            assignment: BTreeMap::new(),
            topics: topics.to_vec(),
            last_heartbeat: Instant::now(),
        };
        member.rejoin(client).await?;
        Ok(member)
    }

    /// Run JoinGroup and SyncGroup until a generation is complete.
    pub async fn rejoin(&mut self, client: &mut KafkaClient) -> Result<(), ClientError> {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| s(t)).collect());
        let metadata = versioned(0, &subscription)?;
        let deadline = Instant::now() + Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 * 2);
        loop {
            if Instant::now() > deadline {
                return Err(ClientError::Kafka {
                    code: code(kafka_protocol::ResponseError::RebalanceInProgress),
                    context: format!("group '{}' did not settle", self.group),
                });
            }
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(s(&self.member_id))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s(ASSIGNOR))
                    .with_metadata(metadata.clone())]);
            let coordinator = client.coordinator_id(&self.group).await?;
            let conn = client.broker(coordinator).await?;
            let v = conn.version_for::<JoinGroupRequest>(JOIN_GROUP_VERSIONS)?;
            // A join waits at the coordinator up to the rebalance timeout.
            let timeout =
                Duration::from_millis(REBALANCE_TIMEOUT_MS as u64) + Duration::from_secs(5);
            let resp = match conn.send_timeout(&req, v, timeout).await {
                Ok(r) => r,
                Err(e) => {
                    client.forget(coordinator);
                    return Err(e);
                }
            };
            if resp.error_code == code(kafka_protocol::ResponseError::MemberIdRequired) {
                self.member_id = resp.member_id.to_string();
                continue;
            }
            if resp.error_code == code(kafka_protocol::ResponseError::UnknownMemberId) {
                self.member_id.clear();
                continue;
            }
            if resp.error_code == code(kafka_protocol::ResponseError::NotCoordinator)
                || resp.error_code == code(kafka_protocol::ResponseError::CoordinatorLoadInProgress)
                || resp.error_code == code(kafka_protocol::ResponseError::CoordinatorNotAvailable)
            {
                client.forget(coordinator);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            check(resp.error_code, || {
                format!("joining group '{}'", self.group)
            })?;
            self.member_id = resp.member_id.to_string();
            self.generation = resp.generation_id;
            let assignments = if resp.leader == resp.member_id {
                self.lead(client, &resp.members).await?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member_id))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s(ASSIGNOR)))
                .with_assignments(assignments);
            let conn = client.broker(coordinator).await?;
            let v = conn.version_for::<SyncGroupRequest>(SYNC_GROUP_VERSIONS)?;
            let resp = conn.send_timeout(&sync, v, timeout).await?;
            if resp.error_code == code(kafka_protocol::ResponseError::RebalanceInProgress) {
                continue;
            }
            check(resp.error_code, || {
                format!("syncing group '{}'", self.group)
            })?;
            self.assignment = decode_assignment(&resp.assignment).into_iter().collect();
            self.last_heartbeat = Instant::now();
            return Ok(());
        }
    }

    /// As the group's leader: the range assignment of every member.
    async fn lead(
        &self,
        client: &mut KafkaClient,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>, ClientError> {
        let mut subs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let topics = troupe::group::records::subscribed_topics(&m.metadata)
                .unwrap_or_else(|| self.topics.clone());
            subs.insert(m.member_id.to_string(), topics);
        }
        let mut all: Vec<String> = subs.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        client.refresh_metadata(Some(&all)).await?;
        let counts: BTreeMap<String, i32> = all
            .iter()
            .filter_map(|t| {
                client
                    .metadata
                    .topics
                    .get(t)
                    .filter(|m| m.error_code == 0)
                    .map(|m| (t.clone(), m.partitions.len() as i32))
            })
            .collect();
        let plan = range_assign(&subs, &counts);
        let mut out = Vec::new();
        for (member, topics) in plan {
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartition::default()
                            .with_topic(TopicName(s(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(versioned(0, &a)?),
            );
        }
        Ok(out)
    }

    /// A heartbeat if one is due; true when the group is rebalancing (rejoin).
    pub async fn heartbeat(&mut self, client: &mut KafkaClient) -> Result<bool, ClientError> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let coordinator = client.coordinator_id(&self.group).await?;
        let conn = client.broker(coordinator).await?;
        let (_, resp) = match conn.call(&req, HEARTBEAT_VERSIONS).await {
            Ok(r) => r,
            Err(e) => {
                client.forget(coordinator);
                return Err(e);
            }
        };
        use kafka_protocol::ResponseError as E;
        match resp.error_code {
            0 => Ok(false),
            c if c == E::RebalanceInProgress.code() || c == E::IllegalGeneration.code() => Ok(true),
            c if c == E::UnknownMemberId.code() || c == E::FencedInstanceId.code() => {
                self.member_id.clear();
                Ok(true)
            }
            c if c == E::NotCoordinator.code() || c == E::CoordinatorNotAvailable.code() => {
                client.forget(coordinator);
                Ok(true)
            }
            c => check(c, || format!("heartbeat in group '{}'", self.group)).map(|_| false),
        }
    }

    /// Commit `offsets` (topic, partition → next offset to read) as this member.
    pub async fn commit(
        &self,
        client: &mut KafkaClient,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        commit_offsets(
            client,
            &self.group,
            self.generation,
            &self.member_id,
            offsets,
        )
        .await
    }

    pub async fn leave(&self, client: &mut KafkaClient) -> Result<(), ClientError> {
        let coordinator = client.coordinator_id(&self.group).await?;
        let conn = client.broker(coordinator).await?;
        let v = conn.version_for::<LeaveGroupRequest>(LEAVE_GROUP_VERSIONS)?;
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_members(vec![
                    MemberIdentity::default().with_member_id(s(&self.member_id))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_member_id(s(&self.member_id))
        };
        let resp = conn.send(&req, v).await?;
        check(resp.error_code, || {
            format!("leaving group '{}'", self.group)
        })
    }
}

/// OffsetCommit to the group's coordinator; `generation` -1 and an empty member id
/// commit as an admin (only accepted while the group has no members).
pub async fn commit_offsets(
    client: &mut KafkaClient,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &BTreeMap<(String, i32), i64>,
) -> Result<(), ClientError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), &o) in offsets {
        topics.entry(t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(o)
                .with_committed_leader_epoch(-1),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_retention_time_ms(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let coordinator = client.coordinator_id(group).await?;
    let conn = client.broker(coordinator).await?;
    let (_, resp) = match conn.call(&req, OFFSET_COMMIT_VERSIONS).await {
        Ok(r) => r,
        Err(e) => {
            client.forget(coordinator);
            return Err(e);
        }
    };
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, || {
                format!(
                    "committing offset of {}-{} for group '{group}'",
                    t.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::range_assign;
    use std::collections::BTreeMap;

    #[test]
    fn range_splits_contiguously_extra_to_the_first() {
        let subs: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["t".to_string()]),
            ("b".to_string(), vec!["t".to_string(), "u".to_string()]),
        ]
        .into();
        let parts: BTreeMap<String, i32> = [("t".to_string(), 3), ("u".to_string(), 2)].into();
        let plan = range_assign(&subs, &parts);
        assert_eq!(plan["a"]["t"], vec![0, 1]);
        assert_eq!(plan["b"]["t"], vec![2]);
        assert_eq!(plan["b"]["u"], vec![0, 1]);
        assert!(!plan["a"].contains_key("u"));
    }
}
