//! OffsetFetch: committed offsets of one group (v1-7) or several (v8+); the listed
//! partitions (-1 where nothing is committed) or, with a null topic list, every
//! partition the group has committed.

use super::sb;
use crate::broker::BrokerContext;
use crate::group::messages::FetchOffsets;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use troupe::group::{codes, FetchedOffset};

type Topics = Option<Vec<(String, Vec<i32>)>>;

async fn fetch(
    group_id: &str,
    topics: Topics,
    ctx: &BrokerContext,
) -> Result<Vec<FetchedOffset>, i16> {
    let addr = ctx.groups.coordinator_for(group_id)?;
    let msg = FetchOffsets {
        group_id: group_id.to_string(),
        topics,
    };
    addr.send(msg).await.map_err(|_| codes::NOT_COORDINATOR)?
}

/// (topic, [(partition, offset, epoch, metadata, error)]) in first-seen order.
type Grouped = Vec<(String, Vec<(i32, i64, i32, String, i16)>)>;

fn group_by_topic(offsets: Vec<FetchedOffset>, error: i16) -> Grouped {
    let mut out: Grouped = Vec::new();
    for f in offsets {
        let row = (f.partition, f.offset, f.leader_epoch, f.metadata, error);
        match out.last_mut() {
            Some((t, rows)) if *t == f.topic => rows.push(row),
            _ => out.push((f.topic, vec![row])),
        }
    }
    out
}

/// The answer for one group: offsets, or the requested partitions each with `code`.
async fn answer(group_id: &str, topics: Topics, ctx: &BrokerContext) -> (Grouped, i16) {
    match fetch(group_id, topics.clone(), ctx).await {
        Ok(offsets) => (group_by_topic(offsets, codes::NONE), codes::NONE),
        Err(code) => {
            let rows = topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    (
                        t,
                        ps.into_iter()
                            .map(|p| (p, -1, -1, String::new(), code))
                            .collect(),
                    )
                })
                .collect();
            (rows, code)
        }
    }
}

pub async fn handle(req: OffsetFetchRequest, v: i16, ctx: &BrokerContext) -> OffsetFetchResponse {
    if v >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let topics: Topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let (rows, error) = answer(&g.group_id, topics, ctx).await;
            let topics = rows
                .into_iter()
                .map(|(t, ps)| {
                    let partitions = ps
                        .into_iter()
                        .map(|(p, off, epoch, meta, err)| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(off)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(sb(&meta)))
                                .with_error_code(err)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(partitions)
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(sb(&g.group_id)))
                    .with_topics(if error == codes::NONE {
                        topics
                    } else {
                        Vec::new()
                    })
                    .with_error_code(error),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let (rows, error) = answer(&req.group_id, topics, ctx).await;
    let topics = rows
        .into_iter()
        .map(|(t, ps)| {
            let partitions = ps
                .into_iter()
                .map(|(p, off, epoch, meta, err)| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(off)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(sb(&meta)))
                        .with_error_code(err)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(&t)))
                .with_partitions(partitions)
        })
        .collect();
    // v1 has no group-level error: the partitions carry it.
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(if v >= 2 { error } else { codes::NONE })
}
