//! The operations HTTP listener (`metrics.http.listener`): a small HTTP/1.1 server
//! (hyper) on the node's own runtime, brokers and controller-only nodes alike.
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` | Prometheus text format |
//! | `/health/live` | 200 while the process serves HTTP at all |
//! | `/health/ready` | 200 once the active controller is known and the committed metadata applied (a broker: and its partitions served), else 503 and why |
//! | `/` | the status page ([`super::status`]) |
//!
//! It is read-only (GET and HEAD). Connections are bounded, and a client that does not
//! finish its request headers in time is dropped, so the endpoint cannot be used to
//! hold the broker's memory.

use super::scrape::{self, Ops};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind `metrics.http.listener` (`None`: turned off). Called before any actor starts,
/// like the client listener: a taken port stops start-up with the key's name.
pub async fn bind(
    config: &troupe::config::BrokerConfig,
) -> Result<Option<(TcpListener, SocketAddr)>, crate::broker::StartError> {
    use crate::broker::StartError;
    let Some(a) = config.metrics_http_listener else {
        return Ok(None);
    };
    let key = || format!("metrics.http.listener={a}");
    let l = TcpListener::bind(a)
        .await
        .map_err(|e| StartError::Bind(key(), e))?;
    let bound = l.local_addr().map_err(|e| StartError::Bind(key(), e))?;
    Ok(Some((l, bound)))
}

/// Serve `ops` on a listener [`bind`] returned, in a task of the current arbiter
/// (aborted at shutdown); logs where, or that the listener is off.
pub fn start(
    listener: Option<(TcpListener, SocketAddr)>,
    ops: impl FnOnce() -> Ops,
) -> Option<tokio::task::JoinHandle<()>> {
    let Some((listener, bound)) = listener else {
        tracing::info!("metrics listener turned off (metrics.http.listener is empty)");
        return None;
    };
    tracing::info!(addr = %bound, "metrics listening (/metrics, /health/live, /health/ready, status page at /)");
    Some(actix_rt::spawn(serve(listener, Arc::new(ops()))))
}

/// Accept and serve until the task is aborted (node shutdown).
pub async fn serve(listener: TcpListener, ops: Arc<Ops>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ops = ops.clone();
        actix_rt::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let ops = ops.clone();
                async move { Ok::<_, Infallible>(route(&ops, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "metrics listener: connection ended with an error");
            }
            drop(slot);
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn route(ops: &Ops, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "read-only: GET or HEAD\n".into(),
        );
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let _one = ops.scrape_lock.lock().await;
            scrape::refresh(ops).await;
            text(
                StatusCode::OK,
                // The classic Prometheus text format the encoder writes.
                "text/plain; version=0.0.4; charset=utf-8",
                ops.metrics().encode(),
            )
        }
        "/health/live" => text(StatusCode::OK, PLAIN, "live\n".into()),
        "/health/ready" => match scrape::readiness(ops) {
            Ok(line) => text(StatusCode::OK, PLAIN, format!("{line}\n")),
            Err(missing) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {}\n", missing.join("; ")),
            ),
        },
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            super::status::render(ops).await,
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /, /metrics, /health/live or /health/ready\n".into(),
        ),
    }
}
