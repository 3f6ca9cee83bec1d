//! Kafka's error codes: the one table the whole code base answers with.
//!
//! The numbers are a wire contract that Kafka never renumbers; they come from the
//! protocol crate's `ResponseError` so they cannot drift, and [`name`] gives the
//! upper-case name Kafka's tools print (`UNKNOWN_TOPIC_OR_PARTITION`), for logs, error
//! messages and the CLI. Modules that answer with a subset (`group::types::codes`,
//! `storage::error::codes`, ...) re-export this module rather than keeping their own.

use kafka_protocol::ResponseError as E;

/// The one shape of an error answer: a Kafka error code and the message that goes with
/// it (the `error_message` field where the API has one, the log line where it has not).
pub type ApiError = (i16, String);

/// No error.
pub const NONE: i16 = 0;

macro_rules! error_codes {
    ($($name:ident => $variant:ident,)*) => {
        $(pub const $name: i16 = E::$variant.code();)*
        /// Every named constant of this module with its identifier (for tests and
        /// tools that list the codes).
        pub const ALL: &[(&str, i16)] = &[$((stringify!($name), $name)),*];
    };
}

error_codes! {
    COORDINATOR_LOAD_IN_PROGRESS => CoordinatorLoadInProgress,
    COORDINATOR_NOT_AVAILABLE => CoordinatorNotAvailable,
    CORRUPT_MESSAGE => CorruptMessage,
    DUPLICATE_BROKER_REGISTRATION => DuplicateBrokerRegistration,
    ELECTION_NOT_NEEDED => ElectionNotNeeded,
    ELIGIBLE_LEADERS_NOT_AVAILABLE => EligibleLeadersNotAvailable,
    FENCED_INSTANCE_ID => FencedInstanceId,
    FENCED_LEADER_EPOCH => FencedLeaderEpoch,
    GROUP_ID_NOT_FOUND => GroupIdNotFound,
    GROUP_MAX_SIZE_REACHED => GroupMaxSizeReached,
    GROUP_SUBSCRIBED_TO_TOPIC => GroupSubscribedToTopic,
    ILLEGAL_GENERATION => IllegalGeneration,
    INCONSISTENT_GROUP_PROTOCOL => InconsistentGroupProtocol,
    INELIGIBLE_REPLICA => IneligibleReplica,
    INVALID_CONFIG => InvalidConfig,
    INVALID_GROUP_ID => InvalidGroupId,
    INVALID_PARTITIONS => InvalidPartitions,
    INVALID_RECORD => InvalidRecord,
    INVALID_REPLICATION_FACTOR => InvalidReplicationFactor,
    INVALID_REPLICA_ASSIGNMENT => InvalidReplicaAssignment,
    INVALID_REQUEST => InvalidRequest,
    INVALID_REQUIRED_ACKS => InvalidRequiredAcks,
    INVALID_SESSION_TIMEOUT => InvalidSessionTimeout,
    INVALID_TIMESTAMP => InvalidTimestamp,
    INVALID_TOPIC_EXCEPTION => InvalidTopicException,
    INVALID_UPDATE_VERSION => InvalidUpdateVersion,
    KAFKA_STORAGE_ERROR => KafkaStorageError,
    LEADER_NOT_AVAILABLE => LeaderNotAvailable,
    MEMBER_ID_REQUIRED => MemberIdRequired,
    MESSAGE_TOO_LARGE => MessageTooLarge,
    NON_EMPTY_GROUP => NonEmptyGroup,
    NOT_CONTROLLER => NotController,
    NOT_COORDINATOR => NotCoordinator,
    NOT_ENOUGH_REPLICAS => NotEnoughReplicas,
    NOT_ENOUGH_REPLICAS_AFTER_APPEND => NotEnoughReplicasAfterAppend,
    NOT_LEADER_OR_FOLLOWER => NotLeaderOrFollower,
    OFFSET_METADATA_TOO_LARGE => OffsetMetadataTooLarge,
    OFFSET_OUT_OF_RANGE => OffsetOutOfRange,
    POLICY_VIOLATION => PolicyViolation,
    PREFERRED_LEADER_NOT_AVAILABLE => PreferredLeaderNotAvailable,
    REBALANCE_IN_PROGRESS => RebalanceInProgress,
    RECORD_LIST_TOO_LARGE => RecordListTooLarge,
    REQUEST_TIMED_OUT => RequestTimedOut,
    STALE_BROKER_EPOCH => StaleBrokerEpoch,
    TOPIC_ALREADY_EXISTS => TopicAlreadyExists,
    TOPIC_DELETION_DISABLED => TopicDeletionDisabled,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED => TransactionalIdAuthorizationFailed,
    UNKNOWN_LEADER_EPOCH => UnknownLeaderEpoch,
    UNKNOWN_MEMBER_ID => UnknownMemberId,
    UNKNOWN_SERVER_ERROR => UnknownServerError,
    UNKNOWN_TOPIC_ID => UnknownTopicId,
    UNKNOWN_TOPIC_OR_PARTITION => UnknownTopicOrPartition,
    UNSUPPORTED_VERSION => UnsupportedVersion,
}

/// Kafka's name for an error code: `NONE` for 0, the upper-case name of every code the
/// protocol defines, `UNKNOWN_ERROR_CODE_<n>` otherwise.
pub fn name(code: i16) -> String {
    if code == NONE {
        return "NONE".to_string();
    }
    match E::try_from_code(code) {
        Some(e) if !matches!(e, E::Unknown(_)) => upper_snake(&format!("{e:?}")),
        _ => format!("UNKNOWN_ERROR_CODE_{code}"),
    }
}

/// `NotLeaderOrFollower` -> `NOT_LEADER_OR_FOLLOWER`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    let mut after_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constant_is_named_as_kafka_names_it() {
        for (ident, code) in ALL {
            assert_eq!(name(*code), *ident, "code {code}");
        }
    }

    #[test]
    fn numbers_are_kafkas() {
        // A few fixed points of the wire contract, from Kafka's protocol guide.
        assert_eq!(UNKNOWN_SERVER_ERROR, -1);
        assert_eq!(OFFSET_OUT_OF_RANGE, 1);
        assert_eq!(UNKNOWN_TOPIC_OR_PARTITION, 3);
        assert_eq!(NOT_LEADER_OR_FOLLOWER, 6);
        assert_eq!(UNSUPPORTED_VERSION, 35);
        assert_eq!(KAFKA_STORAGE_ERROR, 56);
        assert_eq!(INVALID_RECORD, 87);
    }

    #[test]
    fn unknown_and_none() {
        assert_eq!(name(0), "NONE");
        // Codes no constant names here still get Kafka's name.
        assert_eq!(name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(name(31), "CLUSTER_AUTHORIZATION_FAILED");
        assert_eq!(name(12_345), "UNKNOWN_ERROR_CODE_12345");
        assert_eq!(name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(name(68), "NON_EMPTY_GROUP");
    }
}
