//! librdkafka (the `rdkafka` crate) against an in-process broker: admin, compressed
//! produce with acks=all, consume from the start, and a group commit read back.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::Duration;

use crate::common::test_config;

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("log_level", "3");
    c
}

#[actix_rt::test]
async fn rdkafka_produces_compressed_consumes_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(
        dir.path().to_path_buf(),
        &[("group.initial.rebalance.delay.ms", "0")],
    ))
    .await
    .unwrap();
    let bootstrap = broker.addr.to_string();

    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new("rd", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .set("compression.type", "gzip")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let mut offsets = Vec::new();
    for i in 0..200 {
        let value = format!("value-{i}");
        let key = format!("key-{}", i % 7);
        let record = FutureRecord::to("rd")
            .partition(i % 2)
            .key(&key)
            .payload(&value);
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        offsets.push((delivery.partition, delivery.offset));
    }
    // Each partition's offsets count up from 0 without gaps.
    for p in 0..2 {
        let got: Vec<i64> = offsets
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    // librdkafka's consumer API is blocking: run it off the broker's event loop.
    let b = bootstrap.clone();
    let (values, committed) = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config(&b)
            .set("group.id", "rd-group")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        consumer.subscribe(&["rd"]).unwrap();
        let mut values = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while values.len() < 200 && std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                values.push((m.partition(), m.offset(), m.payload().unwrap().to_vec()));
            }
        }
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("rd", 0);
        tpl.add_partition("rd", 1);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap();
        (values, committed)
    })
    .await
    .unwrap();

    assert_eq!(values.len(), 200, "every message consumed once");
    for (p, offset, v) in &values {
        // Partition p got the even (p=0) or odd (p=1) values, in order.
        let i = offset * 2 + i64::from(*p);
        assert_eq!(v, format!("value-{i}").as_bytes());
    }
    for p in 0..2 {
        let e = committed.find_partition("rd", p).unwrap();
        assert_eq!(
            e.offset(),
            Offset::Offset(100),
            "committed position of partition {p}"
        );
    }
    broker.shutdown().await;
}
