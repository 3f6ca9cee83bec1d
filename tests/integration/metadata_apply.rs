//! Metadata images are applied one after another, in the order they were sent, even
//! when applying the older one has to wait (for partitions to shut down).

use crate::common::{client::Client, test_config};
use std::collections::BTreeMap;
use std::sync::Arc;
use troupe::metadata::{MetadataImage, PartitionImage, TopicImage};
use troupe_actors::supervisor::ApplyMetadata;
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
