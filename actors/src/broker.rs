//! Starting and stopping one broker: the wiring of arbiters and actors.
//!
//! ```text
//! main arbiter:    BrokerSupervisor, Controller, Gateway (+ one task per connection),
//!                  PartitionLeader per partition
//! storage arbiter: Log per partition (file IO, fsync, mmapped indexes)
//! ```
//! Tests start brokers in-process with [`start`] on port 0; the binary does the same.

use crate::controller::Controller;
use crate::gateway::{Gateway, StopAccepting};
use crate::net::sendfile::SendStats;
use crate::supervisor::{ApplyMetadata, BrokerSupervisor, RoutingTable, StopAll};
use actix::prelude::*;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use troupe::config::{BrokerConfig, CleanupPolicy, TimestampType, TopicConfig};
use troupe::storage::LogConfig;

/// What every connection needs to serve requests.
pub struct BrokerContext {
    pub config: Arc<BrokerConfig>,
    pub routes: watch::Receiver<Arc<RoutingTable>>,
    pub controller: Addr<Controller>,
    pub cluster_id: String,
    /// Host and port clients should use (advertised.listeners, else the bound address).
    pub advertised: (String, u16),
    pub stats: Arc<SendStats>,
    /// The block of producer ids this broker hands out (`next`, `end`), refilled from
    /// the controller; an async mutex, since refilling awaits the metadata log.
    pub producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Bytes of requests in flight, broker-wide (`queued.max.request.bytes`): a
    /// connection waits for permits before it reads past a frame.
    pub request_bytes: Arc<tokio::sync::Semaphore>,
    /// Finds the coordinator of a consumer group (`crate::group`).
    pub groups: crate::group::GroupRouter,
}

impl BrokerContext {
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes.borrow().clone()
    }
}

/// A running broker.
pub struct BrokerHandle {
    pub addr: SocketAddr,
    pub supervisor: Addr<BrokerSupervisor>,
    pub gateway: Addr<Gateway>,
    pub controller: Addr<Controller>,
    pub context: Arc<BrokerContext>,
    storage: Arbiter,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create log dir {0}: {1}")]
    LogDir(std::path::PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("metadata: {0}")]
    Metadata(#[from] troupe::metadata::MetadataLogError),
    #[error("{0}")]
    Other(String),
}

/// Wall-clock milliseconds since the epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The storage engine's view of a topic's configs.
pub fn log_config(c: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: c.segment_bytes,
        segment_ms: c.segment_ms,
        segment_index_bytes: c.segment_index_bytes,
        index_interval_bytes: c.index_interval_bytes,
        retention_ms: c.retention_ms,
        retention_bytes: c.retention_bytes,
        flush_messages: c.flush_messages,
        flush_ms: c.flush_ms,
        max_message_bytes: c.max_message_bytes,
        cleanup_delete: c.cleanup_policy != CleanupPolicy::Compact,
        cleanup_compact: c.cleanup_policy != CleanupPolicy::Delete,
        min_cleanable_dirty_ratio: c.min_cleanable_dirty_ratio.as_f64(),
        delete_retention_ms: c.delete_retention_ms,
        min_compaction_lag_ms: c.min_compaction_lag_ms,
        max_compaction_lag_ms: c.max_compaction_lag_ms,
        compression: c.compression_type.codec(),
        // LogAppendTime replaces the producer's timestamps: nothing to bound.
        timestamp_before_max_ms: match c.message_timestamp_type {
            TimestampType::CreateTime => c.message_timestamp_before_max_ms,
            TimestampType::LogAppendTime => i64::MAX,
        },
        timestamp_after_max_ms: match c.message_timestamp_type {
            TimestampType::CreateTime => c.message_timestamp_after_max_ms,
            TimestampType::LogAppendTime => i64::MAX,
        },
    }
}

/// Permits of the request-bytes semaphore: one per byte, capped by what a semaphore
/// holds and (to stay `u32` per acquire) by what one frame can need.
pub fn request_byte_permits(config: &BrokerConfig) -> usize {
    let max = tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize);
    match usize::try_from(config.queued_max_request_bytes) {
        Ok(n) => n.clamp(1, max),
        Err(_) => max,
    }
}

/// The host and port clients are told to use.
pub fn advertised(config: &BrokerConfig) -> (String, u16) {
    let l = config
        .advertised_listeners
        .first()
        .or(config.listeners.first());
    l.map(|l| (l.host.clone(), l.port))
        .unwrap_or_else(|| ("127.0.0.1".into(), 9092))
}

/// `cluster.id` from `<log dir>/meta.properties`, written on first start.
fn cluster_id(config: &BrokerConfig) -> Result<String, StartError> {
    let dir = &config.log_dirs[0];
    let path = dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_string());
        }
    }
    let id = config.cluster_id.clone().unwrap_or_else(|| {
        let u = troupe::metadata::random_uuid();
        // Kafka's cluster ids are 22 characters of URL-safe base64 of a UUID.
        base64_url(u.as_bytes())
    });
    let text = format!(
        "#Written by troupe on first start\nversion=1\ncluster.id={id}\nnode.id={}\n",
        config.node_id
    );
    std::fs::write(&path, text).map_err(|e| StartError::LogDir(path, e))?;
    Ok(id)
}

fn base64_url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | *b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(A[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(A[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// Start a broker inside the current actix System.
pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, StartError> {
    let config = Arc::new(config);
    for d in &config.log_dirs {
        std::fs::create_dir_all(d).map_err(|e| StartError::LogDir(d.clone(), e))?;
    }
    let cluster_id = cluster_id(&config)?;
    let listener = config
        .listeners
        .first()
        .ok_or_else(|| StartError::Other("no listener configured".into()))?;
    let bind = format!("{}:{}", listener.host, listener.port);
    let std_listener =
        std::net::TcpListener::bind(&bind).map_err(|e| StartError::Bind(bind.clone(), e))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| StartError::Bind(bind.clone(), e))?;
    let addr = std_listener
        .local_addr()
        .map_err(|e| StartError::Bind(bind.clone(), e))?;
    let advertised = match config.advertised_listeners.first() {
        Some(l) if l.port != 0 && !l.host.is_empty() => (l.host.clone(), l.port),
        _ => (addr.ip().to_string(), addr.port()),
    };
    // Port 0 (tests) is only known now: tell clients the real one.
    let mut config_adv = (*config).clone();
    config_adv.advertised_listeners = vec![troupe::config::Listener {
        name: listener.name.clone(),
        host: advertised.0.clone(),
        port: advertised.1,
    }];
    let config = Arc::new(config_adv);

    let storage = Arbiter::new();
    let (routes_tx, routes_rx) = watch::channel(Arc::new(RoutingTable::default()));
    let supervisor = BrokerSupervisor::new(config.clone(), storage.handle(), routes_tx).start();
    let metadata_dir = config.log_dirs[0].join("__cluster_metadata-0");
    let controller = Controller::open(config.clone(), metadata_dir, supervisor.clone())?;
    let image = controller.image();
    let controller = Supervisor::start(move |_| controller);
    supervisor
        .send(ApplyMetadata { image })
        .await
        .map_err(|e| StartError::Other(format!("supervisor: {e}")))?;

    let context = Arc::new(BrokerContext {
        config: config.clone(),
        routes: routes_rx.clone(),
        controller: controller.clone(),
        cluster_id,
        advertised,
        stats: Arc::new(SendStats::default()),
        producer_ids: tokio::sync::Mutex::new((0, 0)),
        request_bytes: Arc::new(tokio::sync::Semaphore::new(request_byte_permits(&config))),
        groups: crate::group::GroupRouter::start(config.clone(), routes_rx.clone()),
    });
    let gateway = Gateway::new(std_listener, context.clone()).start();
    tracing::info!(%addr, node_id = config.node_id, log_dirs = ?config.log_dirs, "broker listening");
    Ok(BrokerHandle {
        addr,
        supervisor,
        gateway,
        controller,
        context,
        storage,
    })
}

impl BrokerHandle {
    /// Graceful stop: stop accepting, let in-flight requests finish, close every log
    /// (flush + checkpoints).
    pub async fn shutdown(self) {
        tracing::info!("broker shutting down");
        let _ = self.gateway.send(StopAccepting).await;
        let _ = self.supervisor.send(StopAll).await;
        self.storage.stop();
        tracing::info!("broker stopped");
    }
}
