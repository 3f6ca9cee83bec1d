//! DescribeConfigs for topics (their overrides over the broker's defaults) and for
//! this broker (its dynamic, static and default configuration, with synonyms).

use super::sb;
use crate::broker::BrokerContext;
use crate::errors::*;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use troupe::config::ConfigEntry;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub fn handle(
    req: DescribeConfigsRequest,
    version: i16,
    ctx: &BrokerContext,
) -> DescribeConfigsResponse {
    let routes = ctx.routes();
    let layers =
        troupe::config::DynamicLayers::of(&routes.image.broker_configs, ctx.config.node_id);
    let results = req
        .resources
        .iter()
        .map(|r| {
            let res = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let name = r.resource_name.as_str();
            let entries: Result<Vec<ConfigEntry>, crate::errors::ApiError> = match r.resource_type {
                RESOURCE_TOPIC => match routes.image.topics.get(name) {
                    Some(t) => Ok(troupe::config::describe_topic(
                        &ctx.config,
                        &layers,
                        &t.configs,
                    )),
                    None => Err((
                        UNKNOWN_TOPIC_OR_PARTITION,
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == ctx.config.node_id.to_string() => {
                    Ok(troupe::config::describe_broker(&ctx.config, &layers))
                }
                RESOURCE_BROKER => Err((INVALID_REQUEST, format!("Unexpected broker id {name}."))),
                other => Err((
                    INVALID_REQUEST,
                    format!("Unsupported resource type {other}."),
                )),
            };
            match entries {
                Ok(entries) => {
                    let configs = entries
                        .into_iter()
                        .filter(|e| {
                            r.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name))
                        })
                        .map(|e| {
                            let mut c = DescribeConfigsResourceResult::default()
                                .with_name(sb(&e.name))
                                .with_value(e.value.as_deref().map(sb))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source.code())
                                .with_is_sensitive(e.sensitive)
                                .with_config_type(e.config_type.code());
                            if version >= 1 && req.include_synonyms {
                                c = c.with_synonyms(
                                    e.synonyms
                                        .iter()
                                        .map(|s| {
                                            DescribeConfigsSynonym::default()
                                                .with_name(sb(&s.name))
                                                .with_value(s.value.as_deref().map(sb))
                                                .with_source(s.source.code())
                                        })
                                        .collect(),
                                );
                            }
                            if version >= 3 && req.include_documentation {
                                c = c.with_documentation(Some(sb(e.doc)));
                            }
                            c
                        })
                        .collect();
                    res.with_configs(configs)
                }
                Err((code, msg)) => res.with_error_code(code).with_error_message(Some(sb(&msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
