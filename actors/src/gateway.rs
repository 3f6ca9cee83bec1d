//! The `Gateway` actor: the network edge. It accepts connections and gives each one a
//! task ([`crate::connection`]) that decodes frames, routes requests by the routing table
//! and writes responses in request order.
//!
//! It runs under an actix `Supervisor` like the other actors: the listening socket
//! belongs to the actor (bound once, at start-up, where a failure stops the broker), and
//! a restarted gateway accepts on it again. Connections are tasks of their own and
//! outlive a restart.

use crate::broker::BrokerContext;
use crate::connection;
use actix::prelude::*;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Gateway {
    /// Shared with the accept loop, which a restart cancels and starts again.
    listener: Arc<TcpListener>,
    context: Arc<BrokerContext>,
    accept: Option<SpawnHandle>,
    /// Set by `StopAccepting`, so that a restart during shutdown does not accept again.
    stopped: bool,
}

impl Gateway {
    /// `listener` is already bound: binding is where start-up fails, with the address
    /// and the OS error, never in here.
    pub fn new(listener: TcpListener, context: Arc<BrokerContext>) -> Self {
        Gateway {
            listener: Arc::new(listener),
            context,
            accept: None,
            stopped: false,
        }
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let listener = self.listener.clone();
        let context = self.context.clone();
        let fut = async move {
            loop {
                // max.connections: leave new connections in the backlog until one closes.
                context.connections.wait_for_room().await;
                match listener.accept().await {
                    Ok((stream, peer)) => match context.connections.admit(peer.ip()) {
                        Ok(slot) => {
                            tracing::debug!(%peer, "connection accepted");
                            context.metrics.connections_created.inc();
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

impl Supervised for Gateway {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(stopped = self.stopped, "gateway restarting");
        self.context
            .metrics
            .actor_restarted(crate::metrics::ActorKind::Gateway);
        // The context's futures (the accept loop) are gone; `started` spawns a new one.
        self.accept = None;
    }
}

/// Stop accepting new connections (shutdown). Open connections finish what they have.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAccepting;

impl Handler<StopAccepting> for Gateway {
    type Result = ();
    fn handle(&mut self, _: StopAccepting, ctx: &mut Context<Self>) {
        self.stopped = true;
        if let Some(h) = self.accept.take() {
            ctx.cancel_future(h);
        }
    }
}

/// Test hook: stop the gateway as a failure would; its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

impl Handler<Crash> for Gateway {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!("gateway crash requested (fault injection)");
        ctx.stop();
    }
}
