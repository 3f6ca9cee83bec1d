//! ListGroups (v0-5): the groups of every coordinator on this broker, optionally
//! only those in some states (v4+) or of some types (v5+; ours are all "classic").

use super::sb;
use crate::broker::BrokerContext;
use crate::group::messages::ListGroups;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use troupe::group::codes;

pub async fn handle(req: ListGroupsRequest, v: i16, ctx: &BrokerContext) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let classic = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    let coordinators: Vec<_> = ctx
        .groups
        .table
        .borrow()
        .coordinators
        .values()
        .cloned()
        .collect();
    let mut error = codes::NONE;
    let mut groups = Vec::new();
    if classic {
        for c in coordinators {
            match c
                .send(ListGroups {
                    states: states.clone(),
                })
                .await
            {
                Ok(Ok(listed)) => groups.extend(listed),
                // Kafka answers what it has, with the error of a coordinator still loading.
                Ok(Err(code)) => error = code,
                Err(_) => error = codes::COORDINATOR_NOT_AVAILABLE,
            }
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let groups = groups
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(&g.group_id)))
                .with_protocol_type(sb(&g.protocol_type))
                .with_group_state(if v >= 4 { sb(g.state) } else { sb("") })
                .with_group_type(if v >= 5 { sb("classic") } else { sb("") })
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error)
        .with_groups(groups)
}
