//! DescribeQuorum (v0-2, KIP-595/836): the metadata quorum (`__cluster_metadata-0`)
//! as its active controller sees it: leader, term (leader epoch), high watermark, each
//! voter's log end offset, and the observers: the broker-only nodes that follow the log
//! as Raft learners. v1+ adds each replica's last fetch and last caught-up times (the
//! leader's own are now; a replica "fetches" when it answers the leader's Raft RPCs).
//! v2 (KIP-853) adds `Nodes`: each voter's controller endpoints, from
//! `controller.quorum.voters` and `controller.listener.names` (a single node, which has
//! no voters list, names its own controller listeners); directory ids are not tracked
//! (the zero UUID, as Kafka sends for an unknown one). Any broker forwards it to the
//! active controller.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::Submit;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use troupe::controller::{ControllerRequest as Q, ControllerResponse as A};

use crate::errors::{NOT_CONTROLLER, UNKNOWN_TOPIC_OR_PARTITION};

const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn handle(
    req: DescribeQuorumRequest,
    version: i16,
    ctx: &BrokerContext,
) -> DescribeQuorumResponse {
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
    // Nodes exists from v2 on (an older version cannot encode a non-empty list).
    let nodes = if version >= 2 {
        voter_nodes(ctx, q.voters.iter().map(|(id, _)| *id))
    } else {
        Vec::new()
    };
    let voters = q.voters.iter().map(replica).collect();
    let observers = q.observers.iter().map(replica).collect();
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(sb(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(q.leader_id))
                .with_leader_epoch(q.leader_epoch)
                .with_high_watermark(q.high_watermark)
                .with_current_voters(voters)
                .with_observers(observers)])])
        .with_nodes(nodes)
}

/// The voters' controller endpoints (DescribeQuorum v2 `Nodes`).
fn voter_nodes(ctx: &BrokerContext, voters: impl Iterator<Item = i32>) -> Vec<Node> {
    let config = &ctx.config;
    let name = config
        .controller_listener_names
        .first()
        .cloned()
        .unwrap_or_else(|| "CONTROLLER".to_string());
    voters
        .map(|id| {
            let listeners = if config.controller_quorum_voters.is_empty() {
                // A single node: its own controller listeners, as configured.
                config
                    .listeners
                    .iter()
                    .filter(|l| config.controller_listener_names.contains(&l.name))
                    .map(|l| {
                        Listener::default()
                            .with_name(sb(&l.name))
                            .with_host(sb(&l.host))
                            .with_port(l.port)
                    })
                    .collect()
            } else {
                config
                    .controller_quorum_voters
                    .iter()
                    .filter(|v| v.id == id)
                    .map(|v| {
                        Listener::default()
                            .with_name(sb(&name))
                            .with_host(sb(&v.host))
                            .with_port(v.port)
                    })
                    .collect()
            };
            Node::default()
                .with_node_id(BrokerId(id))
                .with_listeners(listeners)
        })
        .collect()
}
