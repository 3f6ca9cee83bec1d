//! DescribeCluster: cluster id, controller and brokers (the admin client's view).

use super::sb;
use crate::broker::BrokerContext;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use troupe::protocol::acl::{authorized_operations, ResourceType};

pub fn handle(req: DescribeClusterRequest, ctx: &BrokerContext) -> DescribeClusterResponse {
    let routes = ctx.routes();
    let brokers = routes
        .image
        // Fenced brokers are not listed, as in Kafka: clients must not pick them.
        .live_brokers()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.node_id))
                .with_host(sb(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(sb))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(sb(&ctx.cluster_id))
        .with_controller_id(BrokerId(ctx.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(authorized_operations(
            ResourceType::Cluster,
            req.include_cluster_authorized_operations,
        ))
}
