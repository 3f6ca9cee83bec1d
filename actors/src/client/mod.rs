//! A Kafka client built on kafka-protocol, shared by the `troupe` CLI and the broker's
//! own outbound requests (the replica fetcher; controller forwarding can use it too).
//!
//! * [`BrokerConnection`]: one TCP connection to one broker. Frames requests (size,
//!   header, body), numbers them with correlation ids and checks each answer carries
//!   the id it was asked with. [`BrokerConnection::connect`] negotiates ApiVersions
//!   first, so [`BrokerConnection::call`] picks the highest version both sides speak
//!   within the range the caller can handle; [`BrokerConnection::connect_raw`] skips
//!   that for callers that pin a version (the replica fetcher).
//! * [`KafkaClient`]: bootstrap servers plus a metadata cache, routing each request to
//!   the partition leader, the group coordinator (FindCoordinator) or the controller,
//!   with one connection per broker.
//! * [`records`]: record batches in (produce) and out (fetch, compressed ones through
//!   the storage codecs).
//! * [`ClientError`]: what can go wrong, with Kafka errors named as Kafka names them
//!   (`troupe::protocol::error_name`, from the protocol crate's table of codes).

pub mod cluster;
pub mod connection;
pub mod error;
pub mod offsets;
pub mod records;

#[cfg(test)]
mod tests;

pub use cluster::{BrokerInfo, ClusterMetadata, KafkaClient, PartitionMeta, TopicMeta};
pub use connection::{encode_request, BrokerConnection};
pub use error::{check, ClientError};
