//! Every request the controller serves, as one serializable enum, and [`handle`]:
//! (image, request, now) → (records to commit, answer). Brokers send these to the
//! active controller (forwarded over the CONTROLLER listener when they are elsewhere),
//! so they travel as rmp-serde with named fields.

use super::broker_configs;
use super::brokers::{self, after, BrokerLiveness, Heartbeat, HeartbeatAnswer, Registration};
use super::partitions::{self, AlterPartition, ElectionKind};
use super::topics::{self, ConfigOp, CreatedTopic, NewTopic, TopicRef};
use super::{ApiError, ControllerConfig};
use crate::metadata::{MetadataImage, MetadataRecord, PartitionImage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        topics: Vec<TopicRef>,
    },
    /// (topic, new total partition count)
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
    },
    AlterTopicConfigs {
        topic: String,
        ops: Vec<(String, ConfigOp)>,
        /// AlterConfigs (not incremental) replaces the whole set.
        replace_all: bool,
        validate_only: bool,
    },
    AllocateProducerIds {
        node_id: i32,
    },
    RegisterBroker(Registration),
    BrokerHeartbeat(Heartbeat),
    AlterPartition(AlterPartition),
    ElectLeaders {
        kind: ElectionKind,
        partitions: Vec<(String, i32)>,
    },
    /// DescribeQuorum: the active controller's view of the quorum. Answered by the
    /// shell from the Raft state, not decided here.
    DescribeQuorum,
    /// AlterConfigs / IncrementalAlterConfigs on BROKER `resource` (an id, or "" for
    /// the cluster default).
    AlterBrokerConfigs {
        resource: String,
        ops: Vec<(String, ConfigOp)>,
        replace_all: bool,
        validate_only: bool,
    },
}

/// The metadata quorum as its leader sees it (DescribeQuorum).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    pub leader_id: i32,
    /// The Raft term: the controller epoch.
    pub leader_epoch: i32,
    /// The offset after the last committed record.
    pub high_watermark: i64,
    /// `(node id, log end offset)` of every voter (-1: not known to the leader).
    pub voters: Vec<(i32, i64)>,
    /// `(node id, log end offset)` of every observer: the learners (broker-only nodes)
    /// that follow the log without voting. Absent from older nodes' answers.
    #[serde(default)]
    pub observers: Vec<(i32, i64)>,
    /// Node id → (last fetch, last caught up), ms since the epoch (-1: unknown), as
    /// Kafka's DescribeQuorum v1 reports them.
    #[serde(default)]
    pub times: std::collections::BTreeMap<i32, (i64, i64)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerResponse {
    CreateTopics(Vec<Result<CreatedTopic, ApiError>>),
    DeleteTopics(Vec<Result<(String, Uuid), ApiError>>),
    CreatePartitions(Vec<Result<(), ApiError>>),
    AlterTopicConfigs(Result<(), ApiError>),
    /// `(first, size)` of a producer-id block.
    ProducerIds(Result<(i64, i64), ApiError>),
    /// The broker epoch: the offset of the registration (filled in once committed).
    Registered(Result<i64, ApiError>),
    Heartbeat(HeartbeatAnswer),
    /// The partition as it is once committed, or Kafka's error code.
    AlterPartition(Result<PartitionImage, i16>),
    ElectLeaders(Vec<Result<(), ApiError>>),
    Quorum(QuorumState),
    /// This node is not the active controller (`leader`: the one it knows of). Also the
    /// answer when the controller could not be reached at all (`leader: None`).
    NotController {
        leader: Option<i32>,
    },
    /// The quorum refused or lost the write: Kafka error code and message.
    Failed(ApiError),
    AlterBrokerConfigs(Result<(), ApiError>),
}

impl ControllerResponse {
    /// Fill in what only the commit knows: the offset the records got.
    pub fn committed_at(self, offset: i64) -> Self {
        match self {
            ControllerResponse::Registered(Ok(_)) => ControllerResponse::Registered(Ok(offset)),
            other => other,
        }
    }
}

/// What the shell provides that must not be decided inside: new topic ids and the
/// start of replica placement (random in production, fixed in tests).
pub trait Entropy {
    fn topic_id(&mut self) -> Uuid;
    fn placement_start(&mut self) -> u64;
}

/// Decide `req` against `image` at `now`. The records of a multi-topic request are
/// decided one topic after another, each on top of the previous ones.
pub fn handle(
    image: &MetadataImage,
    liveness: &mut BrokerLiveness,
    cfg: &ControllerConfig,
    req: &ControllerRequest,
    now: i64,
    entropy: &mut dyn Entropy,
) -> (Vec<MetadataRecord>, ControllerResponse) {
    use ControllerRequest as Q;
    use ControllerResponse as A;
    let mut records: Vec<MetadataRecord> = Vec::new();
    // The image with the records decided so far in this request.
    let mut current = image.clone();
    let mut take = |current: &mut MetadataImage, r: Vec<MetadataRecord>, keep: bool| {
        if keep && !r.is_empty() {
            *current = after(current, &r);
            records.extend(r);
        }
    };
    let answer = match req {
        Q::CreateTopics {
            topics,
            validate_only,
        } => A::CreateTopics(
            topics
                .iter()
                .map(|t| {
                    let (id, start) = (entropy.topic_id(), entropy.placement_start());
                    topics::create_topic(&current, cfg, t, id, start).map(|(r, created)| {
                        take(&mut current, r, !validate_only);
                        created
                    })
                })
                .collect(),
        ),
        Q::DeleteTopics { topics } => A::DeleteTopics(
            topics
                .iter()
                .map(|t| {
                    topics::delete_topic(&current, cfg, t).map(|(r, deleted)| {
                        take(&mut current, r, true);
                        deleted
                    })
                })
                .collect(),
        ),
        Q::CreatePartitions {
            topics,
            validate_only,
        } => A::CreatePartitions(
            topics
                .iter()
                .map(|(name, count)| {
                    let start = entropy.placement_start();
                    topics::create_partitions(&current, cfg, name, *count, start)
                        .map(|r| take(&mut current, r, !validate_only))
                })
                .collect(),
        ),
        Q::AlterTopicConfigs {
            topic,
            ops,
            replace_all,
            validate_only,
        } => A::AlterTopicConfigs(
            topics::alter_topic_configs(&current, cfg, topic, ops, *replace_all)
                .map(|r| take(&mut current, r, !validate_only)),
        ),
        Q::AllocateProducerIds { node_id } => {
            let (r, block) = topics::allocate_producer_ids(&current, *node_id);
            take(&mut current, r, true);
            A::ProducerIds(Ok(block))
        }
        Q::RegisterBroker(reg) => A::Registered(
            brokers::register(&current, liveness, cfg, reg, now).map(|r| {
                let epoch = current.brokers.get(&reg.node_id).map(|b| b.epoch);
                let fresh = !r.is_empty();
                take(&mut current, r, true);
                // A retried registration keeps its epoch (nothing to commit).
                if fresh {
                    -1
                } else {
                    epoch.unwrap_or(-1)
                }
            }),
        ),
        Q::BrokerHeartbeat(hb) => {
            let (r, answer) = brokers::heartbeat(&current, liveness, cfg, hb, now);
            take(&mut current, r, true);
            A::Heartbeat(answer)
        }
        Q::AlterPartition(ap) => {
            A::AlterPartition(partitions::alter_partition(&current, ap).map(|(r, p)| {
                take(&mut current, r, true);
                p
            }))
        }
        Q::ElectLeaders { kind, partitions } => A::ElectLeaders(
            partitions
                .iter()
                .map(|(t, p)| {
                    partitions::elect_leader(&current, t, *p, *kind)
                        .map(|r| take(&mut current, r, true))
                })
                .collect(),
        ),
        Q::AlterBrokerConfigs {
            resource,
            ops,
            replace_all,
            validate_only,
        } => A::AlterBrokerConfigs(
            broker_configs::alter_broker_configs(&current, resource, ops, *replace_all)
                .map(|r| take(&mut current, r, !validate_only)),
        ),
        Q::DescribeQuorum => A::Failed((
            super::codes::UNKNOWN_SERVER_ERROR,
            "DescribeQuorum is answered from the quorum's state".into(),
        )),
    };
    (records, answer)
}

/// The periodic work of the active controller: fence brokers silent for a session,
/// and (when `rebalance_percent` is set) move leadership back to preferred replicas.
pub fn tick(
    image: &MetadataImage,
    liveness: &BrokerLiveness,
    cfg: &ControllerConfig,
    now: i64,
    rebalance_percent: Option<u32>,
) -> Vec<MetadataRecord> {
    let mut records = brokers::fence_expired(image, liveness, cfg, now);
    if let Some(pct) = rebalance_percent {
        let current = after(image, &records);
        records.extend(partitions::rebalance_preferred(&current, pct));
    }
    records
}
