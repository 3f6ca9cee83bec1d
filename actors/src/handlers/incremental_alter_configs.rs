//! IncrementalAlterConfigs: SET (0), DELETE (1), APPEND (2), SUBTRACT (3) per key.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::{AlterTopicConfigs, ConfigOp};
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
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => {
                let ops: Result<Vec<(String, ConfigOp)>, (i16, String)> = r
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
                            o => {
                                return Err((
                                    INVALID_REQUEST,
                                    format!("Unknown config operation {o}."),
                                ))
                            }
                        };
                        Ok((c.name.as_str().to_string(), op))
                    })
                    .collect();
                match ops {
                    Ok(ops) => {
                        let msg = AlterTopicConfigs {
                            topic: r.resource_name.as_str().to_string(),
                            ops,
                            replace_all: false,
                            validate_only: req.validate_only,
                        };
                        ctx.controller.send(msg).await.unwrap_or_else(|_| {
                            Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into()))
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            RESOURCE_BROKER => Err((
                INVALID_REQUEST,
                "Dynamic broker configs are not supported; edit server.properties.".into(),
            )),
            other => Err((
                INVALID_REQUEST,
                format!("Unsupported resource type {other}."),
            )),
        };
        responses.push(match outcome {
            Ok(()) => res,
            Err((code, msg)) => res.with_error_code(code).with_error_message(Some(sb(&msg))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
