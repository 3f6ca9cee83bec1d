//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the log's epoch cache.
//! Followers and consumers use it to detect divergence after a leader change.

use crate::broker::BrokerContext;
use crate::errors::*;
use crate::log::messages::EndOffsetForEpoch;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

pub async fn handle(
    req: OffsetForLeaderEpochRequest,
    ctx: &BrokerContext,
) -> OffsetForLeaderEpochResponse {
    let routes = ctx.routes();
    let mut topics = Vec::new();
    for t in &req.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let res = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            let Some(route) = routes.partition(t.topic.0.as_str(), p.partition) else {
                let code = routes.unrouted_code(t.topic.0.as_str(), p.partition);
                partitions.push(res.with_error_code(code));
                continue;
            };
            let state = *route.state.borrow();
            let answer = if let Some(code) = state.check_leader_epoch(p.current_leader_epoch) {
                res.with_error_code(code)
            } else {
                match route
                    .log
                    .send(EndOffsetForEpoch {
                        epoch: p.leader_epoch,
                    })
                    .await
                {
                    Ok(Some((epoch, end))) => res.with_leader_epoch(epoch).with_end_offset(end),
                    Ok(None) => res,
                    Err(_) => res.with_error_code(NOT_LEADER_OR_FOLLOWER),
                }
            };
            partitions.push(answer);
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
