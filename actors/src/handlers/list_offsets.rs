//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or the first offset whose
//! timestamp is at or after a given time. Consumers never see past the high watermark.

use crate::broker::BrokerContext;
use crate::errors::*;
use crate::log::messages::OffsetForTimestamp;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

/// How long a request waits for a partition whose log is still being loaded.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn handle(
    req: ListOffsetsRequest,
    version: i16,
    ctx: &BrokerContext,
) -> ListOffsetsResponse {
    let routes = ctx.routes();
    let is_replica = req.replica_id.0 >= 0;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let res = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let Some(route) = routes.partition(t.name.0.as_str(), p.partition_index) else {
                let code = routes.unrouted_code(t.name.0.as_str(), p.partition_index);
                partitions.push(res.with_error_code(code));
                continue;
            };
            let state = route.state_once_online(LOAD_WAIT).await;
            // leader_epoch exists from v4; kcat still speaks v2.
            let res = if version >= 4 {
                res.with_leader_epoch(state.leader_epoch)
            } else {
                res
            };
            let visible_end = if is_replica {
                state.log_end_offset
            } else {
                state.high_watermark
            };
            let answer = if let Some(code) = state.check_leader_epoch(p.current_leader_epoch) {
                res.with_error_code(code)
            } else {
                match p.timestamp {
                    -1 => res.with_offset(visible_end),
                    -2 | -4 | -5 => res.with_offset(state.log_start_offset),
                    ts if ts >= 0 || ts == -3 => {
                        match route.log.send(OffsetForTimestamp { timestamp: ts }).await {
                            Ok(Ok(Some((offset, found_ts)))) if offset < visible_end => {
                                res.with_offset(offset).with_timestamp(found_ts)
                            }
                            Ok(Ok(_)) => res,
                            Ok(Err(e)) => res.with_error_code(e.kafka_error_code()),
                            Err(_) => res.with_error_code(NOT_LEADER_OR_FOLLOWER),
                        }
                    }
                    _ => res.with_error_code(INVALID_REQUEST),
                }
            };
            partitions.push(answer);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
