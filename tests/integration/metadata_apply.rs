//! Metadata images are applied one after another, in the order they were sent, even
//! when applying the older one has to wait (for partitions to shut down).

use crate::common::{client::Client, test_config};
use std::collections::BTreeMap;
use std::sync::Arc;
use troupe::metadata::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
use troupe_actors::supervisor::{ApplyMetadata, FetcherSyncStats};
use uuid::Uuid;

#[actix_rt::test]
async fn a_newer_image_is_never_overwritten_by_an_older_one_that_finished_later() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("t", 1).await, 0);
    let node = broker.context.config.node_id;
    let current = broker.context.routes().image.clone();
    assert!(current.topics.contains_key("t"));

    // B deletes "t" (its partition must shut down first); C, one record later, also
    // has a new topic "u" led here.
    let mut b = (*current).clone();
    let t_id = b.topics.remove("t").unwrap().topic_id;
    b.topic_names.remove(&t_id);
    b.last_offset += 1;
    let mut c_img = b.clone();
    let u_id = Uuid::from_bytes([42; 16]);
    let partition = PartitionImage {
        partition: 0,
        replicas: vec![node],
        isr: vec![node],
        leader: node,
        leader_epoch: 0,
        partition_epoch: 0,
    };
    c_img.topics.insert(
        "u".into(),
        Arc::new(TopicImage {
            name: "u".into(),
            topic_id: u_id,
            partitions: BTreeMap::from([(0, partition)]),
            configs: BTreeMap::new(),
        }),
    );
    c_img.topic_names.insert(u_id, "u".into());
    c_img.last_offset += 1;
    let (b, c_img): (Arc<MetadataImage>, Arc<MetadataImage>) = (Arc::new(b), Arc::new(c_img));

    // Sent back to back, as the controller does after two commits in a row.
    let first = broker.supervisor.send(ApplyMetadata { image: b.clone() });
    let second = broker.supervisor.send(ApplyMetadata {
        image: c_img.clone(),
    });
    let (r1, r2) = futures_util::future::join(first, second).await;
    r1.unwrap();
    r2.unwrap();

    let routes = broker.context.routes();
    assert_eq!(
        routes.image.last_offset, c_img.last_offset,
        "the routing table must hold the newest image"
    );
    assert!(routes.partition("u", 0).is_some(), "u-0 is routed");
    assert!(routes.partition("t", 0).is_none(), "t-0 is gone");
    broker.shutdown().await;
}

/// A delta that touches one topic rebuilds that topic's route only: the routes of the
/// others are the very same (`Arc::ptr_eq`) in the new routing table.
#[actix_rt::test]
async fn a_delta_rebuilds_only_the_routes_of_the_topics_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("kept", 2).await, 0);
    assert_eq!(c.create_topic("grown", 1).await, 0);
    let before = broker.context.routes();
    let node = broker.context.config.node_id;

    // One more partition for "grown", nothing for "kept".
    let mut next = (*before.image).clone();
    let mut grown = (**next.topics.get("grown").unwrap()).clone();
    grown.partitions.insert(
        1,
        PartitionImage {
            partition: 1,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
            partition_epoch: 0,
        },
    );
    next.topics.insert("grown".into(), Arc::new(grown));
    next.last_offset += 1;
    broker
        .supervisor
        .send(ApplyMetadata {
            image: Arc::new(next),
        })
        .await
        .unwrap();

    let after = broker.context.routes();
    assert!(
        after.partition("grown", 1).is_some(),
        "the new partition is routed"
    );
    assert!(
        Arc::ptr_eq(&before.topics["kept"], &after.topics["kept"]),
        "an untouched topic keeps its route"
    );
    assert!(
        !Arc::ptr_eq(&before.topics["grown"], &after.topics["grown"]),
        "the changed topic gets a new route"
    );
    broker.shutdown().await;
}

/// Replica fetchers follow a delta by looking at the partitions of the topics it
/// changed only: with 30 partitions of another topic running, a delta that makes one
/// partition followed (led by another broker), then led here again, visits that one
/// partition each time, and starts then stops the fetcher for its leader.
#[actix_rt::test]
async fn a_delta_syncs_the_fetchers_of_the_partitions_it_changed_only() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("big", 30).await, 0);
    let node = broker.context.config.node_id;
    let stats = || broker.supervisor.send(FetcherSyncStats);

    // Broker 99 (a port nothing listens on) leads "small"-0, which has a replica here.
    let mut next = (*broker.context.routes().image).clone();
    next.brokers.insert(
        99,
        BrokerRegistration {
            node_id: 99,
            host: "127.0.0.1".into(),
            port: 9,
            rack: None,
            epoch: next.last_offset + 1,
            incarnation_id: [99; 16],
            fenced: false,
        },
    );
    let small_id = Uuid::from_bytes([7; 16]);
    let mut p0 = PartitionImage {
        partition: 0,
        replicas: vec![99, node],
        isr: vec![99, node],
        leader: 99,
        leader_epoch: 1,
        partition_epoch: 1,
    };
    next.topics.insert(
        "small".into(),
        Arc::new(TopicImage {
            name: "small".into(),
            topic_id: small_id,
            partitions: BTreeMap::from([(0, p0.clone())]),
            configs: BTreeMap::new(),
        }),
    );
    next.topic_names.insert(small_id, "small".into());
    next.last_offset += 1;
    let next = Arc::new(next);
    broker
        .supervisor
        .send(ApplyMetadata {
            image: next.clone(),
        })
        .await
        .unwrap();
    let (visited, fetching) = stats().await.unwrap();
    assert_eq!(
        visited, 1,
        "only small-0 is looked at, not big's 30 partitions"
    );
    assert_eq!(
        fetching,
        BTreeMap::from([(99, 1)]),
        "small-0 fetched from 99"
    );

    // Led here now: the fetcher of 99 has nothing left and stops.
    let mut last = (*next).clone();
    p0.leader = node;
    p0.leader_epoch += 1;
    p0.partition_epoch += 1;
    let mut small = (*last.topics["small"]).clone();
    small.partitions.insert(0, p0);
    last.topics.insert("small".into(), Arc::new(small));
    last.last_offset += 1;
    broker
        .supervisor
        .send(ApplyMetadata {
            image: Arc::new(last),
        })
        .await
        .unwrap();
    let (visited, fetching) = stats().await.unwrap();
    assert_eq!(visited, 1);
    assert!(fetching.is_empty(), "no fetcher left: {fetching:?}");
    broker.shutdown().await;
}
