//! `BrokerLifecycle`: this broker's side of Kafka's broker registration.
//!
//! It registers with the active controller (any node forwards there) with a random
//! incarnation id and, as its previous broker epoch, the epoch of the last registration
//! recorded in its log dir under the very lock file it now holds, so the controller can
//! replace a registration this node's earlier process left behind without waiting out
//! its session (a copy of the dir has a lock file of its own and names no epoch:
//! [`troupe::storage::log_dir`]). Each accepted registration is recorded there in turn,
//! with the lock's identity. Then it heartbeats every `broker.heartbeat.interval.ms` with the offset
//! of the last metadata record this broker applied; the controller unfences it once it
//! has caught up. A heartbeat answered STALE_BROKER_EPOCH (the controller fenced and
//! replaced this registration) makes it register again. At shutdown,
//! [`controlled_shutdown`] asks the controller to move this broker's leaderships away
//! before the process stops.

use super::{Controller, Submit};
use crate::supervisor::RoutingTable;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use troupe::config::BrokerConfig;
use troupe::controller::{
    ControllerRequest as Q, ControllerResponse as A, Heartbeat, Registration,
};
use troupe::storage::log_dir::{LockIdentity, RecordedRegistration};

pub struct BrokerLifecycle {
    config: Arc<BrokerConfig>,
    controller: Addr<Controller>,
    routes: watch::Receiver<Arc<RoutingTable>>,
    advertised: (String, u16),
    incarnation: [u8; 16],
    /// The broker epoch of the current registration.
    epoch: Option<i64>,
    /// The broker epoch of the last registration recorded in the log dir: by the
    /// previous process at start (only if recorded under the lock this one holds), by
    /// this one once it registered.
    previous_epoch: Option<i64>,
    /// The log dir lock this process holds, recorded with each registration.
    lock: Option<LockIdentity>,
    /// Whether the controller last said this broker is fenced.
    fenced: bool,
    /// Set once a controlled shutdown started: no more ordinary heartbeats.
    stopping: bool,
    /// A registration or heartbeat is waiting for its answer: the next one is skipped,
    /// not queued (a slow controller must not be answered a backlog of stale ones).
    beating: bool,
}

impl BrokerLifecycle {
    pub fn new(
        config: Arc<BrokerConfig>,
        controller: Addr<Controller>,
        routes: watch::Receiver<Arc<RoutingTable>>,
        advertised: (String, u16),
        lock: Option<LockIdentity>,
    ) -> Self {
        let recorded = RecordedRegistration::read(&config.log_dirs[0], config.node_id);
        let previous_epoch = recorded
            .as_ref()
            .and_then(|r| r.previous_epoch(lock.as_ref()));
        match (&recorded, previous_epoch) {
            (Some(r), Some(_)) => tracing::info!(
                node_id = r.node_id,
                previous_broker_epoch = r.broker_epoch,
                "found the registration of this node's previous process in its log dir"
            ),
            (Some(r), None) => tracing::warn!(
                node_id = r.node_id,
                recorded_broker_epoch = r.broker_epoch,
                "the log dir holds a registration recorded under another lock file (a copied \
                 or moved dir, an older version, or a reboot): not naming it as the previous \
                 broker epoch, so the controller waits for that registration's session to end"
            ),
            (None, _) => {}
        }
        BrokerLifecycle {
            config,
            controller,
            routes,
            advertised,
            incarnation: *troupe::metadata::random_uuid().as_bytes(),
            epoch: None,
            previous_epoch,
            lock,
            fenced: true,
            stopping: false,
            beating: false,
        }
    }
}

impl Actor for BrokerLifecycle {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Beat);
        let every = Duration::from_millis(self.config.broker_heartbeat_interval_ms.max(10));
        ctx.run_interval(every, |_, ctx| ctx.notify(Beat));
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Beat;

impl Handler<Beat> for BrokerLifecycle {
    type Result = ();
    fn handle(&mut self, _: Beat, ctx: &mut Context<Self>) {
        if self.stopping || self.beating {
            return;
        }
        self.beating = true;
        let node_id = self.config.node_id;
        let request = match self.epoch {
            None => Q::RegisterBroker(Registration {
                node_id,
                incarnation_id: self.incarnation,
                host: self.advertised.0.clone(),
                port: self.advertised.1,
                rack: self.config.broker_rack.clone(),
                previous_broker_epoch: self.previous_epoch,
            }),
            Some(epoch) => Q::BrokerHeartbeat(Heartbeat {
                node_id,
                broker_epoch: epoch,
                current_metadata_offset: self.routes.borrow().image.last_offset,
                want_fence: false,
                want_shutdown: false,
            }),
        };
        let sent = self.controller.send(Submit {
            request,
            forwarded: false,
        });
        ctx.spawn(sent.into_actor(self).map(move |answer, act, ctx| {
            act.beating = false;
            match answer {
                Ok(A::Registered(Ok(epoch))) => {
                    tracing::info!(
                        node_id,
                        broker_epoch = epoch,
                        "registered with the controller"
                    );
                    act.epoch = Some(epoch);
                    act.record(epoch);
                    // Heartbeat as soon as this broker applied its own registration:
                    // the controller unfences a caught-up broker.
                    let mut routes = act.routes.clone();
                    let caught_up = async move {
                        let wait = routes.wait_for(|r| r.image.last_offset >= epoch);
                        let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
                    };
                    ctx.spawn(caught_up.into_actor(act).map(|_, _, ctx| ctx.notify(Beat)));
                }
                Ok(A::Registered(Err((code, msg)))) => {
                    tracing::warn!(node_id, code, %msg, "broker registration refused");
                }
                Ok(A::Heartbeat(h)) if h.error != 0 => {
                    tracing::warn!(
                        node_id,
                        code = h.error,
                        "heartbeat refused, registering again"
                    );
                    act.epoch = None;
                    act.fenced = true;
                }
                Ok(A::Heartbeat(h)) => {
                    if h.is_fenced != act.fenced {
                        act.fenced = h.is_fenced;
                        if h.is_fenced {
                            tracing::warn!(node_id, "this broker is fenced");
                        } else {
                            tracing::info!(node_id, "this broker is unfenced and serving");
                        }
                    }
                }
                Ok(other) => tracing::debug!(node_id, answer = ?other, "no controller answer"),
                Err(e) => tracing::warn!(node_id, error = %e, "controller actor unreachable"),
            }
        }));
    }
}

impl BrokerLifecycle {
    /// Record an accepted registration in the log dir, off the event loop. A write that
    /// fails (or a crash before it lands) leaves the earlier epoch there: the next
    /// start is then not recognised at once and waits out the session, as in Kafka.
    fn record(&mut self, epoch: i64) {
        if self.previous_epoch == Some(epoch) {
            return;
        }
        self.previous_epoch = Some(epoch);
        let r = RecordedRegistration {
            node_id: self.config.node_id,
            incarnation_id: self.incarnation,
            broker_epoch: epoch,
            lock: self.lock.clone(),
        };
        let dir = self.config.log_dirs[0].clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = r.write(&dir) {
                tracing::warn!(error = %e, "cannot record the broker registration in the log dir");
            }
        });
    }
}

/// Stop heartbeating; answers the current broker epoch for [`controlled_shutdown`].
#[derive(Message)]
#[rtype(result = "Option<i64>")]
pub struct StopHeartbeats;

impl Handler<StopHeartbeats> for BrokerLifecycle {
    type Result = Option<i64>;
    fn handle(&mut self, _: StopHeartbeats, _ctx: &mut Context<Self>) -> Option<i64> {
        self.stopping = true;
        self.epoch
    }
}

/// Kafka's controlled shutdown: heartbeat with `want_shutdown` until the controller
/// says the leaderships moved (it fences this broker and elects new leaders in one
/// commit), or until `within` passes. Returns whether the controller agreed.
pub async fn controlled_shutdown(
    lifecycle: &Addr<BrokerLifecycle>,
    controller: &Addr<Controller>,
    node_id: i32,
    applied_offset: impl Fn() -> i64,
    within: Duration,
) -> bool {
    let Ok(Some(epoch)) = lifecycle.send(StopHeartbeats).await else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let hb = Heartbeat {
            node_id,
            broker_epoch: epoch,
            current_metadata_offset: applied_offset(),
            want_fence: false,
            want_shutdown: true,
        };
        let sent = controller.send(Submit {
            request: Q::BrokerHeartbeat(hb),
            forwarded: false,
        });
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sent).await {
            Ok(Ok(A::Heartbeat(h))) if h.error == 0 && h.should_shutdown => return true,
            Ok(Ok(A::Heartbeat(h))) if h.error != 0 => return false,
            Err(_) => return false,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}
