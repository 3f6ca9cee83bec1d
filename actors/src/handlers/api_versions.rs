//! ApiVersions: the APIs and version ranges this broker implements.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    troupe::protocol::api_versions_response()
}
