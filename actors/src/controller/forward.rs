//! Sending a [`ControllerRequest`] to another node's controller over its CONTROLLER
//! listener (a `ControllerRpc::Other` frame), and answering such frames here.

use super::raft::files::{decode, encode};
use super::raft::network::{read_frame, write_frame};
use super::raft::{ControllerReply, ControllerRpc};
use serde::{Deserialize, Serialize};
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

/// Send `request` to the controller at `addr` (`host:port`) and return its answer.
pub async fn forward(
    addr: &str,
    request: ControllerRequest,
) -> std::io::Result<ControllerResponse> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let inner = encode(&Forwarded { request })?;
        write_frame(&mut s, &encode(&ControllerRpc::Other(inner))?).await?;
        let frame = read_frame(&mut s)
            .await?
            .ok_or_else(|| std::io::Error::other("controller closed the connection"))?;
        match decode::<ControllerReply>(&frame)? {
            ControllerReply::Other(body) => decode::<ControllerResponse>(&body),
            ControllerReply::Error(e) => Err(std::io::Error::other(e)),
            _ => Err(std::io::Error::other(
                "unexpected reply to a forwarded request",
            )),
        }
    };
    tokio::time::timeout(FORWARD_TIMEOUT, work)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "controller did not answer")
        })?
}
