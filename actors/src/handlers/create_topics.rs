//! CreateTopics: validated and committed by the controller; answered once the
//! partitions are started, so the topic can be used as soon as the client hears back.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::{CreateTopics, NewTopic};
use crate::errors::*;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::{BTreeMap, HashSet};

pub async fn handle(
    req: CreateTopicsRequest,
    version: i16,
    ctx: &BrokerContext,
) -> CreateTopicsResponse {
    // A name given twice in one request is an error for every copy (Kafka's rule).
    let mut seen = HashSet::new();
    let dupes: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.as_str().to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    let mut results: Vec<Option<CreatableTopicResult>> = Vec::new();
    let mut new_topics = Vec::new();
    for t in &req.topics {
        let name = t.name.0.as_str().to_string();
        if dupes.contains(&name) {
            results.push(Some(
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(sb("Duplicate topic name in the request."))),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
            }
        }
        let assignments = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        results.push(None);
        new_topics.push(NewTopic {
            name,
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments,
            configs,
        });
    }
    let names: Vec<String> = new_topics.iter().map(|t| t.name.clone()).collect();
    let outcomes = match ctx
        .controller
        .send(CreateTopics {
            topics: new_topics,
            validate_only: req.validate_only,
        })
        .await
    {
        Ok(o) => o,
        Err(_) => names
            .iter()
            .map(|_| Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into())))
            .collect(),
    };
    if !req.validate_only {
        let created: Vec<&str> = names
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .map(|(n, _)| n.as_str())
            .collect();
        let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 10_000) as u64);
        wait_online(ctx, &created, wait).await;
    }
    let mut outcomes = names.into_iter().zip(outcomes);
    let routes = ctx.routes();
    let topics = req
        .topics
        .iter()
        .zip(results)
        .map(|(t, r)| {
            if let Some(r) = r {
                return r;
            }
            let (name, outcome) = outcomes.next().expect("one outcome per submitted topic");
            match outcome {
                Ok(created) => {
                    let configs = (version >= 5).then(|| {
                        let overrides = routes
                            .image
                            .topics
                            .get(&name)
                            .map(|t| t.configs.clone())
                            .unwrap_or_default();
                        troupe::config::describe_topic(
                            &ctx.config,
                            &troupe::config::DynamicLayers::of(
                                &routes.image.broker_configs,
                                ctx.config.node_id,
                            ),
                            &overrides,
                        )
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(sb(&e.name))
                                .with_value(e.value.as_deref().map(sb))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source.code())
                                .with_is_sensitive(e.sensitive)
                        })
                        .collect()
                    });
                    CreatableTopicResult::default()
                        .with_name(t.name.clone())
                        .with_topic_id(created.topic_id)
                        .with_num_partitions(created.num_partitions)
                        .with_replication_factor(created.replication_factor)
                        .with_configs(configs)
                }
                Err((code, msg)) => CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(sb(&msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Like Kafka's delayed CreateTopics, answer once the new partitions can serve (their
/// logs are open), within the request's timeout: a client that produces or asks for
/// offsets right after its topic was created then gets no NOT_LEADER_OR_FOLLOWER.
/// CreatePartitions waits the same way.
pub(crate) async fn wait_online(ctx: &BrokerContext, topics: &[&str], wait: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let routes = ctx.routes();
        let me = ctx.config.node_id;
        let ready = topics.iter().all(|name| {
            let Some(image) = routes.image.topics.get(*name) else {
                return false;
            };
            routes.topics.get(*name).is_some_and(|t| {
                image.partitions.values().all(|p| {
                    // Partitions led elsewhere are that broker's to open.
                    p.leader != me
                        || t.partitions
                            .get(p.partition as usize)
                            .and_then(|r| r.as_ref())
                            .is_some_and(|r| r.state.borrow().online)
                })
            })
        });
        if ready || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
