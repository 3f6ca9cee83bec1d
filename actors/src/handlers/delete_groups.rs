//! DeleteGroups (v0-2): empty groups only; their offsets and metadata are removed
//! with tombstones in `__consumer_offsets`.

use super::sb;
use crate::broker::BrokerContext;
use crate::group::{await_reply, messages::DeleteGroups};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use std::collections::BTreeMap;
use troupe::group::{codes, Reply};

pub async fn handle(req: DeleteGroupsRequest, ctx: &BrokerContext) -> DeleteGroupsResponse {
    // One request per coordinator, with all of its groups.
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut results: BTreeMap<String, i16> = BTreeMap::new();
    for g in &req.groups_names {
        match ctx.groups.partition_of(g) {
            Some(p) => by_partition.entry(p).or_default().push(g.to_string()),
            None => {
                results.insert(g.to_string(), codes::GROUP_ID_NOT_FOUND);
            }
        }
    }
    for groups in by_partition.into_values() {
        let answer = match ctx.groups.coordinator_for(&groups[0]) {
            Err(code) => Err(code),
            Ok(addr) => await_reply(addr.send(DeleteGroups(groups.clone())).await).await,
        };
        match answer {
            Ok(Reply::DeleteGroups(r)) => results.extend(r),
            Ok(_) => results.extend(groups.into_iter().map(|g| (g, codes::UNKNOWN_SERVER_ERROR))),
            Err(code) => results.extend(groups.into_iter().map(|g| (g, code))),
        }
    }
    let results = req
        .groups_names
        .iter()
        .map(|g| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(sb(g)))
                .with_error_code(
                    results
                        .get(g.as_str())
                        .copied()
                        .unwrap_or(codes::UNKNOWN_SERVER_ERROR),
                )
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
