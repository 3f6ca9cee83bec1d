//! OffsetCommit (v2-9): checked against the group's generation and member, answered
//! once the records are appended to `__consumer_offsets`.

use crate::broker::BrokerContext;
use crate::group::{await_reply, messages::CommitOffsets};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use troupe::group::{codes, CommitPartition, CommitRequest, Reply};

pub async fn handle(req: OffsetCommitRequest, ctx: &BrokerContext) -> OffsetCommitResponse {
    let image = ctx.routes().image.clone();
    let partitions: Vec<CommitPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = image.topics.get(t.name.as_str());
            t.partitions.iter().map(move |p| CommitPartition {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                error: match topic {
                    Some(t) if t.partitions.contains_key(&p.partition_index) => codes::NONE,
                    _ => codes::UNKNOWN_TOPIC_OR_PARTITION,
                },
            })
        })
        .collect();
    let keys: Vec<(String, i32)> = partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    let answer = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => Err(code),
        Ok(addr) => {
            let commit = CommitRequest {
                group_id: req.group_id.to_string(),
                generation_id: req.generation_id_or_member_epoch,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                // The codec reads it for v2-4 and leaves -1 for the others.
                retention_time_ms: req.retention_time_ms,
                partitions,
            };
            await_reply(addr.send(CommitOffsets(commit)).await).await
        }
    };
    let results: Vec<(String, i32, i16)> = match answer {
        Ok(Reply::Commit(r)) => r,
        Ok(_) => keys
            .into_iter()
            .map(|(t, p)| (t, p, codes::UNKNOWN_SERVER_ERROR))
            .collect(),
        Err(code) => keys.into_iter().map(|(t, p)| (t, p, code)).collect(),
    };
    // Group per topic, in request order.
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (t, p, code) in results {
        let part = OffsetCommitResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(code);
        match topics.last_mut() {
            Some(last) if last.name.as_str() == t => last.partitions.push(part),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(super::sb(&t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
