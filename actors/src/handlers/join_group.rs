//! JoinGroup (v0-9): the answer waits until the rebalance completes (or comes at once
//! with MEMBER_ID_REQUIRED, an error, or the current generation for a member that
//! needs no rebalance).

use super::sb;
use crate::broker::BrokerContext;
use crate::group::{await_reply, messages::JoinGroup};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use troupe::group::{codes, JoinRequest, JoinResponse, Reply};

pub async fn handle(
    req: JoinGroupRequest,
    v: i16,
    client_id: &str,
    client_host: &str,
    ctx: &BrokerContext,
) -> JoinGroupResponse {
    let member_id = req.member_id.to_string();
    let answer = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => Err(code),
        Ok(addr) => {
            let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
            let join = JoinRequest {
                group_id: req.group_id.to_string(),
                member_id: member_id.clone(),
                require_known_member_id: v >= 4 && instance.is_none(),
                group_instance_id: instance,
                session_timeout_ms: req.session_timeout_ms,
                // v0 has no rebalance timeout: the session timeout is used for both.
                rebalance_timeout_ms: if v >= 1 {
                    req.rebalance_timeout_ms
                } else {
                    req.session_timeout_ms
                },
                protocol_type: req.protocol_type.to_string(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                client_id: client_id.to_string(),
                client_host: client_host.to_string(),
                supports_skip_assignment: v >= 9,
            };
            await_reply(addr.send(JoinGroup(join)).await).await
        }
    };
    let r = match answer {
        Ok(Reply::Join(r)) => r,
        Ok(_) => JoinResponse::error(&member_id, codes::UNKNOWN_SERVER_ERROR),
        Err(code) => JoinResponse::error(&member_id, code),
    };
    encode(r, v)
}

fn encode(r: JoinResponse, v: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(&m.member_id))
                .with_group_instance_id(if v >= 5 {
                    m.group_instance_id.as_deref().map(sb)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    // The protocol name is nullable only from v7; older clients get "".
    let protocol_name = match r.protocol_name {
        Some(p) => Some(sb(&p)),
        None if v < 7 => Some(sb("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if v >= 7 {
            r.protocol_type.as_deref().map(sb)
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(sb(&r.leader))
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(sb(&r.member_id))
        .with_members(members)
}
