//! Metadata: brokers, controller, topics with their partitions, leaders and epochs.
//! Unknown topics are created when `auto.create.topics.enable` and the request allow it.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::{CreateTopics, NewTopic};
use crate::errors::*;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::collections::BTreeMap;
use troupe::protocol::acl::{authorized_operations, ResourceType};

pub async fn handle(req: MetadataRequest, version: i16, ctx: &BrokerContext) -> MetadataResponse {
    let mut routes = ctx.routes();
    // The same for every topic: no ACLs exist yet (see `troupe::protocol::acl`).
    let topic_operations = authorized_operations(
        ResourceType::Topic,
        req.include_topic_authorized_operations && version >= 8,
    );
    let cluster_operations = authorized_operations(
        ResourceType::Cluster,
        // The field exists in v8-10 only (v11+ moved it to DescribeCluster).
        req.include_cluster_authorized_operations && (8..=10).contains(&version),
    );
    // Which topics: None (or empty at v0) means all.
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match &req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.as_str().to_string()),
                        t.topic_id,
                    )
                })
                .collect(),
        ),
    };

    let mut create_errors: BTreeMap<String, i16> = BTreeMap::new();
    if let Some(req_topics) = &requested {
        let missing: Vec<String> = req_topics
            .iter()
            .filter_map(|(n, _)| n.clone())
            .filter(|n| !routes.image.topics.contains_key(n))
            .filter(|n| troupe::metadata::validate_topic_name(n).is_ok())
            // Created by FindCoordinator with its own settings (compacted), never here.
            .filter(|n| n.as_str() != troupe::group::OFFSETS_TOPIC)
            .collect();
        if !missing.is_empty()
            && ctx.config.auto_create_topics_enable
            && req.allow_auto_topic_creation
        {
            let topics = missing
                .iter()
                .map(|n| NewTopic {
                    name: n.clone(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: BTreeMap::new(),
                    configs: BTreeMap::new(),
                })
                .collect();
            let answer = ctx
                .controller
                .send(CreateTopics {
                    topics,
                    validate_only: false,
                })
                .await;
            // A topic that could not be created is answered with the reason's code.
            match answer {
                Ok(results) => {
                    for (name, r) in missing.iter().zip(results) {
                        if let Err((code, msg)) = r {
                            tracing::warn!(topic = %name, code, %msg, "auto-creation failed");
                            create_errors.insert(name.clone(), code);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "auto-creation: controller unavailable"),
            }
            routes = ctx.routes();
        }
    }

    let image = &routes.image;
    let topic_response = |name: &str| -> MetadataResponseTopic {
        let Some(t) = image.topics.get(name) else {
            let code = if let Some(code) = create_errors.get(name) {
                *code
            } else if troupe::metadata::validate_topic_name(name).is_ok() {
                UNKNOWN_TOPIC_OR_PARTITION
            } else {
                INVALID_TOPIC_EXCEPTION
            };
            return MetadataResponseTopic::default()
                .with_error_code(code)
                .with_name(Some(TopicName(sb(name))));
        };
        let partitions = t
            .partitions
            .values()
            .map(|p| {
                // A leader hosted here that cannot serve (its log is offline).
                let online = routes
                    .partition(&t.name, p.partition)
                    .filter(|_| p.leader == ctx.config.node_id)
                    .map(|r| r.state.borrow().online);
                let code = match online {
                    _ if p.leader == NO_LEADER => LEADER_NOT_AVAILABLE,
                    Some(true) | None => NONE,
                    Some(false) => LEADER_NOT_AVAILABLE,
                };
                // Replicas on fenced (or unregistered) brokers are offline.
                let offline: Vec<BrokerId> = p
                    .replicas
                    .iter()
                    .filter(|b| !image.is_live(**b))
                    .map(|b| BrokerId(*b))
                    .collect();
                MetadataResponsePartition::default()
                    .with_error_code(code)
                    .with_partition_index(p.partition)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replicas.iter().map(|b| BrokerId(*b)).collect())
                    .with_isr_nodes(p.isr.iter().map(|b| BrokerId(*b)).collect())
                    .with_offline_replicas(offline)
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb(&t.name))))
            .with_topic_id(t.topic_id)
            .with_is_internal(t.name.starts_with("__"))
            .with_partitions(partitions)
            .with_topic_authorized_operations(topic_operations)
    };

    let topics = match requested {
        None => image.topics.keys().map(|n| topic_response(n)).collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| match name {
                Some(n) => topic_response(&n),
                None => match image.topic_names.get(&id) {
                    Some(n) => topic_response(n),
                    None => MetadataResponseTopic::default()
                        .with_error_code(UNKNOWN_TOPIC_ID)
                        .with_topic_id(id),
                },
            })
            .collect(),
    };

    let brokers = image
        // Fenced brokers are not listed, as in Kafka: clients must not pick them.
        .live_brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(sb(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(sb))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(&ctx.cluster_id)))
        .with_controller_id(BrokerId(ctx.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_operations)
}
