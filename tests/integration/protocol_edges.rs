//! Bad input over a real socket: the broker answers with Kafka error codes or closes the
//! connection, and keeps serving everyone else.

use crate::common::{client::Client, test_config};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[actix_rt::test]
async fn oversized_and_garbage_frames_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(
        dir.path().to_path_buf(),
        &[("socket.request.max.bytes", "1024")],
    ))
    .await
    .unwrap();
    let mut big = Client::connect(broker.addr).await;
    big.write_raw(&(1_000_000i32).to_be_bytes()).await;
    assert!(
        big.read_frame().await.is_none(),
        "oversized frame closes the connection"
    );

    let mut garbage = Client::connect(broker.addr).await;
    garbage
        .write_raw(&[0, 0, 0, 8, 0x7f, 0x7f, 0, 1, 0, 0, 0, 1])
        .await;
    assert!(
        garbage.read_frame().await.is_none(),
        "unknown API key closes the connection"
    );

    let mut good = Client::connect(broker.addr).await;
    let resp = good.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
    assert!(
        resp.api_keys.iter().any(|k| k.api_key == 0),
        "Produce is advertised"
    );
    broker.shutdown().await;
}

#[actix_rt::test]
async fn unknown_partition_and_corrupt_batch_get_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("t", 1).await, 0);
    let good = troupe::storage::batch::build_batch(0, 1000, &[(None, Some(b"hello".as_slice()))]);
    assert_eq!(
        c.produce("t", 5, good.clone()).await.0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(c.produce("t", 0, bad.into()).await.0, 2, "CORRUPT_MESSAGE");
    let (code, hw, records) = c.fetch("t", 0, 0, 0).await;
    assert_eq!((code, hw, records.len()), (0, 0, 0), "the log is unchanged");
    assert_eq!(c.produce("t", 0, good).await, (0, 0));
    let (code, _, _) = c.fetch("t", 0, 5, 0).await;
    assert_eq!(code, 1, "OFFSET_OUT_OF_RANGE beyond the end");
    // Creating it again is an error, not a second topic.
    assert_eq!(c.create_topic("t", 1).await, 36, "TOPIC_ALREADY_EXISTS");
    let meta = c
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))])),
            12,
        )
        .await;
    assert_eq!(meta.topics.len(), 1);
    assert_eq!(meta.topics[0].partitions.len(), 1);
    broker.shutdown().await;
}

/// `queued.max.request.bytes` bounds request bytes in flight; a frame larger than the
/// whole budget still runs (alone), and pipelined requests all get their answers.
#[actix_rt::test]
async fn request_byte_budget_applies_backpressure_without_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(
        dir.path().to_path_buf(),
        &[("queued.max.request.bytes", "65536")],
    ))
    .await
    .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("budget", 1).await, 0);
    let value = vec![7u8; 300 * 1024];
    let big = troupe::storage::build_batch(0, 1_000, &[(None, Some(&value[..]))]);
    assert_eq!(
        c.produce("budget", 0, big).await,
        (0, 0),
        "frame > budget runs alone"
    );
    // Many clients at once, each frame ~40 KiB: at most one fits the budget at a time.
    let small = vec![1u8; 40 * 1024];
    let mut joins = Vec::new();
    for _ in 0..8 {
        let addr = broker.addr;
        let batch = troupe::storage::build_batch(0, 1_000, &[(None, Some(&small[..]))]);
        joins.push(actix_rt::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut codes = Vec::new();
            for _ in 0..5 {
                codes.push(c.produce("budget", 0, batch.clone()).await.0);
            }
            codes
        }));
    }
    for j in joins {
        assert_eq!(j.await.unwrap(), vec![0; 5]);
    }
    let (_, hw, _) = c.fetch("budget", 0, 0, 0).await;
    assert_eq!(hw, 41);
    broker.shutdown().await;
}

/// A Fetch's byte limits over several partitions, in request order: the first
/// partition with data returns at least one whole batch even past its limit, later
/// ones only what fits their own limit and what is left of the request's.
#[actix_rt::test]
async fn fetch_byte_limits_apply_across_partitions_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("limits", 3).await, 0);
    let value = vec![7u8; 1000];
    let batch = troupe::storage::batch::build_batch(0, 1000, &[(None, Some(value.as_slice()))]);
    let size = batch.len() as i32;
    for p in 0..3 {
        for _ in 0..2 {
            assert_eq!(c.produce("limits", p, batch.clone()).await.0, 0);
        }
    }
    assert_eq!(batches(&mut c, 10 << 20, 1 << 20).await, vec![2, 2, 2]);
    assert_eq!(
        batches(&mut c, 10 << 20, size / 2).await,
        vec![1, 0, 0],
        "only the first partition with data may exceed its limit"
    );
    assert_eq!(
        batches(&mut c, 3 * size, 1 << 20).await,
        vec![2, 1, 0],
        "the request's limit is shared in order"
    );
    assert_eq!(batches(&mut c, size / 2, 1 << 20).await, vec![1, 0, 0]);
    broker.shutdown().await;
}

/// Batches returned per partition of "limits" for a fetch from offset 0 of its three
/// partitions with these byte limits.
async fn batches(c: &mut Client, max_bytes: i32, partition_max: i32) -> Vec<usize> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("limits")))
            .with_partitions(
                (0..3)
                    .map(|p| {
                        fetch_request::FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_current_leader_epoch(-1)
                            .with_partition_max_bytes(partition_max)
                    })
                    .collect(),
            )]);
    let resp = c.call(&req, 11).await;
    resp.responses[0]
        .partitions
        .iter()
        .map(|p| crate::common::client::batch_offsets(p.records.clone().unwrap_or_default()).len())
        .collect()
}
