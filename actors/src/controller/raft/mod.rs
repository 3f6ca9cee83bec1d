//! The controller quorum: openraft glue for the metadata log.
//!
//! * [`types`]: the Raft type configuration [`MetaRaft`] (an entry = a [`MetadataBatch`]).
//! * [`log_store`]: the durable Raft log in `<metadata dir>/raft/`.
//! * [`state_machine`]: the `MetadataImage` as the state machine, with snapshots.

mod files;
pub mod log_store;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

pub use log_store::LogStore;
pub use state_machine::StateMachine;
pub use types::{MetaRaft, MetadataApplied, MetadataBatch};
