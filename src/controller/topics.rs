//! Topic lifecycle decisions: CreateTopics, DeleteTopics, CreatePartitions, topic
//! config changes and producer-id blocks. Each returns the records to commit; a
//! `validate_only` request simply does not commit them.

use super::placement::{candidates, place};
use super::{codes, ApiError, ControllerConfig};
use crate::config::TopicConfig;
use crate::metadata::{validate_topic_name, MetadataImage, MetadataRecord};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Producer ids per block: a broker asks again after handing out this many.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub num_partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition, if the client gave one.
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// One config change of AlterConfigs / IncrementalAlterConfigs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum ConfigOp {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// A new partition: the live replicas are in sync, the first of them leads (epoch 0).
/// With no live replica (an explicit assignment to fenced brokers) it cannot start.
fn new_partition(
    image: &MetadataImage,
    topic_id: [u8; 16],
    partition: i32,
    replicas: Vec<i32>,
) -> Result<MetadataRecord, ApiError> {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|b| image.is_live(*b))
        .collect();
    let Some(leader) = isr.first().copied() else {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            format!(
                "All brokers specified in the assignment for partition {partition} are fenced."
            ),
        ));
    };
    Ok(MetadataRecord::Partition {
        topic_id,
        partition,
        replicas,
        isr,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// CreateTopics for one topic. `topic_id` is the new topic's id (random in the shell)
/// and `start` the placement's start (see [`place`]).
pub fn create_topic(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    t: &NewTopic,
    topic_id: Uuid,
    start: u64,
) -> Result<(Vec<MetadataRecord>, CreatedTopic), ApiError> {
    validate_topic_name(&t.name).map_err(|m| (codes::INVALID_TOPIC_EXCEPTION, m))?;
    if image.topics.contains_key(&t.name) {
        return Err((
            codes::TOPIC_ALREADY_EXISTS,
            format!("Topic '{}' already exists.", t.name),
        ));
    }
    let (num_partitions, replication_factor, assignment) = if t.assignments.is_empty() {
        let n = if t.num_partitions == -1 {
            cfg.num_partitions
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            cfg.default_replication_factor
        } else {
            t.replication_factor
        };
        if n <= 0 {
            return Err((
                codes::INVALID_PARTITIONS,
                format!("Number of partitions must be larger than 0, got {n}."),
            ));
        }
        check_request_size(cfg, n)?;
        (n, rf, place(&candidates(image), 0..n, rf, start)?)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                codes::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            ));
        }
        let n = i32::try_from(t.assignments.len()).unwrap_or(i32::MAX);
        check_request_size(cfg, n)?;
        if t.assignments.keys().copied().ne(0..n) {
            return Err((
                codes::INVALID_REPLICA_ASSIGNMENT,
                "Partitions must be numbered 0..n without gaps.".into(),
            ));
        }
        let rf = t.assignments.values().next().map(|r| r.len()).unwrap_or(0) as i16;
        for replicas in t.assignments.values() {
            check_assignment(image, replicas, rf)?;
        }
        (n, rf, t.assignments.clone())
    };
    for (k, v) in &t.configs {
        crate::config::validate_topic_config(k, v)
            .map_err(|e| (codes::INVALID_CONFIG, e.to_string()))?;
    }
    TopicConfig::resolve(&cfg.topic_defaults, &t.configs)
        .map_err(|e| (codes::INVALID_CONFIG, e.to_string()))?;
    check_partition_limits(image, cfg, &assignment)?;
    let mut records = vec![MetadataRecord::Topic {
        name: t.name.clone(),
        topic_id: *topic_id.as_bytes(),
        configs: t.configs.clone(),
    }];
    for (p, replicas) in assignment {
        records.push(new_partition(image, *topic_id.as_bytes(), p, replicas)?);
    }
    Ok((
        records,
        CreatedTopic {
            topic_id,
            num_partitions,
            replication_factor,
        },
    ))
}

/// One request may not ask for more partitions than the cluster may hold: refused
/// before placement, which would otherwise build that many replica lists.
fn check_request_size(cfg: &ControllerConfig, partitions: i32) -> Result<(), ApiError> {
    if partitions > cfg.max_partitions {
        return Err((
            codes::INVALID_PARTITIONS,
            format!(
                "Number of partitions {partitions} exceeds the cluster's limit of {} (max.partitions).",
                cfg.max_partitions
            ),
        ));
    }
    Ok(())
}

/// KIP-578's limits: adding `new` (partition → replicas) must keep the cluster within
/// `max.partitions` and every broker within `max.broker.partitions` and what its
/// open-files limit can hold. POLICY_VIOLATION otherwise, naming the limit.
pub fn check_partition_limits(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    new: &BTreeMap<i32, Vec<i32>>,
) -> Result<(), ApiError> {
    let existing: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    let total = existing + new.len();
    if total > cfg.max_partitions as usize {
        return Err((
            codes::POLICY_VIOLATION,
            format!(
                "Adding {} partitions would bring the cluster to {total}, over its limit of {} (max.partitions).",
                new.len(),
                cfg.max_partitions
            ),
        ));
    }
    let mut per_broker: BTreeMap<i32, usize> = BTreeMap::new();
    for replicas in new.values() {
        for b in replicas {
            *per_broker.entry(*b).or_default() += 1;
        }
    }
    if per_broker.is_empty() {
        return Ok(());
    }
    for t in image.topics.values() {
        for p in t.partitions.values() {
            for b in &p.replicas {
                if let Some(n) = per_broker.get_mut(b) {
                    *n += 1;
                }
            }
        }
    }
    let (limit, why) = match cfg.descriptor_partitions {
        Some(d) if d < cfg.max_broker_partitions => (
            d,
            format!(
                "what the open-files limit holds; max.broker.partitions is {}",
                cfg.max_broker_partitions
            ),
        ),
        _ => (
            cfg.max_broker_partitions,
            "max.broker.partitions".to_string(),
        ),
    };
    if let Some((broker, n)) = per_broker.iter().find(|(_, n)| **n > limit as usize) {
        return Err((
            codes::POLICY_VIOLATION,
            format!(
                "Adding {} partitions would put {n} partition replicas on broker {broker}, over its limit of {limit} ({why}).",
                new.len()
            ),
        ));
    }
    Ok(())
}

fn check_assignment(image: &MetadataImage, replicas: &[i32], rf: i16) -> Result<(), ApiError> {
    if replicas.is_empty() || replicas.len() as i16 != rf {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            "All partitions must have the same non-zero number of replicas.".into(),
        ));
    }
    let mut seen = replicas.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != replicas.len() {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            format!("Duplicate brokers in the replica assignment {replicas:?}."),
        ));
    }
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            format!("Broker {b} is not registered."),
        ));
    }
    Ok(())
}

/// A topic named by name or by id (DeleteTopics v6+).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// DeleteTopics for one topic: the record and the deleted topic's name and id.
pub fn delete_topic(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    t: &TopicRef,
) -> Result<(Vec<MetadataRecord>, (String, Uuid)), ApiError> {
    let found = match t {
        TopicRef::Name(n) => image.topics.get(n).map(|t| &**t),
        TopicRef::Id(id) => image.topic_by_id(id),
    };
    let Some(topic) = found else {
        return Err(match t {
            TopicRef::Name(_) => (
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.".into(),
            ),
            TopicRef::Id(_) => (
                codes::UNKNOWN_TOPIC_ID,
                "This server does not host this topic ID.".into(),
            ),
        });
    };
    if !cfg.delete_topic_enable {
        return Err((
            codes::TOPIC_DELETION_DISABLED,
            "Topic deletion is disabled.".into(),
        ));
    }
    Ok((
        vec![MetadataRecord::RemoveTopic {
            topic_id: *topic.topic_id.as_bytes(),
        }],
        (topic.name.clone(), topic.topic_id),
    ))
}

/// CreatePartitions: grow `name` to `count` partitions, placed like new ones.
pub fn create_partitions(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    name: &str,
    count: i32,
    start: u64,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let t = image.topics.get(name).ok_or((
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        format!("The topic '{name}' does not exist."),
    ))?;
    let current = t.partitions.len() as i32;
    check_request_size(cfg, count)?;
    if count <= current {
        return Err((
            codes::INVALID_PARTITIONS,
            format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            ),
        ));
    }
    let rf = t
        .partitions
        .values()
        .next()
        .map(|p| p.replicas.len())
        .unwrap_or(1) as i16;
    let id = *t.topic_id.as_bytes();
    let assignment = place(&candidates(image), current..count, rf, start)?;
    check_partition_limits(image, cfg, &assignment)?;
    assignment
        .into_iter()
        .map(|(p, replicas)| new_partition(image, id, p, replicas))
        .collect()
}

/// A resource's stored configs after `ops` (AlterConfigs with `replace_all` starts
/// from nothing; IncrementalAlterConfigs from what is stored). List values are
/// comma-separated, as Kafka's APPEND / SUBTRACT treat them.
pub(crate) fn apply_config_ops(
    stored: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    replace_all: bool,
) -> BTreeMap<String, String> {
    let mut next = if replace_all {
        BTreeMap::new()
    } else {
        stored.clone()
    };
    let list = |v: Option<&String>| -> Vec<String> {
        v.map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    for (key, op) in ops {
        match op {
            ConfigOp::Set(v) => {
                next.insert(key.clone(), v.clone());
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append(v) => {
                let mut items = list(next.get(key));
                for x in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    if !items.iter().any(|i| i == x) {
                        items.push(x.to_string());
                    }
                }
                next.insert(key.clone(), items.join(","));
            }
            ConfigOp::Subtract(v) => {
                let remove: Vec<&str> = v.split(',').map(str::trim).collect();
                let items: Vec<String> = list(next.get(key))
                    .into_iter()
                    .filter(|i| !remove.contains(&i.as_str()))
                    .collect();
                next.insert(key.clone(), items.join(","));
            }
        }
    }
    next
}

/// AlterConfigs (`replace_all`) or IncrementalAlterConfigs on a topic: the records
/// that take its configs to the new set, validated as a whole.
pub fn alter_topic_configs(
    image: &MetadataImage,
    cfg: &ControllerConfig,
    topic: &str,
    ops: &[(String, ConfigOp)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let t = image.topics.get(topic).ok_or((
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        format!("The topic '{topic}' does not exist."),
    ))?;
    let next = apply_config_ops(&t.configs, ops, replace_all);
    for (k, v) in &next {
        crate::config::validate_topic_config(k, v)
            .map_err(|e| (codes::INVALID_CONFIG, e.to_string()))?;
    }
    TopicConfig::resolve(&cfg.topic_defaults, &next)
        .map_err(|e| (codes::INVALID_CONFIG, e.to_string()))?;
    let id = *t.topic_id.as_bytes();
    let mut records = Vec::new();
    for (k, v) in &next {
        if t.configs.get(k) != Some(v) {
            records.push(MetadataRecord::TopicConfig {
                topic_id: id,
                key: k.clone(),
                value: Some(v.clone()),
            });
        }
    }
    for k in t.configs.keys().filter(|k| !next.contains_key(*k)) {
        records.push(MetadataRecord::TopicConfig {
            topic_id: id,
            key: k.clone(),
            value: None,
        });
    }
    Ok(records)
}

/// A block of producer ids for `node_id`: `(first, size)` and its record.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    node_id: i32,
) -> (Vec<MetadataRecord>, (i64, i64)) {
    let first = image.next_producer_id;
    (
        vec![MetadataRecord::ProducerIds {
            node_id,
            first,
            size: PRODUCER_ID_BLOCK_SIZE,
        }],
        (first, PRODUCER_ID_BLOCK_SIZE),
    )
}
