//! Consumer groups: Kafka's classic group protocol and committed offsets, sans-IO.
//!
//! A group lives on the coordinator of partition `abs(hash(group.id)) % N` of the
//! internal compacted topic `__consumer_offsets` ([`partition_for`]). Each coordinator
//! keeps a [`GroupCoordinatorState`]: the groups of its partition, each a state machine
//!
//! ```text
//!  Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!    ▲                   ▲      │                                     │ leader's SyncGroup
//!    │                   │      └── nobody left ──▶ Empty             ▼ stored
//!    └── all left ───────┴──── join, leave, session expiry ───── Stable
//!  (Empty + no offsets, or DeleteGroups) ──▶ Dead
//! ```
//!
//! Every input carries the time (`now_ms`) and returns [`Output`]s: answers to deliver
//! (to the request that waits under a [`ReplyId`], which may be another member's
//! JoinGroup when a rebalance completes) and records to append to the partition. The
//! caller reports each append back ([`GroupCoordinatorState::append_done`]); commits
//! and the leader's assignment take effect only then. Timeouts are driven by
//! [`GroupCoordinatorState::tick`] at [`GroupCoordinatorState::next_deadline`].
//!
//! * [`records`]: the `__consumer_offsets` key/value formats (Kafka's layouts).
//! * [`group_metadata`]: one group's data; [`membership`]: the rebalance rules; [`requests`]:
//!   JoinGroup/SyncGroup/Heartbeat/LeaveGroup checks; [`offsets`]: commits, fetches,
//!   retention; [`coordinator`]: load, ticks, append completions, admin APIs.

pub mod coordinator;
pub mod group_metadata;
mod membership;
pub mod offsets;
pub mod records;
mod requests;
pub mod types;

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod membership_tests;
#[cfg(test)]
mod offsets_race_tests;
#[cfg(test)]
mod offsets_tests;
#[cfg(test)]
mod records_tests;
#[cfg(test)]
mod test_harness;

pub use coordinator::{GroupCoordinatorState, MemberIds};
pub use group_metadata::{Group, GroupState};
pub use types::*;

/// The internal topic that stores groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units, wrapping), which Kafka uses to
/// place a group: clients and tools that compute the partition themselves agree.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hash) % n`, where
/// `abs(i32::MIN)` is 0.
pub fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % num_partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values of "...".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn partition_is_non_negative_and_kafkas() {
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        // hashCode of "polygenelubricants" is Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        for g in ["x", "group-1", "consumer-group-with-a-long-name", "ü"] {
            let p = partition_for(g, 50);
            assert!((0..50).contains(&p));
        }
    }
}
