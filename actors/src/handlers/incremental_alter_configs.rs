//! IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2), SUBTRACT (3) per key.

use super::{alter_resource_configs, sb};
use crate::broker::BrokerContext;
use crate::controller::messages::ConfigOp;
use crate::errors::*;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

pub async fn handle(
    req: IncrementalAlterConfigsRequest,
    ctx: &BrokerContext,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in &req.resources {
        let res = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let ops = r
            .configs
            .iter()
            .map(|c| {
                let v = c
                    .value
                    .as_ref()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                let op = match c.config_operation {
                    0 => ConfigOp::Set(v),
                    1 => ConfigOp::Delete,
                    2 => ConfigOp::Append(v),
                    3 => ConfigOp::Subtract(v),
                    o => return Err((INVALID_REQUEST, format!("Unknown config operation {o}."))),
                };
                Ok((c.name.as_str().to_string(), op))
            })
            .collect();
        let outcome = alter_resource_configs(
            ctx,
            r.resource_type,
            r.resource_name.as_str(),
            ops,
            false,
            req.validate_only,
        )
        .await;
        responses.push(match outcome {
            Ok(()) => res,
            Err((code, msg)) => res.with_error_code(code).with_error_message(Some(sb(&msg))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
