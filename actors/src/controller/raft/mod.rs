//! The controller quorum: openraft glue for the metadata log.
//!
//! * [`types`]: the Raft type configuration [`MetaRaft`] (an entry = a [`MetadataBatch`]).
//! * [`log_store`]: the durable Raft log in `<metadata dir>/raft/`.
//! * [`state_machine`]: the [`MetadataImage`] as the state machine, with snapshots.
//! * [`network`]: Raft RPCs over the CONTROLLER listener, client and server.
//!
//! [`start_quorum`] puts them together for a voter; [`start_learner`] for a broker-only
//! node, which follows the committed log as a Raft learner and never votes. The leader
//! adds every node that attached as a learner, and removes one whose broker is fenced
//! once its link has been silent for `broker.session.timeout.ms`; it comes back by
//! attaching again. A write goes to the leader's
//! [`QuorumHandle::write`]; once a majority has it, every voter applies it to its image and
//! publishes the new image on [`QuorumHandle::images`]. The Raft term is the controller
//! epoch: records carry it, and so does the image. Voters call elections through
//! [`election`]'s pre-vote timer, not openraft's own (which is switched off).
//!
//! Runtime: Raft spawns its tasks with `tokio::spawn`, so it runs on whatever tokio runtime
//! calls [`start_quorum`]. On an actix arbiter (a current-thread runtime) every Raft task
//! shares that thread; the file IO still goes to tokio's blocking pool, never the arbiter.

mod election;
pub(crate) mod files;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

pub use log_store::LogStore;
pub use network::{
    serve_controller, serve_controller_with, serve_voter, ControllerReply, ControllerRpc,
    LeaderContact, OtherHandler,
};
pub use state_machine::StateMachine;
pub use types::{MetaRaft, MetadataApplied, MetadataBatch};

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Raft, SnapshotPolicy};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use troupe::metadata::{MetadataImage, MetadataRecord};

/// Why the quorum could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The Raft log or the snapshot in the directory could not be opened.
    #[error("controller storage in {dir}: {source}")]
    Storage { dir: PathBuf, source: io::Error },
    /// The Raft timing settings are inconsistent.
    #[error("controller raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// `node_id` is not in the voter set: it could never vote or lead.
    #[error("node {0} is not one of the controller voters")]
    NotAVoter(u64),
    /// A learner (broker-only node) named in the voter set.
    #[error("node {0} is one of the controller voters, so it cannot be a learner")]
    IsAVoter(u64),
    /// Raft stopped while starting (a storage failure at start-up).
    #[error("controller raft stopped: {0}")]
    Fatal(#[from] Fatal<u64>),
    /// The first membership could not be written.
    #[error("controller quorum initialization: {0}")]
    Initialize(String),
}

/// Why a write was not committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader: send the write to `leader_id` at `leader_addr` (its
    /// CONTROLLER listener). Both are `None` while an election is running: retry later.
    #[error("not the controller leader (leader {leader_id:?} at {leader_addr:?})")]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// Raft has stopped (shut down, or a storage failure).
    #[error("controller quorum stopped: {0}")]
    Stopped(String),
    /// Any other refusal (not expected for metadata writes).
    #[error("controller write refused: {0}")]
    Refused(String),
}

/// What [`start_quorum_with`] can tune.
pub struct QuorumOptions {
    /// Raft timings and snapshot policy; validated at start.
    pub config: openraft::Config,
    /// Answers broker → controller requests arriving as [`ControllerRpc::Other`].
    pub other: Option<OtherHandler>,
    /// This cluster's id: learners that attach saying another one are refused (`None`:
    /// any is taken).
    pub cluster_id: Option<String>,
    /// A learner whose broker is fenced (or unregistered) and that answered no Raft RPC
    /// for this long leaves the membership
    /// ([`troupe::controller::quorum::learners_to_remove`]): `broker.session.timeout.ms`.
    pub learner_removal_ms: i64,
}

/// Kafka's default `broker.session.timeout.ms`.
const DEFAULT_LEARNER_REMOVAL_MS: i64 = 9000;

impl Default for QuorumOptions {
    fn default() -> Self {
        QuorumOptions {
            config: default_config(),
            other: None,
            cluster_id: None,
            learner_removal_ms: DEFAULT_LEARNER_REMOVAL_MS,
        }
    }
}

/// Election timeout 500–1000 ms, heartbeat 100 ms, a snapshot every 1000 entries.
pub fn default_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "troupe-controller".into(),
        election_timeout_min: 500,
        election_timeout_max: 1000,
        heartbeat_interval: 100,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        ..Default::default()
    }
}

/// Raft timings for `controller.quorum.election.timeout.ms` = `election_ms` (taken as at
/// least 100): how long a voter waits without hearing from its leader before it calls an
/// election.
///
/// A follower that knows a leader waits for the leader lease (openraft sets it to
/// `election_timeout_max`) plus its random election timeout (between min and max)
/// before it stands (asks for pre-votes, then calls the election: `election`). With max = E/2 and min = E/4 that is 3E/4 to E, so the setting
/// bounds the wait as documented (min = E/2, max = E waited 1.5 E to 2 E: a second more
/// with the default, on every failover of the controller). Heartbeats go out every E/10
/// (10 to 200 ms), at least two per election timeout.
pub fn config_for_election_timeout(election_ms: u64) -> openraft::Config {
    let e = election_ms.max(100);
    openraft::Config {
        election_timeout_min: e / 4,
        election_timeout_max: e / 2,
        heartbeat_interval: (e / 10).clamp(10, 200),
        ..default_config()
    }
}

/// A running voter of the controller quorum.
pub struct QuorumHandle {
    pub node_id: u64,
    pub raft: Raft<MetaRaft>,
    /// The image after every applied entry (and after a snapshot is installed).
    pub images: watch::Receiver<Arc<MetadataImage>>,
    /// The leader last heard from (as a follower), and when.
    pub leader_contact: Arc<LeaderContact>,
    /// True while this voter has not heard from a leader for its election timeout and
    /// no majority would vote for it (Kafka's "prospective" state): it knows no live
    /// leader, whatever openraft's metrics still name. Always false on a learner.
    prospective: Arc<watch::Sender<bool>>,
    /// A voter's Raft network: how each replica's link fares (DescribeQuorum).
    network: Option<network::Network>,
    /// The CONTROLLER listener: aborting it closes every connection it accepted. Taken by
    /// `shutdown`, which waits for it to be gone.
    server: Mutex<Option<JoinHandle<()>>>,
}

/// Start voter `node_id` of the quorum `voters` (node id → `host:port` of its CONTROLLER
/// listener), storing in `dir` and serving peers on `listener`.
pub async fn start_quorum(
    node_id: u64,
    voters: BTreeMap<u64, String>,
    dir: PathBuf,
    listener: TcpListener,
) -> Result<QuorumHandle, QuorumError> {
    start_quorum_with(node_id, voters, dir, listener, QuorumOptions::default()).await
}

/// [`start_quorum`] with explicit options.
///
/// A pristine node (no vote, no log) initializes the quorum with the static voter set.
/// Every voter does so with the same set, which openraft allows: each writes the same
/// membership entry at log index 0; one that already received it from another voter gets
/// `NotAllowed`, which is fine.
pub async fn start_quorum_with(
    node_id: u64,
    voters: BTreeMap<u64, String>,
    dir: PathBuf,
    listener: TcpListener,
    options: QuorumOptions,
) -> Result<QuorumHandle, QuorumError> {
    if !voters.contains_key(&node_id) {
        return Err(QuorumError::NotAVoter(node_id));
    }
    // Elections are called by the pre-vote timer (`election`), not openraft's own.
    let config = Arc::new(
        openraft::Config {
            enable_elect: false,
            ..options.config
        }
        .validate()?,
    );
    let storage = |source| QuorumError::Storage {
        dir: dir.clone(),
        source,
    };
    let log = LogStore::open(&dir).await.map_err(storage)?;
    let pristine = log.is_pristine();
    let (publish, images) = watch::channel(Arc::new(MetadataImage::new()));
    let sm = StateMachine::open(&dir, publish).await.map_err(storage)?;
    let network = network::Network::new(node_id)
        .with_addresses(voters.clone())
        .with_cluster_id(options.cluster_id.clone());
    let reader = log.reader();
    let raft = Raft::new(node_id, config.clone(), network.clone(), log, sm).await?;
    let contacts = Arc::new(LeaderContact::default());
    let prospective = Arc::new(watch::Sender::new(false));
    let elector = election::Elector {
        prospective: prospective.clone(),
        me: node_id,
        raft: raft.clone(),
        log: reader,
        contacts: contacts.clone(),
        network: network.clone(),
        timings: election::Elector::timings(&config),
    };
    let server = tokio::spawn({
        let (raft, contacts, network) = (raft.clone(), contacts.clone(), network.clone());
        let learners = Learners {
            raft: raft.clone(),
            network: network.clone(),
            me: node_id,
            images: images.clone(),
            removal_ms: options.learner_removal_ms,
        };
        async move {
            tokio::join!(
                serve_voter(
                    listener,
                    raft.clone(),
                    options.other,
                    contacts,
                    Some(network.clone()),
                    Some(elector.answerer()),
                ),
                elector.run(),
                learners.run(),
                track_log_end(raft, network),
            );
        }
    });
    let handle = QuorumHandle {
        node_id,
        raft,
        images,
        leader_contact: contacts,
        prospective,
        network: Some(network),
        server: Mutex::new(Some(server)),
    };
    if pristine {
        let members: BTreeMap<u64, BasicNode> = voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        match handle.raft.initialize(members).await {
            Ok(()) => {}
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => {
                handle.shutdown().await;
                return Err(QuorumError::Initialize(e.to_string()));
            }
        }
    }
    Ok(handle)
}

/// Start `node_id` as a learner of the quorum `voters`: a broker-only node. It keeps
/// connections attached to every voter ([`ControllerRpc::Attach`]); the leader adds it
/// as a learner and replicates the committed metadata log (or a snapshot) over them, so
/// its images follow the log like a voter's, but it never votes and never leads. It
/// needs no listener of its own: as in Kafka, brokers dial the controllers.
/// `cluster_id` goes with every attach: voters of another cluster refuse it.
pub async fn start_learner(
    node_id: u64,
    voters: BTreeMap<u64, String>,
    dir: PathBuf,
    config: openraft::Config,
    cluster_id: Option<String>,
) -> Result<QuorumHandle, QuorumError> {
    if voters.contains_key(&node_id) {
        return Err(QuorumError::IsAVoter(node_id));
    }
    let config = Arc::new(config.validate()?);
    let storage = |source| QuorumError::Storage {
        dir: dir.clone(),
        source,
    };
    let log = LogStore::open(&dir).await.map_err(storage)?;
    let (publish, images) = watch::channel(Arc::new(MetadataImage::new()));
    let sm = StateMachine::open(&dir, publish).await.map_err(storage)?;
    let network = network::Network::new(node_id).with_addresses(voters.clone());
    let raft = Raft::new(node_id, config, network, log, sm).await?;
    let attach = tokio::spawn({
        let raft = raft.clone();
        async move {
            let mut links = tokio::task::JoinSet::new();
            for addr in voters.values() {
                // Two per voter: the leader's replication stream and a snapshot or
                // heartbeat in parallel, without waiting for a re-attach.
                for _ in 0..2 {
                    links.spawn(network::attach_to_voter(
                        node_id,
                        cluster_id.clone(),
                        addr.clone(),
                        raft.clone(),
                    ));
                }
            }
            while links.join_next().await.is_some() {}
        }
    });
    Ok(QuorumHandle {
        node_id,
        raft,
        images,
        server: Mutex::new(Some(attach)),
        // A learner never becomes the controller: no old leader to time a session from.
        leader_contact: Arc::default(),
        prospective: Arc::new(watch::Sender::new(false)),
        network: None,
    })
}

/// Keep the network's idea of this node's log end current (for caught-up times).
async fn track_log_end(raft: Raft<MetaRaft>, network: network::Network) {
    let mut metrics = raft.metrics();
    loop {
        let end = metrics
            .borrow_and_update()
            .last_log_index
            .map_or(0, |i| i + 1);
        network.set_log_end(end);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The leader's care of learners (broker-only nodes).
struct Learners {
    raft: Raft<MetaRaft>,
    network: network::Network,
    me: u64,
    images: watch::Receiver<Arc<MetadataImage>>,
    removal_ms: i64,
}

impl Learners {
    /// On the leader, every 300 ms: make every node that attached connections a learner
    /// (once its membership change commits, the leader replicates the metadata log to
    /// it), and remove the learners that are dead
    /// ([`troupe::controller::quorum::learners_to_remove`]).
    async fn run(self) {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(300));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let (missing, learners): (Vec<u64>, Vec<u64>) = {
                let metrics = self.raft.metrics();
                let m = metrics.borrow();
                if m.current_leader != Some(self.me) {
                    continue;
                }
                let members = m.membership_config.membership();
                let missing = self
                    .network
                    .attached_learners()
                    .into_iter()
                    .filter(|id| members.get_node(id).is_none())
                    .collect();
                (missing, members.learner_ids().collect())
            };
            for id in missing {
                match self.raft.add_learner(id, BasicNode::new(""), false).await {
                    Ok(r) => tracing::info!(
                        learner = id,
                        log_index = r.log_id.index,
                        "broker-only node added as a learner of the metadata log"
                    ),
                    Err(e) => tracing::debug!(learner = id, error = %e, "cannot add learner yet"),
                }
            }
            let now = crate::now_ms();
            let dead = {
                let image = self.images.borrow().clone();
                let links = self.network.lock_links();
                troupe::controller::quorum::learners_to_remove(
                    &image,
                    learners,
                    &links,
                    now,
                    self.removal_ms,
                )
            };
            for id in dead {
                let silent_ms = self.network.lock_links().silent_ms(id, now);
                let remove = openraft::ChangeMembers::RemoveNodes([id].into());
                match self.raft.change_membership(remove, false).await {
                    Ok(_) => {
                        self.network.forget(id);
                        tracing::info!(
                            learner = id,
                            silent_ms,
                            "broker-only node fenced and silent: removed from the learners of the metadata log until it attaches again"
                        );
                    }
                    Err(e) => {
                        tracing::debug!(learner = id, error = %e, "cannot remove learner yet")
                    }
                }
            }
        }
    }
}

impl QuorumHandle {
    /// Commit `records` as one entry; returns its log index, the records' metadata offset.
    /// Only the leader accepts writes: others answer [`WriteError::NotLeader`].
    pub async fn write(&self, records: Vec<MetadataRecord>) -> Result<i64, WriteError> {
        match self.raft.client_write(MetadataBatch { records }).await {
            Ok(resp) => Ok(resp.data.last_offset),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(RaftError::APIError(e)) => Err(WriteError::Refused(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(WriteError::Stopped(f.to_string())),
        }
    }

    /// The leader this node knows of, if any: none while it is prospective (cut off from
    /// its leader past the election timeout, and unable to win an election).
    pub fn leader(&self) -> Option<u64> {
        if self.is_prospective() {
            return None;
        }
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this voter is prospective (see [`QuorumHandle::leader`]).
    pub fn is_prospective(&self) -> bool {
        *self.prospective.borrow()
    }

    /// Changes of [`QuorumHandle::is_prospective`].
    pub fn prospective_changes(&self) -> watch::Receiver<bool> {
        self.prospective.subscribe()
    }

    /// DescribeQuorum's answer, as this node sees the quorum (meaningful on the leader:
    /// only it knows how far each voter's log matches).
    pub fn describe(&self) -> troupe::controller::QuorumState {
        let m = self.raft.metrics().borrow().clone();
        let end = m.last_log_index.map_or(0, |i| i as i64 + 1);
        let mut voters: Vec<(i32, i64)> = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                let leo = if id == m.id {
                    end
                } else {
                    m.replication
                        .as_ref()
                        .and_then(|r| r.get(&id).cloned())
                        .flatten()
                        .map_or(-1, |l| l.index as i64 + 1)
                };
                (id as i32, leo)
            })
            .collect();
        voters.sort_unstable();
        let membership = m.membership_config.membership();
        let observers: Vec<(i32, i64)> = membership
            .learner_ids()
            .map(|id| {
                let leo = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned())
                    .flatten()
                    .map_or(-1, |l| l.index as i64 + 1);
                (id as i32, leo)
            })
            .collect();
        // Kafka's last fetch / last caught-up times: the leader's own are now; the
        // others' come from their answers to its RPCs (-1: none seen by this node).
        let now = crate::now_ms();
        let times = voters
            .iter()
            .chain(&observers)
            .map(|(id, _)| {
                let t = if *id as u64 == m.id {
                    (now, now)
                } else {
                    self.network
                        .as_ref()
                        .and_then(|n| n.link(*id as u64))
                        .map_or((-1, -1), |l| {
                            (
                                l.last_fetch_ms.unwrap_or(-1),
                                l.last_caught_up_ms.unwrap_or(-1),
                            )
                        })
                };
                (*id, t)
            })
            .collect();
        troupe::controller::QuorumState {
            leader_id: self.leader().map_or(-1, |l| l as i32),
            leader_epoch: m.current_term as i32,
            high_watermark: m.last_applied.map_or(0, |l| l.index as i64 + 1),
            voters,
            observers,
            times,
        }
    }

    /// The current Raft term: the controller epoch.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Stop Raft and the CONTROLLER listener (the directory stays, ready to restart from).
    /// On return the listener's port is free again.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node_id = self.node_id, error = %e, "controller raft did not stop cleanly");
        }
        let server = self.take_server();
        if let Some(server) = server {
            server.abort();
            // An aborted task is dropped (closing its sockets) only when its runtime gets
            // to it: on a current-thread runtime, not before this task yields.
            let _ = server.await;
        }
    }

    fn take_server(&self) -> Option<JoinHandle<()>> {
        // Poison is harmless: the value is only ever taken whole.
        self.server.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for QuorumHandle {
    fn drop(&mut self) {
        if let Some(server) = self.take_server() {
            server.abort();
        }
    }
}
