//! Sending a [`ControllerRequest`] to another node's controller over its CONTROLLER
//! listener (a `ControllerRpc::Other` frame), and answering such frames here.
//!
//! Connections to the active controller are kept and reused ([`ForwardPool`]): a broker
//! heartbeats every `broker.heartbeat.interval.ms` and forwards every admin request and
//! ISR change, and a TCP handshake per request was most of their cost. The controller
//! answers one request at a time per connection, in order, so requests in flight
//! together each hold a connection of their own; afterwards at most [`IDLE_MAX`] stay
//! open for the next ones.

use super::raft::files::{decode, encode};
use super::raft::network::{read_frame, write_frame};
use super::raft::{ControllerReply, ControllerRpc};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;
use troupe::controller::{ControllerRequest, ControllerResponse};

/// A request as it travels: `forwarded` ones are never forwarded again (a node that is
/// not the controller answers NOT_CONTROLLER with the leader it knows).
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    pub request: ControllerRequest,
}

/// How long one forwarded request may take (connect, send, commit, answer).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept to the active controller.
pub const IDLE_MAX: usize = 8;

/// Connections to the active controller, reused across forwarded requests.
///
/// Only connections to one address are kept: when requests go to another one (the
/// leader changed), those to the old leader are closed. A connection that failed or
/// timed out, or whose request was given up (the caller dropped the future on a leader
/// change), is dropped with it, never reused: a late answer would otherwise be read as
/// the next request's.
#[derive(Default)]
pub struct ForwardPool {
    idle: Mutex<Idle>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

#[derive(Default)]
struct Idle {
    /// Where the idle connections lead.
    addr: String,
    conns: Vec<TcpStream>,
}

impl ForwardPool {
    pub fn new(metrics: Option<std::sync::Arc<crate::metrics::Metrics>>) -> Self {
        ForwardPool {
            idle: Mutex::default(),
            metrics,
        }
    }

    /// An idle connection to `addr`; idle connections elsewhere are closed.
    fn take(&self, addr: &str) -> Option<TcpStream> {
        // Poison is harmless: the state is replaced or changed whole.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.addr != addr {
            if !idle.conns.is_empty() {
                tracing::debug!(old = %idle.addr, new = %addr, closed = idle.conns.len(),
                    "forwarding to another controller: closing connections to the old one");
            }
            idle.conns.clear();
            idle.addr = addr.to_string();
        }
        idle.conns.pop()
    }

    fn put(&self, addr: &str, conn: TcpStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.addr == addr && idle.conns.len() < IDLE_MAX {
            idle.conns.push(conn);
        }
    }

    /// Idle connections now (tests).
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len()
    }

    async fn dial(&self, addr: &str) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        if let Some(m) = &self.metrics {
            m.forward_connections.inc();
        }
        Ok(s)
    }

    /// Send `request` to the controller at `addr` (`host:port`) and return its answer.
    pub async fn forward(
        &self,
        addr: &str,
        request: ControllerRequest,
    ) -> std::io::Result<ControllerResponse> {
        if let Some(m) = &self.metrics {
            m.forwarded_requests.inc();
        }
        let frame = encode(&ControllerRpc::Other(encode(&Forwarded { request })?))?;
        let work = async {
            if let Some(mut conn) = self.take(addr) {
                match exchange(&mut conn, &frame).await {
                    Ok(answer) => {
                        self.put(addr, conn);
                        return answer;
                    }
                    // The controller closed it while idle (it restarted, or dropped
                    // it): once more on a new connection. A request that did reach it
                    // is answered again from the same decision rules, as any retry is.
                    Err(e) => tracing::debug!(%addr, error = %e,
                        "reused controller connection failed; dialling a new one"),
                }
            }
            let mut conn = self.dial(addr).await?;
            let answer = exchange(&mut conn, &frame).await?;
            self.put(addr, conn);
            answer
        };
        tokio::time::timeout(FORWARD_TIMEOUT, work)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "controller did not answer")
            })?
    }
}

/// One request and its reply on `conn`. The outer error means the connection is
/// unusable; the inner one is the controller's answer being an error, after which the
/// connection is still in step.
async fn exchange(
    conn: &mut TcpStream,
    frame: &[u8],
) -> std::io::Result<std::io::Result<ControllerResponse>> {
    write_frame(conn, frame).await?;
    let reply = read_frame(conn)
        .await?
        .ok_or_else(|| std::io::Error::other("controller closed the connection"))?;
    Ok(match decode::<ControllerReply>(&reply)? {
        ControllerReply::Other(body) => decode::<ControllerResponse>(&body),
        ControllerReply::Error(e) => Err(std::io::Error::other(e)),
        _ => Err(std::io::Error::other(
            "unexpected reply to a forwarded request",
        )),
    })
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
