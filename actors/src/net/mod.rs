//! Socket-level helpers.

pub mod sendfile;
