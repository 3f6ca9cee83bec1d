//! Medians, the results table (Markdown, so it can go straight into the README) and
//! the verdict against the targets of issue 6.

use crate::broker::ProcSample;
use crate::client::{Latency, Throughput};
use crate::scale::ScaleResult;

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The machine, as the README's performance section quotes it.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("machine: {cpus} CPUs, {model}, Linux {kernel}; {}", load())
}

/// The 1/5/15-minute load averages: other work on the machine skews every number.
pub fn load() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avg: Vec<&str> = l.split_whitespace().take(3).collect();
    format!("load average {}", avg.join(" "))
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Baselines {
    pub loopback_mb: f64,
    pub append_mb: f64,
    /// Page-cache append into a file that is kept, measured before run 3 (NaN if not).
    pub kept_append_mb: f64,
}

/// One repetition of one run.
#[derive(Clone, Copy, Debug)]
pub struct PhaseResult {
    pub throughput: Throughput,
    /// NaN when the broker is not ours (--bootstrap).
    pub broker_cpu: f64,
    pub broker_peak_rss_mb: f64,
    pub client_cpu: f64,
}

impl PhaseResult {
    pub fn new(
        t: Throughput,
        before: &ProcSample,
        after: &ProcSample,
        client_cpu: f64,
        local: bool,
    ) -> Self {
        let (cpu, rss) = if local {
            (
                after.cpu_secs - before.cpu_secs,
                after.peak_rss_kb as f64 / 1024.0,
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        eprintln!(
            "    => {} msgs in {:.2}s: {:.0} msg/s, {:.1} MB/s; broker CPU {:.2}s ({:.2} s/GB), peak RSS {:.0} MB; client CPU {:.2}s",
            t.msgs,
            t.secs,
            t.msgs_per_sec(),
            t.mb_per_sec(),
            cpu,
            cpu / (t.bytes as f64 / 1e9),
            rss,
            client_cpu
        );
        PhaseResult {
            throughput: t,
            broker_cpu: cpu,
            broker_peak_rss_mb: rss,
            client_cpu,
        }
    }
}

pub struct Row {
    pub name: String,
    pub msgs: u64,
    pub msg_s: f64,
    pub mb_s: f64,
    pub all_msg_s: Vec<f64>,
    pub broker_cpu: f64,
    /// Broker CPU seconds per GB of payload moved (produced or consumed): the headline.
    pub cpu_per_gb: f64,
    pub client_cpu: f64,
    pub peak_rss_mb: f64,
}

pub struct Table {
    pub base: Baselines,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn set_kept_append(&mut self, mb: f64) {
        self.base.kept_append_mb = mb;
    }

    pub fn new(base: Baselines) -> Self {
        Table {
            base,
            rows: Vec::new(),
        }
    }

    pub fn add(&mut self, name: &str, reps: &[PhaseResult]) {
        let pick =
            |f: &dyn Fn(&PhaseResult) -> f64| median(&reps.iter().map(f).collect::<Vec<_>>());
        self.rows.push(Row {
            name: name.to_string(),
            msgs: reps.first().map(|r| r.throughput.msgs).unwrap_or(0),
            msg_s: pick(&|r| r.throughput.msgs_per_sec()),
            mb_s: pick(&|r| r.throughput.mb_per_sec()),
            all_msg_s: reps.iter().map(|r| r.throughput.msgs_per_sec()).collect(),
            broker_cpu: pick(&|r| r.broker_cpu),
            cpu_per_gb: pick(&|r| r.broker_cpu / (r.throughput.bytes as f64 / 1e9)),
            client_cpu: pick(&|r| r.client_cpu),
            peak_rss_mb: reps
                .iter()
                .map(|r| r.broker_peak_rss_mb)
                .fold(f64::NAN, f64::max),
        });
    }

    pub fn row(&self, prefix: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name.starts_with(prefix))
    }

    pub fn print(&self) {
        println!(
            "Baselines (same run): loopback TCP {:.0} MB/s, page-cache append {:.0} MB/s, \
             page-cache append into a kept file (new pages, as a log's) {:.0} MB/s\n",
            self.base.loopback_mb, self.base.append_mb, self.base.kept_append_mb
        );
        println!("| run | **broker CPU s/GB** | msgs | msg/s (median) | MB/s | × loopback | × append | × kept append | broker CPU s | client CPU s | broker peak RSS MB | msg/s of each rep |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for r in &self.rows {
            let reps: Vec<String> = r.all_msg_s.iter().map(|v| format!("{v:.0}")).collect();
            println!(
                "| {} | **{:.2}** | {} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.0} | {} |",
                r.name,
                r.cpu_per_gb,
                r.msgs,
                r.msg_s,
                r.mb_s,
                r.mb_s / self.base.loopback_mb,
                r.mb_s / self.base.append_mb,
                r.mb_s / self.base.kept_append_mb,
                r.broker_cpu,
                r.client_cpu,
                r.peak_rss_mb,
                reps.join(", ")
            );
        }
        println!();
    }
}

pub fn print_latency(lat: &[Latency], rate: u64, linger_ms: u32) {
    let q = |x: f64| median(&lat.iter().map(|l| l.quantile(x)).collect::<Vec<_>>());
    println!(
        "5. end-to-end latency at {rate} msg/s, 100 B, acks=1, linger {linger_ms} ms (median of {} reps, {} samples each):",
        lat.len(),
        lat.first().map(|l| l.sorted_us.len()).unwrap_or(0)
    );
    println!(
        "   p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms\n",
        q(0.5) / 1e3,
        q(0.99) / 1e3,
        q(0.999) / 1e3,
        q(1.0) / 1e3
    );
}

/// The cluster rows against run 1 (one broker, RF 1, acks=1) and the acks=all latency.
pub fn print_cluster(table: &Table, lat: &Latency, rate: u64) {
    let ratio = |c: &str, r: &str| match (table.row(c), table.row(r)) {
        (Some(c), Some(r)) => c.msg_s / r.msg_s,
        _ => f64::NAN,
    };
    let p99 = lat.quantile(0.99) / 1e3;
    println!(
        "C5. cluster end-to-end latency at {rate} msg/s, 100 B, RF 3 acks=all: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({} samples)",
        lat.quantile(0.5) / 1e3,
        p99,
        lat.quantile(0.999) / 1e3,
        lat.sorted_us.len()
    );
    let r100 = ratio("C1.", "1.");
    println!(
        "cluster vs one broker: 100 B RF 3 acks=all = {r100:.2} x RF 1 acks=1 msg/s (target >= 0.4: {}); p99 {p99:.2} ms (target < 10 ms: {})\n",
        if r100 >= 0.4 { "met" } else { "missed" },
        if p99 < 10.0 { "met" } else { "missed" },
    );
}

pub fn print_scale(results: &[ScaleResult], base: &Baselines) {
    if results.is_empty() {
        return;
    }
    println!("| partitions | **broker CPU s/GB warm** | create s | start-up s | idle RSS MB | idle open files | produce msg/s cold / warm (100 B, spread) | MB/s warm | broker CPU s cold / warm | peak RSS MB | open files |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | **{:.2}** | {:.2} | {:.2} | {:.1} | {} | {:.0} / {:.0} | {:.1} ({:.3} × loopback) | {:.2} / {:.2} | {:.0} | {} |",
            r.partitions,
            r.warm_cpu_secs / (r.warm.bytes as f64 / 1e9),
            r.create_secs,
            r.startup_secs,
            r.idle_rss_mb,
            r.idle_open_files,
            r.cold.msgs_per_sec(),
            r.warm.msgs_per_sec(),
            r.warm.mb_per_sec(),
            r.warm.mb_per_sec() / base.loopback_mb,
            r.cold_cpu_secs,
            r.warm_cpu_secs,
            r.busy_peak_rss_mb,
            r.busy_open_files
        );
    }
    println!();
}

pub fn print_targets(table: &Table, lat: &[Latency], scale: &[ScaleResult]) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Targets (issue 6):");
    let loop_mb = table.base.loopback_mb;
    // A row's MB/s as a fraction of loopback (NaN if the run is missing).
    let x = |prefix: &str| table.row(prefix).map_or(f64::NAN, |r| r.mb_s / loop_mb);
    if let Some(r) = table.row("1.") {
        println!(
            "- produce 100 B acks=1 >= 1,500,000 msg/s: {:.0} msg/s: {}",
            r.msg_s,
            verdict(r.msg_s >= 1.5e6)
        );
    }
    if let Some(r) = table.row("3.") {
        println!(
            "- produce 1 KiB >= 0.5 x loopback: {:.3} x: {}",
            r.mb_s / loop_mb,
            verdict(r.mb_s >= 0.5 * loop_mb)
        );
        // What bounds it, from the same run: the client alone, the page cache for data
        // that stays, and the broker without librdkafka.
        println!(
            "  ceilings, x loopback: librdkafka into a null broker (3n) {:.3}; page-cache \
             append into kept files {:.3}; broker fed by a raw Produce loop (3c) {:.3}",
            x("3n."),
            table.base.kept_append_mb / loop_mb,
            x("3c.")
        );
    }
    if let Some(r) = table.row("4.") {
        println!(
            "- consume >= 0.7 x loopback: {:.3} x: {}",
            r.mb_s / loop_mb,
            verdict(r.mb_s >= 0.7 * loop_mb)
        );
        println!(
            "  ceilings, x loopback: librdkafka reading 1 KiB messages from a null broker \
             (4n) {:.3}, from this broker (4b) {:.3}; this broker read by a raw Fetch loop \
             (4c) {:.3}",
            x("4n."),
            x("4b."),
            x("4c.")
        );
    }
    if !lat.is_empty() {
        let p99 = median(&lat.iter().map(|l| l.quantile(0.99)).collect::<Vec<_>>()) / 1e3;
        println!(
            "- e2e p99 < 3 ms at 10k msg/s: {p99:.2} ms: {}",
            verdict(p99 < 3.0)
        );
    }
    print_targets_14(table);
    if let Some(s) = scale.iter().find(|s| s.partitions == 1000) {
        println!(
            "- 1,000 idle partitions RSS < 100 MB: {:.1} MB: {}",
            s.idle_rss_mb,
            verdict(s.idle_rss_mb < 100.0)
        );
        println!(
            "- 1,000 partitions start-up < 2 s: {:.2} s: {}",
            s.startup_secs,
            verdict(s.startup_secs < 2.0)
        );
    }
}

/// Issue 14's throughput targets, each against its ceiling measured in the same run.
/// The ceilings' reps ran beside the runs' reps (`runs.rs`), so beside the ratio of
/// the medians the median of the pairs' own ratios is printed: the steadier figure on
/// a machine whose throughput drifts over minutes.
fn print_targets_14(table: &Table) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let loop_mb = table.base.loopback_mb;
    let msg_s = |prefix: &str| table.row(prefix).map_or(f64::NAN, |r| r.msg_s);
    // The median of rep-by-rep ratios of two rows (NaN if either is missing).
    let paired = |a: &str, b: &str| match (table.row(a), table.row(b)) {
        (Some(a), Some(b)) if !a.all_msg_s.is_empty() && a.all_msg_s.len() == b.all_msg_s.len() => {
            median(
                &a.all_msg_s
                    .iter()
                    .zip(&b.all_msg_s)
                    .map(|(x, y)| x / y)
                    .collect::<Vec<_>>(),
            )
        }
        _ => f64::NAN,
    };
    // A run against the appending null broker (`1a.`, `3a.`), when the table has it.
    let against_floor = |run: &str, floor: &str| {
        let (x, f) = (msg_s(run), msg_s(floor));
        if f.is_finite() {
            println!(
                "  against the null broker that appends to kept files ({}, {f:.0} msg/s): \
                 {:.2} x (paired {:.2})",
                floor.trim_end_matches('.'),
                x / f,
                paired(run, floor)
            );
        }
    };
    println!(
        "Targets (issue 14), medians of this run (and the median of the reps' paired ratios):"
    );
    let (p100, n100) = (msg_s("1."), msg_s("1n."));
    if p100.is_finite() && n100.is_finite() {
        println!(
            "- produce 100 B acks=1 >= 0.95 x the client into the null broker (1n): {:.2} x \
             (paired {:.2}): {}",
            p100 / n100,
            paired("1.", "1n."),
            verdict(p100 >= 0.95 * n100)
        );
        against_floor("1.", "1a.");
    }
    let (p1k, n1k) = (msg_s("3."), msg_s("3n."));
    if p1k.is_finite() && n1k.is_finite() {
        // Kept append in msg/s of 1 KiB records, to compare with the rows.
        let kept = table.base.kept_append_mb * 1e6 / 1024.0;
        let ceiling = n1k.min(kept);
        println!(
            "- produce 1 KiB >= 0.8 x min(null broker (3n) {n1k:.0}, kept append {kept:.0} msg/s): \
             {:.2} x (paired with 3n {:.2}): {}",
            p1k / ceiling,
            paired("3.", "3n."),
            verdict(p1k >= 0.8 * ceiling)
        );
        against_floor("3.", "3a.");
    }
    let (c1k, cn) = (table.row("4b."), table.row("4n."));
    if let (Some(c), Some(n)) = (c1k, cn) {
        println!(
            "- consume 1 KiB, tuned, >= 0.9 x the same consumer on the null broker (4n): {:.2} x \
             (paired {:.2}; {:.3} x loopback): {}",
            c.msg_s / n.msg_s,
            paired("4b.", "4n."),
            c.mb_s / loop_mb,
            verdict(c.msg_s >= 0.9 * n.msg_s)
        );
    }
}
