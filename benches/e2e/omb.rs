//! Latency at a fixed rate, the way the OpenMessaging Benchmark measures Kafka: one
//! topic of 16 partitions, 1 KiB records, a producer paced at a fixed byte rate with
//! acks=all, and a consumer reading along. Publish latency is intended send time to
//! delivery report; end-to-end latency is intended send time to the consumer's poll.
//! Both count from the *intended* send time, so a producer that falls behind shows up
//! as latency (no coordinated omission). A plot of p50/p99/max per interval over time
//! is written as an SVG next to the report.

use crate::client::{self, Latency};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 16;
pub const RECORD: usize = 1024;

pub struct OmbResult {
    pub mb_per_sec: f64,
    pub secs: f64,
    pub sent: u64,
    pub publish: Latency,
    pub e2e: Latency,
    pub broker_cpu: f64,
    pub broker_peak_rss_mb: f64,
    /// Where the plot went.
    pub plot: Option<String>,
}

/// Delivery reports: (intended send time, latency), both in microseconds.
#[derive(Default)]
struct Publish {
    samples: Mutex<Vec<(f64, f64)>>,
    epoch: Mutex<Option<Instant>>,
    failed: AtomicU64,
}

impl ClientContext for Publish {}

impl ProducerContext for Publish {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: Box<u64>) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(epoch) = *self.epoch.lock().unwrap_or_else(|e| e.into_inner()) else {
            return;
        };
        let now = epoch.elapsed().as_nanos() as u64;
        let at = *intended_ns;
        if let Ok(mut s) = self.samples.lock() {
            s.push((at as f64 / 1e3, now.saturating_sub(at) as f64 / 1e3));
        }
    }
}

/// One run at `mb_per_sec` for `secs` after a second of warm-up (not recorded).
pub fn run(
    bootstrap: &str,
    topic: &str,
    mb_per_sec: f64,
    secs: f64,
    linger_ms: u32,
    sample_broker: &dyn Fn() -> (f64, f64),
    plot_dir: &Path,
) -> Result<OmbResult, String> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "troupe-e2e-omb")
        .set("log_level", "3");
    let p: BaseProducer<Publish> = cfg
        .clone()
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", (1 << 20).to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Publish::default())
        .map_err(|e| format!("producer: {e}"))?;
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(|e| format!("metadata: {e}"))?;
    let c: BaseConsumer = cfg
        .set("group.id", "troupe-e2e-omb")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()
        .map_err(|e| format!("consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for part in 0..PARTITIONS {
        tpl.add_partition_offset(topic, part, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    // Prime every partition: the consumer's first fetches of each must be behind us.
    let primed_by = Instant::now() + Duration::from_secs(30);
    for part in 0..PARTITIONS {
        let _ = p.send(
            BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(topic, Box::new(0))
                .partition(part)
                .payload(&b"primer"[..]),
        );
    }
    let mut primed = 0;
    while primed < PARTITIONS {
        p.poll(Duration::ZERO);
        match c.poll(Duration::from_millis(50)) {
            Some(Ok(_)) => primed += 1,
            Some(Err(e)) => return Err(format!("primer: {e}")),
            None if Instant::now() > primed_by => {
                return Err("primer records not read back within 30 s".into())
            }
            None => {}
        }
    }
    p.flush(Duration::from_secs(10))
        .map_err(|e| format!("flush: {e}"))?;

    let rate = (mb_per_sec * 1e6 / RECORD as f64).max(1.0);
    let warmup = rate as u64;
    let total = warmup + (rate * secs) as u64;
    let epoch = Instant::now();
    *p.context().epoch.lock().unwrap_or_else(|e| e.into_inner()) = Some(epoch);
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let reader = std::thread::spawn(move || -> Result<Vec<(f64, f64)>, String> {
        let mut samples = Vec::with_capacity(total as usize);
        let mut got = 0u64;
        let mut done_at: Option<Instant> = None;
        while got < total {
            if done2.load(Ordering::Acquire) {
                let t = *done_at.get_or_insert_with(Instant::now);
                if t.elapsed() > Duration::from_secs(10) {
                    return Err(format!("only {got} of {total} messages arrived"));
                }
            }
            match c.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let Some((seq, ts)) = client::stamp(m.payload()) else {
                        continue;
                    };
                    got += 1;
                    if seq >= warmup {
                        samples.push((ts as f64 / 1e3, now.saturating_sub(ts) as f64 / 1e3));
                    }
                }
                Some(Err(e)) => return Err(format!("consume: {e}")),
                None => {}
            }
        }
        Ok(samples)
    });

    let (cpu0, _) = sample_broker();
    let interval_ns = 1e9 / rate;
    let mut payload = vec![b'x'; RECORD];
    let mut seq = 0u64;
    let mut last_report = Instant::now();
    let result = (|| -> Result<(), String> {
        while seq < total {
            // Send everything due by now, then wait up to a millisecond: a sleep per
            // record cannot keep 200k records/s, and a spin would take a core.
            let now = epoch.elapsed().as_nanos() as u64;
            while seq < total {
                let intended = (seq as f64 * interval_ns) as u64;
                if intended > now {
                    break;
                }
                payload[0..8].copy_from_slice(&seq.to_be_bytes());
                payload[8..16].copy_from_slice(&intended.to_be_bytes());
                let part = (seq % PARTITIONS as u64) as i32;
                let mut record =
                    BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(topic, Box::new(intended))
                        .partition(part)
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
                seq += 1;
            }
            p.poll(Duration::ZERO);
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                eprintln!("    [omb {mb_per_sec} MB/s] sent {seq}/{total}");
            }
            // Wait for the next record's time inside poll: it serves delivery reports
            // as they come (poll(0) takes one event, i.e. one partition's batch, per
            // call, which left reports queued and inflated publish latency).
            let next = (seq as f64 * interval_ns) as u64;
            let now = epoch.elapsed().as_nanos() as u64;
            if next > now {
                p.poll(Duration::from_nanos((next - now).min(1_000_000)));
            }
        }
        p.flush(Duration::from_secs(60))
            .map_err(|e| format!("flush: {e}"))
    })();
    done.store(true, Ordering::Release);
    let e2e = reader
        .join()
        .map_err(|_| "consumer thread panicked".to_string())??;
    result?;
    let elapsed = epoch.elapsed().as_secs_f64();
    let (cpu1, rss) = sample_broker();
    let failed = p.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("{failed} deliveries failed"));
    }
    let warm_us = warmup as f64 * interval_ns / 1e3;
    let publish: Vec<(f64, f64)> = std::mem::take(
        &mut *p
            .context()
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    )
    .into_iter()
    .filter(|(at, _)| *at >= warm_us)
    .collect();
    let plot = plot_dir.join(format!("omb-latency-{}mbs.svg", mb_per_sec.round() as u64));
    let plot = match write_svg(&plot, mb_per_sec, &publish, &e2e) {
        Ok(()) => Some(plot.display().to_string()),
        Err(e) => {
            eprintln!("    [omb] cannot write {}: {e}", plot.display());
            None
        }
    };
    let sorted = |v: &[(f64, f64)]| {
        let mut s: Vec<f64> = v.iter().map(|x| x.1).collect();
        s.sort_by(f64::total_cmp);
        Latency {
            sorted_us: s,
            sent: total - warmup,
        }
    };
    Ok(OmbResult {
        mb_per_sec,
        secs: elapsed,
        sent: total - warmup,
        publish: sorted(&publish),
        e2e: sorted(&e2e),
        broker_cpu: cpu1 - cpu0,
        broker_peak_rss_mb: rss,
        plot,
    })
}

/// p50, p99 and max of each interval (a 100th of the run, at least 100 ms).
fn series(samples: &[(f64, f64)]) -> Vec<(f64, [f64; 3])> {
    let Some(end) = samples.iter().map(|s| s.0).reduce(f64::max) else {
        return Vec::new();
    };
    let start = samples.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let step = ((end - start) / 100.0).max(100_000.0);
    let buckets = ((end - start) / step) as usize + 1;
    let mut b: Vec<Vec<f64>> = vec![Vec::new(); buckets];
    for &(at, lat) in samples {
        b[(((at - start) / step) as usize).min(buckets - 1)].push(lat);
    }
    b.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, mut v)| {
            v.sort_by(f64::total_cmp);
            let q = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            ((start + i as f64 * step) / 1e6, [q(0.5), q(0.99), q(1.0)])
        })
        .collect()
}

/// A hand-written SVG: latency (ms, log scale) over time (s), p50/p99/max of publish
/// and end-to-end as polylines.
fn write_svg(
    path: &Path,
    mb_per_sec: f64,
    publish: &[(f64, f64)],
    e2e: &[(f64, f64)],
) -> std::io::Result<()> {
    let (w, h, left, bottom) = (800.0, 400.0, 60.0, 40.0);
    let sets = [("publish", series(publish)), ("end-to-end", series(e2e))];
    let t_max = sets
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    // Log scale from 0.1 ms to the largest max, in decades.
    let top_ms = sets
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1[2] / 1e3))
        .fold(1.0, f64::max);
    let decades = top_ms.log10().ceil().max(0.0) + 1.0;
    let x = |t: f64| left + t / t_max * (w - left - 10.0);
    let y = |ms: f64| {
        let v = (ms.max(0.1).log10() + 1.0) / decades;
        h - bottom - v * (h - bottom - 20.0)
    };
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"14\">Troupe: latency at {mb_per_sec} MB/s, 16 partitions, 1 KiB, acks=all (ms, log scale; s since start)</text>\n"
    );
    for d in 0..=(decades as i32) {
        let ms = 10f64.powi(d - 1);
        out += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"4\" y=\"{2:.1}\">{ms} ms</text>\n",
            w - 10.0,
            y(ms),
            y(ms) + 4.0
        );
    }
    let ticks = 5;
    for i in 0..=ticks {
        let t = t_max * i as f64 / ticks as f64;
        out += &format!(
            "<text x=\"{:.1}\" y=\"{}\">{t:.1}</text>\n",
            x(t) - 8.0,
            h - bottom + 16.0
        );
    }
    let colors = [
        ["#9ecae1", "#3182bd", "#08519c"],
        ["#fdae6b", "#e6550d", "#a63603"],
    ];
    let mut legend_y = 30.0;
    for ((name, s), col) in sets.iter().zip(colors) {
        for (k, q) in ["p50", "p99", "max"].iter().enumerate() {
            let pts: Vec<String> = s
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(v[k] / 1e3)))
                .collect();
            out += &format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                col[k],
                pts.join(" ")
            );
            out += &format!(
                "<text x=\"{}\" y=\"{legend_y}\" fill=\"{}\">{name} {q}</text>\n",
                w - 130.0,
                col[k]
            );
            legend_y += 13.0;
        }
    }
    out += "</svg>\n";
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(path, out)
}

/// Creates the topic (16 partitions, RF 1) the run writes to.
pub fn create_topic(bootstrap: &str, topic: &str) -> Result<(), String> {
    client::create_topics(bootstrap, &[(topic.to_string(), PARTITIONS)], 1)
}
