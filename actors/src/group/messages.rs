//! Messages the `GroupCoordinator` answers. Every reply is `Result<_, i16>`: the error
//! is a Kafka code for the whole request (COORDINATOR_LOAD_IN_PROGRESS while the
//! partition is being read, NOT_COORDINATOR after leadership moved away).
//!
//! Requests that may have to wait (a JoinGroup until the rebalance completes, a commit
//! until its record is appended) answer with a [`Pending`] receiver that the handler
//! awaits outside the actor, so the actor keeps serving other members meanwhile.

use actix::Message;
use tokio::sync::oneshot;
use troupe::group::{
    CommitRequest, DescribedGroup, FetchedOffset, HeartbeatRequest, JoinRequest, LeaveResponse,
    LeavingMember, ListedGroup, Reply, SyncRequest,
};

/// The answer to come; the sender is dropped (the receiver errors) if the coordinator
/// restarts or stops before answering.
pub type Pending = Result<oneshot::Receiver<Reply>, i16>;

#[derive(Message)]
#[rtype(result = "Pending")]
pub struct JoinGroup(pub JoinRequest);

#[derive(Message)]
#[rtype(result = "Pending")]
pub struct SyncGroup(pub SyncRequest);

#[derive(Message)]
#[rtype(result = "Result<i16, i16>")]
pub struct Heartbeat(pub HeartbeatRequest);

#[derive(Message)]
#[rtype(result = "Result<LeaveResponse, i16>")]
pub struct LeaveGroup {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

#[derive(Message)]
#[rtype(result = "Pending")]
pub struct CommitOffsets(pub CommitRequest);

/// OffsetFetch for one group; `topics: None` means every committed partition.
#[derive(Message)]
#[rtype(result = "Result<Vec<FetchedOffset>, i16>")]
pub struct FetchOffsets {
    pub group_id: String,
    pub topics: Option<Vec<(String, Vec<i32>)>>,
}

#[derive(Message)]
#[rtype(result = "Result<Vec<DescribedGroup>, i16>")]
pub struct DescribeGroups(pub Vec<String>);

/// ListGroups of this coordinator, optionally filtered by state.
#[derive(Message)]
#[rtype(result = "Result<Vec<ListedGroup>, i16>")]
pub struct ListGroups {
    pub states: Vec<String>,
}

#[derive(Message)]
#[rtype(result = "Pending")]
pub struct DeleteGroups(pub Vec<String>);

#[derive(Message)]
#[rtype(result = "Pending")]
pub struct DeleteOffsets {
    pub group_id: String,
    pub partitions: Vec<(String, i32)>,
}

/// Leadership of the partition moved away (or the topic is gone): stop serving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Test hook: stop the actor as a fatal error would; its supervisor restarts it and
/// it reloads every group from the partition.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Test hook: is the coordinator loaded and serving? (groups it holds)
#[derive(Message)]
#[rtype(result = "Option<usize>")]
pub struct Loaded;
