//! The log cleaner of one partition (`cleanup.policy=compact`), run by its `Log` actor.
//!
//! Kafka runs a pool of cleaner threads beside the request handlers. Here each log
//! actor checks every `log.cleaner.backoff.ms` whether its log is due for cleaning
//! ([`troupe::storage::Log::plan_clean`]) and, if so, runs the pass in steps of
//! `STEP_BYTES`, yielding to the runtime between steps. Log actors share the storage
//! arbiter (never a socket event loop), so a step bounds how long appends and fetches
//! of *other* partitions wait; this partition's own requests are served between steps
//! too, since a step is one message among the others. The segments the pass planned on
//! are checked at each step, so retention or truncation in between only abandons it.

use super::messages::{Clean, SetHighWatermark};
use super::{LogActor, LogCore};
use actix::prelude::*;
use std::time::Duration;
use troupe::config::BrokerConfig;
use troupe::storage::{CleanOptions, CleanPass, CleanStep, CleanerStats, StorageError};

/// Bytes read per step: about 10-20 ms of work on this machine's disks and CPU.
const STEP_BYTES: u64 = 8 << 20;

/// The broker's `log.cleaner.*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: how often a compacted log checks whether it is due.
    pub backoff: Duration,
    /// `log.cleaner.dedupe.buffer.size`: memory of one pass's key map.
    pub dedupe_buffer_size: usize,
}

impl Default for CleanerSettings {
    /// Kafka's defaults.
    fn default() -> Self {
        CleanerSettings {
            enable: true,
            backoff: Duration::from_millis(15_000),
            dedupe_buffer_size: 128 << 20,
        }
    }
}

impl CleanerSettings {
    /// From the broker config (its values were validated when it was loaded).
    pub fn from_broker(c: &BrokerConfig) -> Self {
        let d = CleanerSettings::default();
        let get = |k: &str| c.get(k).map(|v| v.trim().to_string());
        CleanerSettings {
            enable: get("log.cleaner.enable").map_or(d.enable, |v| v.eq_ignore_ascii_case("true")),
            backoff: get("log.cleaner.backoff.ms")
                .and_then(|v| v.parse().ok())
                .map_or(d.backoff, Duration::from_millis),
            dedupe_buffer_size: get("log.cleaner.dedupe.buffer.size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(d.dedupe_buffer_size),
        }
    }
}

/// What the actor keeps for its cleaner.
pub(super) struct CleanerState {
    pub settings: CleanerSettings,
    /// The pass in progress, if any.
    pass: Option<CleanPass>,
    /// Exclusive bound on the offsets a pass may touch: the high watermark, which the
    /// partition actor moves (shared cell, read before each pass), so a pass never
    /// compacts records a follower truncation could take back.
    pub bound: i64,
    /// The last finished pass, for logs and tests.
    pub last: Option<CleanerStats>,
    /// The `log.cleaner.backoff.ms` tick, cancelled when the log closes: a running
    /// interval would keep a deleted partition's actor alive (and ticking) forever.
    timer: Option<SpawnHandle>,
}

impl Default for CleanerState {
    fn default() -> Self {
        CleanerState {
            settings: CleanerSettings::default(),
            pass: None,
            bound: i64::MAX,
            last: None,
            timer: None,
        }
    }
}

impl LogActor {
    /// `log.cleaner.*` of the broker.
    pub fn with_cleaner(self, settings: CleanerSettings) -> Self {
        self.lock().cleaner.settings = settings;
        self
    }

    /// From `started`: forget any pass of a previous incarnation and tick the cleaner.
    pub(super) fn start_cleaner(&mut self, ctx: &mut Context<Self>) {
        let backoff = {
            let mut core = self.lock();
            core.cleaner.pass = None;
            if !core.cleaner.settings.enable {
                return;
            }
            core.cleaner.settings.backoff
        };
        let timer = ctx.run_interval(backoff, |act, ctx| act.maybe_start_pass(ctx));
        self.lock().cleaner.timer = Some(timer);
    }

    /// From `Close`: no tick and no pass from now on (a pass in progress stops at its
    /// next step, which finds no log).
    pub(super) fn stop_cleaner(&mut self, ctx: &mut Context<Self>) {
        let mut core = self.lock();
        if let Some(timer) = core.cleaner.timer.take() {
            ctx.cancel_future(timer);
        }
        core.cleaner.pass = None;
    }

    fn maybe_start_pass(&mut self, ctx: &mut Context<Self>) {
        if self.lock().plan_pass() {
            self.next_step(ctx);
        }
    }

    /// Run the next step after yielding once, so the arbiter's other actors get a turn.
    fn next_step(&mut self, ctx: &mut Context<Self>) {
        let yielded = actix::fut::wrap_future::<_, Self>(tokio::task::yield_now());
        ctx.spawn(yielded.map(|_, act, ctx| act.step(ctx)));
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        let more = self.lock().clean_step();
        if more {
            self.next_step(ctx);
        }
        self.settle(ctx);
    }
}

impl LogCore {
    /// Options of a pass planned now. Each tracked producer's last batch is taken from
    /// the producer state at this moment: batches appended later lie past it, so the
    /// one kept is at worst no longer the last, never a batch the state still needs gone.
    fn options(&self, now_ms: i64, force: bool) -> CleanOptions {
        CleanOptions {
            max_offset: self.cleaner.bound,
            map_bytes: self.cleaner.settings.dedupe_buffer_size,
            force,
            producer_last_batch: self.producers.last_batch_offsets().collect(),
            ..CleanOptions::new(now_ms)
        }
    }

    /// Plan a pass if none runs and the log is due; true if one starts.
    fn plan_pass(&mut self) -> bool {
        if self.cleaner.pass.is_some() || !self.config.cleanup_compact {
            return false;
        }
        self.sync_high_watermark();
        let opts = self.options(crate::now_ms(), false);
        let Some(log) = self.log.as_ref() else {
            return false;
        };
        match log.plan_clean(opts) {
            Ok(Some(pass)) => {
                self.cleaner.pass = Some(pass);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot plan log cleaning");
                false
            }
        }
    }

    /// One step of the running pass; true if there is more to do.
    fn clean_step(&mut self) -> bool {
        let (Some(log), Some(pass)) = (self.log.as_mut(), self.cleaner.pass.as_mut()) else {
            self.cleaner.pass = None;
            return false;
        };
        match log.clean_step(pass, STEP_BYTES) {
            Ok(CleanStep::More) => true,
            Ok(CleanStep::Done(stats)) => {
                self.cleaner.pass = None;
                self.cleaner.last = Some(stats);
                self.report_size(None);
                false
            }
            Ok(CleanStep::Abandoned) => {
                self.cleaner.pass = None;
                false
            }
            Err(e) => {
                self.cleaner.pass = None;
                tracing::error!(dir = %self.dir.display(), error = %e, "log cleaning failed");
                let _ = self.check(Err::<(), _>(e));
                false
            }
        }
    }
}

impl Handler<Clean> for LogActor {
    type Result = Result<Option<CleanerStats>, StorageError>;
    fn handle(&mut self, msg: Clean, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            core.sync_high_watermark();
            let opts = core.options(msg.now_ms, msg.force);
            let mut running = core.cleaner.pass.take();
            let r = core.log().and_then(|log| {
                if let Some(pass) = running.as_mut() {
                    log.abandon_clean(pass)?;
                }
                log.clean(opts)
            });
            if let Ok(Some(stats)) = &r {
                core.cleaner.last = Some(stats.clone());
                core.report_size(None);
            }
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<SetHighWatermark> for LogActor {
    type Result = ();
    fn handle(&mut self, msg: SetHighWatermark, _ctx: &mut Context<Self>) {
        let mut core = self.lock();
        core.cleaner.bound = msg.high_watermark;
        core.hw.value = Some(msg.high_watermark);
        core.hw.interval_ms = msg.checkpoint_ms;
        if crate::now_ms() - core.hw.written_at_ms >= msg.checkpoint_ms {
            core.checkpoint_high_watermark();
        }
    }
}
