//! LeaveGroup: one member by member id (v0-2), or a batch of members by member id
//! and/or group instance id (v3+, also used by admins to remove static members).

use super::sb;
use crate::broker::BrokerContext;
use crate::group::messages::LeaveGroup;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use troupe::group::{codes, LeaveResponse, LeavingMember};

pub async fn handle(req: LeaveGroupRequest, v: i16, ctx: &BrokerContext) -> LeaveGroupResponse {
    let members: Vec<LeavingMember> = if v >= 3 {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let r = match ctx.groups.coordinator_for(&req.group_id) {
        Err(code) => LeaveResponse {
            error: code,
            members: Vec::new(),
        },
        Ok(addr) => {
            let msg = LeaveGroup {
                group_id: req.group_id.to_string(),
                members,
            };
            match addr.send(msg).await {
                Ok(Ok(r)) => r,
                Ok(Err(code)) => LeaveResponse {
                    error: code,
                    members: Vec::new(),
                },
                Err(_) => LeaveResponse {
                    error: codes::NOT_COORDINATOR,
                    members: Vec::new(),
                },
            }
        }
    };
    if v < 3 {
        // One member: its own error is the answer.
        let member_error = r.members.first().map(|m| m.2).unwrap_or(codes::NONE);
        let error = if r.error != codes::NONE {
            r.error
        } else {
            member_error
        };
        return LeaveGroupResponse::default().with_error_code(error);
    }
    let members = r
        .members
        .into_iter()
        .map(|(member_id, instance, error)| {
            MemberResponse::default()
                .with_member_id(sb(&member_id))
                .with_group_instance_id(instance.as_deref().map(sb))
                .with_error_code(error)
        })
        .collect();
    LeaveGroupResponse::default()
        .with_error_code(r.error)
        .with_members(members)
}
