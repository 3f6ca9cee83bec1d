//! ElectLeaders (v0-2): preferred or unclean leader election, decided by the active
//! controller (forwarded there from any broker). With no partitions named, every
//! partition is considered and those that need no election are left out of the
//! answer, as Kafka does.

use super::sb;
use crate::broker::BrokerContext;
use crate::controller::Submit;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use troupe::controller::{ControllerRequest as Q, ControllerResponse as A, ElectionKind};

use crate::errors::{ELECTION_NOT_NEEDED, INVALID_REQUEST};

pub async fn handle(req: ElectLeadersRequest, ctx: &BrokerContext) -> ElectLeadersResponse {
    let kind = match req.election_type {
        0 => ElectionKind::Preferred,
        1 => ElectionKind::Unclean,
        _ => return ElectLeadersResponse::default().with_error_code(INVALID_REQUEST),
    };
    let all = req.topic_partitions.is_none();
    let partitions: Vec<(String, i32)> = match &req.topic_partitions {
        Some(list) => list
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.to_string(), *p)))
            .collect(),
        None => ctx
            .routes()
            .image
            .topics
            .values()
            .flat_map(|t| t.partitions.keys().map(move |p| (t.name.clone(), *p)))
            .collect(),
    };
    let answer = ctx
        .controller
        .send(Submit {
            request: Q::ElectLeaders {
                kind,
                partitions: partitions.clone(),
            },
            forwarded: false,
        })
        .await;
    let results: Vec<Result<(), crate::errors::ApiError>> = match answer {
        Ok(A::ElectLeaders(r)) => r,
        Ok(A::Failed(e)) => vec![Err(e); partitions.len()],
        _ => vec![
            Err((crate::errors::NOT_CONTROLLER, "no active controller".into()));
            partitions.len()
        ],
    };
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), r) in partitions.into_iter().zip(results) {
        let (code, message) = match r {
            Ok(()) => (0, None),
            Err((code, _)) if all && code == ELECTION_NOT_NEEDED => continue,
            Err((code, msg)) => (code, Some(sb(&msg))),
        };
        let part = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message);
        match topics.last_mut() {
            Some(last) if last.topic.as_str() == topic => last.partition_result.push(part),
            _ => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(sb(&topic)))
                    .with_partition_result(vec![part]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(topics)
}
