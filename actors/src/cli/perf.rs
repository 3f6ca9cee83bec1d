//! `troupe perf produce | consume`: load with a live progress line each second on
//! stderr (throughput, latency p50/p99 of that second) and a final summary on stdout.
//!
//! One connection and one request in flight per partition (to its leader), all
//! partitions at once. Produce latency is a Produce request's round trip (what a
//! record waits for its acknowledgement once its batch is sent); consume latency is a
//! Fetch round trip.

use super::consume::fetch;
use super::offsets::{list_offsets, EARLIEST, LATEST};
use super::output::print_json;
use super::produce::{now_ms, parse_acks, produce_batch};
use super::{CliError, Common};
use bytes::Bytes;
use clap::{Args, Subcommand};
use futures_util::future::join_all;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use troupe_actors::client::records::{decode_fetched, encode_batch};
use troupe_actors::client::{BrokerConnection, ClientError, KafkaClient};

#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Subcommand, Debug)]
enum PerfCommand {
    /// Produce generated records as fast as the broker acknowledges them.
    Produce {
        topic: String,
        /// Records to send.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        /// Bytes of each record's value.
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        /// all (-1), 1 or 0.
        #[arg(long, default_value = "all", value_parser = parse_acks)]
        acks: i16,
        /// Records per Produce request (one batch).
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
    },
    /// Read a topic from its beginning as fast as the broker serves it.
    Consume {
        topic: String,
        /// Records to read (default: everything up to the end when it starts).
        #[arg(long)]
        records: Option<u64>,
        /// Stop when nothing arrives for this long.
        #[arg(long, default_value_t = 5_000)]
        idle_timeout_ms: u64,
    },
}

#[derive(Default)]
struct Window {
    records: u64,
    bytes: u64,
    latencies_us: Vec<u64>,
}

#[derive(Default)]
struct Stats {
    total: Window,
    second: Window,
}

impl Stats {
    fn add(&mut self, records: u64, bytes: u64, latency: Duration) {
        let us = latency.as_micros() as u64;
        for w in [&mut self.total, &mut self.second] {
            w.records += records;
            w.bytes += bytes;
            w.latencies_us.push(us);
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn progress_line(w: &mut Window, elapsed: Duration, secs: f64) -> String {
    w.latencies_us.sort_unstable();
    let line = format!(
        "[{:>5.1}s] {:>9.0} records/s  {:>8.2} MiB/s  latency p50 {:.2} ms  p99 {:.2} ms",
        elapsed.as_secs_f64(),
        w.records as f64 / secs,
        w.bytes as f64 / secs / (1024.0 * 1024.0),
        percentile(&w.latencies_us, 0.5),
        percentile(&w.latencies_us, 0.99),
    );
    *w = Window::default();
    line
}

/// Run `work` with a progress line every second, then print the summary.
async fn drive<F>(
    what: &str,
    common: &Common,
    stats: Rc<RefCell<Stats>>,
    work: F,
) -> Result<(), CliError>
where
    F: std::future::Future<Output = Vec<Result<(), ClientError>>>,
{
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = Instant::now();
    tokio::pin!(work);
    let results = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                let secs = last.elapsed().as_secs_f64().max(1e-3);
                last = Instant::now();
                let line = progress_line(&mut stats.borrow_mut().second, started.elapsed(), secs);
                eprintln!("{line}");
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64().max(1e-6);
    for r in results {
        r?;
    }
    let mut s = stats.borrow_mut();
    s.total.latencies_us.sort_unstable();
    let t = &s.total;
    let (p50, p99) = (
        percentile(&t.latencies_us, 0.5),
        percentile(&t.latencies_us, 0.99),
    );
    let max = t.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0;
    let rps = t.records as f64 / elapsed;
    let mibps = t.bytes as f64 / elapsed / (1024.0 * 1024.0);
    if common.json() {
        print_json(&json!({
            "test": what,
            "records": t.records,
            "bytes": t.bytes,
            "elapsed_s": elapsed,
            "records_per_sec": rps,
            "mib_per_sec": mibps,
            "requests": t.latencies_us.len(),
            "latency_ms": {"p50": p50, "p99": p99, "max": max},
        }));
    } else {
        println!(
            "{what}: {} records ({:.2} MiB) in {elapsed:.2} s: {rps:.0} records/s, {mibps:.2} MiB/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({} requests)",
            t.records,
            t.bytes as f64 / (1024.0 * 1024.0),
            t.latencies_us.len()
        );
    }
    Ok(())
}

pub async fn run(args: PerfArgs) -> Result<(), CliError> {
    let common = args.common;
    let mut client = common.connect().await?;
    match args.command {
        PerfCommand::Produce {
            topic,
            records,
            record_size,
            acks,
            batch_size,
        } => {
            perf_produce(
                &mut client,
                &common,
                &topic,
                records,
                record_size,
                acks,
                batch_size.max(1),
            )
            .await
        }
        PerfCommand::Consume {
            topic,
            records,
            idle_timeout_ms,
        } => {
            perf_consume(
                &mut client,
                &common,
                &topic,
                records,
                Duration::from_millis(idle_timeout_ms),
            )
            .await
        }
    }
}

/// A connection of its own to each partition's leader.
async fn leader_connections(
    client: &mut KafkaClient,
    common: &Common,
    topic: &str,
) -> Result<Vec<(i32, BrokerConnection)>, ClientError> {
    let meta = client.topic(topic).await?;
    let mut out = Vec::new();
    for &p in meta.partitions.keys() {
        let leader = client.leader_id(topic, p).await?;
        let addr = client
            .metadata
            .brokers
            .get(&leader)
            .map(|b| b.addr())
            .ok_or_else(|| {
                ClientError::Invalid(format!(
                    "leader {leader} of {topic}-{p} is not in the metadata"
                ))
            })?;
        out.push((
            p,
            BrokerConnection::connect(&addr, "troupe-perf", common.timeout()).await?,
        ));
    }
    Ok(out)
}

async fn perf_produce(
    client: &mut KafkaClient,
    common: &Common,
    topic: &str,
    records: u64,
    record_size: usize,
    acks: i16,
    batch_size: usize,
) -> Result<(), CliError> {
    let conns = leader_connections(client, common, topic).await?;
    let n = conns.len() as u64;
    let value = Bytes::from(vec![b'x'; record_size]);
    let stats = Rc::new(RefCell::new(Stats::default()));
    let timeout_ms = common.request_timeout_ms.min(i32::MAX as u64) as i32;
    let tasks = conns.into_iter().enumerate().map(|(i, (p, mut conn))| {
        let share = records / n + u64::from((i as u64) < records % n);
        let stats = stats.clone();
        let value = value.clone();
        let topic = topic.to_string();
        async move {
            let full: Vec<_> = (0..batch_size)
                .map(|_| (None, Some(value.clone())))
                .collect();
            let full_batch = encode_batch(&full, now_ms()).map_err(ClientError::Invalid)?;
            let mut sent = 0u64;
            while sent < share {
                let count = (share - sent).min(batch_size as u64);
                let batch = if count as usize == batch_size {
                    full_batch.clone()
                } else {
                    encode_batch(&full[..count as usize], now_ms()).map_err(ClientError::Invalid)?
                };
                let t = Instant::now();
                produce_batch(&mut conn, &topic, p, batch, acks, timeout_ms).await?;
                stats
                    .borrow_mut()
                    .add(count, count * record_size as u64, t.elapsed());
                sent += count;
            }
            Ok(())
        }
    });
    drive("produce", common, stats.clone(), join_all(tasks)).await
}

async fn perf_consume(
    client: &mut KafkaClient,
    common: &Common,
    topic: &str,
    records: Option<u64>,
    idle: Duration,
) -> Result<(), CliError> {
    let conns = leader_connections(client, common, topic).await?;
    let parts: Vec<i32> = conns.iter().map(|(p, _)| *p).collect();
    let earliest = list_offsets(client, topic, &parts, EARLIEST).await?;
    let latest = list_offsets(client, topic, &parts, LATEST).await?;
    let stats = Rc::new(RefCell::new(Stats::default()));
    let timeout = common.timeout();
    let tasks = conns.into_iter().map(|(p, mut conn)| {
        let stats = stats.clone();
        let topic = topic.to_string();
        let mut pos = earliest.get(&p).copied().unwrap_or(0);
        // Without --records: what the partition holds now.
        let end = latest.get(&p).copied().unwrap_or(0);
        async move {
            let mut last_progress = Instant::now();
            loop {
                let done = match records {
                    Some(n) => stats.borrow().total.records >= n,
                    None => pos >= end,
                };
                if done || last_progress.elapsed() > idle {
                    return Ok(());
                }
                let t = Instant::now();
                let answer = fetch(&mut conn, &topic, &[(p, pos)], 500, timeout).await?;
                let latency = t.elapsed();
                for f in answer {
                    troupe_actors::client::check(f.error_code, || {
                        format!("fetch from {topic}-{p}")
                    })?;
                    let Some(data) = f.records else { continue };
                    let bytes = data.len() as u64;
                    let (msgs, next) =
                        decode_fetched(data, pos).map_err(|reason| ClientError::Protocol {
                            addr: conn.addr().to_string(),
                            reason,
                        })?;
                    if let Some(next) = next {
                        pos = pos.max(next);
                    }
                    if !msgs.is_empty() {
                        last_progress = Instant::now();
                    }
                    stats.borrow_mut().add(msgs.len() as u64, bytes, latency);
                }
            }
        }
    });
    drive("consume", common, stats.clone(), join_all(tasks)).await
}
