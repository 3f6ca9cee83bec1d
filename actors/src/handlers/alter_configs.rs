//! AlterConfigs (the legacy, whole-set form): the given topic configs replace all of
//! the topic's overrides. Broker configs are static here (server.properties).

use super::{alter_resource_configs, sb};
use crate::broker::BrokerContext;
use crate::controller::messages::ConfigOp;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

pub async fn handle(req: AlterConfigsRequest, ctx: &BrokerContext) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in &req.resources {
        let res = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
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
        let outcome = alter_resource_configs(
            ctx,
            r.resource_type,
            r.resource_name.as_str(),
            Ok(ops),
            true,
            req.validate_only,
        )
        .await;
        responses.push(match outcome {
            Ok(()) => res,
            Err((code, msg)) => res.with_error_code(code).with_error_message(Some(sb(&msg))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
