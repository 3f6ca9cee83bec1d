//! The inputs and outputs of the group state machine: plain structs, free of the wire
//! codec, so that the state machine can be driven by tests as easily as by handlers.

use bytes::Bytes;

/// Kafka error codes the group coordinator answers with: the crate's one table.
pub use crate::protocol::codes;

/// Names a request that waits for its answer (a delayed JoinGroup, a SyncGroup waiting
/// for the leader, a commit waiting for its append). The actor maps it to a channel.
pub type ReplyId = u64;

/// Names an append to `__consumer_offsets`, so its completion finds its continuation.
pub type AppendToken = u64;

/// Broker settings the state machine needs (Kafka's names in the comments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.max.size
    pub max_size: usize,
    /// offsets.retention.minutes, in ms
    pub offsets_retention_ms: i64,
    /// offset.metadata.max.bytes (Kafka's default, 4096)
    pub max_metadata_bytes: usize,
    /// offsets.commit.timeout.ms: how long a commit waits for replication.
    pub commit_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            max_metadata_bytes: 4096,
            commit_timeout_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    /// Before v1 the session timeout doubles as the rebalance timeout.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// v4+ dynamic members first get MEMBER_ID_REQUIRED and a member id to rejoin with.
    pub require_known_member_id: bool,
    /// v9+: the leader of a static group that rejoins may skip recomputing assignments.
    pub supports_skip_assignment: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Only the leader gets the member list.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub fn error(member_id: &str, error: i16) -> Self {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Only the leader sends assignments.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: i16) -> Self {
        SyncResponse {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member of a LeaveGroup (v3+ batches several; v0-2 send one, by member id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveResponse {
    pub error: i16,
    /// Per member, in request order: (member id, instance id, error).
    pub members: Vec<(String, Option<String>, i16)>,
}

/// One partition of an OffsetCommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Set by the handler (unknown topic or partition); such partitions are answered
    /// with this error and not written.
    pub error: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for "standalone" commits from consumers that do not use group membership.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v2-4: how long these offsets are kept, overriding
    /// offsets.retention.minutes; -1 (and every other version) means the broker's.
    pub retention_time_ms: i64,
    pub partitions: Vec<CommitPartition>,
}

/// Per partition, in request order: (topic, partition, error).
pub type CommitResponse = Vec<(String, i32, i16)>;

/// A committed offset as OffsetFetch answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// Per partition: (topic, partition, error); plus a group-level error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    pub error: i16,
    pub partitions: Vec<(String, i32, i16)>,
}

/// An answer to a request that had to wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResponse),
    Sync(SyncResponse),
    Commit(CommitResponse),
    DeleteGroups(Vec<(String, i16)>),
    OffsetDelete(OffsetDeleteResponse),
}

/// A record for `__consumer_offsets`: encoded key and value (`None` = tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetsRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// What the caller must carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Deliver this answer to the request that waits under this id.
    Reply(ReplyId, Reply),
    /// Append these records (one batch, in order), then report the result with
    /// `GroupCoordinatorState::append_done(token, ...)`.
    Append {
        token: AppendToken,
        records: Vec<OffsetsRecord>,
    },
}
