//! DeleteTopics, by name (v0-5) or by id (v6+). Partition directories are removed
//! once the controller has committed the deletion.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::{DeleteTopics, TopicRef};
use crate::errors::*;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

pub async fn handle(
    req: DeleteTopicsRequest,
    version: i16,
    ctx: &BrokerContext,
) -> DeleteTopicsResponse {
    let refs: Vec<TopicRef> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => TopicRef::Name(n.0.as_str().to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| TopicRef::Name(n.0.as_str().to_string()))
            .collect()
    };
    let asked: Vec<(Option<String>, uuid::Uuid)> = refs
        .iter()
        .map(|r| match r {
            TopicRef::Name(n) => (Some(n.clone()), uuid::Uuid::nil()),
            TopicRef::Id(id) => (None, *id),
        })
        .collect();
    let n = refs.len();
    let outcomes = ctx
        .controller
        .send(DeleteTopics { topics: refs })
        .await
        .unwrap_or_else(|_| {
            (0..n)
                .map(|_| Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into())))
                .collect()
        });
    let responses = asked
        .into_iter()
        .zip(outcomes)
        .map(|((name, id), r)| match r {
            Ok((name, id)) => DeletableTopicResult::default()
                .with_name(Some(TopicName(sb(&name))))
                .with_topic_id(id),
            Err((code, msg)) => DeletableTopicResult::default()
                .with_name(name.map(|n| TopicName(sb(&n))))
                .with_topic_id(id)
                .with_error_code(code)
                .with_error_message(Some(sb(&msg))),
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
