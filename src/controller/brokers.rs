//! Broker registration, heartbeats and fencing (Kafka's BrokerRegistration and
//! BrokerHeartbeat semantics).
//!
//! * A broker registers at start with a random incarnation id; its broker epoch is
//!   the offset of its registration record. It starts fenced and is unfenced once a
//!   heartbeat shows it has caught up with the metadata log up to its registration.
//! * A second registration of the same node id with another incarnation while the
//!   first one is still heartbeating is refused (DUPLICATE_BROKER_REGISTRATION): two
//!   processes configured with one node id. Once the first has been silent for a
//!   session, the new one replaces it (a restart), and the old one's leaderships move.
//!   A restart that proves the earlier process dead replaces it at once: its
//!   registration names the broker epoch of the registered incarnation as its previous
//!   broker epoch, read from the log dir it holds locked and recorded there under that
//!   same lock file, so a copy of the dir names none (Kafka only learns this from a
//!   clean shutdown, KIP-966; here a kill -9 is covered too).
//! * A broker silent for `broker.session.timeout.ms` is fenced: it leaves every ISR it
//!   is in (unless it is the last member) and its leaderships move. A heartbeat asking
//!   to shut down does the same at once (controlled shutdown) and is told it may stop.
//!   That registration then stays fenced: a heartbeat of the same broker epoch that
//!   was sent before the shutdown began and arrives after it (the broker's ordinary
//!   heartbeat, retried or forwarded on another connection) does not unfence a process
//!   that is stopping, as Kafka's controller keeps a broker in controlled shutdown.

use super::partitions::{on_broker_back, on_broker_gone};
use super::{codes, ApiError, ControllerConfig};
use crate::metadata::{MetadataEntry, MetadataImage, MetadataRecord};
use std::collections::BTreeMap;

/// When each broker was last heard from: the active controller's soft state, not in
/// the metadata log. A controller that becomes active starts every clock anew.
#[derive(Clone, Debug, Default)]
pub struct BrokerLiveness {
    last: BTreeMap<i32, i64>,
    /// Node → broker epoch of the registrations that asked for a controlled shutdown:
    /// they stay fenced until the node registers again.
    shutting_down: BTreeMap<i32, i64>,
}

impl BrokerLiveness {
    /// For a controller that just became active: every broker counts as heard from now.
    pub fn new_active(image: &MetadataImage, now: i64) -> Self {
        Self::new_active_with(image, now, &BTreeMap::new())
    }

    /// [`new_active`](Self::new_active), except for the brokers this node last heard
    /// from at a known earlier time (`heard`, node → ms): their session runs from then.
    ///
    /// The broker heartbeats of the other brokers went to the old controller and are
    /// lost with it, so their clocks start now, as in Kafka. But where a broker shares
    /// its process with a controller voter, a voter message from it (the old leader's
    /// Raft heartbeats) shows that the process was alive then and says nothing of
    /// later. Timing the old controller's broker from its last such message, instead of
    /// from the end of the election that replaced it, fences it (and moves its
    /// leaderships) one session after it fell silent rather than one election plus one
    /// session. A broker that is in fact alive reaches the new controller within a
    /// heartbeat interval of learning of it, well inside its session.
    pub fn new_active_with(image: &MetadataImage, now: i64, heard: &BTreeMap<i32, i64>) -> Self {
        BrokerLiveness {
            shutting_down: BTreeMap::new(),
            last: image
                .brokers
                .keys()
                .map(|b| (*b, heard.get(b).map_or(now, |t| (*t).min(now))))
                .collect(),
        }
    }

    pub fn touch(&mut self, node: i32, now: i64) {
        self.last.insert(node, now);
    }

    fn expired(&self, node: i32, now: i64, session_ms: i64) -> bool {
        self.last.get(&node).is_some_and(|t| now - t > session_ms)
    }
}

/// Apply `records` to a copy of `image`, to decide the next step on top of them.
pub(crate) fn after(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut next = image.clone();
    for r in records {
        next.apply(&MetadataEntry {
            offset: image.last_offset,
            epoch: image.epoch,
            record: r.clone(),
        });
    }
    next
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    pub node_id: i32,
    pub incarnation_id: [u8; 16],
    /// The advertised client listener.
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// The broker epoch of this node's previous registration, as the broker recorded it
    /// in its log dir (Kafka's PreviousBrokerEpoch, BrokerRegistrationRequest v2,
    /// KIP-966; `None` is Kafka's -1). The broker sends it only when it was recorded
    /// under the very lock file it now holds exclusively, so it has outlived the process
    /// that recorded it (a copy of the dir locks another file and sends none).
    /// Absent from registrations encoded before it existed.
    #[serde(default)]
    pub previous_broker_epoch: Option<i64>,
}

/// BrokerRegistration: the records to commit (the broker epoch is the offset they
/// get), or why not.
pub fn register(
    image: &MetadataImage,
    liveness: &mut BrokerLiveness,
    cfg: &ControllerConfig,
    req: &Registration,
    now: i64,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let mut records = Vec::new();
    if let Some(old) = image.brokers.get(&req.node_id) {
        if old.incarnation_id == req.incarnation_id {
            // A retried registration of the same process: nothing changes.
            liveness.touch(req.node_id, now);
            return Ok(Vec::new());
        }
        let silent = liveness.expired(req.node_id, now, cfg.broker_session_timeout_ms)
            || !liveness.last.contains_key(&req.node_id);
        // The new process names the registration it replaces: it holds the log dir
        // that registration was recorded in, so the process behind it is gone.
        let replaces_current = req.previous_broker_epoch == Some(old.epoch);
        if !old.fenced && !silent && !replaces_current {
            return Err((
                codes::DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "Another broker is registered with node id {} and is still heartbeating.",
                    req.node_id
                ),
            ));
        }
        if !old.fenced {
            if replaces_current && !silent {
                tracing::info!(
                    node_id = req.node_id,
                    previous_broker_epoch = old.epoch,
                    "a restarted broker names its previous registration: replacing it now"
                );
            }
            // The earlier incarnation is gone (a restart): its leaderships move first.
            records.extend(on_broker_gone(image, cfg, req.node_id));
        }
    }
    liveness.shutting_down.remove(&req.node_id);
    records.push(MetadataRecord::RegisterBroker {
        node_id: req.node_id,
        host: req.host.clone(),
        port: req.port,
        rack: req.rack.clone(),
        incarnation_id: req.incarnation_id,
        fenced: true,
    });
    liveness.touch(req.node_id, now);
    Ok(records)
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    pub node_id: i32,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker has applied.
    pub current_metadata_offset: i64,
    /// The broker is not ready to serve (still loading): keep it fenced.
    pub want_fence: bool,
    /// Controlled shutdown: move its leaderships away, then let it stop.
    pub want_shutdown: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatAnswer {
    pub error: i16,
    pub is_caught_up: bool,
    /// Whether the broker is fenced once the records of this answer are committed.
    pub is_fenced: bool,
    pub should_shutdown: bool,
}

/// BrokerHeartbeat: the records to commit and the answer (sent after the commit).
pub fn heartbeat(
    image: &MetadataImage,
    liveness: &mut BrokerLiveness,
    cfg: &ControllerConfig,
    hb: &Heartbeat,
    now: i64,
) -> (Vec<MetadataRecord>, HeartbeatAnswer) {
    let Some(b) = image
        .brokers
        .get(&hb.node_id)
        .filter(|b| b.epoch == hb.broker_epoch)
    else {
        return (
            Vec::new(),
            HeartbeatAnswer {
                error: codes::STALE_BROKER_EPOCH,
                is_caught_up: false,
                is_fenced: true,
                should_shutdown: false,
            },
        );
    };
    liveness.touch(hb.node_id, now);
    if hb.want_shutdown {
        liveness.shutting_down.insert(hb.node_id, b.epoch);
    }
    let shutting_down = liveness.shutting_down.get(&hb.node_id) == Some(&b.epoch);
    let caught_up = hb.current_metadata_offset >= b.epoch;
    let mut records = Vec::new();
    let fence = || {
        let mut r = on_broker_gone(image, cfg, hb.node_id);
        r.push(MetadataRecord::FenceBroker {
            node_id: hb.node_id,
            broker_epoch: b.epoch,
        });
        r
    };
    let is_fenced = if shutting_down || hb.want_fence {
        if !b.fenced {
            records = fence();
        }
        true
    } else if b.fenced && caught_up {
        let unfence = MetadataRecord::UnfenceBroker {
            node_id: hb.node_id,
            broker_epoch: b.epoch,
        };
        let next = after(image, std::slice::from_ref(&unfence));
        records.push(unfence);
        records.extend(on_broker_back(&next, cfg, hb.node_id));
        false
    } else {
        b.fenced
    };
    (
        records,
        HeartbeatAnswer {
            error: 0,
            is_caught_up: caught_up,
            is_fenced,
            should_shutdown: hb.want_shutdown,
        },
    )
}

/// The periodic check: fence every unfenced broker silent for a whole session.
/// Brokers are fenced one after another, each decision on top of the previous ones.
pub fn fence_expired(
    image: &MetadataImage,
    liveness: &BrokerLiveness,
    cfg: &ControllerConfig,
    now: i64,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let mut current = image.clone();
    let expired: Vec<(i32, i64)> = image
        .live_brokers()
        .filter(|b| liveness.expired(b.node_id, now, cfg.broker_session_timeout_ms))
        .map(|b| (b.node_id, b.epoch))
        .collect();
    for (node, epoch) in expired {
        tracing::info!(node, "broker missed heartbeats for a session, fencing it");
        let mut step = on_broker_gone(&current, cfg, node);
        step.push(MetadataRecord::FenceBroker {
            node_id: node,
            broker_epoch: epoch,
        });
        current = after(&current, &step);
        records.extend(step);
    }
    records
}

/// The controller id Metadata and DescribeCluster give clients.
///
/// Clients can only reach brokers, so in KRaft Kafka answers a live broker there, not
/// the active controller (a controller-only node has no client listener); whichever
/// broker a client sends an admin request to forwards it to the active controller.
/// Kafka picks a random live broker per request; Troupe keeps the answer stable and
/// meaningful: the active controller itself when it is a live broker (a combined
/// node), else the live broker with the lowest id. While no controller is elected it
/// answers -1 (none), as before there was a controller-only node, so a client polling
/// for a new controller after a failover does not take a stand-in for it.
pub fn client_controller_id(image: &MetadataImage, active_controller: Option<i32>) -> i32 {
    match active_controller {
        None => -1,
        Some(id) if image.is_live(id) => id,
        Some(_) => image.live_brokers().map(|b| b.node_id).min().unwrap_or(-1),
    }
}
