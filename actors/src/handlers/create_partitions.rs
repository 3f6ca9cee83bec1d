//! CreatePartitions: grow a topic's partition count (never shrink it).

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::CreatePartitions;
use crate::errors::*;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

pub async fn handle(req: CreatePartitionsRequest, ctx: &BrokerContext) -> CreatePartitionsResponse {
    let topics: Vec<(String, i32)> = req
        .topics
        .iter()
        .map(|t| (t.name.0.as_str().to_string(), t.count))
        .collect();
    let n = topics.len();
    let outcomes = ctx
        .controller
        .send(CreatePartitions {
            topics,
            validate_only: req.validate_only,
        })
        .await
        .unwrap_or_else(|_| {
            (0..n)
                .map(|_| Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into())))
                .collect()
        });
    if !req.validate_only {
        // Answer once the new partitions serve (see create_topics::wait_online): KafkaJS
        // reads metadata right after and got LEADER_NOT_AVAILABLE for the new ones.
        let grown: Vec<&str> = req
            .topics
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_ok())
            .map(|(t, _)| t.name.0.as_str())
            .collect();
        let wait = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 10_000) as u64);
        super::create_topics::wait_online(ctx, &grown, wait).await;
    }
    let results = req
        .topics
        .iter()
        .zip(outcomes)
        .map(|(t, r)| {
            let res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match r {
                Ok(()) => res,
                Err((code, msg)) => res.with_error_code(code).with_error_message(Some(sb(&msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
