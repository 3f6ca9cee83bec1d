//! Images for the controller's tests, built through records as the quorum would.

use super::brokers::after;
use super::ControllerConfig;
use crate::config::TopicConfig;
use crate::metadata::{MetadataEntry, MetadataImage, MetadataRecord};
use uuid::Uuid;

pub fn cfg() -> ControllerConfig {
    ControllerConfig {
        num_partitions: 1,
        default_replication_factor: 1,
        delete_topic_enable: true,
        broker_session_timeout_ms: 9000,
        topic_defaults: TopicConfig::default(),
        max_partitions: 1000,
        max_broker_partitions: 500,
        descriptor_partitions: None,
    }
}

/// Apply records at consecutive offsets, as committed entries.
pub fn commit(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        let offset = image.last_offset + 1;
        image.apply(&MetadataEntry {
            offset,
            epoch: 1,
            record: r.clone(),
        });
    }
}

/// Brokers `ids` registered and unfenced (racks as given, or none).
pub fn cluster(ids: &[(i32, Option<&str>)]) -> MetadataImage {
    let mut img = MetadataImage::new();
    for (id, rack) in ids {
        commit(
            &mut img,
            &[MetadataRecord::RegisterBroker {
                node_id: *id,
                host: "127.0.0.1".into(),
                port: 9000 + *id as u16,
                rack: rack.map(str::to_string),
                incarnation_id: [*id as u8; 16],
                fenced: false,
            }],
        );
    }
    img
}

/// A topic with explicit (replicas, isr, leader) per partition, all epochs 0.
pub fn with_topic(img: &mut MetadataImage, name: &str, parts: &[(&[i32], &[i32], i32)]) -> Uuid {
    let id = Uuid::from_bytes([name.len() as u8 + 100; 16]);
    let mut records = vec![MetadataRecord::Topic {
        name: name.into(),
        topic_id: *id.as_bytes(),
        configs: Default::default(),
    }];
    for (p, (replicas, isr, leader)) in parts.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id: *id.as_bytes(),
            partition: p as i32,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader: *leader,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    commit(img, &records);
    id
}

pub fn fence(img: &mut MetadataImage, node: i32) {
    let epoch = img.brokers[&node].epoch;
    commit(
        img,
        &[MetadataRecord::FenceBroker {
            node_id: node,
            broker_epoch: epoch,
        }],
    );
}

#[allow(dead_code)]
pub fn applied(img: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    after(img, records)
}
