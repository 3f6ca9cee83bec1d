//! Byte identity of the hand-encoded Fetch response with kafka-protocol's encoder.
//!
//! Every case builds a response valid at its version, moves some partitions' records
//! into a real temp file as regions, and checks that sending the chunks would put on
//! the wire exactly what `encode_response` produces for the same response with those
//! records in memory; then decodes the result with the crate as a second opinion.

use super::fetch::{encode_fetch_response, Chunk, EncodedFetch, FETCH_VERSIONS};
use super::response::encode_response;
use crate::storage::FileRegion;
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, ProducerId, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

/// Version-independent randomness for one partition; `build` applies version gates.
#[derive(Debug, Clone)]
struct PartSpec {
    index: i32,
    error_code: i16,
    offsets: (i64, i64, i64),
    aborted: Option<Vec<(i64, i64)>>,
    preferred_read_replica: i32,
    records: Option<Vec<u8>>,
    as_region: bool,
    diverging: Option<(i32, i64)>,
    leader: Option<(i32, i32)>,
    snapshot: Option<(i64, i32)>,
    unknown: BTreeMap<i32, Vec<u8>>,
}

#[derive(Debug, Clone)]
struct TopicSpec {
    name: String,
    id: u128,
    partitions: Vec<PartSpec>,
    unknown: BTreeMap<i32, Vec<u8>>,
}

#[derive(Debug, Clone)]
struct Spec {
    throttle: i32,
    error_code: i16,
    session_id: i32,
    topics: Vec<TopicSpec>,
    endpoints: Vec<(i32, String, i32, Option<String>)>,
    unknown: BTreeMap<i32, Vec<u8>>,
}

fn tags(from: i32) -> impl Strategy<Value = BTreeMap<i32, Vec<u8>>> {
    prop::collection::btree_map(
        from..from + 200,
        prop::collection::vec(any::<u8>(), 0..5),
        0..2,
    )
}

prop_compose! {
    fn part_spec()(
        index in any::<i32>(),
        error_code in prop_oneof![Just(0i16), any::<i16>()],
        offsets in any::<(i64, i64, i64)>(),
        aborted in prop::option::of(prop::collection::vec(any::<(i64, i64)>(), 0..3)),
        preferred_read_replica in prop_oneof![Just(-1i32), any::<i32>()],
        // Up to 300 bytes so that compact lengths need two varint bytes.
        records in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
        as_region in any::<bool>(),
        diverging in prop::option::of(any::<(i32, i64)>()),
        leader in prop::option::of(any::<(i32, i32)>()),
        snapshot in prop::option::of(any::<(i64, i32)>()),
        unknown in tags(3),
    ) -> PartSpec {
        PartSpec { index, error_code, offsets, aborted, preferred_read_replica, records, as_region,
                   diverging, leader, snapshot, unknown }
    }
}

prop_compose! {
    fn topic_spec()(
        name in "[a-z._-]{0,20}",
        id in any::<u128>(),
        partitions in prop::collection::vec(part_spec(), 0..5),
        unknown in tags(0),
    ) -> TopicSpec {
        TopicSpec { name, id, partitions, unknown }
    }
}

prop_compose! {
    fn spec()(
        throttle in any::<i32>(),
        error_code in any::<i16>(),
        session_id in any::<i32>(),
        topics in prop::collection::vec(topic_spec(), 0..4),
        endpoints in prop::collection::vec(
            (any::<i32>(), "[a-z.]{0,12}", any::<i32>(), prop::option::of("[a-z0-9]{0,5}")), 0..3),
        unknown in tags(1),
    ) -> Spec {
        Spec { throttle, error_code, session_id, topics, endpoints, unknown }
    }
}

fn tagged(map: &BTreeMap<i32, Vec<u8>>, version: i16) -> BTreeMap<i32, Bytes> {
    if version < 12 {
        return BTreeMap::new();
    }
    map.iter()
        .map(|(k, v)| (*k, Bytes::from(v.clone())))
        .collect()
}

/// Builds the response as the crate would decode it at `version` (fields the version
/// cannot carry left at their defaults), with every partition's records in memory,
/// plus the regions table, the region bytes written to `file`.
fn build(
    spec: &Spec,
    version: i16,
    file: &mut std::fs::File,
    shared: &Arc<std::fs::File>,
) -> (FetchResponse, Vec<Vec<Option<FileRegion>>>) {
    let flexible = version >= 12;
    let mut position = file.metadata().unwrap().len();
    let mut regions = Vec::new();
    let mut topics = Vec::new();
    for t in &spec.topics {
        let mut partitions = Vec::new();
        let mut topic_regions = Vec::new();
        for p in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.index)
                .with_error_code(p.error_code)
                .with_high_watermark(p.offsets.0)
                .with_last_stable_offset(p.offsets.1)
                .with_aborted_transactions(p.aborted.as_ref().map(|txns| {
                    txns.iter()
                        .map(|&(pid, first)| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(pid))
                                .with_first_offset(first)
                                .with_unknown_tagged_fields(tagged(&p.unknown, version))
                        })
                        .collect()
                }))
                .with_records(p.records.clone().map(Bytes::from))
                .with_unknown_tagged_fields(tagged(&p.unknown, version));
            if version >= 5 {
                data.log_start_offset = p.offsets.2;
            }
            if version >= 11 {
                data.preferred_read_replica = BrokerId(p.preferred_read_replica);
            }
            if flexible {
                if let Some((epoch, end)) = p.diverging {
                    data.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end);
                }
                if let Some((id, epoch)) = p.leader {
                    data.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(id))
                        .with_leader_epoch(epoch);
                }
                if let Some((end, epoch)) = p.snapshot {
                    data.snapshot_id = SnapshotId::default().with_end_offset(end).with_epoch(epoch);
                }
            }
            let region = match (&p.records, p.as_region) {
                (Some(records), true) => {
                    // Junk before each region: a wrong offset cannot go unnoticed.
                    file.write_all(b"junk").unwrap();
                    file.write_all(records).unwrap();
                    let region = FileRegion {
                        file: shared.clone(),
                        position: position + 4,
                        len: records.len() as u64,
                    };
                    position += 4 + records.len() as u64;
                    Some(region)
                }
                _ => None,
            };
            topic_regions.push(region);
            partitions.push(data);
        }
        let mut topic = FetchableTopicResponse::default()
            .with_partitions(partitions)
            .with_unknown_tagged_fields(tagged(&t.unknown, version));
        if version <= 12 {
            topic.topic = TopicName(StrBytes::from_string(t.name.clone()));
        } else {
            topic.topic_id = uuid::Uuid::from_u128(t.id);
        }
        topics.push(topic);
        regions.push(topic_regions);
    }
    let mut response = FetchResponse::default()
        .with_throttle_time_ms(spec.throttle)
        .with_responses(topics)
        .with_unknown_tagged_fields(tagged(&spec.unknown, version));
    if version >= 7 {
        response.error_code = spec.error_code;
        response.session_id = spec.session_id;
    }
    if version >= 16 {
        response.node_endpoints = spec
            .endpoints
            .iter()
            .map(|(id, host, port, rack)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port)
                    .with_rack(rack.clone().map(StrBytes::from_string))
            })
            .collect();
    }
    (response, regions)
}

/// Every check of one case; returns the wire bytes.
fn check(
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
    regions: &[Vec<Option<FileRegion>>],
) -> Vec<u8> {
    let encoded = encode_fetch_response(correlation_id, version, response, regions).unwrap();
    let wire = encoded.to_vec().unwrap();
    let expected = encode_response(
        correlation_id,
        ApiKey::Fetch,
        version,
        &ResponseKind::Fetch(response.clone()),
    )
    .unwrap();
    assert_eq!(
        wire,
        &expected[..],
        "v{version}: chunks differ from kafka-protocol's encoding"
    );
    assert_eq!(encoded.total_len, wire.len());
    assert_coalesced(&encoded, regions);

    let mut body = Bytes::from(wire.clone()).slice(4..);
    let header =
        ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let decoded = FetchResponse::decode(&mut body, version).unwrap();
    assert_eq!(
        &decoded, response,
        "v{version}: decodes to another response"
    );
    assert!(body.is_empty());
    wire
}

/// In-memory bytes are never split needlessly: no two `Bytes` chunks in a row, and one
/// chunk per non-empty region.
fn assert_coalesced(encoded: &EncodedFetch, regions: &[Vec<Option<FileRegion>>]) {
    for pair in encoded.chunks.windows(2) {
        assert!(
            !matches!(pair, [Chunk::Bytes(_), Chunk::Bytes(_)]),
            "adjacent in-memory chunks"
        );
    }
    let non_empty = regions
        .iter()
        .flatten()
        .flatten()
        .filter(|r| r.len > 0)
        .count();
    let files = encoded
        .chunks
        .iter()
        .filter(|c| matches!(c, Chunk::File(_)))
        .count();
    assert_eq!(files, non_empty);
    assert!(encoded.chunks.iter().all(|c| !c.is_empty()));
}

fn temp_file() -> (std::fs::File, Arc<std::fs::File>) {
    let file = tempfile::tempfile().unwrap();
    let shared = Arc::new(file.try_clone().unwrap());
    (file, shared)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn chunks_equal_the_crate_encoding(spec in spec(), version in FETCH_VERSIONS, correlation_id in any::<i32>()) {
        let (mut file, shared) = temp_file();
        let (response, regions) = build(&spec, version, &mut file, &shared);
        check(version, correlation_id, &response, &regions);
    }
}

/// One rich response through every version, so each version is covered even when the
/// property test's sampling is unlucky.
#[test]
fn every_version_with_a_fixed_response() {
    let runner_spec = {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut found = spec().new_tree(&mut runner).unwrap().current();
        while found
            .topics
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>()
            < 3
        {
            found = spec().new_tree(&mut runner).unwrap().current();
        }
        found
    };
    for version in FETCH_VERSIONS {
        let (mut file, shared) = temp_file();
        let (response, regions) = build(&runner_spec, version, &mut file, &shared);
        check(version, 77, &response, &regions);
    }
}

#[test]
fn regions_become_file_chunks_between_in_memory_runs() {
    let (mut file, shared) = temp_file();
    file.write_all(&[9u8; 1000]).unwrap();
    let region = FileRegion {
        file: shared,
        position: 100,
        len: 500,
    };
    let partition = |i| PartitionData::default().with_partition_index(i);
    let regions = vec![vec![None, Some(region)]];
    for version in FETCH_VERSIONS {
        // Topic names exist up to v12, topic ids from v13.
        let name = if version <= 12 { "t" } else { "" };
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str(name)))
                .with_partitions(vec![partition(0), partition(1), partition(2)])]);
        let encoded = encode_fetch_response(1, version, &response, &regions).unwrap();
        let kinds: Vec<&str> = encoded
            .chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(_) => "mem",
                Chunk::File(_) => "file",
            })
            .collect();
        assert_eq!(kinds, ["mem", "file", "mem"], "v{version}");
        let mut expected = response.clone();
        expected.responses[0].partitions[1].records = Some(Bytes::from(vec![9u8; 500]));
        check(version, 1, &expected, &regions);
    }
}

#[test]
fn fields_the_version_cannot_carry_are_refused_like_the_crate() {
    let with_session = FetchResponse::default().with_session_id(5);
    assert!(encode_fetch_response(1, 6, &with_session, &[]).is_err());
    assert!(encode_fetch_response(1, 7, &with_session, &[]).is_ok());
    let replica = FetchResponse::default()
        .with_responses(vec![FetchableTopicResponse::default().with_partitions(
            vec![PartitionData::default().with_preferred_read_replica(BrokerId(3))],
        )]);
    assert!(encode_fetch_response(1, 10, &replica, &[]).is_err());
    assert!(encode_fetch_response(1, 11, &replica, &[]).is_ok());
    assert!(encode_fetch_response(1, 3, &FetchResponse::default(), &[]).is_err());
    assert!(encode_fetch_response(1, 19, &FetchResponse::default(), &[]).is_err());
}

#[test]
fn a_regions_table_larger_than_the_response_is_refused() {
    let (_, shared) = temp_file();
    let region = FileRegion {
        file: shared,
        position: 0,
        len: 0,
    };
    let response = FetchResponse::default();
    assert!(encode_fetch_response(1, 12, &response, &[vec![Some(region)]]).is_err());
}
