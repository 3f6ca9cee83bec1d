//! DescribeGroups (v0-5): state, protocol and members of each group (metadata and
//! assignments only when the group is stable, as Kafka answers).

use super::sb;
use crate::broker::BrokerContext;
use crate::group::messages::DescribeGroups;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};
use troupe::group::codes;
use troupe::protocol::acl::{authorized_operations, ResourceType};

async fn describe(
    group_id: &str,
    ctx: &BrokerContext,
) -> Result<troupe::group::DescribedGroup, i16> {
    let addr = ctx.groups.coordinator_for(group_id)?;
    let mut found = addr
        .send(DescribeGroups(vec![group_id.to_string()]))
        .await
        .map_err(|_| codes::NOT_COORDINATOR)??;
    found.pop().ok_or(codes::UNKNOWN_SERVER_ERROR)
}

pub async fn handle(
    req: DescribeGroupsRequest,
    v: i16,
    ctx: &BrokerContext,
) -> DescribeGroupsResponse {
    // The field exists from v3; the same for every group (no ACLs exist yet).
    let operations = authorized_operations(
        ResourceType::Group,
        req.include_authorized_operations && v >= 3,
    );
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in &req.groups {
        let described = match describe(g, ctx).await {
            Err(code) => DescribedGroup::default()
                .with_group_id(GroupId(sb(g)))
                .with_error_code(code),
            Ok(d) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(sb(&m.member_id))
                            .with_group_instance_id(if v >= 4 {
                                m.group_instance_id.as_deref().map(sb)
                            } else {
                                None
                            })
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_id(GroupId(sb(&d.group_id)))
                    .with_group_state(sb(d.state))
                    .with_protocol_type(sb(&d.protocol_type))
                    .with_protocol_data(sb(&d.protocol))
                    .with_members(members)
                    .with_authorized_operations(operations)
            }
        };
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
