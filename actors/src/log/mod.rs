//! The `Log` actor: owns one partition's [`troupe::storage::Log`] (segment files and
//! mmapped indexes) and serves appends and reads as messages.
//!
//! Log actors run on the storage arbiter, a thread of their own, so that fsyncs,
//! segment rolls, recovery, cleaning and cold reads never stall the event loop that
//! serves sockets. Handlers are synchronous, which also keeps appends strictly in
//! mailbox order (only `Close` hands its work to the blocking pool, and the actor is
//! offline from then on). The one exception: a leader append that only writes is made
//! by the partition actor itself, on the request's thread, through the [`LogPort`]
//! (the actor's state is behind a mutex the port only tries), and only once every
//! message it sent before is handled, so the order is still the order of the calls. A fatal
//! storage error stops the actor; its `Supervisor` restarts it and it reopens the log
//! from disk (recovering a torn tail if there is one), retrying with backoff for as
//! long as the open fails.
//!
//! A full disk (`ENOSPC`) is not fatal: the append that hit it is cut back and answered
//! `KAFKA_STORAGE_ERROR`, the log stays open for reads, and the next append simply
//! tries again, so the partition is writable again as soon as space is freed. The
//! condition is logged once when it starts and once when it ends ([`DiskFull`]).

mod cleaner;
pub mod messages;
mod producers;
#[cfg(test)]
mod tests;

pub use cleaner::CleanerSettings;

use actix::prelude::*;
use messages::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;
use troupe::storage::{Log, LogConfig, StorageError};

/// Closes (fsync, index trim, checkpoints) running at once on tokio's blocking pool. A
/// broker shutting down closes every partition together; one by one on the storage
/// thread, 1,000 partitions took 0.7-17 s, while concurrent fsyncs share journal
/// commits. Bounded so a large broker does not start a thread per partition.
const PARALLEL_CLOSES: usize = 16;
static CLOSE_SLOTS: Semaphore = Semaphore::const_new(PARALLEL_CLOSES);

/// The actor is a thin shell: its state is a [`LogCore`] behind a mutex, shared with
/// the partition's [`LogPort`]. The storage thread takes it for every message; the
/// partition takes it (without waiting) for appends that only write, on its own thread
/// (see [`LogPort::try_append`]).
pub struct LogActor {
    core: Arc<Mutex<LogCore>>,
}

/// Everything a log actor keeps; handlers lock it, do their work, and leave a restart
/// request in `restart` for the actor to act on.
pub struct LogCore {
    dir: PathBuf,
    config: LogConfig,
    /// `None` while closed or after an open failed; requests then get a storage error.
    log: Option<Log>,
    /// Failed opens in a row and the last error: the next `GetOffsets` (which the
    /// partition leader retries with backoff) tries again, so a partition that could
    /// not open (e.g. out of file descriptors) comes back once the cause is gone.
    open_failures: u32,
    open_error: Option<String>,
    /// When the next access may try to open a log whose open failed: the partition
    /// leader's `GetOffsets` retries too, but a log that fails to reopen after a
    /// restart must come back by itself, without waiting for anyone to ask.
    next_open_at_ms: i64,
    /// Appends are failing for lack of space (logged once when it starts and ends).
    disk_full: DiskFull,
    /// Set after `Close`, so the supervisor does not bring a deleted log back.
    closed: bool,
    /// Idempotent producers of this partition, rebuilt from the log on open.
    producers: troupe::producer::ProducerStateManager,
    /// `producer.id.expiration.ms`.
    producer_expiration_ms: i64,
    /// The log cleaner of compacted topics (`cleaner.rs`).
    cleaner: cleaner::CleanerState,
    /// The partition's high watermark and its checkpoint file.
    hw: HighWatermarkCheckpoint,
    /// The high watermark as the partition actor last set it, shared with it: read
    /// here when it is needed (checkpoint, cleaner pass, `GetOffsets`) instead of
    /// sent as a message at every move, which woke this thread once more per append.
    shared_hw: SharedHighWatermark,
    /// Handed to every log this actor opens (`Log::share_tail`); readers hold a clone.
    tail: troupe::storage::SharedTail,
    /// Size and segment count gauges, and the registry restarts are counted in
    /// (`None` in tests without metrics).
    metrics: Option<(
        crate::metrics::LogGauges,
        std::sync::Arc<crate::metrics::Metrics>,
    )>,
    /// A fatal storage error asked for a restart (the actor stops after the handler).
    restart: bool,
    /// Messages from the partition's [`LogPort`] handled so far: an append on the
    /// partition's thread is only made once every message it sent before is handled.
    received: u64,
}

/// The high watermark as the partition actor last sent it, and what is on disk.
#[derive(Default)]
struct HighWatermarkCheckpoint {
    value: Option<i64>,
    written: Option<i64>,
    written_at_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms` (0 until the partition says).
    interval_ms: i64,
    /// The checkpoint tick, cancelled by `Close` like the cleaner's.
    timer: Option<SpawnHandle>,
}

/// A partition's high watermark, shared between its partition actor (the only writer)
/// and its log actor. Unset until the partition first moves it.
#[derive(Clone, Debug)]
pub struct SharedHighWatermark(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl SharedHighWatermark {
    const UNSET: i64 = i64::MIN;

    pub fn set(&self, high_watermark: i64) {
        self.0
            .store(high_watermark, std::sync::atomic::Ordering::Release);
    }

    pub fn get(&self) -> Option<i64> {
        let v = self.0.load(std::sync::atomic::Ordering::Acquire);
        (v != Self::UNSET).then_some(v)
    }
}

impl Default for SharedHighWatermark {
    fn default() -> Self {
        SharedHighWatermark(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
            Self::UNSET,
        )))
    }
}

/// Per partition directory, like `recovery-point` (see `troupe::storage::checkpoint`).
pub const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

/// Locks a log's core; a panic in a handler (a bug) does not wedge the partition.
fn lock(core: &Mutex<LogCore>) -> MutexGuard<'_, LogCore> {
    core.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LogActor {
    pub fn new(dir: PathBuf, config: LogConfig) -> Self {
        LogActor {
            core: Arc::new(Mutex::new(LogCore::new(dir, config))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogCore> {
        lock(&self.core)
    }

    /// The state a [`LogPort`] shares with this actor once it is started.
    pub fn core(&self) -> SharedLogCore {
        SharedLogCore(self.core.clone())
    }

    /// Share the high watermark cell with the partition actor that moves it.
    pub fn with_high_watermark(self, cell: SharedHighWatermark) -> Self {
        self.lock().shared_hw = cell;
        self
    }

    /// Share the log's tail with the request path (Fetch reads at the log end).
    pub fn with_tail(self, tail: troupe::storage::SharedTail) -> Self {
        self.lock().tail = tail;
        self
    }

    pub fn with_metrics(
        self,
        gauges: crate::metrics::LogGauges,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        self.lock().metrics = Some((gauges, metrics));
        self
    }

    /// `producer.id.expiration.ms` of the broker.
    pub fn with_producer_expiration(self, ms: i64) -> Self {
        self.lock().producer_expiration_ms = ms;
        self
    }

    /// After a handler: stop (the supervisor reopens the log) if it hit a fatal error.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        if std::mem::take(&mut self.lock().restart) {
            ctx.stop();
        }
    }
}

impl LogCore {
    fn new(dir: PathBuf, config: LogConfig) -> Self {
        LogCore {
            dir,
            config,
            log: None,
            open_failures: 0,
            open_error: None,
            next_open_at_ms: 0,
            disk_full: DiskFull::default(),
            closed: false,
            producers: Default::default(),
            producer_expiration_ms: 86_400_000,
            cleaner: Default::default(),
            hw: Default::default(),
            shared_hw: SharedHighWatermark::default(),
            tail: Default::default(),
            metrics: None,
            restart: false,
            received: 0,
        }
    }

    /// Take the partition's latest high watermark, as a `SetHighWatermark` would.
    pub(super) fn sync_high_watermark(&mut self) {
        if let Some(v) = self.shared_hw.get() {
            self.cleaner.bound = v;
            self.hw.value = Some(v);
        }
    }

    /// Sets the size and segment gauges from the log. Summing segment sizes walks the
    /// segment list, so an append adds its bytes instead unless it rolled a segment.
    fn report_size(&self, appended: Option<u64>) {
        let (Some((g, _)), Some(log)) = (&self.metrics, &self.log) else {
            return;
        };
        let segments = log.segment_count() as i64;
        match appended {
            Some(bytes) if g.segments.get() == segments => g.size.add(bytes as i64),
            _ => {
                g.size.set(log.size_bytes() as i64);
                g.segments.set(segments);
            }
        }
    }

    /// Write the high watermark if it changed since the last write (failures are
    /// logged: a replica restarting from an older one only waits longer for its leader).
    /// Replaced atomically (temp file, rename) but not fsynced: the value is a hint
    /// that is safe when stale (a leader's high watermark only moves up from it, and
    /// nothing is truncated to it), and thousands of partitions would otherwise cost
    /// thousands of fsyncs every checkpoint interval.
    fn checkpoint_high_watermark(&mut self) {
        self.sync_high_watermark();
        let Some(v) = self.hw.value else { return };
        if self.hw.written == Some(v) || self.closed && self.log.is_none() {
            return;
        }
        let path = self.dir.join(HIGH_WATERMARK_FILE);
        let tmp = self.dir.join(format!("{HIGH_WATERMARK_FILE}.tmp"));
        let write =
            std::fs::write(&tmp, format!("{v}\n")).and_then(|()| std::fs::rename(&tmp, &path));
        match write {
            Ok(()) => {
                self.hw.written = Some(v);
                self.hw.written_at_ms = crate::now_ms();
            }
            Err(e) => {
                // Retried at the next interval, not at every tick; a full disk is
                // already reported once by the appends.
                self.hw.written_at_ms = crate::now_ms();
                if troupe::storage::is_disk_full(&e) {
                    tracing::debug!(dir = %self.dir.display(), error = %e,
                        "cannot checkpoint the high watermark");
                } else {
                    tracing::warn!(dir = %self.dir.display(), error = %e,
                        "cannot checkpoint the high watermark");
                }
            }
        }
    }

    fn open(&mut self) {
        let opened = Log::open(&self.dir, self.config.clone(), crate::now_ms())
            .and_then(|log| Ok((producers::load(&log)?, log)));
        match opened {
            Ok((state, mut log)) => {
                log.share_tail(self.tail.clone());
                tracing::debug!(dir = %self.dir.display(), leo = log.log_end_offset(), "log opened");
                if self.open_failures > 0 {
                    tracing::info!(dir = %self.dir.display(),
                        failed_attempts = self.open_failures, "log opened after failures");
                }
                self.producers = state;
                let hw = troupe::storage::checkpoint::read_offset(&self.dir.join(HIGH_WATERMARK_FILE))
                    .unwrap_or_else(|e| {
                        tracing::warn!(dir = %self.dir.display(), error = %e, "ignoring the high watermark checkpoint");
                        None
                    })
                    .map(|v| v.min(log.log_end_offset()));
                if self.hw.value.is_none() {
                    self.hw.value = hw;
                    self.hw.written = hw;
                }
                if let Some(v) = hw {
                    self.cleaner.bound = self.cleaner.bound.min(v.max(0));
                }
                self.log = Some(log);
                self.report_size(None);
                self.open_failures = 0;
                self.open_error = None;
            }
            Err(e) => {
                // Only the first failure is an error here: retries are reported by the
                // partition leader, once per backoff step, with this error in them.
                if self.open_failures == 0 {
                    tracing::error!(dir = %self.dir.display(), error = %e, "cannot open log");
                }
                self.open_failures = self.open_failures.saturating_add(1);
                self.next_open_at_ms = crate::now_ms() + reopen_delay_ms(self.open_failures);
                self.open_error = Some(e.to_string());
                self.log = None;
            }
        }
    }

    fn log(&mut self) -> Result<&mut Log, StorageError> {
        if self.log.is_none()
            && !self.closed
            && self.open_failures > 0
            && crate::now_ms() >= self.next_open_at_ms
        {
            self.open();
        }
        // The error is built only when there is no log: this runs for every append
        // and read, which paid a path clone and a message each before.
        let (dir, open_error, closed) = (&self.dir, &self.open_error, self.closed);
        self.log.as_mut().ok_or_else(|| {
            let why = match (open_error, closed) {
                (_, true) => "log is offline (closed)".to_string(),
                (Some(e), false) => format!("log is offline (open failed: {e})"),
                (None, false) => "log is offline".to_string(),
            };
            StorageError::Io {
                path: dir.clone(),
                source: std::io::Error::other(why),
            }
        })
    }

    /// IO errors are fatal for the open log: stop so the supervisor reopens it from disk.
    /// Except a full disk: every operation but a truncation leaves the open log as it
    /// was when a write fails for lack of space (a torn append is cut back, a checkpoint
    /// is replaced only once written whole), so the log stays open, serves reads, and
    /// the same write succeeds once space is freed; only the first of a run is logged.
    /// A closed log answers every request with an error too, but that is no failure:
    /// it must neither log one nor restart (its partition was deleted or moved away).
    fn check<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        // An offline log (its open failed) has nothing to reopen: `log()` retries the
        // open with backoff, and restarting here would skip that backoff and log an
        // error per request.
        if self.closed || self.log.is_none() {
            return r;
        }
        if let (Some((_, m)), Some(log)) = (&self.metrics, self.log.as_mut()) {
            for took in log.take_flush_times() {
                m.log_flush_time.observe(took.as_secs_f64());
            }
        }
        match &r {
            Err(e) if e.is_disk_full() => {
                // Not a match guard: a repeated refusal must not fall through to a restart.
                let starts_a_run = self.disk_full.on_full();
                if starts_a_run {
                    tracing::error!(dir = %self.dir.display(), error = %e,
                        "disk full: writes fail with KAFKA_STORAGE_ERROR until space is freed; \
                         reads continue");
                }
            }
            Err(StorageError::Io { source: e, .. }) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "storage IO error, restarting log");
                self.restart = true;
            }
            _ => {}
        }
        r
    }

    /// [`Self::check`] for truncations, which may leave the open log half cut when a
    /// write fails: any IO error, a full disk too, reopens it from disk.
    fn check_truncation<T>(&mut self, r: Result<T, StorageError>) -> Result<T, StorageError> {
        if let (Err(StorageError::Io { source: e, .. }), false, true) =
            (&r, self.closed, self.log.is_some())
        {
            tracing::error!(dir = %self.dir.display(), error = %e, "storage IO error, restarting log");
            self.restart = true;
        }
        r
    }

    /// [`Self::check`] for appends: a written one ends a run of disk-full refusals.
    fn check_append<T>(
        &mut self,
        r: Result<T, StorageError>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, StorageError> {
        if let Ok(v) = &r {
            if wrote(v) {
                if let Some(refused) = self.disk_full.on_written() {
                    tracing::info!(dir = %self.dir.display(), refused_writes = refused,
                        "disk space available again: appends resumed");
                }
            }
        }
        self.check(r)
    }
}

/// A failed open is retried by the next access after 1 s, then 2, 4, ... up to 60 s.
fn reopen_delay_ms(failures: u32) -> i64 {
    (1_000i64 << failures.saturating_sub(1).min(6)).min(60_000)
}

/// Whether appends are failing for lack of space, so the condition is reported once
/// per run rather than once per request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskFull {
    /// Appends refused since the disk filled (0: not full).
    refused: u64,
}

impl DiskFull {
    /// An append failed for lack of space; true if this starts a run (log it).
    pub fn on_full(&mut self) -> bool {
        self.refused += 1;
        self.refused == 1
    }

    /// An append was written: if it ends a run, how many appends the run refused.
    pub fn on_written(&mut self) -> Option<u64> {
        let refused = std::mem::take(&mut self.refused);
        (refused > 0).then_some(refused)
    }

    pub fn is_full(&self) -> bool {
        self.refused > 0
    }
}

impl Actor for LogActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Appends from many producers arrive in bursts; the default mailbox of 16 would
        // make senders wait on each other.
        ctx.set_mailbox_capacity(1024);
        if self.lock().closed {
            // Restarted after `Close`: no timers, so the actor ends with its last address.
            return;
        }
        self.lock().open();
        self.start_cleaner(ctx);
        // A high watermark that moved since the last checkpoint is written once the
        // interval has passed, even if it does not move again.
        let timer = ctx.run_interval(std::time::Duration::from_secs(1), |act, _| {
            let mut core = act.lock();
            if core.hw.interval_ms > 0
                && crate::now_ms() - core.hw.written_at_ms >= core.hw.interval_ms
            {
                core.checkpoint_high_watermark();
            }
        });
        self.lock().hw.timer = Some(timer);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let mut core = self.lock();
        core.snapshot_producers();
        core.checkpoint_high_watermark();
        if let Some(log) = core.log.take() {
            if let Err(e) = log.close() {
                tracing::warn!(dir = %core.dir.display(), error = %e, "log close failed");
            }
        }
    }
}

impl Supervised for LogActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let mut core = self.lock();
        core.restart = false;
        if core.closed {
            return;
        }
        tracing::info!(dir = %core.dir.display(), "log actor restarting, reopening from disk");
        if let Some((_, m)) = &core.metrics {
            m.actor_restarted(crate::metrics::ActorKind::Log);
        }
        core.log = None;
    }
}

/// A message from the partition's [`LogPort`]: handled as `M`, and counted, so the
/// port knows when none of its messages is still waiting in the mailbox.
pub struct Counted<M>(pub M);

impl<M: Message> Message for Counted<M> {
    type Result = M::Result;
}

/// `Handler<Counted<M>>` for each message a partition sends (a blanket impl over `M`
/// sends the trait solver into `Counted<Counted<..>>`).
macro_rules! counted {
    ($($m:ty),* $(,)?) => {$(
        impl Handler<Counted<$m>> for LogActor {
            type Result = <LogActor as Handler<$m>>::Result;
            fn handle(&mut self, msg: Counted<$m>, ctx: &mut Context<Self>) -> Self::Result {
                self.lock().received += 1;
                <LogActor as Handler<$m>>::handle(self, msg.0, ctx)
            }
        }
    )*};
}

counted!(
    Append,
    AppendReplica,
    BeginLeaderEpoch,
    Close,
    Crash,
    DeleteRecordsBefore,
    EndOffsetForEpoch,
    EnforceRetention,
    GetOffsets,
    Read,
    SetConfig,
    SetHighWatermark,
    TruncateFullyAndStartAt,
    TruncateTo,
);

/// How a partition actor reaches its log: messages to the log actor (counted), and
/// appends that only write made at once on the partition's own thread.
///
/// Why: a Produce used to cross to the storage thread and back for every append, two
/// wake-ups and a context switch each way, which on a 2-core machine queue behind
/// the clients' threads (the 50 MB/s latency run's p99). Kafka appends on its request
/// threads too. The slow work stays on the storage thread: an append that would roll
/// a segment or flush, recompression, opening, truncation, retention, cleaning, reads
/// of cold data. The lock is only tried, never waited for: when the storage thread
/// holds it, or when a message the port sent is still queued (an append must not pass
/// an earlier one, nor a truncation or a new leader epoch), the append goes as a
/// message, as before. So does every append for 10 s after one made here blocked in
/// the kernel for 2 ms or more (page-cache write-back can hold a write for hundreds of
/// ms, and here that would hold every socket; on the storage thread only appends wait).
#[derive(Clone)]
pub struct LogPort {
    addr: Addr<LogActor>,
    core: Arc<Mutex<LogCore>>,
    /// Messages sent through this port, against `LogCore::received`.
    sent: Arc<AtomicU64>,
}

/// An append on the request's thread that takes this long stalled (a 16 KiB append
/// takes tens of microseconds): see [`LogPort::try_append`].
const INLINE_STALL: std::time::Duration = std::time::Duration::from_millis(2);
/// How long appends then go to the storage thread.
const INLINE_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);
/// Until when (ms since the epoch) appends go to the storage thread; one for the
/// process, as write-back stalls are the disk's, not a partition's.
static INLINE_PAUSED_UNTIL_MS: AtomicI64 = AtomicI64::new(0);

/// Times this thread has blocked (voluntary context switches, `getrusage(RUSAGE_THREAD)`).
fn voluntary_switches() -> i64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points to
    // one; with RUSAGE_THREAD it cannot fail.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) } == 0;
    // SAFETY: zeroed is a valid `rusage` (plain integers), written by the call if it worked.
    let usage = unsafe { usage.assume_init() };
    if ok {
        usage.ru_nvcsw
    } else {
        0
    }
}

/// A log actor's state, for the [`LogPort`] of its partition (opaque).
pub struct SharedLogCore(Arc<Mutex<LogCore>>);

impl LogPort {
    pub fn new(addr: Addr<LogActor>, core: SharedLogCore) -> Self {
        LogPort {
            addr,
            core: core.0,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Send a message to the log actor, counted (see [`LogPort`]).
    pub fn send<M>(&self, msg: M) -> actix::dev::Request<LogActor, Counted<M>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        LogActor: Handler<Counted<M>>,
    {
        self.sent.fetch_add(1, Ordering::AcqRel);
        self.addr.send(Counted(msg))
    }

    /// [`Self::send`] without waiting for the answer.
    pub fn do_send<M>(&self, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        LogActor: Handler<Counted<M>>,
    {
        self.sent.fetch_add(1, Ordering::AcqRel);
        self.addr.do_send(Counted(msg))
    }

    /// The append made here and now, if it can be (see [`LogPort`]); `None` means
    /// send it as a message. Its result is what the actor's `Append` would answer.
    pub fn try_append(
        &self,
        msg: &Append,
    ) -> Option<Result<troupe::storage::AppendInfo, StorageError>> {
        if crate::now_ms() < INLINE_PAUSED_UNTIL_MS.load(Ordering::Relaxed) {
            return None;
        }
        let mut core = self.core.try_lock().ok()?;
        if core.received != self.sent.load(Ordering::Acquire)
            || core.restart
            || core.closed
            || core.disk_full.is_full()
            || !core.log.as_ref()?.append_is_quick(&msg.records, msg.now_ms)
        {
            return None;
        }
        let (started, blocked_before) = (std::time::Instant::now(), voluntary_switches());
        let r = core.append(msg);
        let took = started.elapsed();
        if let Some((_, m)) = &core.metrics {
            m.appends_on_request_thread.inc();
        }
        // Slow and blocked in the kernel, not merely preempted by another thread.
        if took >= INLINE_STALL && voluntary_switches() > blocked_before {
            // Page-cache write-back can hold a write for tens or hundreds of ms (block
            // allocation, write throttling). On this thread that stalls every socket;
            // on the storage thread only appends wait. Those stalls come in episodes,
            // so appends stay on the storage thread for a while.
            INLINE_PAUSED_UNTIL_MS.store(
                crate::now_ms() + INLINE_PAUSE.as_millis() as i64,
                Ordering::Relaxed,
            );
            if let Some((_, m)) = &core.metrics {
                m.inline_append_pauses.inc();
            }
            tracing::debug!(dir = %core.dir.display(), took_ms = took.as_millis() as u64,
                "an append on the request thread stalled: appends go to the storage thread for a while");
        }
        if core.restart {
            // The actor restarts (and reopens the log) as if its own append had failed;
            // until then the log is gone and appends go to the mailbox.
            core.log = None;
            drop(core);
            self.addr.do_send(Settle);
        }
        Some(r)
    }
}

impl LogCore {
    /// A leader's append, as the `Append` message or [`LogPort::try_append`] makes it.
    fn append(&mut self, msg: &Append) -> Result<troupe::storage::AppendInfo, StorageError> {
        let r = self.append_checked(msg);
        if let Ok(info) = &r {
            self.report_size(Some(info.bytes));
        }
        self.check_append(r, |info| info.bytes > 0)
    }
}

impl LogCore {
    /// A follower's truncation by `cut`, then the producer state rebuilt from what is left.
    fn truncate(
        &mut self,
        cut: impl FnOnce(&mut Log) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let r = self.log().and_then(|log| {
            cut(log)?;
            producers::load(log)
        });
        let r = r.map(|state| {
            self.producers = state;
            self.report_size(None);
        });
        self.check_truncation(r)
    }
}

impl Handler<Append> for LogActor {
    type Result = Result<troupe::storage::AppendInfo, StorageError>;
    fn handle(&mut self, msg: Append, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            if let Some((_, m)) = &core.metrics {
                m.appends_on_storage_thread.inc();
            }
            core.append(&msg)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<Read> for LogActor {
    type Result = Result<troupe::storage::ReadInfo, StorageError>;
    fn handle(&mut self, msg: Read, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core.log().and_then(|log| {
                log.read(msg.offset, msg.max_bytes, msg.max_offset, msg.min_one_batch)
            });
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<GetOffsets> for LogActor {
    type Result = Result<LogOffsets, StorageError>;
    fn handle(&mut self, _: GetOffsets, _ctx: &mut Context<Self>) -> Self::Result {
        let mut core = self.lock();
        if core.log.is_none() && !core.closed {
            core.open();
        }
        core.sync_high_watermark();
        let high_watermark = core.hw.value;
        let log = core.log()?;
        Ok(LogOffsets {
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            latest_epoch: log.latest_epoch(),
            high_watermark,
        })
    }
}

impl Handler<OffsetForTimestamp> for LogActor {
    type Result = Result<Option<(i64, i64)>, StorageError>;
    fn handle(&mut self, msg: OffsetForTimestamp, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core.log().and_then(|log| {
                if msg.timestamp == -3 {
                    let (ts, off) = log.max_timestamp_and_offset();
                    Ok((off >= 0).then_some((off, ts)))
                } else {
                    log.offset_for_timestamp(msg.timestamp)
                }
            });
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<EndOffsetForEpoch> for LogActor {
    type Result = Result<Option<(i32, i64)>, StorageError>;
    fn handle(&mut self, msg: EndOffsetForEpoch, _ctx: &mut Context<Self>) -> Self::Result {
        Ok(self.lock().log()?.end_offset_for_epoch(msg.epoch))
    }
}

impl Handler<DeleteRecordsBefore> for LogActor {
    type Result = Result<i64, StorageError>;
    fn handle(&mut self, msg: DeleteRecordsBefore, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core
                .log()
                .and_then(|log| log.delete_records_before(msg.offset));
            if let Ok(start) = r {
                core.producers.evict_below(start);
                core.report_size(None);
            }
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<EnforceRetention> for LogActor {
    type Result = Result<usize, StorageError>;
    fn handle(&mut self, msg: EnforceRetention, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core
                .log()
                .and_then(|log| log.enforce_retention_below(msg.now_ms, msg.high_watermark));
            if r.is_ok() {
                core.maintain_producers(msg.now_ms);
                core.report_size(None);
            }
            if let Ok(n) = &r {
                if *n > 0 {
                    tracing::info!(dir = %core.dir.display(), segments = n, "retention deleted segments");
                }
            }
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<SetConfig> for LogActor {
    type Result = ();
    fn handle(&mut self, msg: SetConfig, _ctx: &mut Context<Self>) {
        let mut core = self.lock();
        core.config = msg.0.clone();
        if let Some(log) = core.log.as_mut() {
            log.set_config(msg.0);
        }
    }
}

impl Handler<Flush> for LogActor {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core.log().and_then(|log| log.flush());
            if r.is_ok() {
                core.snapshot_producers();
                core.checkpoint_high_watermark();
            }
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<Close> for LogActor {
    type Result = ResponseFuture<Result<(), StorageError>>;
    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) -> Self::Result {
        // The actor stays alive but offline: it stops by itself once its owner drops the
        // last address. Stopping here would make the supervisor restart it at once.
        if !msg.delete {
            self.lock().checkpoint_high_watermark();
        }
        self.lock().closed = true;
        self.stop_cleaner(ctx);
        let mut core = self.lock();
        if let Some(timer) = core.hw.timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(log) = core.log.take() else {
            return Box::pin(async { Ok(()) });
        };
        // The log leaves the actor, so the blocking work runs off the storage thread
        // (see `PARALLEL_CLOSES`); the reply waits for it, so a caller that awaits
        // `Close` (shutdown, DeleteTopics before a re-create) still sees it done.
        let producers = std::mem::take(&mut core.producers);
        let dir = core.dir.clone();
        drop(core);
        Box::pin(async move {
            // The semaphore is a static that is never closed, so acquiring cannot fail.
            let _slot = CLOSE_SLOTS.acquire().await;
            let job = tokio::task::spawn_blocking(move || {
                if msg.delete {
                    log.delete_dir()
                } else {
                    producers::write_snapshot(&log, &producers);
                    log.close()
                }
            });
            job.await.unwrap_or_else(|e| {
                Err(StorageError::Io {
                    path: dir,
                    source: std::io::Error::other(format!("closing the log panicked: {e}")),
                })
            })
        })
    }
}

impl Handler<TruncateTo> for LogActor {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, msg: TruncateTo, ctx: &mut Context<Self>) -> Self::Result {
        let r = self.lock().truncate(|log| log.truncate_to(msg.offset));
        self.settle(ctx);
        r
    }
}

impl Handler<AppendReplica> for LogActor {
    type Result = Result<troupe::storage::AppendInfo, StorageError>;
    fn handle(&mut self, msg: AppendReplica, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core.append_replica(&msg);
            if let Ok(info) = &r {
                core.report_size(Some(info.bytes));
            }
            core.check_append(r, |info| info.bytes > 0)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<BeginLeaderEpoch> for LogActor {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, msg: BeginLeaderEpoch, ctx: &mut Context<Self>) -> Self::Result {
        let r = {
            let mut core = self.lock();
            let r = core.log().and_then(|log| log.begin_leader_epoch(msg.epoch));
            core.check(r)
        };
        self.settle(ctx);
        r
    }
}

impl Handler<TruncateFullyAndStartAt> for LogActor {
    type Result = Result<(), StorageError>;
    fn handle(&mut self, msg: TruncateFullyAndStartAt, ctx: &mut Context<Self>) -> Self::Result {
        let r = self
            .lock()
            .truncate(|log| log.truncate_fully_and_start_at(msg.offset, crate::now_ms()));
        self.settle(ctx);
        r
    }
}

impl Handler<Crash> for LogActor {
    type Result = ();
    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(dir = %self.lock().dir.display(), "crash requested (fault injection)");
        ctx.stop();
    }
}

impl Handler<Settle> for LogActor {
    type Result = ();
    fn handle(&mut self, _: Settle, ctx: &mut Context<Self>) {
        self.settle(ctx);
    }
}
