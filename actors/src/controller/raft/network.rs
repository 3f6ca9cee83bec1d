//! The CONTROLLER listener's protocol: Raft RPCs between voters over TCP.
//!
//! Each request and each response is one frame: a `u32` big-endian body length, then the
//! body, an rmp-serde (named fields) [`ControllerRpc`] or [`ControllerReply`]. A connection
//! carries one request at a time and the server answers in order. A frame over
//! [`MAX_FRAME`] or a body that does not decode closes the connection.
//!
//! A broker-only node has no listener controllers could dial: it sends
//! [`ControllerRpc::Attach`] on connections it opens to every voter, and after the
//! `Attached(Ok)` reply the voter keeps that connection in its peer pool and becomes the
//! client on it, so the leader replicates the metadata log to this Raft learner over it.
//! The Attach names the learner's cluster id: a voter refuses one of another cluster, or
//! one under a voter's id (logging each refusal once).
//!
//! Every RPC's outcome goes to the [`ReplicaLinks`] table: DescribeQuorum's last fetch
//! and last caught-up times come from it, the leader removes dead learners by it, and a
//! link that fails or recovers is logged once per change (openraft's own per-retry lines
//! are off by default: `crate::logging`).
//!
//! Broker → controller requests (registration, heartbeats, forwarded admin requests) go
//! through [`ControllerRpc::Other`] to the [`OtherHandler`] given to
//! [`serve_controller_with`], until they earn variants of their own (add them at the end
//! of both enums: variants are encoded by index, so they are never reordered).

use super::files::{decode, encode};
use super::types::{MetaRaft, NodeId};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use troupe::controller::prevote::LogPosition;
use troupe::controller::quorum::{attach_refusal, LinkChange, ReplicaLink, ReplicaLinks};

/// The largest frame either side accepts (snapshot chunks are 3 MiB by default).
pub const MAX_FRAME: usize = 64 << 20;
/// The longest a connection attempt may take, whatever the RPC's own deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept per target: enough for the replication and snapshot streams.
const IDLE_PER_TARGET: usize = 2;

/// A request to a controller.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerRpc {
    AppendEntries(AppendEntriesRequest<MetaRaft>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<MetaRaft>),
    /// A request for the [`OtherHandler`], encoded however it likes.
    Other(Vec<u8>),
    /// A broker-only node (a Raft learner) offers this connection for the voter to send
    /// it Raft RPCs: after an `Attached(Ok)` reply the roles on the connection swap.
    Attach {
        node_id: NodeId,
        /// The cluster the learner's log dir was formatted for: a voter of another
        /// cluster refuses it. Absent (`None`) in the encoding of older nodes.
        #[serde(default)]
        cluster_id: Option<String>,
    },
    /// A voter asks whether this voter would vote for it (pre-vote,
    /// [`troupe::controller::prevote`]): nothing changes on the receiver.
    PreVote {
        candidate: NodeId,
        /// The candidate's last log entry: (term, index).
        last_log: LogPosition,
    },
}

/// The answer to a [`ControllerRpc`], same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum ControllerReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Other(Vec<u8>),
    /// The server could not handle the request at all (e.g. no handler for `Other`).
    Error(String),
    /// The answer to [`ControllerRpc::Attach`]: refused when the node id is a voter's
    /// or the cluster id another cluster's.
    Attached(Result<(), String>),
    /// The answer to [`ControllerRpc::PreVote`]: `None` grants, else why not.
    PreVote(Option<String>),
}

/// Answers [`ControllerRpc::PreVote`] (candidate, its last log entry): `None` grants.
pub type PreVoteAnswer = Arc<dyn Fn(NodeId, LogPosition) -> Option<String> + Send + Sync>;

/// Answers [`ControllerRpc::Other`] requests.
pub type OtherHandler =
    Arc<dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> + Send + Sync>;

/// Read one frame; `None` on a clean end of stream between frames.
pub async fn read_frame<S: AsyncReadExt + Unpin>(s: &mut S) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over the {MAX_FRAME} limit"),
        ));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(Some(body))
}

pub async fn write_frame<S: AsyncWriteExt + Unpin>(s: &mut S, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes over the {MAX_FRAME} limit", body.len()),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    s.write_all(&frame).await?;
    s.flush().await
}

/// The leader this node last received AppendEntries or InstallSnapshot from, and when:
/// evidence that the leader's process was alive then. Leaders send these without pause
/// (heartbeats), so when this node becomes the leader in turn, the time of the last one
/// is when the old leader fell silent, as far as this node knows. The new active
/// controller times the old one's broker session from it
/// ([`troupe::controller::BrokerLiveness::new_active_with`]).
#[derive(Debug, Default)]
pub struct LeaderContact {
    last: Mutex<Option<(NodeId, std::time::Instant)>>,
    /// When this node last *accepted* AppendEntries or InstallSnapshot (the sender's
    /// vote was current): the election timer and pre-vote answers count from it.
    accepted: Mutex<Option<std::time::Instant>>,
}

impl LeaderContact {
    fn heard(&self, leader: Option<NodeId>) {
        if let Some(leader) = leader {
            // Poison is harmless: the value is a plain pair, written whole.
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some((leader, std::time::Instant::now()));
        }
    }

    fn accepted(&self) {
        *self.accepted.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// How long ago this node last accepted a leader's AppendEntries or InstallSnapshot
    /// (`None`: not since it started).
    pub fn since_accepted(&self) -> Option<Duration> {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|t| t.elapsed())
    }

    /// The last leader heard from and how long ago, forgotten once taken: a later
    /// activation must not time that node from a message of an older term.
    pub fn take(&self) -> Option<(NodeId, Duration)> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.take().map(|(n, t)| (n, t.elapsed()))
    }
}

/// Serve Raft RPCs on `listener` until the task is dropped or aborted (which also closes
/// every connection it accepted).
pub async fn serve_controller(listener: TcpListener, raft: Raft<MetaRaft>) {
    serve_controller_with(listener, raft, None, Arc::default()).await
}

/// [`serve_controller`], answering [`ControllerRpc::Other`] with `other` and noting in
/// `contacts` which leader was last heard from, and when.
pub async fn serve_controller_with(
    listener: TcpListener,
    raft: Raft<MetaRaft>,
    other: Option<OtherHandler>,
    contacts: Arc<LeaderContact>,
) {
    serve_voter(listener, raft, other, contacts, None, None).await
}

/// [`serve_controller_with`], also taking connections learners attach into `network`'s
/// pool (without it, [`ControllerRpc::Attach`] is refused).
pub async fn serve_voter(
    listener: TcpListener,
    raft: Raft<MetaRaft>,
    other: Option<OtherHandler>,
    contacts: Arc<LeaderContact>,
    network: Option<Network>,
    prevote: Option<PreVoteAnswer>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_connection(
                        stream,
                        raft.clone(),
                        other.clone(),
                        network.clone(),
                        contacts.clone(),
                        prevote.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "controller listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Answer Raft RPCs arriving on `stream` until it closes. A learner runs this on the
/// connections it attached to voters; a voter on every connection it accepted.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    raft: Raft<MetaRaft>,
    other: Option<OtherHandler>,
    network: Option<Network>,
    contacts: Arc<LeaderContact>,
    prevote: Option<PreVoteAnswer>,
) {
    let _ = stream.set_nodelay(true);
    loop {
        let body = match read_frame(&mut stream).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "controller connection: bad frame, closing");
                return;
            }
        };
        let request: ControllerRpc = match decode(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "controller connection: undecodable request, closing");
                return;
            }
        };
        let reply = match request {
            ControllerRpc::AppendEntries(req) => {
                contacts.heard(req.vote.leader_id().voted_for());
                let answer = raft.append_entries(req).await;
                if matches!(&answer, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                    contacts.accepted();
                }
                ControllerReply::AppendEntries(answer)
            }
            ControllerRpc::Vote(req) => ControllerReply::Vote(raft.vote(req).await),
            ControllerRpc::InstallSnapshot(req) => {
                contacts.heard(req.vote.leader_id().voted_for());
                let vote = req.vote;
                let answer = raft.install_snapshot(req).await;
                if matches!(&answer, Ok(r) if r.vote == vote) {
                    contacts.accepted();
                }
                ControllerReply::InstallSnapshot(answer)
            }
            ControllerRpc::PreVote {
                candidate,
                last_log,
            } => ControllerReply::PreVote(match &prevote {
                Some(answer) => answer(candidate, last_log),
                None => Some("not a controller voter".into()),
            }),
            ControllerRpc::Other(req) => match &other {
                Some(handler) => ControllerReply::Other(handler(req).await),
                None => ControllerReply::Error("no handler for this request".into()),
            },
            ControllerRpc::Attach {
                node_id,
                cluster_id,
            } => {
                let refusal = match &network {
                    None => Some("this node takes no learners".to_string()),
                    Some(n) => n.attach_refusal(node_id, cluster_id),
                };
                let reply = ControllerReply::Attached(refusal.clone().map_or(Ok(()), Err));
                let written = match encode(&reply) {
                    Ok(bytes) => write_frame(&mut stream, &bytes).await,
                    Err(e) => Err(e),
                };
                if let (Ok(()), None, Some(n)) = (written, refusal, &network) {
                    n.attach(node_id, stream);
                }
                return;
            }
        };
        let written = match encode(&reply) {
            Ok(bytes) => write_frame(&mut stream, &bytes).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::debug!(error = %e, "controller connection: cannot answer, closing");
            return;
        }
    }
}

/// Idle connections to each target, shared by every client the factory makes: openraft
/// asks for a new client per election and per replication stream.
type Pool = Arc<Mutex<HashMap<NodeId, Vec<TcpStream>>>>;

/// openraft's [`RaftNetworkFactory`] for the controller quorum.
#[derive(Clone)]
pub struct Network {
    /// This node, named in timeout errors.
    node_id: NodeId,
    pool: Pool,
    /// Voter addresses from this node's own configuration: they win over the
    /// addresses in the replicated membership, which are those of whichever voter
    /// wrote it (the static voter list is each node's local setting, as in Kafka).
    addresses: Arc<HashMap<NodeId, String>>,
    /// This quorum's cluster id: learners of another cluster are refused (`None`: any).
    cluster_id: Option<Arc<str>>,
    /// How each replica's link has fared (shared by every client the factory makes):
    /// DescribeQuorum's times, which learners are dead, link changes to log once.
    links: Arc<Mutex<ReplicaLinks>>,
    /// The end of this node's log (last index + 1), kept up to date by the quorum:
    /// an answer covering it shows the replica caught up.
    log_end: Arc<AtomicU64>,
    /// Refused attaches already logged (node, cluster id): a refused learner retries
    /// every second, the log says it once.
    refusals_logged: Arc<Mutex<HashSet<RefusedAttach>>>,
}

impl Network {
    pub fn new(node_id: NodeId) -> Self {
        Network {
            node_id,
            pool: Pool::default(),
            addresses: Arc::default(),
            cluster_id: None,
            links: Arc::default(),
            log_end: Arc::default(),
            refusals_logged: Arc::default(),
        }
    }

    /// Refuse learners that say they belong to another cluster.
    pub fn with_cluster_id(mut self, cluster_id: Option<String>) -> Self {
        self.cluster_id = cluster_id.map(Arc::from);
        self
    }

    /// The end of this node's log (last index + 1) changed.
    pub fn set_log_end(&self, end: u64) {
        self.log_end.store(end, Ordering::Relaxed);
    }

    /// What is known of `node`'s link.
    pub fn link(&self, node: NodeId) -> Option<ReplicaLink> {
        self.lock_links().get(node).copied()
    }

    /// The link table (poison is harmless: every update is a whole small step).
    pub(crate) fn lock_links(&self) -> std::sync::MutexGuard<'_, ReplicaLinks> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `node` left the membership: drop its connections and what was known of its
    /// link; it is added again when it attaches anew.
    pub fn forget(&self, node: NodeId) {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&node);
        self.lock_links().forget(node);
    }

    /// Why `node_id` may not attach (logged once per node and cluster id), or `None`.
    fn attach_refusal(&self, node_id: NodeId, cluster_id: Option<String>) -> Option<String> {
        let refusal = attach_refusal(
            node_id,
            self.addresses.contains_key(&node_id),
            self.cluster_id.as_deref(),
            cluster_id.as_deref(),
        )?;
        let first = {
            let mut logged = self
                .refusals_logged
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Bounded: a peer making up cluster ids must not grow it without end.
            logged.len() < MAX_REFUSALS_LOGGED && logged.insert((node_id, cluster_id))
        };
        if first {
            tracing::warn!(node_id, reason = %refusal, "refused a learner's attach on the controller listener");
        }
        Some(refusal)
    }

    /// Reach voters at these addresses (node id → `host:port`).
    pub fn with_addresses(mut self, addresses: impl IntoIterator<Item = (NodeId, String)>) -> Self {
        self.addresses = Arc::new(addresses.into_iter().collect());
        self
    }
}

impl Network {
    /// Ask voter `target` for a pre-vote: `Some(None)` granted, `Some(Some(why))`
    /// refused, `None` no answer within `ttl`.
    pub async fn prevote(
        &self,
        target: NodeId,
        last_log: LogPosition,
        ttl: Duration,
    ) -> Option<Option<String>> {
        let client = PeerClient {
            from: self.node_id,
            target,
            addr: self.addresses.get(&target)?.clone(),
            pool: self.pool.clone(),
            links: self.links.clone(),
            log_end: self.log_end.clone(),
        };
        let request = ControllerRpc::PreVote {
            candidate: self.node_id,
            last_log,
        };
        match client.call(&request, ttl).await {
            Ok(ControllerReply::PreVote(answer)) => Some(answer),
            Ok(_) => Some(Some("the voter does not know pre-vote".into())),
            Err(_) => None,
        }
    }
}

/// A refused attach, as logged: the node id and the cluster id it gave.
type RefusedAttach = (NodeId, Option<String>);

/// Distinct refused attaches (node, cluster id) logged; later ones are refused quietly.
const MAX_REFUSALS_LOGGED: usize = 1024;

/// Connections kept per learner: what it attached, newest first, the oldest dropped.
const ATTACHED_PER_LEARNER: usize = 4;

impl Network {
    /// Keep a connection a learner attached: RPCs to it go over such connections only
    /// (a broker-only node has no listener of its own for controllers to dial).
    fn attach(&self, node_id: NodeId, conn: TcpStream) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let conns = pool.entry(node_id).or_default();
        conns.push(conn);
        if conns.len() > ATTACHED_PER_LEARNER {
            conns.remove(0);
        }
        drop(pool);
        self.lock_links().on_attach(node_id, crate::now_ms());
    }

    /// Nodes that attached connections and are not voters: learners to add.
    pub fn attached_learners(&self) -> Vec<NodeId> {
        let pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .filter(|(id, conns)| !conns.is_empty() && !self.addresses.contains_key(id))
            .map(|(id, _)| *id)
            .collect()
    }
}

impl RaftNetworkFactory<MetaRaft> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            from: self.node_id,
            target,
            addr: self
                .addresses
                .get(&target)
                .cloned()
                .unwrap_or_else(|| node.addr.clone()),
            pool: self.pool.clone(),
            links: self.links.clone(),
            log_end: self.log_end.clone(),
        }
    }
}

/// Sends RPCs to one voter, borrowing a pooled connection for each.
pub struct PeerClient {
    from: NodeId,
    target: NodeId,
    addr: String,
    pool: Pool,
    links: Arc<Mutex<ReplicaLinks>>,
    log_end: Arc<AtomicU64>,
}

/// Why an RPC got no reply.
enum CallError {
    /// Could not connect: the target is down or partitioned, back off.
    Unreachable(io::Error),
    /// The connection failed mid-RPC, or the reply made no sense: retry on a new one.
    Network(io::Error),
    /// No reply within the RPC's deadline.
    Timeout,
}

impl PeerClient {
    /// Note an RPC's outcome in the link table, and log when the link changes (openraft
    /// logs every failed retry; its replication modules are quiet by default, see
    /// `log_filter`, so this is the one line an operator sees per change).
    fn note(&self, answered: Result<Option<u64>, &dyn std::fmt::Display>, log_end: u64) {
        let now = crate::now_ms();
        let change = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            match answered {
                Ok(end) => links.on_reply(self.target, now, end, log_end),
                Err(_) => links.on_failure(self.target, now),
            }
        };
        match (change, answered) {
            (Some(LinkChange::Lost), Err(e)) => tracing::warn!(
                from = self.from,
                target = self.target,
                error = %e,
                "controller quorum: lost the link to a replica of the metadata log (retrying quietly)"
            ),
            (Some(LinkChange::Back { silent_ms }), _) => tracing::info!(
                from = self.from,
                target = self.target,
                silent_ms,
                "controller quorum: a replica of the metadata log answers again"
            ),
            _ => {}
        }
    }

    fn take_idle(&self) -> Option<TcpStream> {
        // Poison is harmless: the map only ever gains or loses whole connections.
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.target)?
            .pop()
    }

    fn put_idle(&self, conn: TcpStream) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.entry(self.target).or_default();
        if idle.len() < IDLE_PER_TARGET {
            idle.push(conn);
        }
    }

    async fn call(
        &self,
        request: &ControllerRpc,
        ttl: Duration,
    ) -> Result<ControllerReply, CallError> {
        let body = encode(request).map_err(CallError::Network)?;
        let deadline = Instant::now() + ttl;
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            // A learner is reached only over connections it attached.
            None if self.addr.is_empty() => {
                return Err(CallError::Unreachable(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("learner {} has no connection attached", self.target),
                )))
            }
            None => {
                let connect =
                    tokio::time::timeout(ttl.min(CONNECT_TIMEOUT), TcpStream::connect(&self.addr));
                match connect.await {
                    Ok(Ok(conn)) => {
                        let _ = conn.set_nodelay(true);
                        conn
                    }
                    Ok(Err(e)) => return Err(CallError::Unreachable(e)),
                    Err(_) => {
                        return Err(CallError::Unreachable(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connect to {} timed out", self.addr),
                        )))
                    }
                }
            }
        };
        let exchange = async {
            write_frame(&mut conn, &body).await?;
            match read_frame(&mut conn).await? {
                Some(reply) => decode::<ControllerReply>(&reply),
                None => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                )),
            }
        };
        // A late reply would desynchronise the connection: on any failure it is dropped.
        let result = tokio::time::timeout_at(deadline, exchange).await;
        match result {
            Ok(Ok(reply)) => {
                self.put_idle(conn);
                Ok(reply)
            }
            Ok(Err(e)) => Err(CallError::Network(e)),
            Err(_) => Err(CallError::Timeout),
        }
    }

    fn to_rpc_error<E: std::error::Error>(
        &self,
        e: CallError,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.target,
                timeout: ttl,
            }),
        }
    }

    fn unexpected<E: std::error::Error>(
        &self,
        reply: ControllerReply,
    ) -> RPCError<NodeId, BasicNode, E> {
        let msg = match reply {
            ControllerReply::Error(msg) => msg,
            other => format!("unexpected reply from node {}: {other:?}", self.target),
        };
        RPCError::Network(NetworkError::new(&io::Error::other(msg)))
    }
}

impl RaftNetwork<MetaRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetaRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let ttl = option.hard_ttl();
        let log_end = self.log_end.load(Ordering::Relaxed);
        // What the replica holds once it accepts: up to the last entry sent, or up to
        // the entry before them (a heartbeat sends none).
        let sent_end = rpc
            .entries
            .last()
            .map(|e| e.log_id.index + 1)
            .or(rpc.prev_log_id.map(|l| l.index + 1))
            .unwrap_or(0);
        let reply = self.call(&ControllerRpc::AppendEntries(rpc), ttl).await;
        let result = match reply {
            Err(e) => Err(self.to_rpc_error(e, RPCTypes::AppendEntries, ttl)),
            Ok(ControllerReply::AppendEntries(r)) => {
                r.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(other) => Err(self.unexpected(other)),
        };
        match &result {
            Ok(AppendEntriesResponse::Success) => self.note(Ok(Some(sent_end)), log_end),
            Ok(AppendEntriesResponse::PartialSuccess(matching)) => {
                self.note(Ok(Some(matching.map_or(0, |l| l.index + 1))), log_end)
            }
            Ok(_) => self.note(Ok(None), log_end),
            Err(e) => self.note(Err(e as &dyn std::fmt::Display), log_end),
        }
        result
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetaRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let ttl = option.hard_ttl();
        let reply = self.call(&ControllerRpc::InstallSnapshot(rpc), ttl).await;
        let result = match reply {
            Err(e) => Err(self.to_rpc_error(e, RPCTypes::InstallSnapshot, ttl)),
            Ok(ControllerReply::InstallSnapshot(r)) => {
                r.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(other) => Err(self.unexpected(other)),
        };
        match &result {
            Ok(_) => self.note(Ok(None), 0),
            Err(e) => self.note(Err(e as &dyn std::fmt::Display), 0),
        }
        result
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let ttl = option.hard_ttl();
        let reply = self.call(&ControllerRpc::Vote(rpc), ttl).await;
        let result = match reply {
            Err(e) => Err(self.to_rpc_error(e, RPCTypes::Vote, ttl)),
            Ok(ControllerReply::Vote(r)) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            Ok(other) => Err(self.unexpected(other)),
        };
        match &result {
            Ok(_) => self.note(Ok(None), 0),
            Err(e) => self.note(Err(e as &dyn std::fmt::Display), 0),
        }
        result
    }
}

/// The learner's side of [`ControllerRpc::Attach`]: keep one connection attached to the
/// voter at `addr` and answer the Raft RPCs it sends over it; attach again when it
/// closes or cannot be made (backing off up to a second). Runs until aborted.
pub async fn attach_to_voter(
    node_id: NodeId,
    cluster_id: Option<String>,
    addr: String,
    raft: Raft<MetaRaft>,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(100);
    let mut backoff = FIRST_BACKOFF;
    let mut refused_logged = false;
    loop {
        match attach_once(node_id, cluster_id.clone(), &addr).await {
            Ok(stream) => {
                backoff = FIRST_BACKOFF;
                serve_connection(stream, raft.clone(), None, None, Arc::default(), None).await;
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && !refused_logged => {
                refused_logged = true;
                tracing::warn!(%addr, error = %e, "controller refused this node as a learner");
            }
            Err(e) => tracing::debug!(%addr, error = %e, "cannot attach to a controller"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn attach_once(
    node_id: NodeId,
    cluster_id: Option<String>,
    addr: &str,
) -> io::Result<TcpStream> {
    let work = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let attach = ControllerRpc::Attach {
            node_id,
            cluster_id,
        };
        write_frame(&mut s, &encode(&attach)?).await?;
        let frame = read_frame(&mut s)
            .await?
            .ok_or_else(|| io::Error::other("controller closed the connection"))?;
        match decode::<ControllerReply>(&frame)? {
            ControllerReply::Attached(Ok(())) => Ok(s),
            ControllerReply::Attached(Err(e)) => {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, e))
            }
            other => Err(io::Error::other(format!(
                "unexpected reply to Attach: {other:?}"
            ))),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT * 2, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "attach timed out"))?
}
