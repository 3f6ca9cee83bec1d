//! Kafka error codes used by the handlers: the core crate's one table
//! (`troupe::protocol::codes`), re-exported so handlers keep `crate::errors::X`.

pub use troupe::protocol::codes::*;

/// A partition without a leader (Metadata answers LEADER_NOT_AVAILABLE for it).
pub const NO_LEADER: i32 = -1;
