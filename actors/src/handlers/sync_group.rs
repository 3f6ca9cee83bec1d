//! SyncGroup (v0-5): followers wait for the leader's assignment, which is stored in
//! `__consumer_offsets` before anyone is answered.

use super::sb;
use crate::broker::BrokerContext;
use crate::group::{await_reply, messages::SyncGroup};
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use troupe::group::{codes, Reply, SyncRequest, SyncResponse};

pub async fn handle(req: SyncGroupRequest, v: i16, ctx: &BrokerContext) -> SyncGroupResponse {
    let answer = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => Err(code),
        Ok(addr) => {
            let sync = SyncRequest {
                group_id: req.group_id.to_string(),
                generation_id: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
                protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
                assignments: req
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            };
            await_reply(addr.send(SyncGroup(sync)).await).await
        }
    };
    let r = match answer {
        Ok(Reply::Sync(r)) => r,
        Ok(_) => SyncResponse::error(codes::UNKNOWN_SERVER_ERROR),
        Err(code) => SyncResponse::error(code),
    };
    let v5 = v >= 5;
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(if v5 {
            r.protocol_type.as_deref().map(sb)
        } else {
            None
        })
        .with_protocol_name(if v5 {
            r.protocol_name.as_deref().map(sb)
        } else {
            None
        })
        .with_assignment(r.assignment)
}
