//! Heartbeat (v0-4): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it
//! to rejoin.

use crate::broker::BrokerContext;
use crate::group::messages::Heartbeat;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
use troupe::group::codes;

pub async fn handle(req: HeartbeatRequest, ctx: &BrokerContext) -> HeartbeatResponse {
    let code = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => code,
        Ok(addr) => {
            let hb = troupe::group::HeartbeatRequest {
                group_id: req.group_id.to_string(),
                generation_id: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            };
            match addr.send(Heartbeat(hb)).await {
                Ok(Ok(code)) | Ok(Err(code)) => code,
                Err(_) => codes::NOT_COORDINATOR,
            }
        }
    };
    HeartbeatResponse::default().with_error_code(code)
}
