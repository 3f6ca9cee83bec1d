//! AlterConfigs (the legacy, whole-set form): the given topic configs replace all of
//! the topic's overrides. Broker configs are static here (server.properties).

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::sb;
use crate::broker::BrokerContext;
use crate::controller::messages::{AlterTopicConfigs, ConfigOp};
use crate::errors::*;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

pub async fn handle(req: AlterConfigsRequest, ctx: &BrokerContext) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in &req.resources {
        let res = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let outcome = match r.resource_type {
            RESOURCE_TOPIC => {
                let ops = r
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value.as_ref().map(|v| {
                            (
                                c.name.as_str().to_string(),
                                ConfigOp::Set(v.as_str().to_string()),
                            )
                        })
                    })
                    .collect();
                let msg = AlterTopicConfigs {
                    topic: r.resource_name.as_str().to_string(),
                    ops,
                    replace_all: true,
                    validate_only: req.validate_only,
                };
                ctx.controller.send(msg).await.unwrap_or_else(|_| {
                    Err((UNKNOWN_SERVER_ERROR, "controller unavailable".into()))
                })
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
    AlterConfigsResponse::default().with_responses(responses)
}
