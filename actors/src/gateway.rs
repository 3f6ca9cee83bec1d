//! The `Gateway` actor: the network edge. It accepts connections and gives each one a
//! task ([`crate::connection`]) that decodes frames, routes requests by the routing table
//! and writes responses in request order.

use crate::broker::BrokerContext;
use crate::connection;
use actix::prelude::*;
use std::sync::Arc;

pub struct Gateway {
    /// Taken when the accept loop starts.
    listener: Option<std::net::TcpListener>,
    context: Arc<BrokerContext>,
    accept: Option<SpawnHandle>,
}

impl Gateway {
    pub fn new(listener: std::net::TcpListener, context: Arc<BrokerContext>) -> Self {
        Gateway {
            listener: Some(listener),
            context,
            accept: None,
        }
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(std_listener) = self.listener.take() else {
            return;
        };
        let context = self.context.clone();
        let fut = async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "cannot register listener");
                    return;
                }
            };
            loop {
                // max.connections: leave new connections in the backlog until one closes.
                context.connections.wait_for_room().await;
                match listener.accept().await {
                    Ok((stream, peer)) => match context.connections.admit(peer.ip()) {
                        Ok(slot) => {
                            tracing::debug!(%peer, "connection accepted");
                            let serve = connection::serve(stream, peer, context.clone());
                            actix_rt::spawn(async move {
                                serve.await;
                                drop(slot);
                            });
                        }
                        Err(e) => {
                            tracing::info!(%peer, reason = %e, "connection refused");
                            drop(stream);
                        }
                    },
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        };
        self.accept = Some(ctx.spawn(fut.into_actor(self)));
    }
}

/// Stop accepting new connections (shutdown). Open connections finish what they have.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Handler<StopAccepting> for Gateway {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        if let Some(h) = self.accept.take() {
            ctx.cancel_future(h);
        }
    }
}
