//! Many clients: 8 producers and 8 consumers of one group on a topic of 64 partitions
//! at once (throughput, broker CPU and peak RSS), and 10,000 idle connections (broker
//! RSS and CPU while they stay open).

use crate::broker::Broker;
use crate::client::{self, ProduceSpec, Throughput};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub const PARTITIONS: i32 = 64;
pub const CLIENTS: usize = 8;

pub struct ManyResult {
    pub produce: Throughput,
    pub consume: Throughput,
    /// Until the 8 consumers had their partitions (the group's rebalance).
    pub join_secs: f64,
    pub broker_cpu: f64,
    pub broker_peak_rss_mb: f64,
}

/// `count` 1 KiB records in all, spread by 8 producers over 64 partitions, read by 8
/// consumers of one group that joined first.
pub fn clients(
    boot: &str,
    broker: Option<&Broker>,
    // The broker behind `--bootstrap`, when `--bootstrap-pid` names it.
    other_pid: Option<u32>,
    topic: &str,
    count: u64,
    max_secs: f64,
) -> Result<ManyResult, String> {
    let boot = boot.to_string();
    client::create_topics(&boot, &[(topic.to_string(), PARTITIONS)], 1)?;
    let group = format!("{topic}-group");
    let consumed = Arc::new(AtomicU64::new(0));
    let assigned = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first_msg: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let last_msg: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let t_join = Instant::now();
    let mut readers = Vec::new();
    for i in 0..CLIENTS {
        let (boot, group, topic) = (boot.clone(), group.clone(), topic.to_string());
        let (consumed, assigned, stop) = (consumed.clone(), assigned.clone(), stop.clone());
        let (first_msg, last_msg) = (first_msg.clone(), last_msg.clone());
        readers.push(std::thread::spawn(move || -> Result<(), String> {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &boot)
                .set("client.id", format!("troupe-e2e-many-{i}"))
                .set("group.id", &group)
                .set("enable.auto.commit", "true")
                .set("auto.offset.reset", "earliest")
                .set("log_level", "3")
                .create()
                .map_err(|e| format!("consumer: {e}"))?;
            c.subscribe(&[&topic]).map_err(|e| e.to_string())?;
            let mut counted = false;
            while !stop.load(Ordering::Acquire) {
                match c.poll(Duration::from_millis(50)) {
                    Some(Ok(_)) => {
                        let now = Instant::now();
                        if let Ok(mut f) = first_msg.lock() {
                            f.get_or_insert(now);
                        }
                        if let Ok(mut l) = last_msg.lock() {
                            *l = Some(now);
                        }
                        consumed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Err(e)) => eprintln!("    [many] consumer {i}: {e}"),
                    None => {}
                }
                if !counted && c.assignment().is_ok_and(|a| a.count() > 0) {
                    counted = true;
                    assigned.fetch_add(1, Ordering::AcqRel);
                }
            }
            c.unsubscribe();
            Ok(())
        }));
    }
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while assigned.load(Ordering::Acquire) < CLIENTS as u64 {
        if Instant::now() > join_deadline {
            stop.store(true, Ordering::Release);
            return Err(format!(
                "only {} of {CLIENTS} consumers got partitions within 60 s",
                assigned.load(Ordering::Acquire)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let join_secs = t_join.elapsed().as_secs_f64();
    eprintln!("    [many] 8 consumers assigned after {join_secs:.2}s; 8 producers start");

    crate::baseline::settle();
    if let Some(b) = broker {
        b.reset_peak_rss();
    }
    let sample = || {
        broker
            .map(Broker::sample)
            .or_else(|| other_pid.and_then(crate::broker::sample))
    };
    let b0 = sample();
    let per = count / CLIENTS as u64;
    let go = Arc::new(Barrier::new(CLIENTS));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (boot, topic, go) = (boot.clone(), topic.to_string(), go.clone());
            std::thread::spawn(move || -> Result<Throughput, String> {
                // Each producer writes to every partition, as keyless round-robin would.
                let targets = (0..PARTITIONS)
                    .map(|p| (topic.clone(), (p + i as i32) % PARTITIONS))
                    .collect();
                go.wait();
                client::produce(
                    &boot,
                    &ProduceSpec {
                        label: "many producers",
                        targets,
                        size: 1024,
                        count: per,
                        acks: "1",
                        linger_ms: 5,
                        max_secs,
                    },
                )
            })
        })
        .collect();
    let started = Instant::now();
    let mut produced = Throughput::default();
    let mut err = None;
    for w in writers {
        match w.join().map_err(|_| "producer thread panicked".to_string()) {
            Ok(Ok(t)) => {
                produced.msgs += t.msgs;
                produced.bytes += t.bytes;
                produced.secs = produced.secs.max(t.secs);
            }
            Ok(Err(e)) | Err(e) => err = Some(e),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.load(Ordering::Relaxed) < produced.msgs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let b1 = sample();
    stop.store(true, Ordering::Release);
    for r in readers {
        let _ = r.join();
    }
    if let Some(e) = err {
        return Err(e);
    }
    let n = consumed.load(Ordering::Relaxed);
    let consume_secs = match (
        *first_msg.lock().unwrap_or_else(|e| e.into_inner()),
        *last_msg.lock().unwrap_or_else(|e| e.into_inner()),
    ) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => started.elapsed().as_secs_f64(),
    };
    if n < produced.msgs {
        eprintln!("    [many] consumers read {n} of {} records", produced.msgs);
    }
    Ok(ManyResult {
        produce: produced,
        consume: Throughput {
            msgs: n,
            bytes: n * 1024,
            secs: consume_secs,
        },
        join_secs,
        broker_cpu: match (b0, b1) {
            (Some(a), Some(b)) => b.cpu_secs - a.cpu_secs,
            _ => f64::NAN,
        },
        broker_peak_rss_mb: b1.map_or(f64::NAN, |b| b.peak_rss_kb as f64 / 1024.0),
    })
}

pub struct IdleResult {
    pub connections: usize,
    pub rss_before_mb: f64,
    pub rss_mb: f64,
    pub open_secs: f64,
    /// Broker CPU over `idle_secs` with every connection open and silent.
    pub idle_cpu: f64,
    pub idle_secs: f64,
}

/// Opens `n` connections, each sends one ApiVersions request (so the broker has set
/// the connection up) and then stays silent; broker RSS and CPU while they are open.
pub fn idle(broker: &Broker, n: usize, idle_secs: f64) -> Result<IdleResult, String> {
    let rss_before_mb = broker.sample().rss_kb as f64 / 1024.0;
    let t0 = Instant::now();
    // ApiVersions v0: size, api key 18, version 0, correlation id, client id null.
    let frame: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    // In rounds of 64, each answered before the next opens, as clients that wait for
    // their handshake do. A burst of 10,000 connects overflowed the listen backlog
    // when it was tokio's 128 (`ss -ltn` shows it) whenever the broker was off the CPU
    // for a moment, and every dropped SYN cost a 1 s retransmit (60 s to open them all
    // in one burst, 30 s in rounds of 256); it is `socket.listen.backlog.size` now.
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    while conns.len() < n {
        let from = conns.len();
        for i in from..n.min(from + 64) {
            let mut s =
                TcpStream::connect(broker.addr).map_err(|e| format!("connection {i}: {e}"))?;
            s.write_all(&frame)
                .map_err(|e| format!("connection {i}: {e}"))?;
            conns.push(s);
        }
        for (i, s) in conns.iter_mut().enumerate().skip(from) {
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .map_err(|e| e.to_string())?;
            let mut len = [0u8; 4];
            s.read_exact(&mut len)
                .map_err(|e| format!("connection {i}: no ApiVersions answer: {e}"))?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let a = broker.sample();
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let b = broker.sample();
    drop(conns);
    Ok(IdleResult {
        connections: n,
        rss_before_mb,
        rss_mb: b.rss_kb as f64 / 1024.0,
        open_secs,
        idle_cpu: b.cpu_secs - a.cpu_secs,
        idle_secs,
    })
}
