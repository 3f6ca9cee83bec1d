//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the log's epoch cache.
//! Followers and consumers use it to detect divergence after a leader change.

use crate::broker::BrokerContext;
use crate::errors::*;
use crate::log::messages::EndOffsetForEpoch;
use actix::MailboxError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use troupe::storage::StorageError;

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
                let end = route
                    .log
                    .send(EndOffsetForEpoch {
                        epoch: p.leader_epoch,
                    })
                    .await;
                answer(res, end)
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

/// One partition's answer from its log's: an offline log is KAFKA_STORAGE_ERROR (its
/// storage error's code), never "no such epoch" (-1, -1) without an error.
fn answer(
    res: EpochEndOffset,
    end: Result<Result<Option<(i32, i64)>, StorageError>, MailboxError>,
) -> EpochEndOffset {
    match end {
        Ok(Ok(Some((epoch, end)))) => res.with_leader_epoch(epoch).with_end_offset(end),
        Ok(Ok(None)) => res,
        Ok(Err(e)) => res.with_error_code(e.kafka_error_code()),
        // The log actor is gone: the partition is being stopped here.
        Err(_) => res.with_error_code(NOT_LEADER_OR_FOLLOWER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown() -> EpochEndOffset {
        EpochEndOffset::default()
            .with_leader_epoch(-1)
            .with_end_offset(-1)
    }

    #[test]
    fn an_offline_log_is_a_storage_error() {
        let offline = StorageError::Io {
            path: "t-0".into(),
            source: std::io::Error::other("log is offline (closed)"),
        };
        let r = answer(unknown(), Ok(Err(offline)));
        assert_eq!(
            (r.error_code, r.leader_epoch, r.end_offset),
            (KAFKA_STORAGE_ERROR, -1, -1)
        );
        let r = answer(unknown(), Ok(Ok(None)));
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (NONE, -1, -1));
        let r = answer(unknown(), Ok(Ok(Some((3, 42)))));
        assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (NONE, 3, 42));
    }
}
