//! One file per Kafka API. Each handler takes the decoded request and the broker
//! context and returns the response body; [`dispatch`] encodes it for the connection.

mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_quorum;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sync_group;

use crate::broker::BrokerContext;
use crate::connection::Response;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use troupe::protocol::DecodedRequest;

/// `peer` is the client's address, for the `client_host` groups report (Kafka's
/// `/ip` form).
pub async fn dispatch(
    req: DecodedRequest,
    ctx: &BrokerContext,
    peer: std::net::SocketAddr,
) -> Response {
    let header = req.header;
    let v = header.request_api_version;
    let body = match req.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r, v)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(r, v, ctx).await),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(r, v, ctx).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(delete_topics::handle(r, v, ctx).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::handle(r, ctx).await)
        }
        RequestKind::Produce(r) => match produce::handle(r, v, ctx).await {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Response::Nothing,
        },
        RequestKind::Fetch(r) => {
            return match fetch::handle(r, header.correlation_id, v, ctx).await {
                Ok(encoded) => Response::Fetch(encoded),
                Err(e) => Response::Close(format!("fetch response encoding failed: {e}")),
            }
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(r, v, ctx).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(r, ctx).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(r, ctx).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(r, v, ctx))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(alter_configs::handle(r, ctx).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(incremental_alter_configs::handle(r, ctx).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(r, ctx).await)
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(r, v, ctx).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(r, ctx).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(r, ctx))
        }
        // Consumer groups and committed offsets (crate::group).
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(r, v, ctx).await)
        }
        RequestKind::JoinGroup(r) => {
            let client_id = header.client_id.as_deref().unwrap_or_default().to_string();
            let client_host = format!("/{}", peer.ip());
            ResponseKind::JoinGroup(join_group::handle(r, v, &client_id, &client_host, ctx).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(sync_group::handle(r, v, ctx).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(heartbeat::handle(r, ctx).await),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(leave_group::handle(r, v, ctx).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offset_commit::handle(r, ctx).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(r, v, ctx).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(describe_groups::handle(r, v, ctx).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(list_groups::handle(r, v, ctx).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(delete_groups::handle(r, ctx).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offset_delete::handle(r, ctx).await)
        }
        other => {
            // The version table only advertises the APIs above; a client that sends
            // another one anyway gets the connection closed, as Kafka does.
            return Response::Close(format!("API {:?} is not implemented", api_key_of(&other)));
        }
    };
    count_errors(&ctx.metrics, header.request_api_key, &body);
    let api_key = match ApiKey::try_from(header.request_api_key) {
        Ok(k) => k,
        Err(_) => return Response::Close("unknown API key".into()),
    };
    match troupe::protocol::encode_response(header.correlation_id, api_key, v, &body) {
        Ok(frame) => Response::Frame(frame),
        Err(e) => Response::Close(format!("response encoding failed: {e}")),
    }
}

/// Counts the error codes of a response (Kafka's ErrorsPerSec) for the APIs whose
/// failures operators watch: produce, offsets, metadata, groups, topic admin. (Fetch
/// counts its own: its response is encoded around file regions.)
fn count_errors(metrics: &crate::metrics::Metrics, api: i16, body: &ResponseKind) {
    let count = |code: i16| metrics.count_error(api, code);
    match body {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| count(p.error_code)),
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| count(p.error_code)),
        ResponseKind::Metadata(r) => r.topics.iter().for_each(|t| count(t.error_code)),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| count(p.error_code)),
        ResponseKind::OffsetFetch(r) => count(r.error_code),
        ResponseKind::FindCoordinator(r) => {
            count(r.error_code);
            r.coordinators.iter().for_each(|c| count(c.error_code));
        }
        ResponseKind::JoinGroup(r) => count(r.error_code),
        ResponseKind::SyncGroup(r) => count(r.error_code),
        ResponseKind::Heartbeat(r) => count(r.error_code),
        ResponseKind::LeaveGroup(r) => count(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| count(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| count(t.error_code)),
        ResponseKind::InitProducerId(r) => count(r.error_code),
        _ => {}
    }
}

fn api_key_of(r: &RequestKind) -> String {
    let s = format!("{r:?}");
    s.split('(').next().unwrap_or("?").to_string()
}

/// The part AlterConfigs and IncrementalAlterConfigs share: topic and dynamic broker
/// config changes go to the controller (which commits them to the metadata log); other
/// resource types are refused. `ops` is the request's changes already translated (or why not).
pub(crate) async fn alter_resource_configs(
    ctx: &BrokerContext,
    resource_type: i8,
    resource_name: &str,
    ops: Result<Vec<(String, crate::controller::messages::ConfigOp)>, crate::errors::ApiError>,
    replace_all: bool,
    validate_only: bool,
) -> Result<(), crate::errors::ApiError> {
    use crate::errors::{INVALID_REQUEST, UNKNOWN_SERVER_ERROR};
    match resource_type {
        describe_configs::RESOURCE_TOPIC => {
            let msg = crate::controller::messages::AlterTopicConfigs {
                topic: resource_name.to_string(),
                ops: ops?,
                replace_all,
                validate_only,
            };
            ctx.controller
                .send(msg)
                .await
                .unwrap_or_else(|_| Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into())))
        }
        describe_configs::RESOURCE_BROKER => {
            let msg = crate::controller::messages::AlterBrokerConfigs {
                resource: resource_name.to_string(),
                ops: ops?,
                replace_all,
                validate_only,
            };
            ctx.controller
                .send(msg)
                .await
                .unwrap_or_else(|_| Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into())))
        }
        other => Err((
            INVALID_REQUEST,
            format!("Unsupported resource type {other}."),
        )),
    }
}

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
