//! The metadata image: the cluster state obtained by applying every metadata record.

use super::records::{MetadataEntry, MetadataRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// One partition as the controller last described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// One topic: id, partitions and the configs set on it (not the defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

/// A registered broker as the controller knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    /// The advertised client listener.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// The offset of its registration record: heartbeats must carry it (Kafka's broker
    /// epoch), so a zombie of an earlier incarnation cannot pass for the current one.
    pub epoch: i64,
    pub incarnation_id: [u8; 16],
    /// Fenced brokers are not listed in Metadata, lead nothing and are in no ISR.
    pub fenced: bool,
}

/// The whole cluster state. Cheap to clone behind an `Arc`; applied records produce a
/// new image, readers keep the one they hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Each topic behind its own `Arc`: a new image (one per committed batch) copies
    /// pointers, and only the topics a record touched are copied whole, so a reader can
    /// tell an untouched topic by `Arc::ptr_eq` and do work per changed topic only.
    /// Encoded as a plain map (snapshots written before this decode unchanged).
    #[serde(with = "shared_topics")]
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// topic id → name, for the APIs that address topics by id (Fetch 13+, Metadata 10+).
    pub topic_names: BTreeMap<Uuid, String>,
    /// Registered brokers by node id, fenced ones included.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// The next producer id not yet handed out.
    pub next_producer_id: i64,
    /// Dynamic broker configs by resource name: a broker id as text, or "" for the
    /// cluster-wide default. Only set keys are held.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Offset of the last applied record (-1: none), so a restart can tell what it has.
    pub last_offset: i64,
    pub epoch: i32,
}

impl MetadataImage {
    pub fn new() -> Self {
        Self {
            last_offset: -1,
            ..Default::default()
        }
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names
            .get(id)
            .and_then(|n| self.topics.get(n))
            .map(|t| &**t)
    }

    /// Registered, unfenced brokers: those that may lead, be in an ISR and be listed.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, node_id: i32) -> bool {
        self.brokers.get(&node_id).is_some_and(|b| !b.fenced)
    }

    pub fn apply(&mut self, entry: &MetadataEntry) {
        self.last_offset = entry.offset;
        self.epoch = self.epoch.max(entry.epoch);
        match &entry.record {
            MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack,
                incarnation_id,
                fenced,
            } => {
                self.brokers.insert(
                    *node_id,
                    BrokerRegistration {
                        node_id: *node_id,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        epoch: entry.offset,
                        incarnation_id: *incarnation_id,
                        fenced: *fenced,
                    },
                );
            }
            MetadataRecord::FenceBroker {
                node_id,
                broker_epoch,
            } => {
                if let Some(b) = self
                    .brokers
                    .get_mut(node_id)
                    .filter(|b| b.epoch == *broker_epoch)
                {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker {
                node_id,
                broker_epoch,
            } => {
                if let Some(b) = self
                    .brokers
                    .get_mut(node_id)
                    .filter(|b| b.epoch == *broker_epoch)
                {
                    b.fenced = false;
                }
            }
            MetadataRecord::Topic {
                name,
                topic_id,
                configs,
            } => {
                let id = Uuid::from_bytes(*topic_id);
                self.topic_names.insert(id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: id,
                        partitions: BTreeMap::new(),
                        configs: configs.clone(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let id = Uuid::from_bytes(*topic_id);
                if let Some(t) = self
                    .topic_names
                    .get(&id)
                    .and_then(|n| self.topics.get_mut(n))
                    .map(Arc::make_mut)
                {
                    t.partitions.insert(
                        *partition,
                        PartitionImage {
                            partition: *partition,
                            replicas: replicas.clone(),
                            isr: isr.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            partition_epoch: *partition_epoch,
                        },
                    );
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let id = Uuid::from_bytes(*topic_id);
                if let Some(name) = self.topic_names.remove(&id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::TopicConfig {
                topic_id,
                key,
                value,
            } => {
                let id = Uuid::from_bytes(*topic_id);
                if let Some(t) = self
                    .topic_names
                    .get(&id)
                    .and_then(|n| self.topics.get_mut(n))
                    .map(Arc::make_mut)
                {
                    match value {
                        Some(v) => t.configs.insert(key.clone(), v.clone()),
                        None => t.configs.remove(key),
                    };
                }
            }
            MetadataRecord::BrokerConfig {
                resource,
                key,
                value,
            } => {
                let layer = self.broker_configs.entry(resource.clone()).or_default();
                match value {
                    Some(v) => layer.insert(key.clone(), v.clone()),
                    None => layer.remove(key),
                };
                if layer.is_empty() {
                    self.broker_configs.remove(resource);
                }
            }
            MetadataRecord::ProducerIds { first, size, .. } => {
                self.next_producer_id = self.next_producer_id.max(first + size);
            }
        }
    }
}

/// Serde for [`MetadataImage::topics`]: the map as if it held the topics themselves.
mod shared_topics {
    use super::TopicImage;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(
        topics: &BTreeMap<String, Arc<TopicImage>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(topics.iter().map(|(k, v)| (k, &**v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Arc<TopicImage>>, D::Error> {
        let topics = BTreeMap::<String, TopicImage>::deserialize(d)?;
        Ok(topics.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64, record: MetadataRecord) -> MetadataEntry {
        MetadataEntry {
            offset,
            epoch: 1,
            record,
        }
    }

    #[test]
    fn topic_lifecycle() {
        let id = [7u8; 16];
        let mut img = MetadataImage::new();
        img.apply(&entry(
            0,
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
                configs: BTreeMap::new(),
            },
        ));
        img.apply(&entry(
            1,
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ));
        img.apply(&entry(
            2,
            MetadataRecord::TopicConfig {
                topic_id: id,
                key: "retention.ms".into(),
                value: Some("1000".into()),
            },
        ));
        let t = &img.topics["t"];
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(img.topic_by_id(&Uuid::from_bytes(id)).unwrap().name, "t");
        img.apply(&entry(3, MetadataRecord::RemoveTopic { topic_id: id }));
        assert!(img.topics.is_empty() && img.topic_names.is_empty());
        assert_eq!(img.last_offset, 3);
    }

    fn partition(id: [u8; 16], leader: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id: id,
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }

    #[test]
    fn a_new_image_shares_the_topics_no_record_touched() {
        let (t, u) = ([1u8; 16], [2u8; 16]);
        let mut img = MetadataImage::new();
        for (offset, (name, id)) in [("t", t), ("u", u)].into_iter().enumerate() {
            let topic = MetadataRecord::Topic {
                name: name.into(),
                topic_id: id,
                configs: BTreeMap::new(),
            };
            img.apply(&entry(offset as i64 * 2, topic));
            img.apply(&entry(offset as i64 * 2 + 1, partition(id, 1)));
        }
        let before = Arc::new(img);
        let mut next = (*before).clone();
        next.apply(&entry(4, partition(u, 2)));
        assert!(Arc::ptr_eq(&before.topics["t"], &next.topics["t"]));
        assert!(!Arc::ptr_eq(&before.topics["u"], &next.topics["u"]));
        assert_eq!(
            before.topics["u"].partitions[&0].leader, 1,
            "old image intact"
        );
        assert_eq!(next.topics["u"].partitions[&0].leader, 2);
    }

    #[test]
    fn shared_topics_encode_as_the_plain_map_did() {
        #[derive(Serialize)]
        struct Plain<'a> {
            topics: &'a BTreeMap<String, TopicImage>,
        }
        #[derive(Serialize, Deserialize)]
        struct Shared {
            #[serde(with = "shared_topics")]
            topics: BTreeMap<String, Arc<TopicImage>>,
        }
        let topic = TopicImage {
            name: "t".into(),
            topic_id: Uuid::from_bytes([3; 16]),
            partitions: BTreeMap::new(),
            configs: BTreeMap::from([("retention.ms".to_string(), "5".to_string())]),
        };
        let plain = BTreeMap::from([("t".to_string(), topic.clone())]);
        let old = rmp_serde::to_vec_named(&Plain { topics: &plain }).unwrap();
        let shared: Shared = rmp_serde::from_slice(&old).unwrap();
        assert_eq!(*shared.topics["t"], topic);
        assert_eq!(rmp_serde::to_vec_named(&shared).unwrap(), old);
    }
}
