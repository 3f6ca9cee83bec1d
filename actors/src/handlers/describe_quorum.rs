//! DescribeQuorum (v0-2, KIP-595/836): the metadata quorum (`__cluster_metadata-0`)
//! as its active controller sees it: leader, term (leader epoch), high watermark, each
//! voter's log end offset, and the observers: the broker-only nodes that follow the log
//! as Raft learners. v1+ adds each replica's last fetch and last caught-up times (the
//! leader's own are now; a replica "fetches" when it answers the leader's Raft RPCs).
//! Any broker forwards it to the active controller.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::Submit;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use troupe::controller::{ControllerRequest as Q, ControllerResponse as A};

use crate::errors::{NOT_CONTROLLER, UNKNOWN_TOPIC_OR_PARTITION};

const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(req: DescribeQuorumRequest, ctx: &BrokerContext) -> DescribeQuorumResponse {
    let asked = req.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.topic_name.as_str(), p.partition_index))
    });
    if asked.clone().any(|(t, p)| t != METADATA_TOPIC || p != 0) || asked.count() != 1 {
        return DescribeQuorumResponse::default()
            .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
            .with_error_message(Some(sb("only __cluster_metadata-0 has a quorum")));
    }
    let answer = ctx
        .controller
        .send(Submit {
            request: Q::DescribeQuorum,
            forwarded: false,
        })
        .await;
    let q = match answer {
        Ok(A::Quorum(q)) => q,
        _ => {
            return DescribeQuorumResponse::default()
                .with_error_code(NOT_CONTROLLER)
                .with_error_message(Some(sb("no active controller answered")))
        }
    };
    let replica = |(id, leo): &(i32, i64)| {
        let (fetch, caught_up) = q.times.get(id).copied().unwrap_or((-1, -1));
        ReplicaState::default()
            .with_replica_id(BrokerId(*id))
            .with_log_end_offset(*leo)
            .with_last_fetch_timestamp(fetch)
            .with_last_caught_up_timestamp(caught_up)
    };
    let voters = q.voters.iter().map(replica).collect();
    let observers = q.observers.iter().map(replica).collect();
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(sb(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(q.leader_id))
            .with_leader_epoch(q.leader_epoch)
            .with_high_watermark(q.high_watermark)
            .with_current_voters(voters)
            .with_observers(observers)])])
}
