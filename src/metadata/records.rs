//! The records of the metadata log (serde + rmp-serde on disk).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One change to the cluster. Records are only ever added to this enum (never reordered
/// or renumbered): old logs must stay readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker joined (single node: itself, at start-up).
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A topic was created; its partitions follow as `PartitionRecord`s.
    Topic {
        name: String,
        topic_id: [u8; 16],
        configs: BTreeMap<String, String>,
    },
    /// A partition's replica assignment and leadership. A later record for the same
    /// partition replaces the earlier one; `leader_epoch` only ever grows.
    Partition {
        topic_id: [u8; 16],
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A topic and all its partitions were deleted.
    RemoveTopic { topic_id: [u8; 16] },
    /// A topic config was set (`Some`) or reset to the broker default (`None`).
    TopicConfig {
        topic_id: [u8; 16],
        key: String,
        value: Option<String>,
    },
    /// Producer ids `[first, first + size)` were handed to a broker (never reused).
    ProducerIds { node_id: i32, first: i64, size: i64 },
}

/// A record as stored: its position in the log and the controller epoch that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub offset: i64,
    pub epoch: i32,
    pub record: MetadataRecord,
}
