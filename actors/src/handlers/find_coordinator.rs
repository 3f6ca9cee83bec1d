//! FindCoordinator (v0-5): where a group's coordinator is. Creates `__consumer_offsets`
//! on first use; the coordinator of a group is the leader of partition
//! `abs(hash(group)) % N`. v4+ batches several keys in one request.

use super::sb;
use crate::broker::BrokerContext;
use crate::group::ensure_offsets_topic;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use troupe::group::{codes, partition_for, OFFSETS_TOPIC};

/// Key type 0: consumer groups. Transaction coordinators (1) are not served yet.
const KEY_TYPE_GROUP: i8 = 0;

struct Found {
    node_id: i32,
    host: String,
    port: i32,
    error: i16,
    message: Option<String>,
}

impl Found {
    fn error(error: i16, message: Option<String>) -> Found {
        Found {
            node_id: -1,
            host: String::new(),
            port: -1,
            error,
            message,
        }
    }
}

pub async fn handle(
    req: FindCoordinatorRequest,
    v: i16,
    ctx: &BrokerContext,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if v >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut found = Vec::with_capacity(keys.len());
    if req.key_type != KEY_TYPE_GROUP {
        let msg = format!("coordinator key type {} is not supported", req.key_type);
        found.extend(
            keys.iter()
                .map(|_| Found::error(codes::INVALID_REQUEST, Some(msg.clone()))),
        );
    } else if let Err(code) = ensure_offsets_topic(ctx).await {
        found.extend(keys.iter().map(|_| Found::error(code, None)));
    } else {
        for k in &keys {
            found.push(locate(k, ctx).await);
        }
    }
    if v >= 4 {
        let coordinators = keys
            .iter()
            .zip(found)
            .map(|(k, f)| {
                Coordinator::default()
                    .with_key(sb(k))
                    .with_node_id(BrokerId(f.node_id))
                    .with_host(sb(&f.host))
                    .with_port(f.port)
                    .with_error_code(f.error)
                    .with_error_message(f.message.as_deref().map(sb))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let f = found
        .into_iter()
        .next()
        .unwrap_or_else(|| Found::error(codes::INVALID_REQUEST, None));
    FindCoordinatorResponse::default()
        .with_error_code(f.error)
        .with_error_message(if v >= 1 {
            f.message.as_deref().map(sb)
        } else {
            None
        })
        .with_node_id(BrokerId(f.node_id))
        .with_host(sb(&f.host))
        .with_port(f.port)
}

async fn locate(group: &str, ctx: &BrokerContext) -> Found {
    let routes = ctx.routes();
    let Some(topic) = routes.image.topics.get(OFFSETS_TOPIC) else {
        return Found::error(codes::COORDINATOR_NOT_AVAILABLE, None);
    };
    let p = partition_for(group, topic.partitions.len() as i32);
    let Some(leader) = topic.partitions.get(&p).map(|p| p.leader) else {
        return Found::error(codes::COORDINATOR_NOT_AVAILABLE, None);
    };
    if leader == ctx.config.node_id {
        // A just-created partition gets its coordinator a moment later.
        if !ctx.groups.wait_for_coordinator(p).await {
            return Found::error(codes::COORDINATOR_NOT_AVAILABLE, None);
        }
        return Found {
            node_id: leader,
            host: ctx.advertised.0.clone(),
            port: ctx.advertised.1 as i32,
            error: codes::NONE,
            message: None,
        };
    }
    match routes.image.brokers.get(&leader).filter(|b| !b.fenced) {
        Some(b) => Found {
            node_id: leader,
            host: b.host.clone(),
            port: b.port as i32,
            error: codes::NONE,
            message: None,
        },
        None => Found::error(codes::COORDINATOR_NOT_AVAILABLE, None),
    }
}
