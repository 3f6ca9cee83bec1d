//! The partition log on disk: segments, indexes, recovery, retention, file regions.

mod region;

pub use region::FileRegion;
