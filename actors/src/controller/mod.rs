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
use std::path::PathBuf;
use std::sync::Arc;
use troupe::config::BrokerConfig;
use troupe::controller::{topics, ControllerConfig};
use troupe::metadata::{MetadataImage, MetadataLog, MetadataRecord};

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
        let current = self.image.brokers.get(&node_id);
        let same = current.is_some_and(|b| b.host == host && b.port == port && !b.fenced);
        if !same {
            // The single node is its own controller: registered unfenced at once.
            self.commit(vec![MetadataRecord::RegisterBroker {
                node_id,
                host,
                port,
                rack: None,
                incarnation_id: *troupe::metadata::random_uuid().as_bytes(),
                fenced: false,
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

    fn decisions(&self) -> ControllerConfig {
        ControllerConfig::from_broker(&self.config)
    }
}

/// A random start for replica placement, so topics do not all begin on one broker.
fn placement_start() -> u64 {
    u64::from_le_bytes(
        troupe::metadata::random_uuid().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    )
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
        let decisions = self.decisions();
        for t in &msg.topics {
            let id = troupe::metadata::random_uuid();
            let r = topics::create_topic(&self.image, &decisions, t, id, placement_start())
                .and_then(|(records, created)| {
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
        let decisions = self.decisions();
        for t in msg.topics {
            let r = topics::delete_topic(&self.image, &decisions, &t).and_then(
                |(records, (name, id))| {
                    self.commit(records)?;
                    tracing::info!(topic = %name, "topic deleted");
                    changed = true;
                    Ok((name, id))
                },
            );
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
        for (name, count) in msg.topics {
            let r = topics::create_partitions(&self.image, &name, count, placement_start())
                .and_then(|records| {
                    if msg.validate_only {
                        return Ok(());
                    }
                    let from = self.image.topics[&name].partitions.len();
                    self.commit(records)?;
                    tracing::info!(topic = %name, from, to = count, "partitions added");
                    changed = true;
                    Ok(())
                });
            results.push(r);
        }
        if !changed {
            return Box::pin(actix::fut::ready(results));
        }
        Box::pin(self.publish().map(move |_, _, _| results))
    }
}

impl Handler<AllocateProducerIds> for Controller {
    type Result = Result<(i64, i64), ApiError>;
    fn handle(&mut self, msg: AllocateProducerIds, _ctx: &mut Context<Self>) -> Self::Result {
        let (records, (first, size)) = topics::allocate_producer_ids(&self.image, msg.node_id);
        self.commit(records)?;
        tracing::info!(
            node_id = msg.node_id,
            first,
            size,
            "producer id block allocated"
        );
        Ok((first, size))
    }
}

impl Handler<AlterTopicConfigs> for Controller {
    type Result = ResponseActFuture<Self, Result<(), ApiError>>;
    fn handle(&mut self, msg: AlterTopicConfigs, _ctx: &mut Context<Self>) -> Self::Result {
        let decisions = self.decisions();
        let records = match topics::alter_topic_configs(
            &self.image,
            &decisions,
            &msg.topic,
            &msg.ops,
            msg.replace_all,
        ) {
            Ok(r) => r,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        if msg.validate_only || records.is_empty() {
            return Box::pin(actix::fut::ready(Ok(())));
        }
        if let Err(e) = self.commit(records) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        tracing::info!(topic = %msg.topic, "topic configs changed");
        Box::pin(self.publish().map(|_, _, _| Ok(())))
    }
}
