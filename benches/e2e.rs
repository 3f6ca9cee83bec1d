//! End-to-end benchmark: librdkafka (the `rdkafka` crate) against a release broker,
//! beside the machine's own limits measured in the same run.
//!
//! ```text
//! cargo bench --bench e2e                  # full run, a few minutes
//! cargo bench --bench e2e -- --quick       # about a minute
//! cargo bench --bench e2e -- --bootstrap HOST:PORT   # any Kafka-compatible broker
//!     [--bootstrap-pid PID]   # its process on this machine: CPU s/GB and RSS for it too
//! ```
//!
//! Without `--bootstrap` it runs `cargo build --release -p troupe-actors` and starts
//! `<target>/release/troupe serve` (or `TROUPE_BIN` / `--broker PATH`) on a free port
//! with a fresh data dir under the system temp dir (`--data-dir DIR` to choose).
//!
//! Runs, each repeated `--reps` times (medians reported):
//! 1. produce 100 B messages to 1 partition, acks=1, linger 5 ms, batch 1 MiB, no compression
//! 2. the same with acks=all
//! 3. produce 1 KiB messages to 8 partitions
//!    (3c: the same bytes sent with hand-written Produce requests over 1 and 2
//!    connections, to tell the broker's limit from the client's; 1n and 3n: runs 1
//!    and 3 into a null broker that keeps nothing, i.e. librdkafka's own ceiling here;
//!    1a and 3a: runs 1 and 3 into a null broker that appends what it receives to kept
//!    files, the floor for any broker that keeps data: client and page cache on the same
//!    cores; each ceiling's reps run beside the run's own, in a rotating order)
//! 4. consume everything run 1 wrote, from the start (4b: run 3's; 4c: run 1's again
//!    with hand-written Fetch requests, to tell the broker's limit from the client's;
//!    4n: 4b's consumer on the null broker, which serves Fetch from memory)
//! 5. end-to-end latency at a fixed 10k msg/s (linger 0): p50, p99, p99.9
//!
//! C. cluster rows: three local brokers from `config/cluster` (RF 3, min.insync.replicas
//!    2), acks=all: 100 B to 1 partition, 1 KiB to 8, and the latency at the fixed rate;
//!    run 1 is their reference (`--no-cluster` skips them; `--cluster-set key=value`
//!    adds a setting to every node, e.g. to try `replica.fetch.wait.max.ms`)
//!
//! R. recovery: a log of many segments (`--recovery-mb`, `--recovery-segments`), time
//!    until a restarted broker serves after `kill -9` and after SIGTERM
//! L. latency at a fixed rate, OMB style: 16 partitions, 1 KiB, acks=all, paced at
//!    `--omb-rates` MB/s, publish and end-to-end percentiles and an SVG plot; Le: the
//!    same client pair on the null broker in echo mode (records kept in memory, Fetch
//!    long-polls), the latency this machine allows without any broker work
//! M. many clients: 8 producers + 8 consumers of one group on 64 partitions; and
//!    10,000 idle connections (I)
//!
//! `--only main,cluster,scale,recovery,omb,many` picks runs. Every throughput row
//! leads with the broker's CPU seconds per GB moved.
//!
//! and a scale run with 1,000 and 10,000 partitions (start-up after a restart, idle
//! RSS and open files, produce spread over all partitions). Broker CPU seconds and peak
//! RSS come from /proc/<pid>/stat and /proc/<pid>/status (VmHWM, reset before each run).
//! MB are 10^6 bytes of message payload. Every measurement starts after a `sync`, so
//! no run pays for the writeback of the data earlier runs left dirty (see
//! `baseline::settle`).

#[path = "e2e/baseline.rs"]
mod baseline;
#[path = "e2e/broker.rs"]
mod broker;
#[path = "e2e/client.rs"]
mod client;
#[path = "e2e/cluster.rs"]
mod cluster;
#[path = "e2e/echo.rs"]
mod echo;
#[path = "e2e/extra.rs"]
mod extra;
#[path = "e2e/many.rs"]
mod many;
#[path = "e2e/nullbroker.rs"]
mod nullbroker;
#[path = "e2e/nullfetch.rs"]
mod nullfetch;
#[path = "e2e/omb.rs"]
mod omb;
#[path = "e2e/rawfetch.rs"]
mod rawfetch;
#[path = "e2e/rawproduce.rs"]
mod rawproduce;
#[path = "e2e/recovery.rs"]
mod recovery;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/runs.rs"]
mod runs;
#[path = "e2e/scale.rs"]
mod scale;

use report::median;
use std::path::PathBuf;

/// Every knob of a run; `--quick` picks smaller counts.
struct Options {
    quick: bool,
    bootstrap: Option<String>,
    /// The pid of the broker behind `--bootstrap`, to count its CPU and RSS.
    bootstrap_pid: Option<u32>,
    broker_bin: Option<String>,
    data_dir: Option<PathBuf>,
    reps: usize,
    count_100b: u64,
    count_1k: u64,
    latency_secs: f64,
    latency_rate: u64,
    latency_linger_ms: u32,
    scale: Vec<usize>,
    scale_msgs: u64,
    /// Run the 3-broker cluster rows.
    cluster: bool,
    /// `key=value` settings every cluster node gets on top of `config/cluster`.
    cluster_set: Vec<String>,
    baseline_bytes: u64,
    max_secs: f64,
    /// Which runs to do (`--only`): runs 1-5, cluster, scale, recovery, omb, many.
    only: Option<Vec<String>>,
    /// Recovery run: log size (MB) and segment count.
    recovery_mb: u64,
    recovery_segments: u64,
    /// OMB-style fixed-rate runs: rates (MB/s), seconds each, producer linger.
    omb_rates: Vec<f64>,
    omb_secs: f64,
    omb_linger_ms: u32,
    /// Skip the echo broker's run after each rate (`--omb-no-echo`, for A/B pairs).
    omb_no_echo: bool,
    /// Many-clients run: records in all, idle connections and how long they stay open.
    many_msgs: u64,
    idle_conns: usize,
    idle_secs: f64,
    /// Where plots go (next to the report).
    report_dir: PathBuf,
}

impl Options {
    /// Whether the run `name` is selected (all are, without `--only`).
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == name))
    }
}

impl Options {
    fn parse() -> Result<Options, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut o = if quick {
            Options {
                quick,
                bootstrap: None,
                bootstrap_pid: None,
                broker_bin: None,
                data_dir: None,
                reps: 1,
                count_100b: 1_000_000,
                count_1k: 200_000,
                latency_secs: 3.0,
                latency_rate: 10_000,
                latency_linger_ms: 0,
                scale: vec![1_000],
                scale_msgs: 100_000,
                cluster: true,
                cluster_set: Vec::new(),
                baseline_bytes: 1 << 30,
                max_secs: 20.0,
                only: None,
                recovery_mb: 1050,
                recovery_segments: 1000,
                omb_rates: vec![50.0, 200.0],
                omb_secs: 5.0,
                omb_linger_ms: 1,
                omb_no_echo: false,
                many_msgs: 1_000_000,
                idle_conns: 10_000,
                idle_secs: 3.0,
                report_dir: PathBuf::from("target/e2e-report"),
            }
        } else {
            Options {
                quick,
                bootstrap: None,
                bootstrap_pid: None,
                broker_bin: None,
                data_dir: None,
                reps: 3,
                count_100b: 5_000_000,
                count_1k: 1_000_000,
                latency_secs: 10.0,
                latency_rate: 10_000,
                latency_linger_ms: 0,
                scale: vec![1_000, 10_000],
                scale_msgs: 500_000,
                cluster: true,
                cluster_set: Vec::new(),
                baseline_bytes: 4 << 30,
                max_secs: 60.0,
                only: None,
                recovery_mb: 10_000,
                recovery_segments: 1000,
                omb_rates: vec![50.0, 200.0],
                omb_secs: 60.0,
                omb_linger_ms: 1,
                omb_no_echo: false,
                many_msgs: 2_000_000,
                idle_conns: 10_000,
                idle_secs: 10.0,
                report_dir: PathBuf::from("target/e2e-report"),
            }
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
            let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
            let key_value = |flag: &str, kv: String| {
                if kv.contains('=') {
                    Ok(kv)
                } else {
                    Err(format!("{flag} {kv}: expected key=value"))
                }
            };
            match a.as_str() {
                "--quick" | "--bench" => {}
                "--bootstrap" => o.bootstrap = Some(val(&a)?),
                "--bootstrap-pid" => o.bootstrap_pid = Some(num(val(&a)?)? as u32),
                "--broker" => o.broker_bin = Some(val(&a)?),
                "--data-dir" => o.data_dir = Some(PathBuf::from(val(&a)?)),
                "--reps" => o.reps = num(val(&a)?)?.max(1) as usize,
                "--count-100b" => o.count_100b = num(val(&a)?)?,
                "--count-1k" => o.count_1k = num(val(&a)?)?,
                "--latency-secs" => o.latency_secs = num(val(&a)?)? as f64,
                "--latency-rate" => o.latency_rate = num(val(&a)?)?.max(1),
                "--latency-linger-ms" => o.latency_linger_ms = num(val(&a)?)? as u32,
                "--scale" => {
                    o.scale = val(&a)?
                        .split(',')
                        .filter(|s| !s.is_empty() && *s != "none")
                        .map(|s| s.parse().map_err(|e| format!("--scale {s}: {e}")))
                        .collect::<Result<_, _>>()?
                }
                "--scale-msgs" => o.scale_msgs = num(val(&a)?)?,
                "--scale-only" => o.only = Some(vec!["scale".into()]),
                "--no-cluster" => o.cluster = false,
                "--set" => broker::set_for_every_broker(key_value(&a, val(&a)?)?),
                "--cluster-set" => o.cluster_set.push(key_value(&a, val(&a)?)?),
                "--only" => {
                    let runs: Vec<String> = val(&a)?.split(',').map(str::to_string).collect();
                    for r in &runs {
                        if !RUNS.contains(&r.as_str()) {
                            return Err(format!("--only {r}: one of {}", RUNS.join(",")));
                        }
                    }
                    o.only = Some(runs)
                }
                "--recovery-mb" => o.recovery_mb = num(val(&a)?)?.max(1),
                "--recovery-segments" => o.recovery_segments = num(val(&a)?)?.max(1),
                "--omb-rates" => {
                    o.omb_rates = val(&a)?
                        .split(',')
                        .map(|s| s.parse().map_err(|e| format!("--omb-rates {s}: {e}")))
                        .collect::<Result<_, _>>()?
                }
                "--omb-secs" => o.omb_secs = num(val(&a)?)?.max(1) as f64,
                "--omb-linger-ms" => o.omb_linger_ms = num(val(&a)?)? as u32,
                "--omb-no-echo" => o.omb_no_echo = true,
                "--many-msgs" => o.many_msgs = num(val(&a)?)?.max(8),
                "--idle-conns" => o.idle_conns = num(val(&a)?)? as usize,
                "--idle-secs" => o.idle_secs = num(val(&a)?)?.max(1) as f64,
                "--report-dir" => o.report_dir = PathBuf::from(val(&a)?),
                "--baseline-mb" => o.baseline_bytes = num(val(&a)?)? << 20,
                "--max-secs" => o.max_secs = num(val(&a)?)? as f64,
                "--help" | "-h" => {
                    println!("{}", HELP);
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other} (see --help)")),
            }
        }
        Ok(o)
    }
}

const HELP: &str = "cargo bench --bench e2e -- [--quick] [--bootstrap HOST:PORT [--bootstrap-pid PID]] [--broker PATH]
  [--data-dir DIR] [--reps N] [--count-100b N] [--count-1k N] [--latency-secs S]
  [--latency-rate MSG_PER_S] [--latency-linger-ms MS] [--scale 1000,10000|none]
  [--scale-msgs N] [--scale-only] [--no-cluster] [--cluster-set KEY=VALUE]...
  [--set KEY=VALUE]... (every broker the bench starts, e.g. --set num.network.threads=3)
  [--baseline-mb MB] [--max-secs S] [--only RUN,...] [--report-dir DIR]
  [--recovery-mb MB] [--recovery-segments N] [--omb-rates MB_S,...] [--omb-secs S]
  [--omb-linger-ms MS] [--omb-no-echo] [--many-msgs N] [--idle-conns N] [--idle-secs S]
runs for --only: main (1-5), cluster, scale, recovery, omb, many";

/// The runs `--only` can pick.
const RUNS: [&str; 6] = ["main", "cluster", "scale", "recovery", "omb", "many"];

fn main() {
    if std::env::args().any(|a| a == "--null-broker") {
        nullbroker::serve(); // the child process of runs 1n, 3n and 4n
    }
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Options) -> Result<(), String> {
    println!(
        "# Troupe end-to-end benchmark ({})",
        if o.quick { "quick" } else { "full" }
    );
    println!("{}", report::machine());
    println!(
        "client settings: producers {}; consumers of runs 4-4n {}",
        client::THROUGHPUT_PRODUCER,
        client::TUNED_CONSUMER
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let every = broker::every_broker_sets();
    if !every.is_empty() {
        println!("broker settings (--set): {}", every.join(" "));
    }
    let tmp = match &o.data_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("troupe-e2e-")
            .tempdir_in(d)
            .map_err(|e| e.to_string())?,
        None => tempfile::Builder::new()
            .prefix("troupe-e2e-")
            .tempdir()
            .map_err(|e| e.to_string())?,
    };
    let root = tmp.path().to_path_buf();
    let bin = match &o.bootstrap {
        Some(_) => None,
        None => Some(broker::find_binary(o.broker_bin.as_deref())?),
    };

    let table_runs = o.wants("main") || o.wants("cluster") || o.wants("scale");
    let mut base = report::Baselines {
        loopback_mb: f64::NAN,
        append_mb: f64::NAN,
        kept_append_mb: f64::NAN,
    };
    if table_runs {
        eprintln!(
            "[baseline] loopback TCP and page-cache append, {} reps",
            o.reps
        );
        let mut tcp = Vec::new();
        let mut disk = Vec::new();
        for _ in 0..o.reps {
            baseline::settle();
            tcp.push(baseline::loopback_tcp(o.baseline_bytes).map_err(|e| e.to_string())?);
            disk.push(
                baseline::page_cache_append(&root, o.baseline_bytes / 2)
                    .map_err(|e| e.to_string())?,
            );
        }
        base.loopback_mb = median(&tcp);
        base.append_mb = median(&disk);
        eprintln!(
            "[baseline] loopback {:.0} MB/s, page-cache append {:.0} MB/s",
            base.loopback_mb, base.append_mb
        );
    }

    let (mut table, lat) = if o.wants("main") {
        runs::run(o, bin.as_deref(), &root, base)?
    } else {
        (report::Table::new(base), Vec::new())
    };
    let mut cluster_lat = None;
    if let (Some(bin), true, true) = (&bin, o.cluster, o.wants("cluster")) {
        // A failure is reported, not fatal: runs 1-5 are still printed.
        match cluster::run(o, bin, &root, &mut table) {
            Ok(l) => cluster_lat = l,
            Err(e) => println!("cluster rows failed: {e}\n"),
        }
    }

    if !table.rows.is_empty() {
        println!("\nat the end of runs 1-5: {}\n", report::load());
        table.print();
    }
    if !lat.is_empty() {
        report::print_latency(&lat, o.latency_rate, o.latency_linger_ms);
    }
    if let Some(l) = &cluster_lat {
        report::print_cluster(&table, l, o.latency_rate);
    }

    let mut scale_results = Vec::new();
    if let Some(bin) = &bin {
        let fd_limit = broker::raise_open_files_limit();
        if o.wants("scale") && !o.scale.is_empty() {
            eprintln!("[scale] open files limit: {fd_limit}");
        }
        let scale: &[usize] = if o.wants("scale") { &o.scale } else { &[] };
        for &n in scale {
            eprintln!("[scale] {n} partitions");
            // A failure is reported, not fatal: the results above are already printed.
            match scale::run(bin, &root, n, o.scale_msgs, o.max_secs, fd_limit) {
                Ok(r) => scale_results.push(r),
                Err(e) => println!("scale run with {n} partitions failed: {e}\n"),
            }
        }
    }
    report::print_scale(&scale_results, &base);
    extra::run(o, bin.as_deref(), &root)?;
    println!("at the end: {}\n", report::load());
    if table_runs {
        report::print_targets(&table, &lat, &scale_results);
    }
    Ok(())
}
