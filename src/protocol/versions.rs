//! The APIs Troupe serves and the version range of each.
//!
//! [`SUPPORTED_APIS`] is the one place to edit: remove a line and the API disappears
//! from ApiVersions answers and its requests are refused before decoding. Each range is
//! intersected with what kafka-protocol can decode (`ApiKey::valid_versions`), so a
//! range wider than the crate's schemas cannot advertise a version we would then fail
//! to parse.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// `(api, min_version, max_version)` for every API Troupe implements.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::DescribeQuorum, 0, 2),
    // Consumer groups (classic protocol) and committed offsets.
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// One slot per possible API key number; Kafka's keys are small and dense (0..=92 in
/// the schemas we build against), so an array indexed by key is the cheapest lookup.
const KEY_SLOTS: usize = 128;

/// [`SUPPORTED_APIS`] indexed by API key, built at compile time so the table above
/// stays the single source of truth.
static BY_KEY: [Option<(i16, i16)>; KEY_SLOTS] = {
    let mut slots = [None; KEY_SLOTS];
    let mut i = 0;
    while i < SUPPORTED_APIS.len() {
        let (key, min, max) = SUPPORTED_APIS[i];
        let slot = key as i16 as usize;
        // Fails the build (const evaluation) if a key ever outgrows the array or a
        // line is duplicated, instead of silently shadowing an entry.
        assert!(slot < KEY_SLOTS, "API key outside the lookup table");
        assert!(slots[slot].is_none(), "API listed twice in SUPPORTED_APIS");
        assert!(min <= max, "empty version range in SUPPORTED_APIS");
        slots[slot] = Some((min, max));
        i += 1;
    }
    slots
};

/// The versions of `key` Troupe serves, as `(min, max)`, or `None` if it does not
/// serve the API (or none of its listed versions is decodable by kafka-protocol).
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    let (min, max) = BY_KEY.get(key as i16 as usize).copied().flatten()?;
    let valid = key.valid_versions();
    let (min, max) = (min.max(valid.min), max.min(valid.max));
    (min <= max).then_some((min, max))
}

/// The ApiVersions answer: every supported API with its range, in key order.
pub fn api_versions_response() -> ApiVersionsResponse {
    let api_keys = (0..KEY_SLOTS as i16)
        .filter_map(|slot| ApiKey::try_from(slot).ok())
        .filter_map(|key| {
            let (min, max) = supported_versions(key)?;
            Some(
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_api_is_served_within_the_crate_ranges() {
        for &(key, min, max) in SUPPORTED_APIS {
            let (lo, hi) = supported_versions(key).unwrap_or_else(|| panic!("{key:?} missing"));
            let valid = key.valid_versions();
            assert!(lo >= min && hi <= max, "{key:?} widened");
            assert!(
                lo >= valid.min && hi <= valid.max,
                "{key:?} beyond the crate"
            );
        }
    }

    #[test]
    fn unlisted_apis_are_not_served() {
        assert_eq!(supported_versions(ApiKey::SaslHandshake), None);
        assert_eq!(supported_versions(ApiKey::DeleteShareGroupOffsets), None);
    }

    #[test]
    fn examples_from_the_table() {
        assert_eq!(supported_versions(ApiKey::Fetch), Some((4, 16)));
        assert_eq!(supported_versions(ApiKey::ApiVersions), Some((0, 4)));
        assert_eq!(supported_versions(ApiKey::Produce), Some((3, 11)));
    }

    #[test]
    fn api_versions_lists_the_table_in_key_order() {
        let resp = api_versions_response();
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), SUPPORTED_APIS.len());
        let keys: Vec<i16> = resp.api_keys.iter().map(|k| k.api_key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        let fetch = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .unwrap();
        assert_eq!((fetch.min_version, fetch.max_version), (4, 16));
    }
}
