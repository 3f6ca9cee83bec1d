//! The `Controller` actor: the only writer of cluster metadata.
//!
//! Every change (create/delete topic, add partitions, topic configs) is validated here,
//! appended as [`MetadataRecord`]s to the fsynced metadata log with the controller epoch,
//! applied to the [`MetadataImage`], and published to the `BrokerSupervisor`, which starts
//! or stops partition actors; the request is answered only after that, so a client that
//! sees "created" can produce at once. Single node today: the Raft quorum will take the
//! place of [`MetadataLog`] as the writer, with the same records and image.

pub mod messages;
pub mod raft;

use crate::errors::*;
use crate::supervisor::{ApplyMetadata, BrokerSupervisor};
use actix::prelude::*;
use messages::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use troupe::config::{BrokerConfig, TopicConfig};
use troupe::metadata::{validate_topic_name, MetadataImage, MetadataLog, MetadataRecord};

pub struct Controller {
    config: Arc<BrokerConfig>,
    dir: PathBuf,
    broker: Addr<BrokerSupervisor>,
    log: Option<MetadataLog>,
    image: Arc<MetadataImage>,
    /// Bumped at every (re)start, like a Raft term: records written now carry it.
    epoch: i32,
}

impl Controller {
    /// Open the metadata log and replay it. Runs before the actor starts so start-up
    /// fails loudly on a broken metadata log instead of serving an empty cluster.
    pub fn open(
        config: Arc<BrokerConfig>,
        dir: PathBuf,
        broker: Addr<BrokerSupervisor>,
    ) -> Result<Self, troupe::metadata::MetadataLogError> {
        let mut c = Controller {
            config,
            dir,
            broker,
            log: None,
            image: Arc::new(MetadataImage::new()),
            epoch: 0,
        };
        c.reload()?;
        Ok(c)
    }

    fn reload(&mut self) -> Result<(), troupe::metadata::MetadataLogError> {
        let (log, entries) = MetadataLog::open(&self.dir)?;
        let mut image = MetadataImage::new();
        for e in &entries {
            image.apply(e);
        }
        self.epoch = image.epoch + 1;
        tracing::info!(
            records = entries.len(),
            epoch = self.epoch,
            topics = image.topics.len(),
            "controller loaded metadata log"
        );
        self.log = Some(log);
        self.image = Arc::new(image);
        let node_id = self.config.node_id;
        let (host, port) = crate::broker::advertised(&self.config);
        if self.image.brokers.get(&node_id) != Some(&(host.clone(), port, None)) {
            self.commit(vec![MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack: None,
            }])
            .map_err(|(_, m)| troupe::metadata::MetadataLogError::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(m),
            })?;
        }
        Ok(())
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Append records durably and apply them to the image.
    fn commit(&mut self, records: Vec<MetadataRecord>) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let log = self
            .log
            .as_mut()
            .ok_or((KAFKA_STORAGE_ERROR, "metadata log is offline".to_string()))?;
        let entries = log.append(self.epoch, records).map_err(|e| {
            (
                KAFKA_STORAGE_ERROR,
                format!("metadata log append failed: {e}"),
            )
        })?;
        let mut image = (*self.image).clone();
        for e in &entries {
            image.apply(e);
        }
        self.image = Arc::new(image);
        Ok(())
    }

    fn publish(&self) -> ResponseActFuture<Self, ()> {
        let fut = self.broker.send(ApplyMetadata {
            image: self.image.clone(),
        });
        Box::pin(fut.into_actor(self).map(|res, _, _| {
            if res.is_err() {
                tracing::error!("broker supervisor is gone; metadata not applied");
            }
        }))
    }

    fn topic_defaults(&self) -> &TopicConfig {
        &self.config.topic_defaults
    }

    fn plan_topic(&self, t: &NewTopic) -> Result<(Vec<MetadataRecord>, CreatedTopic), ApiError> {
        validate_topic_name(&t.name).map_err(|m| (INVALID_TOPIC_EXCEPTION, m))?;
        if self.image.topics.contains_key(&t.name) {
            return Err((
                TOPIC_ALREADY_EXISTS,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let live = self.image.brokers.keys().copied().collect::<Vec<_>>();
        let (num_partitions, replication_factor, assignment) = if t.assignments.is_empty() {
            let n = if t.num_partitions == -1 {
                self.config.num_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                t.replication_factor
            };
            if n <= 0 {
                return Err((
                    INVALID_PARTITIONS,
                    format!("Number of partitions must be larger than 0, got {n}."),
                ));
            }
            if rf <= 0 {
                return Err((
                    INVALID_REPLICATION_FACTOR,
                    format!("Replication factor must be larger than 0, got {rf}."),
                ));
            }
            if rf as usize > live.len() {
                return Err((
                    INVALID_REPLICATION_FACTOR,
                    format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.", live.len()),
                ));
            }
            let assignment = (0..n)
                .map(|p| {
                    let replicas = (0..rf as usize)
                        .map(|i| live[(p as usize + i) % live.len()])
                        .collect();
                    (p, replicas)
                })
                .collect::<BTreeMap<i32, Vec<i32>>>();
            (n, rf, assignment)
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err((
                    INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set."
                        .into(),
                ));
            }
            let n = t.assignments.len() as i32;
            if t.assignments.keys().copied().ne(0..n) {
                return Err((
                    INVALID_REPLICA_ASSIGNMENT,
                    "Partitions must be numbered 0..n without gaps.".into(),
                ));
            }
            let rf = t.assignments.values().next().map(|r| r.len()).unwrap_or(0) as i16;
            for replicas in t.assignments.values() {
                if replicas.is_empty() || replicas.len() as i16 != rf {
                    return Err((
                        INVALID_REPLICA_ASSIGNMENT,
                        "All partitions must have the same non-zero number of replicas.".into(),
                    ));
                }
                if let Some(b) = replicas.iter().find(|b| !live.contains(b)) {
                    return Err((
                        INVALID_REPLICA_ASSIGNMENT,
                        format!("Broker {b} is not registered."),
                    ));
                }
            }
            (n, rf, t.assignments.clone())
        };
        for (k, v) in &t.configs {
            troupe::config::validate_topic_config(k, v)
                .map_err(|e| (INVALID_CONFIG, e.to_string()))?;
        }
        let topic_id = troupe::metadata::random_uuid();
        let mut records = vec![MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id: *topic_id.as_bytes(),
            configs: t.configs.clone(),
        }];
        for (p, replicas) in assignment {
            records.push(partition_record(*topic_id.as_bytes(), p, replicas));
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
}

/// A new partition led by its first replica, epoch 0, all replicas in sync.
fn partition_record(topic_id: [u8; 16], partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

impl Actor for Controller {
    type Context = Context<Self>;
}

impl Supervised for Controller {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::info!("controller restarting, replaying the metadata log");
        if let Err(e) = self.reload() {
            tracing::error!(error = %e, "controller cannot reload the metadata log");
            self.log = None;
        }
    }
}

impl Handler<GetImage> for Controller {
    type Result = MessageResult<GetImage>;
    fn handle(&mut self, _: GetImage, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.image.clone())
    }
}

impl Handler<CreateTopics> for Controller {
    type Result = ResponseActFuture<Self, Vec<Result<CreatedTopic, ApiError>>>;
    fn handle(&mut self, msg: CreateTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let mut results = Vec::with_capacity(msg.topics.len());
        let mut changed = false;
        for t in &msg.topics {
            let r = self.plan_topic(t).and_then(|(records, created)| {
                if msg.validate_only {
                    return Ok(created);
                }
                self.commit(records)?;
                tracing::info!(topic = %t.name, partitions = created.num_partitions,
                    replication_factor = created.replication_factor, "topic created");
                changed = true;
                Ok(created)
            });
            results.push(r);
        }
        if !changed {
            return Box::pin(actix::fut::ready(results));
        }
        Box::pin(self.publish().map(move |_, _, _| results))
    }
}

impl Handler<DeleteTopics> for Controller {
    type Result = ResponseActFuture<Self, Vec<Result<(String, uuid::Uuid), ApiError>>>;
    fn handle(&mut self, msg: DeleteTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let mut results = Vec::new();
        let mut changed = false;
        for t in msg.topics {
            let found = match &t {
                TopicRef::Name(n) => self
                    .image
                    .topics
                    .get(n)
                    .map(|t| (t.name.clone(), t.topic_id)),
                TopicRef::Id(id) => self
                    .image
                    .topic_by_id(id)
                    .map(|t| (t.name.clone(), t.topic_id)),
            };
            let r = match (found, &t) {
                (None, TopicRef::Name(_)) => Err((
                    UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.".into(),
                )),
                (None, TopicRef::Id(_)) => Err((
                    UNKNOWN_TOPIC_ID,
                    "This server does not host this topic ID.".into(),
                )),
                (Some(_), _) if !self.config.delete_topic_enable => Err((
                    TOPIC_DELETION_DISABLED,
                    "Topic deletion is disabled.".into(),
                )),
                (Some((name, id)), _) => self
                    .commit(vec![MetadataRecord::RemoveTopic {
                        topic_id: *id.as_bytes(),
                    }])
                    .map(|_| {
                        tracing::info!(topic = %name, "topic deleted");
                        changed = true;
                        (name, id)
                    }),
            };
            results.push(r);
        }
        if !changed {
            return Box::pin(actix::fut::ready(results));
        }
        Box::pin(self.publish().map(move |_, _, _| results))
    }
}

impl Handler<CreatePartitions> for Controller {
    type Result = ResponseActFuture<Self, Vec<Result<(), ApiError>>>;
    fn handle(&mut self, msg: CreatePartitions, _ctx: &mut Context<Self>) -> Self::Result {
        let mut results = Vec::new();
        let mut changed = false;
        let live = self.image.brokers.keys().copied().collect::<Vec<_>>();
        for (name, count) in msg.topics {
            let r = match self.image.topics.get(&name) {
                None => Err((
                    UNKNOWN_TOPIC_OR_PARTITION,
                    format!("The topic '{name}' does not exist."),
                )),
                Some(t) => {
                    let current = t.partitions.len() as i32;
                    let rf = t
                        .partitions
                        .values()
                        .next()
                        .map(|p| p.replicas.len())
                        .unwrap_or(1);
                    if count <= current {
                        Err((INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")))
                    } else if msg.validate_only {
                        Ok(())
                    } else {
                        let id = *t.topic_id.as_bytes();
                        let records = (current..count)
                            .map(|p| {
                                let replicas = (0..rf)
                                    .map(|i| live[(p as usize + i) % live.len()])
                                    .collect();
                                partition_record(id, p, replicas)
                            })
                            .collect();
                        self.commit(records).map(|_| {
                            tracing::info!(topic = %name, from = current, to = count, "partitions added");
                            changed = true;
                        })
                    }
                }
            };
            results.push(r);
        }
        if !changed {
            return Box::pin(actix::fut::ready(results));
        }
        Box::pin(self.publish().map(move |_, _, _| results))
    }
}

/// Producer ids per block: a broker asks again after handing out this many.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

impl Handler<AllocateProducerIds> for Controller {
    type Result = Result<(i64, i64), ApiError>;
    fn handle(&mut self, msg: AllocateProducerIds, _ctx: &mut Context<Self>) -> Self::Result {
        let first = self.image.next_producer_id;
        self.commit(vec![MetadataRecord::ProducerIds {
            node_id: msg.node_id,
            first,
            size: PRODUCER_ID_BLOCK_SIZE,
        }])?;
        tracing::info!(
            node_id = msg.node_id,
            first,
            size = PRODUCER_ID_BLOCK_SIZE,
            "producer id block allocated"
        );
        Ok((first, PRODUCER_ID_BLOCK_SIZE))
    }
}

impl Handler<AlterTopicConfigs> for Controller {
    type Result = ResponseActFuture<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterTopicConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let r = self.alter_configs(msg);
        match r {
            Ok(true) => Box::pin(self.publish().map(|_, _, _| Ok(()))),
            Ok(false) => Box::pin(actix::fut::ready(Ok(()))),
            Err(e) => Box::pin(actix::fut::ready(Err(e))),
        }
    }
}

impl Controller {
    /// Returns whether anything was committed.
    fn alter_configs(&mut self, msg: AlterTopicConfigs) -> Result<bool, ApiError> {
        let t = self.image.topics.get(&msg.topic).ok_or((
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("The topic '{}' does not exist.", msg.topic),
        ))?;
        let mut next = if msg.replace_all {
            BTreeMap::new()
        } else {
            t.configs.clone()
        };
        for (key, op) in &msg.ops {
            let current = next.get(key).cloned();
            let list = |v: &Option<String>| -> Vec<String> {
                v.as_deref()
                    .map(|s| {
                        s.split(',')
                            .map(|x| x.trim().to_string())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            match op {
                ConfigOp::Set(v) => {
                    next.insert(key.clone(), v.clone());
                }
                ConfigOp::Delete => {
                    next.remove(key);
                }
                ConfigOp::Append(v) => {
                    let mut items = list(&current);
                    for x in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                        if !items.iter().any(|i| i == x) {
                            items.push(x.to_string());
                        }
                    }
                    next.insert(key.clone(), items.join(","));
                }
                ConfigOp::Subtract(v) => {
                    let remove: Vec<&str> = v.split(',').map(str::trim).collect();
                    let items: Vec<String> = list(&current)
                        .into_iter()
                        .filter(|i| !remove.contains(&i.as_str()))
                        .collect();
                    next.insert(key.clone(), items.join(","));
                }
            }
        }
        for (k, v) in &next {
            troupe::config::validate_topic_config(k, v)
                .map_err(|e| (INVALID_CONFIG, e.to_string()))?;
        }
        TopicConfig::resolve(self.topic_defaults(), &next)
            .map_err(|e| (INVALID_CONFIG, e.to_string()))?;
        if msg.validate_only {
            return Ok(false);
        }
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
        for k in t.configs.keys() {
            if !next.contains_key(k) {
                records.push(MetadataRecord::TopicConfig {
                    topic_id: id,
                    key: k.clone(),
                    value: None,
                });
            }
        }
        let changed = !records.is_empty();
        self.commit(records)?;
        if changed {
            tracing::info!(topic = %msg.topic, "topic configs changed");
        }
        Ok(changed)
    }
}
