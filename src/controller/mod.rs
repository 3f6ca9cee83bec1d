//! The controller's decisions, sans IO: every change to cluster metadata is a plain
//! function of (image, request, now) that returns the records to commit and the
//! answer. The `Controller` actor only carries these out through the metadata quorum
//! (appending the records, then answering), so the rules are tested as tables and in
//! a seeded simulation ([`sim_tests`]) without sockets, files or actors.
//!
//! * [`topics`]: CreateTopics, DeleteTopics, CreatePartitions, topic configs,
//!   producer-id blocks.
//! * [`broker_configs`]: dynamic broker configs (per broker and cluster default).
//! * [`placement`]: where replicas go (leaders and replicas spread over brokers,
//!   rack-aware when `broker.rack` is set).
//! * [`brokers`]: registration, heartbeats, fencing after `broker.session.timeout.ms`,
//!   controlled shutdown. Heartbeat times are the active controller's soft state
//!   ([`BrokerLiveness`]): a new controller starts every unfenced broker's clock anew.
//! * [`partitions`]: leader elections (from the ISR; outside it only where
//!   `unclean.leader.election.enable` allows), AlterPartition (ISR changes, checked
//!   against leader epoch and partition epoch), ElectLeaders and the preferred-leader
//!   rebalance.
//! * [`quorum`]: the Raft leader's view of each replica's link (DescribeQuorum's
//!   timestamps), which dead learners leave the membership, who may attach.
//! * [`prevote`]: when a controller voter stands for election, and when it grants a
//!   pre-vote (a cut-off voter must not depose a healthy leader when it returns).
//! * [`routing`]: which node decides a request (only the active controller, one
//!   request at a time) and when a request without an answer is tried again.
//!
//! Records are computed against the image that includes every earlier commit: the
//! shell must apply one request's records before computing the next request's.

pub mod api;
pub mod broker_configs;
pub mod brokers;
pub mod partitions;
pub mod placement;
pub mod prevote;
pub mod quorum;
pub mod routing;
pub mod topics;

#[cfg(test)]
mod broker_configs_tests;
#[cfg(test)]
mod brokers_tests;
#[cfg(test)]
mod partitions_tests;
#[cfg(test)]
mod prevote_tests;
#[cfg(test)]
mod quorum_tests;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod topics_tests;

pub use api::{handle, tick, ControllerRequest, ControllerResponse, Entropy, QuorumState};
pub use brokers::{BrokerLiveness, Heartbeat, HeartbeatAnswer, Registration};
pub use partitions::{AlterPartition, ElectionKind};
pub use topics::{ConfigOp, CreatedTopic, NewTopic, PRODUCER_ID_BLOCK_SIZE};

use crate::config::TopicConfig;

pub use crate::protocol::codes::ApiError;

/// Kafka's error codes the controller answers with: the crate's one table.
pub(crate) use crate::protocol::codes;

/// The broker settings the controller's decisions depend on.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `num.partitions`: CreateTopics with -1 partitions.
    pub num_partitions: i32,
    /// `default.replication.factor`: CreateTopics with -1.
    pub default_replication_factor: i16,
    pub delete_topic_enable: bool,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// Broker-wide topic defaults (`unclean.leader.election.enable` among them).
    pub topic_defaults: TopicConfig,
    /// `max.partitions` (KIP-578): partitions in the cluster. Also the most one request
    /// may ask for, checked before any placement is computed.
    pub max_partitions: i32,
    /// `max.broker.partitions` (KIP-578): partition replicas on one broker.
    pub max_broker_partitions: i32,
    /// Partitions the open-files limit can hold on a broker, when the shell knows it
    /// (the controller's own process limit stands in for every broker's).
    pub descriptor_partitions: Option<i32>,
}

impl ControllerConfig {
    pub fn from_broker(c: &crate::config::BrokerConfig) -> Self {
        ControllerConfig {
            num_partitions: c.num_partitions,
            default_replication_factor: c.default_replication_factor,
            delete_topic_enable: c.delete_topic_enable,
            broker_session_timeout_ms: c.broker_session_timeout_ms.min(i64::MAX as u64) as i64,
            topic_defaults: c.topic_defaults.clone(),
            max_partitions: c.max_partitions,
            max_broker_partitions: c.max_broker_partitions,
            descriptor_partitions: None,
        }
    }

    /// Whether a topic (its own config over the broker default) allows electing a
    /// leader from outside the ISR.
    pub fn unclean_allowed(&self, topic: &crate::metadata::TopicImage) -> bool {
        TopicConfig::resolve(&self.topic_defaults, &topic.configs)
            .map(|c| c.unclean_leader_election_enable)
            .unwrap_or(self.topic_defaults.unclean_leader_election_enable)
    }
}
