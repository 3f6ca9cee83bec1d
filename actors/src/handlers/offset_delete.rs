//! OffsetDelete (v0): remove a group's committed offsets for some partitions, unless
//! the group is actively consuming that topic (GROUP_SUBSCRIBED_TO_TOPIC).

use super::sb;
use crate::broker::BrokerContext;
use crate::group::{await_reply, messages::DeleteOffsets};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use troupe::group::{codes, Reply};

pub async fn handle(req: OffsetDeleteRequest, ctx: &BrokerContext) -> OffsetDeleteResponse {
    let image = ctx.routes().image.clone();
    let mut known = Vec::new();
    let mut results: Vec<(String, i32, i16)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let exists = image
                .topics
                .get(t.name.as_str())
                .is_some_and(|ti| ti.partitions.contains_key(&p.partition_index));
            if exists {
                known.push((t.name.to_string(), p.partition_index));
            } else {
                results.push((
                    t.name.to_string(),
                    p.partition_index,
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                ));
            }
        }
    }
    let answer = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => Err(code),
        Ok(addr) => {
            let msg = DeleteOffsets {
                group_id: req.group_id.to_string(),
                partitions: known,
            };
            await_reply(addr.send(msg).await).await
        }
    };
    let error = match answer {
        Ok(Reply::OffsetDelete(r)) => {
            results.extend(r.partitions);
            r.error
        }
        Ok(_) => codes::UNKNOWN_SERVER_ERROR,
        Err(code) => code,
    };
    if error != codes::NONE {
        return OffsetDeleteResponse::default().with_error_code(error);
    }
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (t, p, code) in results {
        let part = OffsetDeleteResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(code);
        match topics.iter_mut().find(|x| x.name.as_str() == t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(sb(&t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
