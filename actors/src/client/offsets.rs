//! Offsets of partitions: ListOffsets to each partition's leader, retried across
//! leadership moves. Used by the CLI and by the broker's lag metrics for partitions
//! it hosts no replica of.

use super::{check, ClientError, KafkaClient};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// ListOffsets timestamp for the log start offset.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the high watermark (what a consumer can read up to).
pub const LATEST: i64 = -1;
/// v1+: one offset per partition; v7 (max timestamp) is the last we need.
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 7);
/// Leadership moves and brokers restart: this many rounds, each after a metadata
/// refresh, before giving up.
pub const ATTEMPTS: usize = 5;
pub const RETRY_BACKOFF: Duration = Duration::from_millis(300);

/// The offset for `timestamp` (or [`EARLIEST`]/[`LATEST`]) of each of `partitions` of
/// `topic`; -1 where no record has a timestamp that late.
pub async fn list_offsets(
    client: &mut KafkaClient,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<i32> = partitions.to_vec();
    let mut last_err = None;
    for attempt in 0..ATTEMPTS {
        if todo.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(RETRY_BACKOFF).await;
            client.refresh_metadata(Some(&[topic.to_string()])).await?;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in &todo {
            match client.leader_id(topic, p).await {
                Ok(l) => by_leader.entry(l).or_default().push(p),
                Err(e) if e.is_retriable() => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        for (leader, parts) in by_leader {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        parts
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_current_leader_epoch(-1)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let answer = match client.broker(leader).await {
                Ok(conn) => conn.call(&req, LIST_OFFSETS_VERSIONS).await,
                Err(e) => Err(e),
            };
            let resp = match answer {
                Ok((_, r)) => r,
                Err(e) if e.is_retriable() || matches!(e, ClientError::Connect { .. }) => {
                    client.forget(leader);
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for t in resp.topics {
                for p in t.partitions {
                    let res = check(p.error_code, || {
                        format!("offsets of {topic}-{}", p.partition_index)
                    });
                    match res {
                        Ok(()) => {
                            out.insert(p.partition_index, p.offset);
                        }
                        Err(e)
                            if e.is_retriable()
                                && e.code()
                                    != Some(
                                        kafka_protocol::ResponseError::UnknownTopicOrPartition
                                            .code(),
                                    ) =>
                        {
                            last_err = Some(e)
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        todo.retain(|p| !out.contains_key(p));
    }
    if !todo.is_empty() {
        return Err(last_err.unwrap_or_else(|| ClientError::Kafka {
            code: kafka_protocol::ResponseError::LeaderNotAvailable.code(),
            context: format!("offsets of {topic} partitions {todo:?}"),
        }));
    }
    Ok(out)
}
