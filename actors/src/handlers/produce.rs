//! Produce: each partition's record batches go to its `PartitionLeader`, all partitions
//! of a request concurrently. acks=0 gets no answer at all (Kafka's contract), acks=1 an
//! answer after the local append, acks=all after the high watermark passes the batch.

use super::sb;
use crate::broker::BrokerContext;
use crate::errors::*;
use crate::partition::messages::{PartitionError, Produce, ProduceOk};
use futures_util::future::join_all;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::time::Duration;

pub async fn handle(
    req: ProduceRequest,
    version: i16,
    ctx: &BrokerContext,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let routes = ctx.routes();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let mut pending = Vec::new();
    for topic in &req.topic_data {
        let name = topic.name.0.as_str();
        // Internal topics are written by the broker itself (Kafka refuses clients too).
        let internal = name == troupe::group::OFFSETS_TOPIC;
        for p in &topic.partition_data {
            let route = routes.partition(name, p.index).cloned();
            let unrouted = routes.unrouted_code(name, p.index);
            let records = p.records.clone();
            let topic_metrics = route.as_ref().map(|r| r.metrics.clone());
            let outcome = async move {
                if !(-1..=1).contains(&acks) {
                    return Err(PartitionError::new(INVALID_REQUIRED_ACKS, None));
                }
                if internal {
                    return Err(PartitionError::new(
                        INVALID_TOPIC_EXCEPTION,
                        Some(format!("Cannot append to internal topic {name}")),
                    ));
                }
                let Some(route) = route else {
                    return Err(PartitionError::new(unrouted, None));
                };
                let Some(records) = records.filter(|r| !r.is_empty()) else {
                    return Err(PartitionError::new(
                        CORRUPT_MESSAGE,
                        Some("no record batches".into()),
                    ));
                };
                let append = route.leader.send(Produce {
                    records,
                    acks,
                    timeout_ms: timeout.as_millis() as i64,
                });
                match tokio::time::timeout(timeout.max(Duration::from_millis(1)), append).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(PartitionError::new(NOT_LEADER_OR_FOLLOWER, None)),
                    Err(_) => Err(PartitionError::new(REQUEST_TIMED_OUT, None)),
                }
            };
            pending.push(async move {
                let r = outcome.await;
                if let (Err(_), Some(m)) = (&r, topic_metrics) {
                    m.failed_produce_requests.inc();
                }
                r
            });
        }
    }
    let mut outcomes = join_all(pending).await.into_iter();
    if acks == 0 {
        return None;
    }
    let responses = req
        .topic_data
        .iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .iter()
                .map(|p| {
                    let res = PartitionProduceResponse::default().with_index(p.index);
                    match outcomes.next().expect("one outcome per partition") {
                        Ok(ProduceOk {
                            base_offset,
                            log_append_time_ms,
                            log_start_offset,
                        }) => res
                            .with_base_offset(base_offset)
                            .with_log_append_time_ms(log_append_time_ms)
                            .with_log_start_offset(log_start_offset),
                        Err(e) => res
                            .with_error_code(e.code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                            // error_message and record_errors (KIP-467) exist from v8;
                            // older versions carry the code only.
                            .with_record_errors(if version >= 8 {
                                record_errors(&e.record_errors)
                            } else {
                                Vec::new()
                            })
                            .with_error_message(
                                e.message.as_deref().filter(|_| version >= 8).map(sb),
                            ),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}

/// Produce's `record_errors`: each offending record's index in its batch and why.
fn record_errors(errors: &[troupe::storage::RecordError]) -> Vec<BatchIndexAndErrorMessage> {
    errors
        .iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(sb(&e.message)))
        })
        .collect()
}
