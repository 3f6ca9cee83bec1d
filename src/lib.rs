//! Troupe core: everything that is not an actor or a socket.
//!
//! Troupe is a broker that speaks the Apache Kafka wire protocol. This crate holds the
//! sans-IO parts, which the `troupe-actors` crate wraps in supervised actix actors:
//!
//! * [`storage`]: the partition log on disk: segments of record batches (magic v2)
//!   with memory-mapped offset and time indexes, recovery, rolling, retention, and
//!   [`storage::FileRegion`]s that fetches send with `sendfile(2)`.
//! * [`protocol`]: framing, the API version table, and the hand-encoded Fetch response
//!   envelope that lets record bytes go from the page cache to the socket untouched.
//! * [`config`]: `server.properties` and topic configs, with Kafka's names and defaults.
//! * [`metadata`]: the cluster image (topics, partitions, leaders, epochs) and the
//!   metadata records the controller appends to its log.
//! * [`group`]: consumer groups (the classic rebalance protocol) and committed offsets,
//!   stored in `__consumer_offsets`.
//! * [`replication`]: the replica set of one partition: ISR, log end offsets, high watermark.
//! * [`ops`]: what the operations endpoints decide (readiness).
//!
//! The life of a produce request: the connection decodes the frame (`protocol`), routes
//! each partition's records to its `PartitionLeader` actor, which checks them and hands
//! them to its `Log` actor, which validates each batch ([`storage::batch`]), assigns
//! offsets and appends to the active segment ([`storage::Log`]). The leader's
//! [`replication::ReplicaSet`] then moves the high watermark, and the answer goes back
//! on the connection in request order.

pub mod config;
pub mod controller;
pub mod group;
pub mod metadata;
pub mod ops;
pub mod producer;
pub mod protocol;
pub mod replication;
pub mod storage;
