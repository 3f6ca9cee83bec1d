//! Protocol micro-benchmarks: the two codecs every produce and every fetch pass through.
//!
//! * `decode_request/produce`: [`troupe::protocol::decode_request`] on a Produce v9 frame
//!   (what librdkafka sends) holding one or eight ~16 KiB record batches. Records are
//!   sliced out of the frame, not copied, so the time should hardly grow with the bytes.
//! * `encode_fetch_response`: the hand-written Fetch v16 envelope around file regions,
//!   for 1, 8 and 100 partitions; the records themselves are never touched.
//!
//! `cargo bench --bench protocol` (criterion; results in `target/criterion`).

use std::fs::File;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchResponse, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use troupe::protocol::{decode_request, encode_fetch_response};
use troupe::storage::{build_batch, FileRegion};

/// Produce version librdkafka 2.x settles on against our version table.
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 16;

/// A batch of 160 records of 100 bytes (~19 KiB), the shape of the e2e benchmark's
/// produce run.
fn batch() -> Bytes {
    let value = [0x5au8; 100];
    let records: Vec<_> = (0..160).map(|_| (None, Some(&value[..]))).collect();
    build_batch(0, 1_700_000_000_000, &records)
}

/// A complete request frame body (no size prefix), as `split_frame` hands it over.
fn produce_frame(partitions: i32) -> Bytes {
    let records = batch();
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(
                (0..partitions)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            )]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")));
    let mut buf = BytesMut::new();
    header
        .encode(
            &mut buf,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .unwrap();
    request.encode(&mut buf, PRODUCE_VERSION).unwrap();
    buf.freeze()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_request");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for partitions in [1, 8] {
        let frame = produce_frame(partitions);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(BenchmarkId::new("produce", partitions), |b| {
            b.iter(|| black_box(decode_request(black_box(frame.clone())).unwrap()))
        });
    }
    group.finish();
}

/// A fetch response of `partitions` partitions, each answered with a 1 MiB region.
fn fetch_response(
    partitions: i32,
    file: &Arc<File>,
) -> (FetchResponse, Vec<Vec<Option<FileRegion>>>) {
    let parts = (0..partitions)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(1_000_000)
                .with_last_stable_offset(1_000_000)
                .with_log_start_offset(0)
                .with_preferred_read_replica(BrokerId(-1))
        })
        .collect();
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(parts)]);
    let regions = vec![(0..partitions)
        .map(|p| {
            Some(FileRegion {
                file: file.clone(),
                position: p as u64 * (1 << 20),
                len: 1 << 20,
            })
        })
        .collect()];
    (response, regions)
}

fn encode_fetch(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_fetch_response");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    // The encoder never reads the file; an empty one stands for a segment.
    let file = Arc::new(tempfile::tempfile().unwrap());
    for partitions in [1, 8, 100] {
        let (response, regions) = fetch_response(partitions, &file);
        group.throughput(Throughput::Elements(partitions as u64));
        group.bench_function(BenchmarkId::new("v16", partitions), |b| {
            b.iter(|| {
                black_box(
                    encode_fetch_response(7, FETCH_VERSION, black_box(&response), &regions)
                        .unwrap(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode_fetch);
criterion_main!(benches);
