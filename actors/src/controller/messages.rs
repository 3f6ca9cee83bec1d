//! Messages the `Controller` answers. Failures carry a Kafka error code and message.

use actix::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use troupe::metadata::MetadataImage;
use uuid::Uuid;

/// A Kafka error code with a message, as the controller answers per topic.
pub type ApiError = (i16, String);

pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub num_partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition, if the client gave one.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

#[derive(Message)]
#[rtype(result = "Vec<Result<CreatedTopic, ApiError>>")]
pub struct CreateTopics {
    pub topics: Vec<NewTopic>,
    pub validate_only: bool,
}

pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

#[derive(Message)]
#[rtype(result = "Vec<Result<(String, Uuid), ApiError>>")]
pub struct DeleteTopics {
    pub topics: Vec<TopicRef>,
}

#[derive(Message)]
#[rtype(result = "Vec<Result<(), ApiError>>")]
pub struct CreatePartitions {
    /// (topic, new total partition count)
    pub topics: Vec<(String, i32)>,
    pub validate_only: bool,
}

/// One config change of AlterConfigs / IncrementalAlterConfigs.
#[derive(Clone, Debug)]
pub enum ConfigOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct AlterTopicConfigs {
    pub topic: String,
    pub ops: Vec<(String, ConfigOp)>,
    /// AlterConfigs (non-incremental) replaces the whole set: keys not named are reset.
    pub replace_all: bool,
    pub validate_only: bool,
}

#[derive(Message)]
#[rtype(result = "Arc<MetadataImage>")]
pub struct GetImage;

/// Hand a block of producer ids to a broker: `(first, size)`, persisted in the metadata
/// log before the answer, so no id is handed out twice, even across restarts.
#[derive(Message)]
#[rtype(result = "Result<(i64, i64), ApiError>")]
pub struct AllocateProducerIds {
    pub node_id: i32,
}
