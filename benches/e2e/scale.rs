//! The scale run: a broker holding many partitions. How long it takes to come back
//! after a restart (until Metadata lists every partition with a leader), what it holds
//! in memory and open files when idle, and produce throughput spread over all of them.

use crate::broker::Broker;
use crate::client::{self, ProduceSpec, Throughput};
use std::path::Path;
use std::time::{Duration, Instant};

/// Partitions per topic: N partitions are N/100 topics, as a real cluster's would be.
const PER_TOPIC: usize = 100;

pub struct ScaleResult {
    pub partitions: usize,
    pub create_secs: f64,
    pub startup_secs: f64,
    pub idle_rss_mb: f64,
    pub idle_open_files: usize,
    /// Produce spread over every partition, right after the restart.
    pub cold: Throughput,
    pub cold_cpu_secs: f64,
    /// The same again: every partition has been appended to since the restart.
    pub warm: Throughput,
    pub warm_cpu_secs: f64,
    pub busy_peak_rss_mb: f64,
    pub busy_open_files: usize,
}

pub fn run(
    bin: &Path,
    root: &Path,
    partitions: usize,
    messages: u64,
    max_secs: f64,
    fd_limit: u64,
) -> Result<ScaleResult, String> {
    // One file per segment stays open (the .log; the indexes are mapped and their
    // descriptors closed), and these fresh partitions never roll, so one per
    // partition; a broker short of descriptors fails to open logs and would never
    // become ready.
    let needed = partitions as u64 + 256;
    if needed > fd_limit {
        return Err(format!(
            "needs about {needed} open files, the limit is {fd_limit} (raise `ulimit -n`)"
        ));
    }
    let dir = root.join(format!("scale-{partitions}"));
    eprintln!("  [scale {partitions}] starting a fresh broker");
    let (broker, _) = Broker::start(bin, &dir, 0)?;
    let port = broker.addr.port();
    let topics: Vec<(String, i32)> = (0..partitions.div_ceil(PER_TOPIC))
        .map(|i| {
            let n = PER_TOPIC.min(partitions - i * PER_TOPIC);
            (format!("scale-{i}"), n as i32)
        })
        .collect();
    let t0 = Instant::now();
    client::create_topics(&broker.bootstrap(), &topics, 10)?;
    let mut broker = broker;
    broker.wait_ready(partitions, Duration::from_secs(600))?;
    let create_secs = t0.elapsed().as_secs_f64();
    eprintln!("  [scale {partitions}] created in {create_secs:.2}s; restarting");
    let stop = broker.stop()?;
    eprintln!(
        "  [scale {partitions}] stopped in {:.2}s",
        stop.as_secs_f64()
    );

    let t0 = Instant::now();
    let (mut broker, _) = Broker::start(bin, &dir, port)?;
    broker.wait_ready(partitions, Duration::from_secs(600))?;
    let startup_secs = t0.elapsed().as_secs_f64();
    // Let lazily started work (retention timers, first checkpoints) settle.
    std::thread::sleep(Duration::from_secs(1));
    let idle = broker.sample();
    let idle_open_files = broker.open_files();
    eprintln!(
        "  [scale {partitions}] start-up {startup_secs:.2}s, idle RSS {:.1} MB, {idle_open_files} open files",
        idle.rss_kb as f64 / 1024.0
    );

    let targets: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .collect();
    // Twice: the first pass pays each partition's first append after a restart
    // (checkpoint files, index pages), the second is the steady state.
    let mut passes = Vec::new();
    for pass in ["cold", "warm"] {
        let before = broker.sample();
        let label = format!("scale {partitions} produce {pass}");
        let t = client::produce(
            &broker.bootstrap(),
            &ProduceSpec {
                label: &label,
                targets: targets.clone(),
                size: 100,
                count: messages,
                acks: "1",
                linger_ms: 5,
                max_secs,
            },
        )?;
        let after = broker.sample();
        eprintln!(
            "  [{label}] {:.0} msg/s, broker CPU {:.2}s",
            t.msgs_per_sec(),
            after.cpu_secs - before.cpu_secs
        );
        passes.push((t, after.cpu_secs - before.cpu_secs));
    }
    let after = broker.sample();
    let busy_open_files = broker.open_files();
    broker.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ScaleResult {
        partitions,
        create_secs,
        startup_secs,
        idle_rss_mb: idle.rss_kb as f64 / 1024.0,
        idle_open_files,
        cold: passes[0].0,
        cold_cpu_secs: passes[0].1,
        warm: passes[1].0,
        warm_cpu_secs: passes[1].1,
        busy_peak_rss_mb: after.peak_rss_kb as f64 / 1024.0,
        busy_open_files,
    })
}
