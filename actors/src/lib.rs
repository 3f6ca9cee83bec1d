//! Troupe's runtime: the supervised actix actors that serve the Kafka protocol.
//!
//! ```text
//!  client ──TCP──▶ connection task ──▶ routing table (published by the BrokerSupervisor)
//!                    ▲                    ├──▶ PartitionActor(t,p) ──▶ Log(t,p): segments, mmapped indexes
//!   sendfile(2) ◀────┘                    └──▶ Controller: metadata log, topic lifecycle
//! ```
//!
//! * [`gateway::Gateway`] accepts connections; [`connection`] runs one task per socket:
//!   pipelined requests, responses in request order, bounded in-flight work.
//! * [`handlers`] has one file per Kafka API.
//! * [`supervisor::BrokerSupervisor`] turns metadata images into running partition actors,
//!   each under an actix `Supervisor` (a stopped actor is restarted and rebuilds from disk).
//! * [`controller::Controller`] is the single writer of metadata (create/delete topics,
//!   partitions, configs); the Raft quorum will slot in behind the same messages.
//! * [`log::LogActor`] owns a partition's files on the storage arbiter (a thread of its own).
//! * [`metrics`] serves Prometheus metrics, health checks and a status page over HTTP
//!   (`metrics.http.listener`).

pub mod broker;
pub mod client;
pub mod connection;
pub mod controller;
pub mod errors;
pub mod gateway;
pub mod group;
pub mod handlers;
pub mod log;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod node;
pub mod partition;
pub mod replica_fetcher;
pub mod supervisor;

#[cfg(test)]
mod supervision_tests;

pub use broker::{now_ms, start, BrokerHandle};
pub use node::{start_node, NodeHandle};
