//! InitProducerId for idempotent producers (no transactional id): a fresh producer id
//! with epoch 0, from the block this broker got from the controller.
//!
//! Kafka answers an idempotent producer that asks again (KIP-360 epoch bump after
//! UNKNOWN_PRODUCER_ID, or a restart) with a new id as well, so the request's
//! `producer_id`/`producer_epoch` are not needed here. Transactional ids are refused
//! until transactions exist.

use crate::broker::BrokerContext;
use crate::controller::messages::AllocateProducerIds;
use crate::controller::messages::ApiError;
use crate::errors::*;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub async fn handle(req: InitProducerIdRequest, ctx: &BrokerContext) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| t.is_empty()) {
        return resp.with_error_code(INVALID_REQUEST);
    }
    if req.transactional_id.is_some() {
        // TRANSACTIONAL_ID_AUTHORIZATION_FAILED is what a Kafka without a transaction
        // coordinator for this id would be least misleading with; clients treat
        // it as fatal instead of retrying forever.
        return resp.with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    match next_producer_id(ctx).await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err((code, msg)) => {
            tracing::warn!(error = %msg, "cannot allocate a producer id");
            resp.with_error_code(code)
        }
    }
}

async fn next_producer_id(ctx: &BrokerContext) -> Result<i64, ApiError> {
    let mut block = ctx.producer_ids.lock().await;
    if block.0 >= block.1 {
        let (first, size) = ctx
            .controller
            .send(AllocateProducerIds {
                node_id: ctx.config.node_id,
            })
            .await
            .map_err(|_| {
                (
                    COORDINATOR_NOT_AVAILABLE,
                    "controller unavailable".to_string(),
                )
            })??;
        *block = (first, first + size);
    }
    let id = block.0;
    block.0 += 1;
    Ok(id)
}
