//! One task per client connection.
//!
//! The reader decodes frames and starts a task per request, so requests on one
//! connection are pipelined; the writer awaits those tasks *in request order* (the Kafka
//! protocol's rule) and writes each response, fetched records by `sendfile(2)`. The
//! channel between them is bounded by `queued.max.requests`, so a client that pipelines
//! faster than we answer stops being read instead of growing our memory.

use crate::broker::BrokerContext;
use crate::handlers;
use crate::net::sendfile::write_chunks;
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use troupe::protocol::{self, Chunk, EncodedFetch};

/// What a request produced.
pub enum Response {
    /// A complete frame (size prefix included).
    Frame(Bytes),
    /// A fetch response: in-memory parts and file regions.
    Fetch(EncodedFetch),
    /// No answer (Produce with acks=0).
    Nothing,
    /// A protocol violation: close the connection after the responses before it.
    Close(String),
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<BrokerContext>) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let depth = ctx.config.queued_max_requests.max(1);
    let (tx, mut rx) = mpsc::channel::<tokio::task::JoinHandle<Response>>(depth);
    let stats = ctx.stats.clone();
    let write_loop = actix_rt::spawn(async move {
        while let Some(task) = rx.recv().await {
            let response = match task.await {
                Ok(r) => r,
                Err(e) => Response::Close(format!("request task failed: {e}")),
            };
            let result = match response {
                Response::Frame(b) => {
                    write_chunks(writer.as_ref(), &[Chunk::Bytes(b)], &stats).await
                }
                Response::Fetch(f) => write_chunks(writer.as_ref(), &f.chunks, &stats).await,
                Response::Nothing => Ok(()),
                Response::Close(why) => {
                    tracing::warn!(%peer, reason = %why, "closing connection");
                    break;
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "write failed, closing connection");
                break;
            }
        }
        // Dropping the write half (and rx) ends the reader too.
    });

    let max = ctx.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'read: loop {
        loop {
            match protocol::split_frame(&mut buf, max) {
                Ok(Some(frame)) => {
                    let ctx2 = ctx.clone();
                    let task = actix_rt::spawn(async move { handle_frame(frame, &ctx2).await });
                    if tx.send(task).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame, closing connection");
                    let _ = tx
                        .send(actix_rt::spawn(
                            async move { Response::Close(e.to_string()) },
                        ))
                        .await;
                    break 'read;
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = tx.closed() => break,
        }
    }
    drop(tx);
    let _ = write_loop.await;
    tracing::debug!(%peer, "connection closed");
}

async fn handle_frame(frame: Bytes, ctx: &BrokerContext) -> Response {
    match protocol::decode_request(frame) {
        Ok(req) => handlers::dispatch(req, ctx).await,
        Err(e) => match protocol::unsupported_api_versions_answer(&e) {
            // Kafka answers an ApiVersions it cannot parse with UNSUPPORTED_VERSION and
            // its version list, so the client can retry with a version we know.
            Some(frame) => Response::Frame(frame),
            None => Response::Close(e.to_string()),
        },
    }
}
