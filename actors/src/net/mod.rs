//! Socket-level helpers and the process limits the network edge depends on.

pub mod limits;
pub mod quota;
pub mod sendfile;
pub mod socket;
