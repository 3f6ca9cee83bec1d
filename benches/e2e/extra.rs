//! The runs issue 14 added beside runs 1-5: recovery time, latency at a fixed rate
//! (OpenMessaging-Benchmark style) and many clients. Each starts a fresh broker of its
//! own (`--bootstrap`: OMB and many clients run against that broker instead, without
//! its CPU and memory; recovery needs a process to kill).

use crate::broker::{self, Broker};
use crate::many;
use crate::nullbroker::NullBroker;
use crate::omb;
use crate::recovery;
use crate::report::load;
use crate::Options;
use std::path::Path;

pub fn run(o: &Options, bin: Option<&Path>, root: &Path) -> Result<(), String> {
    // Before any broker starts: it inherits the limit, and 10,000 connections need it.
    let limit = broker::raise_open_files_limit();
    if let (Some(bin), true) = (bin, o.wants("recovery")) {
        eprintln!(
            "[recovery] {} MB in about {} segments",
            o.recovery_mb, o.recovery_segments
        );
        match recovery::run(bin, root, o.recovery_mb, o.recovery_segments) {
            Ok(r) => print_recovery(&r),
            Err(e) => println!("recovery run failed: {e}\n"),
        }
    }
    if !o.wants("omb") && !o.wants("many") {
        return Ok(());
    }
    let local = match (bin, &o.bootstrap) {
        (Some(bin), None) => Some(Broker::start(bin, &root.join("extra"), 0)?.0),
        _ => None,
    };
    let boot = match (&local, &o.bootstrap) {
        (Some(b), _) => b.bootstrap(),
        (None, Some(b)) => b.clone(),
        (None, None) => return Err("no broker".into()),
    };
    let tag = std::process::id();
    if o.wants("omb") {
        let mut results = Vec::new();
        for &rate in &o.omb_rates {
            eprintln!(
                "[omb] {rate} MB/s, {} partitions, 1 KiB, acks=all, {}s, linger {} ms",
                omb::PARTITIONS,
                o.omb_secs,
                o.omb_linger_ms
            );
            let topic = format!("e2e-{tag}-omb-{}", rate.round() as u64);
            omb::create_topic(&boot, &topic)?;
            crate::baseline::settle();
            if let Some(b) = &local {
                b.reset_peak_rss();
            }
            let watched = local.as_ref().map(Broker::pid).or(o.bootstrap_pid);
            let sample = || {
                watched
                    .and_then(broker::sample)
                    .map_or((f64::NAN, f64::NAN), |s| {
                        (s.cpu_secs, s.peak_rss_kb as f64 / 1024.0)
                    })
            };
            match omb::run(
                &boot,
                &topic,
                rate,
                o.omb_secs,
                o.omb_linger_ms,
                &sample,
                &o.report_dir,
            ) {
                Ok(r) => results.push((BROKER, r)),
                Err(e) => println!("OMB run at {rate} MB/s failed: {e}\n"),
            }
            // The ceiling, right after: the same clients on the echo broker.
            if o.omb_no_echo {
                continue;
            }
            eprintln!("[omb] {rate} MB/s on the echo broker (records in memory, no storage)");
            crate::baseline::settle();
            let echo = NullBroker::start_echo(omb::PARTITIONS)?;
            let sample = || {
                let s = echo.sample();
                (s.cpu_secs, s.peak_rss_kb as f64 / 1024.0)
            };
            match omb::run(
                &echo.bootstrap(),
                &topic,
                rate,
                o.omb_secs,
                o.omb_linger_ms,
                &sample,
                &o.report_dir.join("echo"),
            ) {
                Ok(r) => results.push((ECHO, r)),
                Err(e) => println!("OMB run at {rate} MB/s on the echo broker failed: {e}\n"),
            }
        }
        print_omb(&results, o.omb_linger_ms);
    }
    if o.wants("many") {
        eprintln!(
            "[many] {} producers + {} consumers (one group), {} partitions, {} records of 1 KiB",
            many::CLIENTS,
            many::CLIENTS,
            many::PARTITIONS,
            o.many_msgs
        );
        match many::clients(
            &boot,
            local.as_ref(),
            o.bootstrap_pid,
            &format!("e2e-{tag}-many"),
            o.many_msgs,
            o.max_secs,
        ) {
            Ok(r) => print_many(&r),
            Err(e) => println!("many-clients run failed: {e}\n"),
        }
        if let Some(b) = &local {
            // The bench and the broker each hold one descriptor per connection.
            let n = o.idle_conns.min(limit.saturating_sub(512) as usize);
            eprintln!("[idle] {n} idle connections (open files limit {limit})");
            match many::idle(b, n, o.idle_secs) {
                Ok(r) => print_idle(&r),
                Err(e) => println!("idle-connections run failed: {e}\n"),
            }
        }
    }
    if let Some(b) = local {
        b.stop()?;
    }
    Ok(())
}

fn print_recovery(r: &recovery::RecoveryResult) {
    println!(
        "R. recovery: {:.0} MB in {} segments (written in {:.1}s); {}",
        r.log_mb,
        r.segments,
        r.write_secs,
        load()
    );
    println!("| restart after | Metadata answered s | Fetch of the last offset s | broker CPU s at that point | target |");
    println!("|---|---:|---:|---:|---|");
    let verdict = |s: f64, t: f64| if s < t { "met" } else { "MISSED" };
    println!(
        "| kill -9 | {:.3} | {:.3} | {:.2} | < 3 s: {} |",
        r.kill_metadata_secs,
        r.kill_serve_secs,
        r.kill_cpu_secs,
        verdict(r.kill_serve_secs, 3.0)
    );
    println!(
        "| SIGTERM (stopped in {:.3} s) | {:.3} | {:.3} | {:.2} | < 1 s: {} |\n",
        r.stop_secs,
        r.clean_metadata_secs,
        r.clean_serve_secs,
        r.clean_cpu_secs,
        verdict(r.clean_serve_secs, 1.0)
    );
}

const BROKER: &str = "broker";
const ECHO: &str = "echo (ceiling)";

fn print_omb(results: &[(&str, omb::OmbResult)], linger_ms: u32) {
    if results.is_empty() {
        return;
    }
    println!(
        "L. latency at a fixed rate (OMB style): {} partitions, 1 KiB, acks=all, linger {linger_ms} ms, one consumer reading along; each rate also on the echo broker (records in memory, no storage: the machine's and the client's floor); {}",
        omb::PARTITIONS,
        load()
    );
    println!("| rate MB/s | served by | s | records | broker CPU s/GB | publish p50 / p99 / p99.9 / max ms | end-to-end p50 / p99 / p99.9 / max ms | broker peak RSS MB | plot |");
    println!("|---:|---|---:|---:|---:|---|---|---:|---|");
    let ms = |l: &crate::client::Latency| {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            l.quantile(0.5) / 1e3,
            l.quantile(0.99) / 1e3,
            l.quantile(0.999) / 1e3,
            l.quantile(1.0) / 1e3
        )
    };
    for (by, r) in results {
        let gb = r.sent as f64 * omb::RECORD as f64 / 1e9;
        println!(
            "| {} | {by} | {:.1} | {} | {:.2} | {} | {} | {:.0} | {} |",
            r.mb_per_sec,
            r.secs,
            r.sent,
            r.broker_cpu / gb,
            ms(&r.publish),
            ms(&r.e2e),
            r.broker_peak_rss_mb,
            r.plot.as_deref().unwrap_or("-")
        );
    }
    let at50 = |who: &str| {
        results
            .iter()
            .find(|(by, r)| *by == who && (r.mb_per_sec - 50.0).abs() < 1e-9)
            .map(|(_, r)| r.e2e.quantile(0.99) / 1e3)
    };
    if let Some(p99) = at50(BROKER) {
        let ceiling = at50(ECHO).map_or(String::new(), |c| {
            format!(
                " (the echo broker, same clients: {c:.2} ms; {:.2} × it)",
                p99 / c
            )
        });
        println!(
            "- e2e p99 < 5 ms at 50 MB/s: {p99:.2} ms{ceiling}: {}",
            if p99 < 5.0 { "met" } else { "MISSED" }
        );
    }
    println!();
}

fn print_many(r: &many::ManyResult) {
    let gb = |t: &crate::client::Throughput| t.bytes as f64 / 1e9;
    println!(
        "M. many clients: {} producers + {} consumers in one group, {} partitions, 1 KiB, acks=1 (group joined in {:.2} s); {}",
        many::CLIENTS,
        many::CLIENTS,
        many::PARTITIONS,
        r.join_secs,
        load()
    );
    println!("| | records | MB/s | broker CPU s/GB (produced + consumed) | broker CPU s | broker peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| produce | {} | {:.1} | {:.2} | {:.2} | {:.0} |",
        r.produce.msgs,
        r.produce.mb_per_sec(),
        r.broker_cpu / (gb(&r.produce) + gb(&r.consume)),
        r.broker_cpu,
        r.broker_peak_rss_mb
    );
    println!(
        "| consume (same time) | {} | {:.1} | | | |\n",
        r.consume.msgs,
        r.consume.mb_per_sec()
    );
}

fn print_idle(r: &many::IdleResult) {
    println!(
        "I. {} idle connections (each sent one ApiVersions): opened in {:.2} s; broker RSS {:.1} MB before, {:.1} MB with them open ({:.1} KB each); broker CPU {:.3} s over {:.0} s idle\n",
        r.connections,
        r.open_secs,
        r.rss_before_mb,
        r.rss_mb,
        (r.rss_mb - r.rss_before_mb) * 1024.0 / r.connections.max(1) as f64,
        r.idle_cpu,
        r.idle_secs
    );
}
