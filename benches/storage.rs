//! Storage engine benchmarks: append throughput beside a plain `write_all` baseline,
//! fetch-region lookup latency, recovery time of a fully scanned log, and log cleaner
//! (compaction) throughput.
//!
//! `cargo bench --bench storage`; `TROUPE_BENCH_RECOVERY_MB=1024` for a 1 GiB recovery.

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use troupe::storage::{
    build_batch, check_records, validate_batches, BatchHeader, CleanOptions, Log, LogConfig,
};

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
    // The record-structure walk of leader appends (uncompressed batches): per record,
    // so 100-byte records are its worst case.
    let value = vec![b'x'; 100];
    let records: Vec<_> = (0..10_000)
        .map(|_| (Some(&b"key"[..]), Some(value.as_slice())))
        .collect();
    let batch = build_batch(0, 1_700_000_000_000, &records);
    let header = BatchHeader::parse(&batch).unwrap();
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("check_records_10k_x_100B", |b| {
        b.iter(|| check_records(black_box(&batch[61..]), &header).unwrap())
    });
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

/// A compacted log of `mb` MiB in 8 MiB segments: batches of 100 records with 16-byte
/// keys drawn from `keys` distinct ones and 100-byte values, closed (all cleanable).
fn build_compacted(dir: &std::path::Path, mb: usize, keys: u64) -> LogConfig {
    let config = LogConfig {
        segment_bytes: 8 << 20,
        cleanup_compact: true,
        cleanup_delete: false,
        ..config()
    };
    let mut log = Log::open(dir, config.clone(), 0).unwrap();
    let value = vec![0x5au8; 100];
    let mut n = 0u64;
    while log.size_bytes() < (mb as u64) << 20 {
        let ks: Vec<String> = (0..100)
            .map(|i| format!("key-{:012}", (n + i) % keys))
            .collect();
        let recs: Vec<_> = ks
            .iter()
            .map(|k| (Some(k.as_bytes()), Some(value.as_slice())))
            .collect();
        let mut buf = BytesMut::from(&build_batch(0, 1, &recs)[..]);
        log.append_as_leader(&mut buf, 0, 0).unwrap();
        n += 100;
    }
    log.roll(0).unwrap();
    log.close().unwrap();
    config
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// One full cleaning pass (map + rewrite + swap) over a fresh copy of a dirty log;
/// throughput is of the log's bytes read. `dup` keys: 10 000 keys, ~99% of records
/// superseded; `unique`: no record removed, every batch copied.
fn clean(c: &mut Criterion) {
    let mb = 64;
    let mut group = c.benchmark_group("clean");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes((mb as u64) << 20));
    for (name, keys) in [("dup_10k_keys", 10_000u64), ("unique_keys", u64::MAX)] {
        let template = tempfile::tempdir().unwrap();
        let config = build_compacted(template.path(), mb, keys);
        group.bench_function(BenchmarkId::new(name, format!("{mb}MiB")), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    copy_dir(template.path(), dir.path());
                    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
                    let opts = CleanOptions {
                        force: true,
                        ..CleanOptions::new(0)
                    };
                    let start = Instant::now();
                    black_box(log.clean(opts).unwrap().unwrap());
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, validate, append, read_lookup, recovery, clean);
criterion_main!(benches);
