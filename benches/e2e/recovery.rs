//! The recovery run: a partition log of many segments, then the time until a restarted
//! broker serves again, after `kill -9` (only the segments after the recovery point
//! should be read) and after a clean SIGTERM shutdown. "Serves" means Metadata lists
//! the partition with a leader and a Fetch of the last offset returns its batch.
//!
//! The log is written with the raw Produce loop (1 MiB batches, one connection), so
//! building it costs little client CPU; `segment.bytes` is the log size over the
//! segment count asked for. The restarts find the log in the page cache (a `kill -9`
//! does not drop it), so these are warm-cache times.

use crate::broker::{self, Broker};
use crate::client;
use crate::rawfetch;
use crate::rawproduce;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct RecoveryResult {
    pub log_mb: f64,
    pub segments: usize,
    pub write_secs: f64,
    /// After `kill -9`: until Metadata answers with a leader, and until a Fetch works.
    pub kill_metadata_secs: f64,
    pub kill_serve_secs: f64,
    pub kill_cpu_secs: f64,
    /// SIGTERM until the process exited.
    pub stop_secs: f64,
    pub clean_metadata_secs: f64,
    pub clean_serve_secs: f64,
    pub clean_cpu_secs: f64,
}

const TOPIC: &str = "recovery";

pub fn run(bin: &Path, root: &Path, log_mb: u64, segments: u64) -> Result<RecoveryResult, String> {
    let dir = root.join("recovery");
    let records = (log_mb * 1_000_000 / 1024).max(1000);
    // A batch larger than segment.bytes is refused (RECORD_LIST_TOO_LARGE, as in
    // Kafka): every segment must take at least one of the loop's ~1.03 MB batches.
    // One segment: the whole log stays active (the worst case for a kill -9, as
    // nothing is below the recovery point without a flush policy).
    let segment_bytes = if segments <= 1 {
        i32::MAX as u64
    } else {
        (records * 1024 / segments).max(1_100_000)
    };
    eprintln!("  [recovery] {log_mb} MB of 1 KiB records, segment.bytes {segment_bytes}");
    let (broker, _) = Broker::start(bin, &dir, 0)?;
    let port = broker.addr.port();
    let boot = broker.bootstrap();
    client::create_topics_rf(
        &boot,
        &[(TOPIC.to_string(), 1)],
        1,
        &[("segment.bytes", &segment_bytes.to_string())],
    )?;
    let t = rawproduce::produce(
        &boot,
        &rawproduce::Spec {
            topic: TOPIC,
            partitions: 1,
            connections: 1,
            size: 1024,
            count: records,
            in_flight: 8,
        },
    )?;
    let last = t.msgs as i64 - 1;
    let part_dir = dir.join(format!("{TOPIC}-0"));
    let count_segments = || {
        std::fs::read_dir(&part_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .count()
            })
            .unwrap_or(0)
    };
    let segs = count_segments();
    eprintln!(
        "  [recovery] wrote {} records ({:.0} MB) in {:.1}s: {segs} segments; kill -9",
        t.msgs,
        t.bytes as f64 / 1e6,
        t.secs
    );
    crate::baseline::settle();
    broker.kill9();

    let (kill_metadata_secs, kill_serve_secs, broker, kill_cpu_secs) =
        restart(bin, &dir, port, last)?;
    eprintln!(
        "  [recovery] after kill -9: Metadata in {kill_metadata_secs:.3}s, Fetch of the last offset in {kill_serve_secs:.3}s, start-up CPU {kill_cpu_secs:.2}s; SIGTERM"
    );
    let stop_secs = broker.stop()?.as_secs_f64();
    let (clean_metadata_secs, clean_serve_secs, broker, clean_cpu_secs) =
        restart(bin, &dir, port, last)?;
    eprintln!(
        "  [recovery] stopped in {stop_secs:.3}s; after the clean shutdown: Metadata in {clean_metadata_secs:.3}s, Fetch in {clean_serve_secs:.3}s, start-up CPU {clean_cpu_secs:.2}s"
    );
    broker.stop()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(RecoveryResult {
        log_mb: t.bytes as f64 / 1e6,
        segments: segs,
        write_secs: t.secs,
        kill_metadata_secs,
        kill_serve_secs,
        kill_cpu_secs,
        stop_secs,
        clean_metadata_secs,
        clean_serve_secs,
        clean_cpu_secs,
    })
}

/// Starts the broker on `dir` again and polls until Metadata lists the partition with
/// a leader, then until a Fetch of `last` returns a batch; both timed from the spawn.
fn restart(
    bin: &Path,
    dir: &Path,
    port: u16,
    last: i64,
) -> Result<(f64, f64, Broker, f64), String> {
    let (broker, t0) = Broker::spawn(bin, dir, port, None, &[])?;
    let deadline = t0 + Duration::from_secs(300);
    let boot = broker.bootstrap();
    let metadata = loop {
        if broker::led_partitions(broker.addr).is_ok_and(|n| n >= 1) {
            break t0.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            return Err("no leader in Metadata within 300 s of the restart".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let serve = loop {
        if rawfetch::fetch_once(&boot, TOPIC, last).is_ok_and(|n| n > 0) {
            break t0.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no Fetch at offset {last} within 300 s of the restart"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let cpu = broker.sample().cpu_secs;
    Ok((metadata, serve, broker, cpu))
}
