//! The client side: librdkafka (the `rdkafka` crate) producing, consuming and timing
//! messages, configured as the benchmark's spec says and nothing more.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};

/// Outcome of a produce or consume run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Throughput {
    pub msgs: u64,
    /// Payload (record value) bytes; record and batch overhead not counted.
    pub bytes: u64,
    pub secs: f64,
}

impl Throughput {
    pub fn msgs_per_sec(&self) -> f64 {
        self.msgs as f64 / self.secs.max(1e-9)
    }
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / 1e6
    }
}

/// What to produce: `count` messages of `size` bytes, message i to `targets[i % len]`.
pub struct ProduceSpec<'a> {
    pub label: &'a str,
    pub targets: Vec<(String, i32)>,
    pub size: usize,
    pub count: u64,
    pub acks: &'a str,
    pub linger_ms: u32,
    pub max_secs: f64,
}

/// Runs an admin future to completion on this thread: rdkafka's admin futures are
/// fed by its own polling thread, so a waker that unparks us is all they need.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "troupe-e2e")
        .set("log_level", "3");
    c
}

/// Creates topics (name, partitions), replication factor 1, in requests of `chunk`.
pub fn create_topics(
    bootstrap: &str,
    topics: &[(String, i32)],
    chunk: usize,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(300)))
        .operation_timeout(Some(Duration::from_secs(300)));
    for group in topics.chunks(chunk.max(1)) {
        let new: Vec<NewTopic> = group
            .iter()
            .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(1)))
            .collect();
        let results = block_on(admin.create_topics(&new, &opts)).map_err(|e| e.to_string())?;
        for r in results {
            if let Err((topic, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(format!("create topic {topic}: {code}"));
                }
            }
        }
    }
    Ok(())
}

/// Creates topics (name, partitions) with replication factor `rf` and topic configs.
pub fn create_topics_rf(
    bootstrap: &str,
    topics: &[(String, i32)],
    rf: i32,
    configs: &[(&str, &str)],
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .create()
        .map_err(|e| format!("admin client: {e}"))?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(60)))
        .operation_timeout(Some(Duration::from_secs(60)));
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(n, p)| {
            configs.iter().fold(
                NewTopic::new(n, *p, TopicReplication::Fixed(rf)),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    for r in block_on(admin.create_topics(&new, &opts)).map_err(|e| e.to_string())? {
        if let Err((topic, code)) = r {
            return Err(format!("create topic {topic}: {code}"));
        }
    }
    Ok(())
}

/// How many brokers Metadata lists.
pub fn broker_count(bootstrap: &str) -> Result<usize, String> {
    let c: BaseConsumer = base_config(bootstrap).create().map_err(|e| e.to_string())?;
    let md = c
        .fetch_metadata(None, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    Ok(md.brokers().len())
}

/// Counts delivery reports.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

fn producer(
    bootstrap: &str,
    acks: &str,
    linger_ms: u32,
) -> Result<BaseProducer<Deliveries>, String> {
    base_config(bootstrap)
        .set("acks", acks)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", (1 << 20).to_string())
        // A batch may not exceed message.max.bytes; Kafka's default allows 1 MiB + 12.
        .set("message.max.bytes", "1048588")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("producer: {e}"))
}

/// Produces `spec.count` messages (or as many as fit in `spec.max_secs`) and waits for
/// every delivery report. The clock starts after the producer has fetched metadata.
pub fn produce(bootstrap: &str, spec: &ProduceSpec) -> Result<Throughput, String> {
    let p = producer(bootstrap, spec.acks, spec.linger_ms)?;
    for (topic, _) in spec.targets.iter().take(100) {
        p.client()
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| format!("metadata for {topic}: {e}"))?;
    }
    let payload = vec![b'x'; spec.size];
    let started = Instant::now();
    let mut last_report = started;
    let mut sent = 0u64;
    while sent < spec.count {
        let (topic, partition) = &spec.targets[(sent % spec.targets.len() as u64) as usize];
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(*partition)
            .payload(&payload[..]);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
        sent += 1;
        if sent % 4096 == 0 {
            p.poll(Duration::ZERO);
            let now = Instant::now();
            if now.duration_since(last_report) >= Duration::from_secs(1) {
                last_report = now;
                let done = p.context().ok.load(Ordering::Relaxed);
                let secs = now.duration_since(started).as_secs_f64();
                eprintln!(
                    "    [{}] sent {sent}/{}, delivered {done}, {:.0} msg/s",
                    spec.label,
                    spec.count,
                    done as f64 / secs
                );
                if secs > spec.max_secs {
                    eprintln!(
                        "    [{}] time cap of {}s reached",
                        spec.label, spec.max_secs
                    );
                    break;
                }
            }
        }
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| format!("flush: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let ctx = p.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = ctx.first_error.lock().ok().and_then(|f| f.clone());
        return Err(format!("{failed} deliveries failed, first: {first:?}"));
    }
    let ok = ctx.ok.load(Ordering::Relaxed);
    Ok(Throughput {
        msgs: ok,
        bytes: ok * spec.size as u64,
        secs,
    })
}

/// What a throughput-minded user sets on a librdkafka consumer (issue 14): larger
/// fetches and a deeper prefetch queue than the defaults (1 MiB per partition, 50 MiB
/// per fetch, 100,000 queued messages). The consume runs and their null-broker ceiling
/// use the same settings, and the report prints them.
pub const TUNED_CONSUMER: [(&str, &str); 3] = [
    ("max.partition.fetch.bytes", "10485760"),
    ("fetch.max.bytes", "52428800"),
    ("queued.min.messages", "1000000"),
];

/// The producer settings of the throughput runs, printed with the report.
pub const THROUGHPUT_PRODUCER: &str =
    "linger.ms=5 batch.size=1048576 compression.type=none queue.buffering.max.messages=1000000";

fn consumer(bootstrap: &str) -> Result<BaseConsumer, String> {
    consumer_with(bootstrap, &[])
}

fn consumer_with(bootstrap: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer, String> {
    let mut c = base_config(bootstrap);
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
        // Manual assignment only: the group id is required by the client, never joined.
        .set("group.id", "troupe-e2e")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("consumer: {e}"))
}

/// Reads `expected` messages from the start of `partitions` partitions of `topic`. The
/// clock starts at the first message, so connection set-up is not counted.
pub fn consume(
    bootstrap: &str,
    label: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    max_secs: f64,
) -> Result<Throughput, String> {
    let c = consumer_with(bootstrap, &TUNED_CONSUMER)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let setup_deadline = Instant::now() + Duration::from_secs(30);
    let mut started = None;
    let mut last_report = Instant::now();
    let (mut msgs, mut bytes) = (0u64, 0u64);
    while msgs < expected {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                started.get_or_insert_with(Instant::now);
                msgs += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None if started.is_none() && Instant::now() > setup_deadline => {
                return Err("no message within 30 s".into())
            }
            None => {}
        }
        if msgs % 4096 == 0 {
            if let Some(t0) = started {
                let secs = t0.elapsed().as_secs_f64();
                if last_report.elapsed() >= Duration::from_secs(1) {
                    last_report = Instant::now();
                    eprintln!(
                        "    [{label}] {msgs}/{expected} msgs, {:.0} msg/s",
                        msgs as f64 / secs
                    );
                }
                if secs > max_secs {
                    eprintln!("    [{label}] time cap of {max_secs}s reached");
                    break;
                }
            }
        }
    }
    let secs = started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok(Throughput { msgs, bytes, secs })
}

/// The sequence number and send time (ns since the run's epoch) that latency runs
/// write at the start of each payload.
pub fn stamp(payload: Option<&[u8]>) -> Option<(u64, u64)> {
    let v = payload.filter(|v| v.len() >= 16)?;
    let seq = u64::from_be_bytes(v[0..8].try_into().ok()?);
    let ts = u64::from_be_bytes(v[8..16].try_into().ok()?);
    Some((seq, ts))
}

/// End-to-end latency samples, in microseconds, sorted.
pub struct Latency {
    pub sorted_us: Vec<f64>,
    /// Messages sent after the warm-up, each of which should have become a sample.
    pub sent: u64,
}

impl Latency {
    pub fn quantile(&self, q: f64) -> f64 {
        if self.sorted_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.sorted_us.len() as f64 - 1.0) * q).round() as usize;
        self.sorted_us[i.min(self.sorted_us.len() - 1)]
    }
}

/// Produces at a fixed `rate` for `secs` (after one second of warm-up that is not
/// recorded) while a consumer thread reads the partition; each message carries its
/// *intended* send time, so a producer that falls behind shows up as latency instead
/// of hiding it (no coordinated omission).
pub fn latency(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    secs: f64,
    linger_ms: u32,
) -> Result<Latency, String> {
    latency_acks(bootstrap, topic, rate, secs, linger_ms, "1")
}

/// [`latency`] with the producer's `acks` chosen (the cluster rows use acks=all).
pub fn latency_acks(
    bootstrap: &str,
    topic: &str,
    rate: u64,
    secs: f64,
    linger_ms: u32,
    acks: &str,
) -> Result<Latency, String> {
    let p = producer(bootstrap, acks, linger_ms)?;
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(|e| format!("metadata: {e}"))?;
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| e.to_string())?;
    // The consumer's first fetch starts only after its own metadata and offset lookup
    // (librdkafka retries the lookup on a 500 ms timer when it has no leader yet); one
    // primer record, read back before the clock starts, keeps that out of the samples.
    let primed_by = Instant::now() + Duration::from_secs(30);
    p.send(
        BaseRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(&b"primer"[..]),
    )
    .map_err(|(e, _)| format!("primer: {e}"))?;
    loop {
        p.poll(Duration::ZERO);
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(_)) => break,
            Some(Err(e)) => return Err(format!("primer: {e}")),
            None if Instant::now() > primed_by => {
                return Err("the primer record was not read back within 30 s".into())
            }
            None => {}
        }
    }

    let epoch = Instant::now();
    let warmup = rate;
    let total = warmup + (rate as f64 * secs) as u64;
    let sent_all = Arc::new(AtomicU64::new(u64::MAX));
    let sent_all2 = sent_all.clone();
    let reader = std::thread::spawn(move || -> Result<Vec<f64>, String> {
        let mut samples = Vec::with_capacity(total as usize);
        let mut got = 0u64;
        let deadline_after_send = Duration::from_secs(10);
        let mut send_done_at: Option<Instant> = None;
        loop {
            let all = sent_all2.load(Ordering::Acquire);
            if got >= all {
                break;
            }
            if all != u64::MAX {
                let t = *send_done_at.get_or_insert_with(Instant::now);
                if t.elapsed() > deadline_after_send {
                    return Err(format!("only {got} of {all} messages arrived"));
                }
            }
            match c.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let Some((seq, ts)) = stamp(m.payload()) else {
                        continue;
                    };
                    got += 1;
                    if seq >= warmup {
                        samples.push(now.saturating_sub(ts) as f64 / 1e3);
                    }
                }
                Some(Err(e)) => return Err(format!("consume: {e}")),
                None => {}
            }
        }
        Ok(samples)
    });

    let interval_ns = 1e9 / rate as f64;
    let mut payload = [0u8; 100];
    let mut last_report = Instant::now();
    for seq in 0..total {
        let intended = (seq as f64 * interval_ns) as u64;
        loop {
            let now = epoch.elapsed().as_nanos() as u64;
            if now >= intended {
                break;
            }
            // Sleep, never spin: a yield loop at 100 us intervals takes a whole core
            // from the brokers on a small machine (2 cores here). A late wake-up counts
            // against the broker, as samples are timed from the intended send time.
            std::thread::sleep(Duration::from_nanos(intended - now));
        }
        payload[0..8].copy_from_slice(&seq.to_be_bytes());
        payload[8..16].copy_from_slice(&intended.to_be_bytes());
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .partition(0)
            .payload(&payload[..]);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
        p.poll(Duration::ZERO);
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!("    [latency] sent {seq}/{total} at {rate} msg/s");
        }
    }
    p.flush(Duration::from_secs(30))
        .map_err(|e| format!("flush: {e}"))?;
    sent_all.store(total, Ordering::Release);
    let mut samples = reader
        .join()
        .map_err(|_| "consumer thread panicked".to_string())??;
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        sorted_us: samples,
        sent: total - warmup,
    })
}
