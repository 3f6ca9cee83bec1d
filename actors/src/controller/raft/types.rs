//! The openraft type configuration of the controller quorum.
//!
//! One Raft log entry carries one [`MetadataBatch`]: the records a controller decision
//! commits together (a topic and its partitions, say), so they apply atomically.

use serde::{Deserialize, Serialize};
use std::io::Cursor;
use troupe::metadata::MetadataRecord;

/// The application data of a Raft log entry: records committed and applied together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// What applying an entry answers: its log index, the metadata offset of its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataApplied {
    pub last_offset: i64,
}

openraft::declare_raft_types!(
    /// The controller quorum's Raft: node ids are Kafka node ids, a node's address is the
    /// `host:port` of its CONTROLLER listener.
    pub MetaRaft:
        D = MetadataBatch,
        R = MetadataApplied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<MetaRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<MetaRaft>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StorageResult<T> = Result<T, StorageError>;

/// The term of a log entry: the controller epoch that wrote it.
pub fn term_of(log_id: &LogId) -> u64 {
    log_id.leader_id.term
}
