//! Integration tests of the actors crate: one test binary (link time on 2 cores),
//! brokers started in-process on port 0, talked to over real sockets.

mod common;
mod compaction;
mod fault_isolation;
mod groups;
mod idempotence;
mod metadata_apply;
mod protocol_edges;
mod rdkafka_client;
mod replication;
mod supervised_cluster;
