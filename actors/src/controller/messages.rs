//! Messages the `Controller` answers. Failures carry a Kafka error code and message.

use actix::Message;
use std::sync::Arc;
use troupe::metadata::MetadataImage;
use uuid::Uuid;

pub use troupe::controller::topics::TopicRef;
pub use troupe::controller::{ApiError, ConfigOp, CreatedTopic, NewTopic};

#[derive(Message)]
#[rtype(result = "Vec<Result<CreatedTopic, ApiError>>")]
pub struct CreateTopics {
    pub topics: Vec<NewTopic>,
    pub validate_only: bool,
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

#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct AlterTopicConfigs {
    pub topic: String,
    pub ops: Vec<(String, ConfigOp)>,
    /// AlterConfigs (non-incremental) replaces the whole set: keys not named are reset.
    pub replace_all: bool,
    pub validate_only: bool,
}

/// AlterConfigs / IncrementalAlterConfigs on BROKER `resource` (an id, or "" for the
/// cluster-wide default): committed to the metadata log, applied by every broker.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct AlterBrokerConfigs {
    pub resource: String,
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
