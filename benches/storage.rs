//! Storage engine benchmarks: append throughput beside a plain `write_all` baseline,
//! fetch-region lookup latency, and recovery time of a fully scanned log.
//!
//! `cargo bench --bench storage`; `TROUPE_BENCH_RECOVERY_MB=1024` for a 1 GiB recovery.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use troupe::storage::{build_batch, validate_batches, Log, LogConfig};

/// One uncompressed batch of about `size` bytes made of 1000-byte records.
fn batch_of(size: usize) -> Bytes {
    let value = vec![0x5au8; 1000];
    let n = (size - 61) / 1010;
    let records: Vec<_> = (0..n).map(|_| (None, Some(value.as_slice()))).collect();
    build_batch(0, 1_700_000_000_000, &records)
}

fn config() -> LogConfig {
    LogConfig {
        max_message_bytes: 2 << 20,
        ..LogConfig::default()
    }
}

/// Validation alone (header checks and CRC-32C), the part of an append that plain
/// `write_all` does not do.
fn validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (name, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(validate_batches(&batch, 2 << 20).unwrap()))
        });
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, size) in [("16KiB", 16 << 10), ("1MiB", 1 << 20)] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(BenchmarkId::new("log", name), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let mut log = Log::open(dir.path(), config(), 0).unwrap();
                let mut buf = BytesMut::from(&batch[..]);
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(log.append_as_leader(&mut buf, 0, 0).unwrap());
                }
                start.elapsed()
            })
        });
        group.bench_function(BenchmarkId::new("write_all_baseline", name), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let mut file = File::create(dir.path().join("baseline.log")).unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    file.write_all(&batch).unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// A log of `mb` MiB of 16 KiB batches, closed.
fn build_log(dir: &std::path::Path, mb: usize, config: LogConfig) {
    let batch = batch_of(16 << 10);
    let mut log = Log::open(dir, config, 0).unwrap();
    let mut buf = BytesMut::from(&batch[..]);
    while log.size_bytes() < (mb as u64) << 20 {
        log.append_as_leader(&mut buf, 0, 0).unwrap();
    }
    log.close().unwrap();
}

fn read_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    build_log(
        dir.path(),
        64,
        LogConfig {
            segment_bytes: 8 << 20,
            ..config()
        },
    );
    let log = Log::open(dir.path(), config(), 0).unwrap();
    assert!(log.segment_count() >= 8);
    let leo = log.log_end_offset() as u64;
    let mut group = c.benchmark_group("read_region");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, budget) in [("max_bytes_64KiB", 64 << 10), ("max_bytes_1MiB", 1 << 20)] {
        let mut x = 0x9e3779b97f4a7c15u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                black_box(log.read((x % leo) as i64, budget, i64::MAX, true).unwrap())
            })
        });
    }
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mb: usize = std::env::var("TROUPE_BENCH_RECOVERY_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), mb, config());
    let mut group = c.benchmark_group("recovery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes((mb as u64) << 20));
    group.bench_function(BenchmarkId::new("full_scan", format!("{mb}MiB")), |b| {
        b.iter(|| {
            // Recovery point 0: every batch is read and its CRC checked.
            std::fs::write(dir.path().join("recovery-point"), "0\n").unwrap();
            let log = Log::open(dir.path(), config(), 0).unwrap();
            black_box(log.log_end_offset());
        })
    });
    group.finish();
}

criterion_group!(benches, validate, append, read_lookup, recovery);
criterion_main!(benches);
