//! Cluster rows (issue 11): three local brokers started from the shipped
//! `config/cluster/node-N.properties` (ports and directories overridden), a topic with
//! replication factor 3 and `min.insync.replicas=2`, produced with acks=all (100 B to
//! one partition, 1 KiB to 8), and end-to-end latency at the fixed rate with acks=all.
//! Run 1 (one broker, RF 1, acks=1) of the same bench run is the reference. The three
//! brokers share this machine's cores with the client, so the ratio is what counts.

use crate::broker::{free_port, Broker, ProcSample};
use crate::client::{self, Latency, ProduceSpec};
use crate::report::{PhaseResult, Table};
use crate::Options;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Cluster {
    brokers: Vec<Broker>,
}

impl Cluster {
    pub fn start(bin: &Path, root: &Path, extra: &[String]) -> Result<Cluster, String> {
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| {
                Ok::<_, String>((
                    free_port().map_err(|e| e.to_string())?,
                    free_port().map_err(|e| e.to_string())?,
                    free_port().map_err(|e| e.to_string())?,
                ))
            })
            .collect::<Result<_, _>>()?;
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c, _))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut brokers = Vec::new();
        for (i, (p, c, m)) in ports.iter().enumerate() {
            // A known metrics port per node, printed, so a run can be watched from
            // outside (`curl` its /metrics while a row runs).
            eprintln!(
                "[cluster] node {}: 127.0.0.1:{p}, metrics http://127.0.0.1:{m}/metrics",
                i + 1
            );
            let mut overrides = vec![
                format!("listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                format!("advertised.listeners=PLAINTEXT://127.0.0.1:{p}"),
                format!("controller.quorum.voters={voters}"),
                format!("metrics.http.listener=127.0.0.1:{m}"),
            ];
            overrides.extend(extra.iter().cloned());
            let cfg = config_dir.join(format!("node-{}.properties", i + 1));
            let dir = root.join(format!("cluster-node-{}", i + 1));
            brokers.push(Broker::spawn(bin, &dir, *p, Some(&cfg), &overrides)?.0);
        }
        let c = Cluster { brokers };
        let deadline = Instant::now() + Duration::from_secs(60);
        while client::broker_count(&c.bootstrap()).unwrap_or(0) < 3 {
            if Instant::now() > deadline {
                return Err("the 3-node cluster did not list 3 brokers within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(c)
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// CPU and peak RSS summed over the three processes.
    fn sample(&self) -> ProcSample {
        let mut s = ProcSample::default();
        for b in &self.brokers {
            let x = b.sample();
            s.cpu_secs += x.cpu_secs;
            s.peak_rss_kb += x.peak_rss_kb;
            s.rss_kb += x.rss_kb;
        }
        s
    }

    pub fn stop(self) {
        // SIGTERM all at once: one by one, the last would wait for a quorum.
        for b in self.brokers {
            let _ = b.stop();
        }
    }
}

/// Cluster rows added to `table`; the acks=all latency at the fixed rate is returned.
pub fn run(
    o: &Options,
    bin: &Path,
    root: &Path,
    table: &mut Table,
) -> Result<Option<Latency>, String> {
    eprintln!("[cluster] starting 3 brokers (RF 3, min.insync.replicas 2)");
    let c = Cluster::start(bin, root, &o.cluster_set)?;
    if !o.cluster_set.is_empty() {
        eprintln!("[cluster] extra settings: {}", o.cluster_set.join(" "));
    }
    let boot = c.bootstrap();
    let tag = std::process::id();
    let name = |run: &str, rep: usize| format!("e2e-{tag}-c{run}-{rep}");
    let mut topics = Vec::new();
    for r in 0..o.reps {
        topics.push((name("p100", r), 1));
        topics.push((name("p1k", r), 8));
    }
    topics.push((name("lat", 0), 1));
    client::create_topics_rf(&boot, &topics, 3, &[("min.insync.replicas", "2")])?;
    let measure = |spec: &ProduceSpec| -> Result<PhaseResult, String> {
        crate::runs::measure_sampled(&|| c.sample(), &mut || client::produce(&boot, spec))
    };
    for (run, size, parts, count) in [
        ("p100", 100usize, 1i32, o.count_100b),
        ("p1k", 1024, 8, o.count_1k),
    ] {
        let mut reps = Vec::new();
        for r in 0..o.reps {
            eprintln!(
                "[cluster] produce {size} B, {parts} partition(s), RF 3, acks=all (rep {}/{})",
                r + 1,
                o.reps
            );
            let spec = ProduceSpec {
                label: "cluster produce",
                targets: (0..parts).map(|p| (name(run, r), p)).collect(),
                size,
                count,
                acks: "all",
                linger_ms: 5,
                max_secs: o.max_secs,
            };
            reps.push(measure(&spec)?);
        }
        let label = if size == 100 {
            "C1. cluster: produce 100 B, 1 partition, RF 3 acks=all"
        } else {
            "C3. cluster: produce 1 KiB, 8 partitions, RF 3 acks=all"
        };
        table.add(label, &reps);
    }
    eprintln!("[cluster] latency at {} msg/s, acks=all", o.latency_rate);
    let lat = client::latency_acks(
        &boot,
        &name("lat", 0),
        o.latency_rate,
        o.latency_secs,
        o.latency_linger_ms,
        "all",
    )?;
    c.stop();
    Ok(Some(lat))
}
