//! DeleteRecords: move a partition's log start offset forward (-1: to the high
//! watermark); whole segments below it are deleted.

use crate::broker::BrokerContext;
use crate::errors::*;
use crate::partition::messages::DeleteRecords;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

pub async fn handle(req: DeleteRecordsRequest, ctx: &BrokerContext) -> DeleteRecordsResponse {
    let routes = ctx.routes();
    let mut topics = Vec::new();
    for t in &req.topics {
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let res = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let answer = match routes.partition(t.name.0.as_str(), p.partition_index) {
                None => {
                    res.with_error_code(routes.unrouted_code(t.name.0.as_str(), p.partition_index))
                }
                Some(route) => match route.leader.send(DeleteRecords { offset: p.offset }).await {
                    Ok(Ok(low)) => res.with_low_watermark(low),
                    Ok(Err(e)) => res.with_error_code(e.code),
                    Err(_) => res.with_error_code(NOT_LEADER_OR_FOLLOWER),
                },
            };
            partitions.push(answer);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
