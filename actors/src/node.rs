//! Starting a node by its `process.roles`: a broker (alone or with the controller role,
//! [`crate::broker::start`]) or a controller-only node ([`start_controller_only`]).
//!
//! A controller-only node is what Kafka's `process.roles=controller` is: a voter of the
//! controller quorum with its `Controller` actor, serving only the CONTROLLER listener.
//! It never registers as a broker, hosts no partition and has no client listener (its
//! `metrics.http.listener` serves the controller's metrics, health and status page); it
//! still applies committed metadata to a `BrokerSupervisor` (which starts nothing on a
//! node no replica names), because the active controller answers a request once its own
//! node has applied the records it committed.

use crate::broker::{
    cluster_id, follow_metadata, prepare_log_dirs, start_quorum_controller, BrokerHandle,
    StartError,
};
use crate::controller::Controller;
use crate::supervisor::{BrokerSupervisor, RoutingTable, SetController, StopAll};
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::watch;
use troupe::config::{BrokerConfig, ProcessRole};

/// A running node of either kind.
pub enum NodeHandle {
    Broker(BrokerHandle),
    Controller(ControllerNode),
}

/// A running controller-only node.
pub struct ControllerNode {
    pub controller: Addr<Controller>,
    pub quorum: Arc<crate::controller::raft::QuorumHandle>,
    /// Where `/metrics`, the health checks and the status page are served
    /// (`metrics.http.listener`; `None`: turned off).
    pub metrics_addr: Option<std::net::SocketAddr>,
    ops_http: Option<tokio::task::JoinHandle<()>>,
    supervisor: Addr<BrokerSupervisor>,
    follower: tokio::task::JoinHandle<()>,
    storage: Arbiter,
    /// This node owns its log dirs until the handle is gone (after `shutdown`).
    _log_dir_locks: Vec<troupe::storage::log_dir::LogDirLock>,
}

/// Start whatever `process.roles` asks for.
pub async fn start_node(config: BrokerConfig) -> Result<NodeHandle, StartError> {
    if config.process_roles.contains(&ProcessRole::Broker) {
        crate::broker::start(config).await.map(NodeHandle::Broker)
    } else {
        start_controller_only(config)
            .await
            .map(NodeHandle::Controller)
    }
}

/// `process.roles=controller`: the quorum voter and the Controller actor only.
pub async fn start_controller_only(config: BrokerConfig) -> Result<ControllerNode, StartError> {
    if config.controller_quorum_voters.is_empty() {
        // Config loading refuses this; a config built in code must too.
        return Err(StartError::Other(
            "process.roles=controller needs controller.quorum.voters".into(),
        ));
    }
    let config = Arc::new(config);
    let log_dir_locks = prepare_log_dirs(&config)?;
    let cluster_id = cluster_id(&config)?;
    let ops_listener = crate::metrics::http::bind(&config).await?;
    let storage = Arbiter::new();
    let metrics = crate::metrics::Metrics::controller_only();
    let (routes_tx, routes_rx) = watch::channel(Arc::new(RoutingTable::default()));
    let supervisor = {
        let (config, storage, metrics) = (config.clone(), storage.handle(), metrics.clone());
        Supervisor::start(move |_| BrokerSupervisor::new(config, storage, routes_tx, metrics))
    };
    let metadata_dir = config.log_dirs[0].join("__cluster_metadata-0");
    let active_controller = Arc::new(std::sync::atomic::AtomicI32::new(-1));
    let (controller, quorum) = start_quorum_controller(
        &config,
        &cluster_id,
        metadata_dir,
        supervisor.clone(),
        routes_rx.clone(),
        active_controller.clone(),
        metrics.clone(),
    )
    .await?;
    supervisor.do_send(SetController(controller.clone()));
    let follower = follow_metadata(quorum.images.clone(), supervisor.clone());
    tracing::info!(node_id = config.node_id, %cluster_id, log_dirs = ?config.log_dirs,
        "controller-only node started (no client listener)");
    let metrics_addr = ops_listener.as_ref().map(|(_, a)| *a);
    let ops_http = crate::metrics::http::start(ops_listener, || {
        crate::metrics::scrape::Ops::controller(
            config.clone(),
            cluster_id,
            metrics,
            routes_rx,
            active_controller,
            quorum.clone(),
        )
    });
    Ok(ControllerNode {
        controller,
        quorum,
        metrics_addr,
        ops_http,
        supervisor,
        follower,
        storage,
        _log_dir_locks: log_dir_locks,
    })
}

impl NodeHandle {
    pub async fn shutdown(self) {
        match self {
            NodeHandle::Broker(b) => b.shutdown().await,
            NodeHandle::Controller(c) => c.shutdown().await,
        }
    }
}

impl ControllerNode {
    /// Leave the quorum (the other voters elect a new leader if this one led) and stop.
    pub async fn shutdown(self) {
        tracing::info!("controller-only node shutting down");
        if let Some(h) = &self.ops_http {
            h.abort();
        }
        self.follower.abort();
        let _ = self.supervisor.send(StopAll).await;
        self.quorum.shutdown().await;
        self.storage.stop();
        tracing::info!("controller-only node stopped");
    }
}
