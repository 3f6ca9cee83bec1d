//! Runs 1-5 of the benchmark against one broker: produce (100 B acks=1 and acks=all,
//! 1 KiB over 8 partitions), consume from the start, and end-to-end latency. Each run is
//! repeated `--reps` times on a topic of its own; the table keeps medians.

use crate::baseline;
use crate::broker::{self, Broker, ProcSample};
use crate::client::{self, Latency, ProduceSpec, Throughput};
use crate::nullbroker::NullBroker;
use crate::rawfetch;
use crate::rawproduce;
use crate::report::{Baselines, PhaseResult, Table};
use crate::Options;
use std::path::Path;

pub fn run(
    o: &Options,
    bin: Option<&Path>,
    root: &Path,
    base: Baselines,
) -> Result<(Table, Vec<Latency>), String> {
    let local = match bin {
        Some(bin) => {
            eprintln!("[broker] {}", bin.display());
            Some(Broker::start(bin, &root.join("broker"), 0)?.0)
        }
        None => None,
    };
    let bootstrap = match (&o.bootstrap, &local) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) => b.bootstrap(),
        (None, None) => return Err("no broker".into()),
    };
    match &local {
        Some(b) => eprintln!("[broker] bootstrap {bootstrap}, pid {}", b.pid()),
        None => eprintln!("[broker] bootstrap {bootstrap}"),
    }

    let tag = std::process::id();
    let name = |run: &str, rep: usize| format!("e2e-{tag}-{run}-{rep}");
    let mut topics = Vec::new();
    for r in 0..o.reps {
        topics.push((name("p100", r), 1));
        topics.push((name("p100all", r), 1));
        topics.push((name("p1k", r), 8));
        topics.push((name("rawp1k", r), 8));
        topics.push((name("rawp1k2", r), 8));
        topics.push((name("lat", r), 1));
    }
    client::create_topics(&bootstrap, &topics, 50)?;

    let measure =
        |f: &mut dyn FnMut() -> Result<Throughput, String>| -> Result<PhaseResult, String> {
            let synced = baseline::settle();
            if synced > 0.5 {
                eprintln!("    [settle] sync took {synced:.1}s before this run");
            }
            if let Some(b) = &local {
                b.reset_peak_rss();
            }
            // Our broker, or the one behind `--bootstrap` when `--bootstrap-pid` names it.
            let watched = local.as_ref().map(Broker::pid).or(o.bootstrap_pid);
            let b0 = watched.and_then(broker::sample).unwrap_or_default();
            let c0 = broker::sample(std::process::id()).unwrap_or_default();
            let t = f()?;
            let b1 = watched.and_then(broker::sample).unwrap_or_default();
            let c1 = broker::sample(std::process::id()).unwrap_or_default();
            Ok(PhaseResult::new(
                t,
                &b0,
                &b1,
                c1.cpu_secs - c0.cpu_secs,
                watched.is_some(),
            ))
        };
    let produce_spec =
        |label: &'static str, topic: String, parts: i32, size, count, acks| ProduceSpec {
            label,
            targets: (0..parts).map(|p| (topic.clone(), p)).collect(),
            size,
            count,
            acks,
            linger_ms: 5,
            max_secs: o.max_secs,
        };

    // The client's ceiling: a broker that keeps nothing (runs 1n, 3n, 4n). Each of its
    // reps runs beside the matching rep of the run it bounds, in an order that
    // alternates from pair to pair: on this shared VM throughput drifts over minutes
    // (and a new page costs more as the run takes memory), so ceilings measured in a
    // block of their own could be read at another moment than the runs they bound.
    let null = NullBroker::start()?;
    eprintln!("[null broker] bootstrap {}", null.bootstrap());
    // And the floor for a broker that keeps what it is sent (runs 1a, 3a): the same
    // client into a null broker that appends each partition's bytes to a kept file
    // (the client and the page cache's copy into new pages on the same two cores).
    let append_dir = root.join("null-append");
    let appender = NullBroker::start_append(&append_dir)?;
    // A produce run beside its two ceilings, rep by rep in a rotating order: the run
    // on the broker under test, then (as `<run>a`) on the appending null broker and
    // (as `<run>n`) on the null broker; topics `p<size>`, `append<size>`, `null<size>`.
    let beside = |run: &str,
                  what: &str,
                  label: &'static str,
                  size_key: &str,
                  (parts, size, count): (i32, usize, u64)|
     -> Result<[Vec<PhaseResult>; 3], String> {
        let mut out: [Vec<PhaseResult>; 3] = Default::default();
        for r in 0..o.reps {
            for step in rotation(3, r) {
                let (tag, what, label, topic) = match step {
                    0 => (
                        run.to_string(),
                        what.to_string(),
                        label,
                        format!("p{size_key}"),
                    ),
                    1 => (
                        format!("{run}a"),
                        format!("run {run} into a null broker that appends to kept files"),
                        "null broker, appending",
                        format!("append{size_key}"),
                    ),
                    _ => (
                        format!("{run}n"),
                        format!("run {run} into a null broker"),
                        "null broker",
                        format!("null{size_key}"),
                    ),
                };
                eprintln!("[{tag}] {what} (rep {}/{})", r + 1, o.reps);
                let spec = produce_spec(label, name(&topic, r), parts, size, count, "1");
                out[step].push(match step {
                    0 => measure(&mut || client::produce(&bootstrap, &spec))?,
                    1 => measure_child(&appender, &mut || {
                        client::produce(&appender.bootstrap(), &spec)
                    })?,
                    _ => measure_child(&null, &mut || client::produce(&null.bootstrap(), &spec))?,
                });
            }
        }
        Ok(out)
    };
    let mut table = Table::new(base);
    let [p100, append100, null100] = beside(
        "1",
        "produce 100 B, 1 partition, acks=1",
        "produce 100B acks=1",
        "100",
        (1, 100, o.count_100b),
    )?;
    table.add("1. produce 100 B, 1 partition, acks=1", &p100);
    table.add(
        "1a. run 1 into a null broker that appends to kept files (diagnostic)",
        &append100,
    );

    let mut all = Vec::new();
    for r in 0..o.reps {
        eprintln!(
            "[2] produce 100 B, 1 partition, acks=all (rep {}/{})",
            r + 1,
            o.reps
        );
        let spec = produce_spec(
            "produce 100B acks=all",
            name("p100all", r),
            1,
            100,
            o.count_100b,
            "all",
        );
        all.push(measure(&mut || client::produce(&bootstrap, &spec))?);
    }
    table.add("2. produce 100 B, 1 partition, acks=all", &all);

    // Run 3's volume appended to kept files: the page-cache ceiling for data that stays.
    let mut kept = Vec::new();
    let mut kept_files = Vec::new();
    for r in 0..o.reps {
        baseline::settle();
        let (mb, path) = baseline::page_cache_append_kept(root, o.count_1k * 1024, r)
            .map_err(|e| e.to_string())?;
        eprintln!(
            "[baseline] page-cache append into a kept file: {mb:.0} MB/s (rep {}/{})",
            r + 1,
            o.reps
        );
        kept.push(mb);
        kept_files.push(path);
    }
    table.set_kept_append(crate::report::median(&kept));

    // Run 3, each rep beside a rep of 3a and of 3n (in a rotating order).
    let [p1k, appended, null1k] = beside(
        "3",
        "produce 1 KiB, 8 partitions, acks=1",
        "produce 1KiB x8",
        "1k",
        (8, 1024, o.count_1k),
    )?;
    drop(appender);
    table.add("3. produce 1 KiB, 8 partitions, acks=1", &p1k);
    table.add(
        "3a. run 3 into a null broker that appends to kept files (the floor for a broker that keeps data; diagnostic)",
        &appended,
    );

    for (conns, key, label) in [
        (
            1,
            "rawp1k",
            "3c. raw Produce loop, 1 connection (diagnostic, no librdkafka)",
        ),
        (
            2,
            "rawp1k2",
            "3c. raw Produce loop, 2 connections (diagnostic)",
        ),
    ] {
        let mut raw = Vec::new();
        for r in 0..o.reps {
            eprintln!(
                "[3c] raw Produce loop, {conns} connection(s), 8 in flight each (rep {}/{})",
                r + 1,
                o.reps
            );
            let topic = name(key, r);
            let spec = rawproduce::Spec {
                topic: &topic,
                partitions: 8,
                connections: conns,
                size: 1024,
                count: o.count_1k,
                in_flight: 8,
            };
            raw.push(measure(&mut || rawproduce::produce(&bootstrap, &spec))?);
        }
        table.add(label, &raw);
    }

    table.add(
        "1n. run 1 into a null broker (librdkafka's ceiling; diagnostic)",
        &null100,
    );
    table.add(
        "3n. run 3 into a null broker (librdkafka's ceiling; diagnostic)",
        &null1k,
    );
    for f in kept_files {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&append_dir);

    let mut cons = Vec::new();
    for (r, produced) in p100.iter().enumerate() {
        eprintln!(
            "[4] consume run 1 from the start (rep {}/{})",
            r + 1,
            o.reps
        );
        let expected = produced.throughput.msgs;
        let topic = name("p100", r);
        cons.push(measure(&mut || {
            client::consume(&bootstrap, "consume 100B", &topic, 1, expected, o.max_secs)
        })?);
    }
    table.add("4. consume run 1 (100 B) from the start", &cons);

    let mut cons1k = Vec::new();
    let mut consume_ceiling = Vec::new();
    for (r, produced) in p1k.iter().enumerate() {
        for step in rotation(2, r) {
            if step == 0 {
                eprintln!(
                    "[4b] consume run 3 from the start (rep {}/{})",
                    r + 1,
                    o.reps
                );
                let expected = produced.throughput.msgs;
                let topic = name("p1k", r);
                cons1k.push(measure(&mut || {
                    client::consume(&bootstrap, "consume 1KiB", &topic, 8, expected, o.max_secs)
                })?);
            } else {
                eprintln!(
                    "[4n] librdkafka reading 1 KiB messages from the null broker (rep {}/{})",
                    r + 1,
                    o.reps
                );
                let topic = name("null1k", r);
                consume_ceiling.push(measure_child(&null, &mut || {
                    client::consume(
                        &null.bootstrap(),
                        "null consume",
                        &topic,
                        8,
                        o.count_1k,
                        o.max_secs,
                    )
                })?);
            }
        }
    }
    drop(null);
    table.add("4b. consume run 3 (1 KiB, 8 partitions)", &cons1k);
    table.add(
        "4n. 4b's consumer on a null broker serving from memory (librdkafka's ceiling; diagnostic)",
        &consume_ceiling,
    );

    let mut raw = Vec::new();
    for (r, produced) in p100.iter().enumerate() {
        eprintln!(
            "[4c] raw Fetch loop over run 1, no client library (rep {}/{})",
            r + 1,
            o.reps
        );
        let expected = produced.throughput.msgs;
        let topic = name("p100", r);
        // A diagnostic: a broker whose answers this hand-written client cannot read
        // (another broker behind `--bootstrap`) skips it instead of ending the bench.
        match measure(&mut || rawfetch::consume(&bootstrap, &topic, expected, 100)) {
            Ok(r) => raw.push(r),
            Err(e) => {
                eprintln!("    [4c] skipped: {e}");
                println!("4c. raw Fetch loop skipped: {e}\n");
                break;
            }
        }
    }
    if !raw.is_empty() {
        table.add("4c. raw Fetch of run 1 (diagnostic, no librdkafka)", &raw);
    }

    let mut lat = Vec::new();
    for r in 0..o.reps {
        eprintln!(
            "[5] e2e latency at {} msg/s for {}s, linger {} ms (rep {}/{})",
            o.latency_rate,
            o.latency_secs,
            o.latency_linger_ms,
            r + 1,
            o.reps
        );
        let l = client::latency(
            &bootstrap,
            &name("lat", r),
            o.latency_rate,
            o.latency_secs,
            o.latency_linger_ms,
        )?;
        eprintln!(
            "    p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us ({} samples of {} sent after warm-up)",
            l.quantile(0.5),
            l.quantile(0.99),
            l.quantile(0.999),
            l.quantile(1.0),
            l.sorted_us.len(),
            l.sent
        );
        lat.push(l);
    }
    if let Some(b) = local {
        let s: ProcSample = b.sample();
        eprintln!("[broker] total CPU {:.1}s; stopping", s.cpu_secs);
        b.stop()?;
    }
    Ok((table, lat))
}

/// One measured phase against a null broker child process: its CPU and RSS, and this
/// process's (the client's) CPU.
fn measure_child(
    child: &NullBroker,
    f: &mut dyn FnMut() -> Result<Throughput, String>,
) -> Result<PhaseResult, String> {
    measure_sampled(&|| child.sample(), f)
}

/// One measured phase of a broker (or brokers) that `sample` reads: its CPU and RSS,
/// and this process's (the client's) CPU, after the page cache has settled.
pub fn measure_sampled(
    sample: &dyn Fn() -> ProcSample,
    f: &mut dyn FnMut() -> Result<Throughput, String>,
) -> Result<PhaseResult, String> {
    baseline::settle();
    let b0 = sample();
    let c0 = broker::sample(std::process::id()).unwrap_or_default();
    let t = f()?;
    let b1 = sample();
    let c1 = broker::sample(std::process::id()).unwrap_or_default();
    Ok(PhaseResult::new(
        t,
        &b0,
        &b1,
        c1.cpu_secs - c0.cpu_secs,
        true,
    ))
}

/// The order of the `n` runs of pair (or triple) `rep`: rotated by one each rep, so no
/// run is always first.
fn rotation(n: usize, rep: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + rep) % n)
}
