//! The `Gateway` actor: the network edge. It accepts connections and gives each one a
//! task ([`crate::connection`]) that decodes frames, routes requests by the routing table
//! and writes responses in request order.
//!
//! It runs under an actix `Supervisor` like the other actors: the listening socket
//! belongs to the actor (bound once, at start-up, where a failure stops the broker), and
//! a restarted gateway accepts on it again. Connections are tasks of their own and
//! outlive a restart.
//!
//! Where a connection's task runs is `num.network.threads` ([`NetworkThreads`]): with 1,
//! on the main arbiter beside the partition actors (fewest thread hand-offs: the least
//! CPU per request); with N > 1, on N arbiters of their own, each new connection on the
//! one serving the fewest. A consumer's fetch, woken by an append, then answers at once
//! on its own thread instead of waiting behind the burst of Produce requests the main
//! thread is working through.

use crate::broker::BrokerContext;
use crate::connection;
use actix::prelude::*;
use actix_rt::{Arbiter, ArbiterHandle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// The arbiters that serve connections when `num.network.threads` > 1 (none: the main
/// arbiter serves them), each with the number of connections it serves now.
pub struct NetworkThreads {
    threads: Vec<(Arbiter, Arc<AtomicUsize>)>,
}

impl NetworkThreads {
    /// `n` from `num.network.threads`: 1 (or 0) serves connections on the current arbiter.
    pub fn start(n: usize) -> NetworkThreads {
        let threads = if n > 1 {
            (0..n)
                .map(|_| (Arbiter::new(), Arc::new(AtomicUsize::new(0))))
                .collect()
        } else {
            Vec::new()
        };
        NetworkThreads { threads }
    }

    /// The thread serving the fewest connections (the first of equals), with its count
    /// already raised for the connection about to go there.
    fn pick(&self) -> Option<(ArbiterHandle, ThreadLoad)> {
        let (arbiter, load) = self
            .threads
            .iter()
            .min_by_key(|(_, n)| n.load(Ordering::Relaxed))?;
        load.fetch_add(1, Ordering::Relaxed);
        Some((arbiter.handle(), ThreadLoad(load.clone())))
    }

    /// Connections each thread serves now (empty: the main arbiter serves them).
    pub fn loads(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops the threads (shutdown): their connections end with them.
    pub fn stop(&self) {
        for (arbiter, _) in &self.threads {
            arbiter.stop();
        }
    }
}

/// One connection counted against a network thread until it ends.
struct ThreadLoad(Arc<AtomicUsize>);

impl Drop for ThreadLoad {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

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
        let network = self.context.network.clone();
        let fut = async move {
            loop {
                // max.connections: leave new connections in the backlog until one closes.
                context.connections.wait_for_room().await;
                match listener.accept().await {
                    Ok((stream, peer)) => match context.connections.admit(peer.ip()) {
                        Ok(slot) => {
                            tracing::debug!(%peer, "connection accepted");
                            context.metrics.connections_created.inc();
                            let Some((thread, load)) = network.pick() else {
                                let serve = connection::serve(stream, peer, context.clone());
                                actix_rt::spawn(async move {
                                    serve.await;
                                    drop(slot);
                                });
                                continue;
                            };
                            // A socket belongs to the reactor of the thread that polls
                            // it: hand it over unregistered, register it there.
                            let stream = match stream.into_std() {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "cannot hand the connection to a network thread");
                                    continue;
                                }
                            };
                            let context = context.clone();
                            // If the thread is gone (shutdown), the closure is dropped and
                            // with it the socket, the slot and the load.
                            thread.spawn_fn(move || match TcpStream::from_std(stream) {
                                Ok(stream) => {
                                    actix_rt::spawn(async move {
                                        connection::serve(stream, peer, context).await;
                                        drop((slot, load));
                                    });
                                }
                                Err(e) => {
                                    tracing::warn!(%peer, error = %e, "cannot serve the connection on its network thread");
                                }
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
