//! Starting and stopping one broker: the wiring of arbiters and actors.
//!
//! ```text
//! main arbiter:    BrokerSupervisor, Gateway (+ one task per connection),
//!                  PartitionLeader per partition, Controller (quorum mode: its Raft
//!                  storage does file IO on blocking threads)
//! storage arbiter: Log per partition (file IO, fsync, mmapped indexes), and the
//!                  single-node Controller (its metadata log appends and fsyncs)
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
use troupe::config::{BrokerConfig, CleanupPolicy, DynamicLayers, TimestampType, TopicConfig};
use troupe::storage::log_dir::LogDirLock;
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
    /// The share of that budget frames still arriving may hold (half): a client that
    /// stops mid-frame keeps what it was granted until it is closed as idle, and
    /// complete requests must still find room.
    pub arriving_bytes: Arc<tokio::sync::Semaphore>,
    /// Finds the coordinator of a consumer group (`crate::group`).
    pub groups: crate::group::GroupRouter,
    /// The active controller's node id as this node knows it (-1: none right now).
    pub controller_id: Arc<std::sync::atomic::AtomicI32>,
    /// Open client connections against `max.connections` / `max.connections.per.ip`.
    pub connections: Arc<crate::net::quota::ConnectionQuotas>,
    /// This broker's metrics (`crate::metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The threads that serve connections (`num.network.threads`).
    pub network: Arc<crate::gateway::NetworkThreads>,
}

impl BrokerContext {
    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes.borrow().clone()
    }

    /// The node id Metadata and DescribeCluster name as the controller: a live broker,
    /// as in Kafka's KRaft mode ([`troupe::controller::brokers::client_controller_id`]).
    pub fn controller_id(&self) -> i32 {
        let active = self
            .controller_id
            .load(std::sync::atomic::Ordering::Relaxed);
        troupe::controller::brokers::client_controller_id(
            &self.routes().image,
            (active >= 0).then_some(active),
        )
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
    /// Cluster mode: the quorum voter and this broker's registration.
    cluster: Option<ClusterParts>,
    /// This node owns its log dirs until the handle is gone (after `shutdown`).
    _log_dir_locks: Vec<LogDirLock>,
    /// Where `/metrics`, the health checks and the status page are served
    /// (`metrics.http.listener`; `None`: turned off).
    pub metrics_addr: Option<SocketAddr>,
    ops_http: Option<tokio::task::JoinHandle<()>>,
}

/// What a node of a cluster runs besides a single node's actors.
struct ClusterParts {
    quorum: Arc<crate::controller::raft::QuorumHandle>,
    lifecycle: Addr<crate::controller::lifecycle::BrokerLifecycle>,
    /// Follows committed metadata into the BrokerSupervisor, one image after another.
    follower: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create log dir {0}: {1}")]
    LogDir(std::path::PathBuf, std::io::Error),
    /// Another process (or another node of this one) holds the log dir's `.lock`.
    #[error("log dir {0} is in use: another process holds its .lock (is a broker already running with this log.dirs?); refusing to start")]
    LogDirLocked(std::path::PathBuf),
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
        preallocate: c.preallocate,
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

/// Permits of the arriving-bytes semaphore: half the request-bytes budget.
pub fn arriving_byte_permits(config: &BrokerConfig) -> usize {
    (request_byte_permits(config) / 2).max(1)
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

/// The cluster id every voter of `voters` derives on its own, so a cluster formed from
/// one static voter list agrees on it without another step (`cluster.id` overrides).
fn derived_cluster_id(config: &BrokerConfig) -> Option<String> {
    if let Some(id) = &config.cluster_id {
        return Some(id.clone());
    }
    if config.controller_quorum_voters.is_empty() {
        return None;
    }
    let mut voters: Vec<String> = config
        .controller_quorum_voters
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host, v.port))
        .collect();
    voters.sort();
    let text = format!("troupe-cluster/{}", voters.join(","));
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let salted = format!("{i}/{text}");
        chunk.copy_from_slice(&crc32c::crc32c(salted.as_bytes()).to_be_bytes());
    }
    Some(base64_url(&bytes))
}

/// `cluster.id` from `<log dir>/meta.properties`, written (atomically) on first start:
/// the configured or voter-derived id, else a random one. A log dir formatted for
/// another node id or another cluster refuses to start, and nothing is overwritten.
pub(crate) fn cluster_id(config: &BrokerConfig) -> Result<String, StartError> {
    let dir = &config.log_dirs[0];
    let path = dir.join("meta.properties");
    let expected = derived_cluster_id(config);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let Some(node) = field("node.id=") {
            if node != config.node_id.to_string() {
                return Err(StartError::Other(format!(
                    "{} was written for node.id={node}, but this node is configured with node.id={}: refusing to start",
                    path.display(),
                    config.node_id
                )));
            }
        }
        if let Some(id) = field("cluster.id=") {
            if let Some(want) = expected.filter(|w| *w != id) {
                return Err(StartError::Other(format!(
                    "{} belongs to cluster.id={id}, but this configuration (cluster.id or controller.quorum.voters) means cluster.id={want}: refusing to start",
                    path.display()
                )));
            }
            return Ok(id);
        }
    }
    let id = expected.unwrap_or_else(|| {
        // Kafka's cluster ids are 22 characters of URL-safe base64 of a UUID.
        base64_url(troupe::metadata::random_uuid().as_bytes())
    });
    let text = format!(
        "#Written by troupe on first start\nversion=1\ncluster.id={id}\nnode.id={}\n",
        config.node_id
    );
    let tmp = dir.join("meta.properties.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| StartError::LogDir(path.clone(), e))?;
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

/// Create the log dirs, lock each (held until the returned locks drop: for the life of
/// the node), and sweep what unfinished deletes left there.
pub(crate) fn prepare_log_dirs(config: &BrokerConfig) -> Result<Vec<LogDirLock>, StartError> {
    let mut locks = Vec::new();
    for d in &config.log_dirs {
        std::fs::create_dir_all(d).map_err(|e| StartError::LogDir(d.clone(), e))?;
        locks.push(LogDirLock::acquire(d).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                StartError::LogDirLocked(d.clone())
            } else {
                StartError::LogDir(d.join(troupe::storage::log_dir::LOCK_FILE), e)
            }
        })?);
        let swept = troupe::storage::identity::sweep_deleted(d);
        if swept > 0 {
            tracing::info!(dir = %d.display(), swept, "removed partition directories left by unfinished deletes");
        }
    }
    Ok(locks)
}

/// Start a broker (`process.roles` with `broker`) inside the current actix System; a
/// controller-only node starts with [`crate::node::start_node`].
pub async fn start(config: BrokerConfig) -> Result<BrokerHandle, StartError> {
    if !config
        .process_roles
        .contains(&troupe::config::ProcessRole::Broker)
    {
        return Err(StartError::Other(
            "process.roles=controller: this node is no broker (start it with start_node)".into(),
        ));
    }
    let config = Arc::new(config);
    let log_dir_locks = prepare_log_dirs(&config)?;
    let cluster_id = cluster_id(&config)?;
    // No setting may be ignored silently: name those that change nothing yet.
    match troupe::config::applied::not_applied_line(&config) {
        (line, true) => tracing::warn!("{line}"),
        (line, false) => tracing::info!("{line}"),
    }
    // Clients are served on the first listener that is not a controller listener (the
    // CONTROLLER one is bound by the quorum, below).
    let listener = config
        .listeners
        .iter()
        .find(|l| !config.controller_listener_names.contains(&l.name))
        .ok_or_else(|| {
            StartError::Other(
                "no client listener: every listener of listeners is in controller.listener.names"
                    .into(),
            )
        })?;
    let bind = listener.bind_address();
    let tcp_listener = crate::net::socket::listen(&bind, config.socket_listen_backlog_size)
        .await
        .map_err(|e| StartError::Bind(listener.to_string(), e))?;
    let addr = tcp_listener
        .local_addr()
        .map_err(|e| StartError::Bind(listener.to_string(), e))?;
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

    let ops_listener = crate::metrics::http::bind(&config).await?;
    let metrics = crate::metrics::Metrics::new();
    let storage = Arbiter::new();
    let (routes_tx, routes_rx) = watch::channel(Arc::new(RoutingTable::default()));
    let supervisor = {
        let (config, storage, metrics) = (config.clone(), storage.handle(), metrics.clone());
        Supervisor::start(move |_| BrokerSupervisor::new(config, storage, routes_tx, metrics))
    };
    let metadata_dir = config.log_dirs[0].join("__cluster_metadata-0");
    let controller_id = Arc::new(std::sync::atomic::AtomicI32::new(config.node_id));
    let (controller, cluster) = if config.controller_quorum_voters.is_empty() {
        let controller = Controller::open(
            config.clone(),
            metadata_dir,
            supervisor.clone(),
            routes_rx.clone(),
        )?
        .with_metrics(metrics.clone());
        let image = controller.image();
        // Its commits append to the metadata log and fsync: blocking file work, which
        // runs on the storage arbiter, not on the main one with the connections.
        let controller = Supervisor::start_in_arbiter(&storage.handle(), move |_| controller);
        supervisor.do_send(crate::supervisor::SetController(controller.clone()));
        supervisor
            .send(ApplyMetadata { image })
            .await
            .map_err(|e| StartError::Other(format!("supervisor: {e}")))?;
        (controller, None)
    } else {
        let (controller, quorum) = start_quorum_controller(
            &config,
            &cluster_id,
            metadata_dir,
            supervisor.clone(),
            routes_rx.clone(),
            controller_id.clone(),
            metrics.clone(),
        )
        .await?;
        supervisor.do_send(crate::supervisor::SetController(controller.clone()));
        let follower = follow_metadata(quorum.images.clone(), supervisor.clone());
        (controller, Some((quorum, follower)))
    };

    let context = Arc::new(BrokerContext {
        config: config.clone(),
        routes: routes_rx.clone(),
        controller: controller.clone(),
        cluster_id,
        advertised: advertised.clone(),
        stats: Arc::new(SendStats::default()),
        producer_ids: tokio::sync::Mutex::new((0, 0)),
        request_bytes: Arc::new(tokio::sync::Semaphore::new(request_byte_permits(&config))),
        arriving_bytes: Arc::new(tokio::sync::Semaphore::new(arriving_byte_permits(&config))),
        groups: crate::group::GroupRouter::start(
            config.clone(),
            routes_rx.clone(),
            metrics.clone(),
        ),
        controller_id,
        connections: crate::net::quota::ConnectionQuotas::new(
            config.max_connections,
            config.max_connections_per_ip,
        ),
        network: Arc::new(crate::gateway::NetworkThreads::start(
            config.num_network_threads,
        )),
        metrics,
    });
    follow_connection_limits(&context, routes_rx.clone());
    let cluster = cluster.map(|(quorum, follower)| {
        let lifecycle = crate::controller::lifecycle::BrokerLifecycle::new(
            config.clone(),
            controller.clone(),
            routes_rx.clone(),
            advertised.clone(),
            // The registration is recorded in the first log dir.
            log_dir_locks.first().and_then(|l| l.identity().cloned()),
        )
        .start();
        ClusterParts {
            quorum,
            lifecycle,
            follower,
        }
    });
    // A restart keeps the same actor, and with it the bound socket.
    let gateway = {
        let context = context.clone();
        Supervisor::start(move |_| Gateway::new(tcp_listener, context))
    };
    tracing::info!(%addr, node_id = config.node_id, log_dirs = ?config.log_dirs,
        cluster = cluster.is_some(), network_threads = config.num_network_threads,
        "broker listening");
    let metrics_addr = ops_listener.as_ref().map(|(_, a)| *a);
    let ops_http = crate::metrics::http::start(ops_listener, || {
        crate::metrics::scrape::Ops::broker(
            context.clone(),
            cluster.as_ref().map(|c| c.quorum.clone()),
        )
    });
    Ok(BrokerHandle {
        addr,
        supervisor,
        gateway,
        controller,
        context,
        storage,
        cluster,
        metrics_addr,
        ops_http,
        _log_dir_locks: log_dir_locks,
    })
}

/// Cluster mode: start this node's place in the controller quorum and the
/// `Controller` actor on top of it, and keep `controller_id` up to date. A voter
/// (`process.roles` with `controller`) binds the CONTROLLER listener; a broker-only node
/// follows the metadata log as a Raft learner attached to the voters
/// ([`crate::controller::raft::start_learner`]) and forwards its requests to the leader.
pub(crate) async fn start_quorum_controller(
    config: &Arc<BrokerConfig>,
    cluster_id: &str,
    metadata_dir: std::path::PathBuf,
    supervisor: Addr<BrokerSupervisor>,
    routes: watch::Receiver<Arc<RoutingTable>>,
    controller_id: Arc<std::sync::atomic::AtomicI32>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(Addr<Controller>, Arc<crate::controller::raft::QuorumHandle>), StartError> {
    use crate::controller::raft;
    let voters: std::collections::BTreeMap<u64, String> = config
        .controller_quorum_voters
        .iter()
        .map(|v| (v.id as u64, format!("{}:{}", v.host, v.port)))
        .collect();
    let raft_config =
        raft::config_for_election_timeout(config.controller_quorum_election_timeout_ms);
    let dir = metadata_dir.join("raft");
    // Forwarded requests reach this node's Controller actor, once it exists.
    let slot: Arc<std::sync::OnceLock<Addr<Controller>>> = Arc::default();
    let quorum = if config.is_controller() {
        start_voter(config, cluster_id, voters, &dir, raft_config, slot.clone()).await?
    } else {
        let quorum = raft::start_learner(
            config.node_id as u64,
            voters,
            dir.clone(),
            raft_config,
            Some(cluster_id.to_string()),
        )
        .await
        .map_err(|e| StartError::Other(format!("controller quorum: {e}")))?;
        tracing::info!(node_id = config.node_id, dir = %dir.display(),
            voters = config.controller_quorum_voters.len(),
            "broker-only node: following the metadata log as a learner of the controller quorum");
        quorum
    };
    let quorum = Arc::new(quorum);
    let controller = {
        let (c, d, s, r, q) = (
            config.clone(),
            metadata_dir,
            supervisor,
            routes,
            quorum.clone(),
        );
        Supervisor::start(move |_| Controller::quorum(c, d, s, r, q).with_metrics(metrics))
    };
    let _ = slot.set(controller.clone());
    // The Raft leader; Metadata and DescribeCluster turn it into a live broker's id.
    let mut metrics = quorum.raft.metrics();
    let mut prospective = quorum.prospective_changes();
    let q = quorum.clone();
    actix_rt::spawn(async move {
        loop {
            let leader = q.leader().map(|l| l as i32).unwrap_or(-1);
            controller_id.store(leader, std::sync::atomic::Ordering::Relaxed);
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                changed = prospective.changed() => if changed.is_err() { return },
            }
        }
    });
    Ok((controller, quorum))
}

/// Bind the CONTROLLER listener and start this node as a voter; requests other nodes
/// forward are answered by the Controller actor put in `slot`.
async fn start_voter(
    config: &Arc<BrokerConfig>,
    cluster_id: &str,
    voters: std::collections::BTreeMap<u64, String>,
    dir: &std::path::Path,
    raft_config: openraft::Config,
    slot: Arc<std::sync::OnceLock<Addr<Controller>>>,
) -> Result<crate::controller::raft::QuorumHandle, StartError> {
    use crate::controller::raft;
    let listener = config
        .listeners
        .iter()
        .find(|l| config.controller_listener_names.contains(&l.name))
        .ok_or_else(|| {
            StartError::Other(format!(
                "controller.listener.names={} names no listener in listeners",
                config.controller_listener_names.join(",")
            ))
        })?;
    let bind = listener.bind_address();
    let tcp = crate::net::socket::listen(&bind, config.socket_listen_backlog_size)
        .await
        .map_err(|e| StartError::Bind(bind.clone(), e))?;
    let handler_slot = slot;
    let other: raft::OtherHandler = Arc::new(move |body: Vec<u8>| {
        let addr = handler_slot.get().cloned();
        Box::pin(async move {
            use troupe::controller::ControllerResponse as A;
            let answer = match (
                addr,
                raft::files::decode::<crate::controller::forward::Forwarded>(&body),
            ) {
                (Some(addr), Ok(f)) => addr
                    .send(crate::controller::Submit {
                        request: f.request,
                        forwarded: true,
                    })
                    .await
                    .unwrap_or(A::NotController { leader: None }),
                (None, _) => A::NotController { leader: None },
                (_, Err(e)) => A::Failed((INVALID_REQUEST_CODE, format!("bad request: {e}"))),
            };
            raft::files::encode(&answer).unwrap_or_default()
        })
    });
    let quorum = raft::start_quorum_with(
        config.node_id as u64,
        voters,
        dir.to_path_buf(),
        tcp,
        raft::QuorumOptions {
            config: raft_config,
            other: Some(other),
            cluster_id: Some(cluster_id.to_string()),
            // A dead broker-only node is fenced after a session without heartbeats and
            // leaves the learners once its Raft link has been silent as long (both
            // clocks start when it dies; `learners_to_remove` says why this bound).
            learner_removal_ms: config.broker_session_timeout_ms.min(i64::MAX as u64) as i64,
        },
    )
    .await
    .map_err(|e| StartError::Other(format!("controller quorum: {e}")))?;
    tracing::info!(node_id = config.node_id, controller_listener = %bind, dir = %dir.display(),
        voters = config.controller_quorum_voters.len(), "controller quorum voter started");
    Ok(quorum)
}

/// Apply every committed image to the BrokerSupervisor, one after another (a newer
/// image replaces any older one not yet applied: each image is complete).
pub(crate) fn follow_metadata(
    mut images: watch::Receiver<Arc<troupe::metadata::MetadataImage>>,
    supervisor: Addr<BrokerSupervisor>,
) -> tokio::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        loop {
            let image = images.borrow_and_update().clone();
            if supervisor.send(ApplyMetadata { image }).await.is_err() {
                return;
            }
            if images.changed().await.is_err() {
                return;
            }
        }
    })
}

/// InvalidRequest, for a forwarded frame that does not decode.
use crate::errors::INVALID_REQUEST as INVALID_REQUEST_CODE;

impl BrokerHandle {
    /// Graceful stop: stop accepting, let in-flight requests finish, close every log
    /// (flush + checkpoints).
    pub async fn shutdown(self) {
        tracing::info!("broker shutting down");
        if let Some(c) = &self.cluster {
            // Controlled shutdown: leadership moves away while this node still serves.
            let routes = self.context.routes.clone();
            let started = std::time::Instant::now();
            let moved = crate::controller::lifecycle::controlled_shutdown(
                &c.lifecycle,
                &self.controller,
                self.context.config.node_id,
                move || routes.borrow().image.last_offset,
                // Past a session the controller fences this broker anyway.
                std::time::Duration::from_millis(
                    self.context.config.broker_session_timeout_ms.min(10_000),
                ),
            )
            .await;
            tracing::info!(
                moved,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown"
            );
        }
        let _ = self.gateway.send(StopAccepting).await;
        if let Some(h) = &self.ops_http {
            h.abort();
        }
        if let Some(c) = &self.cluster {
            c.follower.abort();
        }
        let _ = self.supervisor.send(StopAll).await;
        if let Some(c) = &self.cluster {
            c.quorum.shutdown().await;
        }
        self.context.network.stop();
        self.storage.stop();
        tracing::info!("broker stopped");
    }
}

/// `max.connections` and `max.connections.per.ip` are dynamic broker configs: follow
/// their effective values (per broker, cluster default, static, default) as metadata
/// images arrive.
fn follow_connection_limits(
    ctx: &Arc<BrokerContext>,
    mut routes: watch::Receiver<Arc<RoutingTable>>,
) {
    let ctx = ctx.clone();
    actix_rt::spawn(async move {
        let mut applied = (
            ctx.config.max_connections,
            ctx.config.max_connections_per_ip,
        );
        while routes.changed().await.is_ok() {
            let image = routes.borrow_and_update().image.clone();
            let layers = DynamicLayers::of(&image.broker_configs, ctx.config.node_id);
            let read = |key: &str, fallback: usize| {
                layers
                    .lookup(&ctx.config, key)
                    .and_then(|(v, _)| v.parse::<usize>().ok())
                    .unwrap_or(fallback)
            };
            let now = (
                read("max.connections", ctx.config.max_connections),
                read("max.connections.per.ip", ctx.config.max_connections_per_ip),
            );
            if now != applied {
                tracing::info!(
                    max_connections = now.0,
                    max_connections_per_ip = now.1,
                    "connection limits changed"
                );
                ctx.connections.set_limits(now.0, now.1);
                applied = now;
            }
        }
    });
}
