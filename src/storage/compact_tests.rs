//! Tests of the log cleaner: one per compaction rule, crash points of the segment swap,
//! and a property test of "latest value per key, and nothing else".

use std::collections::BTreeMap;
use std::path::Path;

use bytes::BytesMut;
use proptest::prelude::*;

use crate::storage::batch::{compute_crc, validate_batches_with, BatchHeader, HEADER_SIZE};
use crate::storage::codec;
use crate::storage::compact_swap::CLEANER_CHECKPOINT_FILE;
use crate::storage::records::{decode_records, BatchBuilder, Record};
use crate::storage::{CleanOptions, CleanStep, Log, LogConfig, StorageError, DELETE_HORIZON_FLAG};

const RETENTION: i64 = 1000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 128,
        cleanup_compact: true,
        cleanup_delete: false,
        delete_retention_ms: RETENTION,
        ..LogConfig::default()
    }
}

fn forced(now_ms: i64) -> CleanOptions {
    CleanOptions {
        force: true,
        ..CleanOptions::new(now_ms)
    }
}

type Kv<'a> = (&'a str, Option<&'a str>);

fn kv_batch(records: &[Kv], ts: i64) -> BytesMut {
    kv_batch_with(BatchBuilder::new(0, ts), records)
}

fn kv_batch_with(b: BatchBuilder, records: &[Kv]) -> BytesMut {
    let recs: Vec<_> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    BytesMut::from(&b.build(&recs)[..])
}

fn put(log: &mut Log, records: &[Kv], ts: i64) -> i64 {
    let info = log
        .append_as_leader(&mut kv_batch(records, ts), 0, ts)
        .unwrap();
    info.first_offset
}

/// Every batch of the log from its start, read as fetches would (file regions).
fn batches(log: &Log) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut start = log.log_start_offset();
    loop {
        let info = log.read(start, 1 << 20, i64::MAX, true).unwrap();
        let Some(region) = info.region else { break };
        let bytes = region.read_to_vec().unwrap();
        let headers = validate_batches_with(&bytes, usize::MAX, false).unwrap();
        let mut at = 0;
        for h in &headers {
            out.push((*h, bytes[at..at + h.total_size()].to_vec()));
            at += h.total_size();
        }
        start = headers.last().unwrap().next_offset();
    }
    out
}

fn records(log: &Log) -> Vec<Record> {
    batches(log)
        .iter()
        .flat_map(|(_, b)| decode_records(&plain(b)).unwrap())
        .collect()
}

/// `batch` (plain records) with its records compressed by `codec`, as a producer sends.
fn compress_batch(batch: &[u8], c: u8) -> BytesMut {
    let mut out = batch[..HEADER_SIZE].to_vec();
    out.extend(codec::compress(c, &batch[HEADER_SIZE..], &[]).unwrap());
    seal(&mut out, |attrs| (attrs & !0x07) | i16::from(c));
    BytesMut::from(&out[..])
}

/// Set the attributes (through `f`), the batch length and the CRC of `batch`.
fn seal(batch: &mut [u8], f: impl Fn(i16) -> i16) {
    let attrs = i16::from_be_bytes([batch[21], batch[22]]);
    batch[21..23].copy_from_slice(&f(attrs).to_be_bytes());
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The batch as a consumer reads it after decompressing. The tests' unreadable
/// batches are plain records with gzip bits set: those are read with the bits cleared.
fn plain(batch: &[u8]) -> Vec<u8> {
    let h = BatchHeader::parse(batch).unwrap();
    let section = codec::decompress(h.compression(), &batch[HEADER_SIZE..], 1 << 24)
        .unwrap_or_else(|_| batch[HEADER_SIZE..].to_vec());
    let mut b = [&batch[..HEADER_SIZE], &section[..]].concat();
    seal(&mut b, |attrs| attrs & !0x07);
    b
}

/// Append `batch` as a follower copying it from a leader would (at the log end, no
/// record checks): how batches a leader refuses (control batches, malformed records
/// written by an older broker) can still be in a log.
fn append_copied(log: &mut Log, mut batch: BytesMut) {
    let leo = log.log_end_offset();
    crate::storage::batch::assign_offset_and_epoch(&mut batch, leo, 0);
    log.append_as_follower(&batch, 0).unwrap();
}

/// Append plain records carrying gzip bits, so the cleaner cannot open them: only a
/// topic that was not compacted when they came accepts them (compacted topics check
/// keys, which needs the records), so the policy is switched around the append.
fn append_unreadable(log: &mut Log, b: BatchBuilder, records: &[Kv], ts: i64) {
    let mut b = b;
    b.attributes |= 1;
    let compact = log.config().clone();
    log.set_config(LogConfig {
        cleanup_compact: false,
        cleanup_delete: true,
        ..compact.clone()
    });
    log.append_as_leader(&mut kv_batch_with(b, records), 0, ts)
        .unwrap();
    log.set_config(compact);
}

/// What a consumer reading the whole log ends up with: key → value, deleted keys gone.
fn consumer_view(log: &Log) -> BTreeMap<String, String> {
    let mut view = BTreeMap::new();
    for (_, key, value) in kvs(log) {
        match value {
            Some(v) => view.insert(key, v),
            None => view.remove(&key),
        };
    }
    view
}

/// Options of a forced pass that keeps the last batch of each producer of `log`, as
/// the log actor's producer state (rebuilt here from the log) would give.
fn forced_with_producers(log: &Log, now_ms: i64) -> CleanOptions {
    let (state, _) = crate::producer::load(log).unwrap();
    CleanOptions {
        producer_last_batch: state.last_batch_offsets().collect(),
        ..forced(now_ms)
    }
}

/// `(offset, key, value)` of every record, as strings.
fn kvs(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let s = |b: &Vec<u8>| String::from_utf8(b.clone()).unwrap();
    records(log)
        .iter()
        .map(|r| {
            let key = r.key.as_ref().map(s).unwrap_or_default();
            (r.offset, key, r.value.as_ref().map(s))
        })
        .collect()
}

/// Ten keys written five times each, one roll after every batch of ten.
fn overwritten_log(dir: &Path) -> Log {
    let mut log = Log::open(dir, config(), 0).unwrap();
    for round in 0..5 {
        let values: Vec<String> = (0..10).map(|k| format!("v{round}-{k}")).collect();
        let keys: Vec<String> = (0..10).map(|k| format!("k{k}")).collect();
        let recs: Vec<Kv> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (k.as_str(), Some(v.as_str())))
            .collect();
        put(&mut log, &recs, round);
        log.roll(round).unwrap();
    }
    log
}

#[test]
fn latest_value_per_key_survives_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    let leo = log.log_end_offset();
    assert_eq!(log.segment_count(), 6);
    let stats = log.clean(forced(10)).unwrap().unwrap();
    assert_eq!(stats.records_removed, 40);
    assert_eq!(stats.keys_in_map, 10);
    assert_eq!(stats.clean_offset, 50);
    // Five small closed segments merge into one.
    assert_eq!((stats.segments_before, stats.segments_after), (5, 1));
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), leo);
    let got = kvs(&log);
    let want: Vec<_> = (0..10)
        .map(|k| (40 + k, format!("k{k}"), Some(format!("v4-{k}"))))
        .collect();
    assert_eq!(got, want);
    // The same after a restart, and a second pass finds nothing to do.
    log.close().unwrap();
    let mut log = Log::open(dir.path(), config(), 20).unwrap();
    assert_eq!(kvs(&log), want);
    assert_eq!(log.log_end_offset(), leo);
    assert!(log.clean(CleanOptions::new(20)).unwrap().is_none());
}

#[test]
fn rewritten_batches_keep_their_last_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    // The batch's last record is superseded; its last offset must stay 2.
    put(
        &mut log,
        &[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))],
        0,
    );
    put(&mut log, &[("c", Some("2"))], 0);
    log.roll(0).unwrap();
    log.clean(forced(0)).unwrap().unwrap();
    let b = batches(&log);
    assert_eq!(b.len(), 2);
    assert_eq!((b[0].0.base_offset, b[0].0.last_offset()), (0, 2));
    assert_eq!(b[0].0.record_count, 2);
    assert_eq!(b[1].0.base_offset, 3);
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn active_segment_is_never_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    put(&mut log, &[("k0", Some("a")), ("k0", Some("b"))], 9);
    let active = std::fs::read(dir.path().join("00000000000000000050.log")).unwrap();
    log.clean(forced(10)).unwrap().unwrap();
    let after = std::fs::read(dir.path().join("00000000000000000050.log")).unwrap();
    assert_eq!(active, after);
    let k0: Vec<_> = kvs(&log).into_iter().filter(|r| r.1 == "k0").collect();
    // The map covers the cleanable range only (as Kafka's): the latest k0 of the closed
    // segments stays beside the active segment's two, untouched.
    assert_eq!(
        k0,
        vec![
            (40, "k0".into(), Some("v4-0".into())),
            (50, "k0".into(), Some("a".into())),
            (51, "k0".into(), Some("b".into()))
        ]
    );
}

#[test]
fn tombstones_live_for_delete_retention_after_first_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    put(&mut log, &[("a", Some("1")), ("b", Some("1"))], 0);
    put(&mut log, &[("a", None)], 0);
    log.roll(0).unwrap();
    let t0 = 5_000;
    log.clean(forced(t0)).unwrap().unwrap();
    assert_eq!(
        kvs(&log),
        vec![(1, "b".into(), Some("1".into())), (2, "a".into(), None)]
    );
    let tomb = batches(&log)
        .into_iter()
        .find(|(h, _)| h.base_offset == 2)
        .unwrap();
    assert_ne!(tomb.0.attributes & DELETE_HORIZON_FLAG, 0);
    assert_eq!(tomb.0.base_timestamp, t0 + RETENTION);
    // Record timestamps survive the new base timestamp.
    assert_eq!(decode_records(&tomb.1).unwrap()[0].timestamp, 0);
    // Not due before the horizon; due (without force) once it passed.
    assert!(log
        .plan_clean(CleanOptions::new(t0 + RETENTION - 1))
        .unwrap()
        .is_none());
    log.clean(forced(t0 + RETENTION - 1)).unwrap().unwrap();
    assert_eq!(kvs(&log).len(), 2);
    let stats = log
        .clean(CleanOptions::new(t0 + RETENTION))
        .unwrap()
        .unwrap();
    assert_eq!(stats.tombstones_removed, 1);
    assert_eq!(kvs(&log), vec![(1, "b".into(), Some("1".into()))]);
    assert_eq!(log.log_end_offset(), 3);
    let cp = std::fs::read_to_string(dir.path().join(CLEANER_CHECKPOINT_FILE)).unwrap();
    assert_eq!(cp.trim(), format!("3 {}", i64::MAX));
}

#[test]
fn reads_step_over_offset_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    log.clean(forced(10)).unwrap().unwrap();
    // Offsets 0..40 are gone: a fetch at any of them gets the first batch after it.
    for offset in 0..50 {
        let info = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        let bytes = info.region.unwrap().read_to_vec().unwrap();
        let recs = decode_records(&bytes).unwrap();
        assert!(recs.iter().any(|r| r.offset >= offset), "offset {offset}");
        assert_eq!(
            recs[0].offset,
            40.max(offset - offset % 10),
            "offset {offset}"
        );
    }
    assert!(log
        .read(50, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .is_none());
}

#[test]
fn keyless_records_are_rejected_in_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let mut keyless = BytesMut::from(
        &crate::storage::build_batch(0, 0, &[(Some(b"k"), Some(b"v")), (None, Some(b"v"))])[..],
    );
    let err = log.append_as_leader(&mut keyless, 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 87);
    // KIP-467: the keyless record is named by its index in the batch, not the others.
    let indexes: Vec<i32> = err.record_errors().iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1], "{err}");
    assert!(err.to_string().contains("without a key"), "{err}");
    assert_eq!(log.log_end_offset(), 0);
    // The same batch is fine when the topic only deletes.
    log.set_config(LogConfig {
        cleanup_compact: false,
        ..config()
    });
    log.append_as_leader(&mut keyless, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn keyless_records_written_before_compaction_are_cleaned_away() {
    let dir = tempfile::tempdir().unwrap();
    let delete_only = LogConfig {
        cleanup_compact: false,
        ..config()
    };
    let mut log = Log::open(dir.path(), delete_only, 0).unwrap();
    let mut keyless = BytesMut::from(&crate::storage::build_batch(0, 0, &[(None, Some(b"v"))])[..]);
    log.append_as_leader(&mut keyless, 0, 0).unwrap();
    put(&mut log, &[("k", Some("v"))], 0);
    log.roll(0).unwrap();
    log.set_config(config());
    let stats = log.clean(forced(0)).unwrap().unwrap();
    assert_eq!(stats.keyless_removed, 1);
    assert_eq!(kvs(&log), vec![(1, "k".into(), Some("v".into()))]);
}

#[test]
fn old_file_region_stays_valid_after_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    let region = log
        .read(0, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    let before = region.read_to_vec().unwrap();
    log.clean(forced(10)).unwrap().unwrap();
    assert_eq!(region.read_to_vec().unwrap(), before);
    assert_eq!(decode_records(&before).unwrap()[0].offset, 0);
}

#[test]
fn last_batch_of_a_tracked_producer_keeps_a_header_when_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let b = BatchBuilder::new(0, 0).producer(7, 0, 0);
    let mut first = kv_batch_with(b, &[("a", Some("1")), ("b", Some("1"))]);
    log.append_as_leader(&mut first, 0, 0).unwrap();
    put(&mut log, &[("a", Some("2")), ("b", Some("2"))], 0);
    log.roll(0).unwrap();
    let opts = forced_with_producers(&log, 0);
    assert_eq!(opts.producer_last_batch.get(&7), Some(&1));
    log.clean(opts).unwrap().unwrap();
    let b = batches(&log);
    assert_eq!(b.len(), 2);
    let h = b[0].0;
    assert_eq!((h.producer_id, h.base_sequence, h.record_count), (7, 0, 0));
    assert_eq!((h.base_offset, h.last_offset()), (0, 1));
    assert!(decode_records(&b[0].1).unwrap().is_empty());
}

#[test]
fn control_and_unreadable_batches_are_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    append_unreadable(&mut log, BatchBuilder::new(0, 0), &[("a", Some("1"))], 0);
    let mut control = BatchBuilder::new(0, 0).producer(3, 0, -1);
    control.attributes = 0x30;
    let control = kv_batch_with(control, &[("\0\0\0\0", Some("\0\0"))]);
    // Clients may not write control batches (INVALID_RECORD); a copied log may hold them.
    let err = log
        .append_as_leader(&mut control.clone(), 0, 0)
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 87);
    append_copied(&mut log, control);
    put(&mut log, &[("a", Some("2"))], 0);
    log.roll(0).unwrap();
    let before = batches(&log);
    log.clean(forced(0)).unwrap().unwrap();
    assert_eq!(batches(&log), before);
}

#[test]
fn compressed_batches_are_compacted_and_keep_their_codec() {
    for c in [codec::GZIP, codec::SNAPPY, codec::LZ4, codec::ZSTD] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0).unwrap();
        let old = kv_batch(&[("a", Some("1")), ("b", Some("1")), ("c", Some("1"))], 0);
        log.append_as_leader(&mut compress_batch(&old, c), 0, 0)
            .unwrap(); // 0..=2
        let newer = kv_batch(&[("a", Some("2")), ("c", None)], 0);
        log.append_as_leader(&mut compress_batch(&newer, c), 0, 0)
            .unwrap(); // 3..=4
        log.roll(0).unwrap();
        let stats = log.clean(forced(0)).unwrap().unwrap();
        assert_eq!(stats.records_removed, 2, "{}", codec::name(c));
        let b = batches(&log);
        assert_eq!(b.len(), 2, "{}", codec::name(c));
        for (h, bytes) in &b {
            assert_eq!(h.compression(), c, "rewritten with its own codec");
            assert_eq!(compute_crc(bytes), h.crc, "{}", codec::name(c));
        }
        assert_eq!(
            (
                b[0].0.base_offset,
                b[0].0.last_offset(),
                b[0].0.record_count
            ),
            (0, 2, 1)
        );
        assert_eq!(
            kvs(&log),
            vec![
                (1, "b".into(), Some("1".into())),
                (3, "a".into(), Some("2".into())),
                (4, "c".into(), None),
            ],
            "{}",
            codec::name(c)
        );
        // Keyless records in a compressed batch are refused on a compacted topic.
        let keyless =
            BytesMut::from(&BatchBuilder::new(0, 0).build(&[(None, Some(&b"v"[..]))])[..]);
        let err = log
            .append_as_leader(&mut compress_batch(&keyless, c), 0, 0)
            .unwrap_err();
        assert_eq!(err.kafka_error_code(), 87, "{}: {err}", codec::name(c));
        assert_eq!(err.record_errors().len(), 1, "{}: {err}", codec::name(c));
    }
}

#[test]
fn compressed_garbage_is_refused_on_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let mut b = BatchBuilder::new(0, 0);
    b.attributes = i16::from(codec::LZ4);
    let err = log
        .append_as_leader(&mut kv_batch_with(b, &[("k", Some("v"))]), 0, 0)
        .unwrap_err();
    assert!(matches!(err, StorageError::CorruptMessage(_)), "{err}");
    assert_eq!(err.kafka_error_code(), 2);
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_when_to_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    // All dirty: ratio 1 >= 0.5.
    assert!(log.plan_clean(CleanOptions::new(10)).unwrap().is_some());
    log.clean(CleanOptions::new(10)).unwrap().unwrap();
    // A small dirty tail beside a bigger clean head: below the ratio.
    put(&mut log, &[("k1", Some("x"))], 11);
    log.roll(11).unwrap();
    assert!(log.plan_clean(CleanOptions::new(12)).unwrap().is_none());
    // ... unless max.compaction.lag.ms says the dirty records waited too long.
    log.set_config(LogConfig {
        max_compaction_lag_ms: 100,
        ..config()
    });
    assert!(log.plan_clean(CleanOptions::new(50)).unwrap().is_none());
    assert!(log.plan_clean(CleanOptions::new(112)).unwrap().is_some());
    // min.compaction.lag.ms keeps young segments out, even when forced.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 1000,
        ..config()
    });
    assert!(log.plan_clean(forced(12)).unwrap().is_none());
    assert!(log.plan_clean(forced(2000)).unwrap().is_some());
    // The caller's bound (high watermark) keeps segments past it out.
    log.set_config(config());
    let k1 = |log: &Log| -> Vec<i64> {
        kvs(log)
            .into_iter()
            .filter(|r| r.1 == "k1")
            .map(|r| r.0)
            .collect()
    };
    let bounded = CleanOptions {
        max_offset: 50,
        ..forced(12)
    };
    assert!(log
        .plan_clean(CleanOptions {
            max_offset: 49,
            ..bounded.clone()
        })
        .unwrap()
        .is_none());
    let stats = log.clean(bounded).unwrap().unwrap();
    assert_eq!(stats.clean_offset, 50);
    assert_eq!(k1(&log), vec![41, 50]);
    log.clean(forced(12)).unwrap().unwrap();
    assert_eq!(k1(&log), vec![50]);
}

#[test]
fn retention_applies_only_with_the_delete_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    let cfg = LogConfig {
        retention_ms: 1,
        ..config()
    };
    log.set_config(cfg.clone());
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 0);
    log.set_config(LogConfig {
        cleanup_delete: true,
        ..cfg
    });
    assert!(log.enforce_retention(1_000_000).unwrap() >= 5);
}

#[test]
fn small_map_and_small_steps_converge_to_the_same_log() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let mut whole = overwritten_log(a.path());
    let mut stepped = overwritten_log(b.path());
    whole.clean(forced(10)).unwrap().unwrap();
    // A map that holds about one batch's keys, and 100-byte steps.
    let mut passes = 0;
    loop {
        let opts = CleanOptions {
            map_bytes: 600,
            ..forced(10)
        };
        let mut pass = stepped.plan_clean(opts).unwrap().unwrap();
        let stats = loop {
            match stepped.clean_step(&mut pass, 100).unwrap() {
                CleanStep::More => {}
                CleanStep::Done(s) => break s,
                CleanStep::Abandoned => panic!("abandoned"),
            }
        };
        passes += 1;
        if stats.clean_offset == 50 {
            break;
        }
        assert!(passes < 20);
    }
    assert!(passes > 1);
    assert_eq!(kvs(&stepped), kvs(&whole));
}

#[test]
fn pass_is_abandoned_when_segments_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = overwritten_log(dir.path());
    let mut pass = log.plan_clean(forced(10)).unwrap().unwrap();
    // Into the rewrite phase, with a cleaned file open.
    for _ in 0..4 {
        assert!(matches!(
            log.clean_step(&mut pass, 300).unwrap(),
            CleanStep::More
        ));
    }
    log.delete_records_before(20).unwrap();
    assert!(matches!(
        log.clean_step(&mut pass, 300).unwrap(),
        CleanStep::Abandoned
    ));
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .contains("cleaned")
        })
        .count();
    assert_eq!(leftovers, 0);
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(kvs(&log).len(), 30);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// Files of segment 0 of a cleaned log, copied into `to` with `suffix` (`.cleaned`,
/// `.swap`, or "" for the final names); `exts` picks which.
fn place(cleaned: &Path, to: &Path, exts: &[&str], suffix: &str) {
    for ext in exts {
        let name = format!("00000000000000000000.{ext}");
        std::fs::copy(cleaned.join(&name), to.join(format!("{name}{suffix}"))).unwrap();
    }
}

fn remove_segment(dir: &Path, base: i64) {
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(dir.join(format!("{base:020}.{ext}")));
    }
}

#[test]
fn crash_at_each_point_of_the_swap_recovers() {
    let root = tempfile::tempdir().unwrap();
    let (pre, post) = (root.path().join("pre"), root.path().join("post"));
    let log = overwritten_log(&pre);
    log.close().unwrap();
    copy_dir(&pre, &post);
    let mut log = Log::open(&post, config(), 0).unwrap();
    log.clean(forced(10)).unwrap().unwrap();
    let cleaned = kvs(&log);
    log.close().unwrap();
    let original = kvs(&Log::open(&pre, config(), 0).unwrap());
    assert_eq!((original.len(), cleaned.len()), (50, 10));

    type Setup = fn(&Path, &Path);
    let cases: [(&str, Setup, bool); 6] = [
        (
            "cleaned files written",
            |post, d| place(post, d, &["log", "index", "timeindex"], ".cleaned"),
            false,
        ),
        (
            "index swaps renamed, log still cleaned",
            |post, d| {
                place(post, d, &["index", "timeindex"], ".swap");
                place(post, d, &["log"], ".cleaned");
            },
            false,
        ),
        (
            "swap committed",
            |post, d| place(post, d, &["log", "index", "timeindex"], ".swap"),
            true,
        ),
        (
            "old segments partly deleted",
            |post, d| {
                place(post, d, &["log", "index", "timeindex"], ".swap");
                remove_segment(d, 0);
                remove_segment(d, 20);
            },
            true,
        ),
        (
            "indexes renamed into place",
            |post, d| {
                for b in [0, 10, 20, 30, 40] {
                    remove_segment(d, b);
                }
                place(post, d, &["index", "timeindex"], "");
                place(post, d, &["log"], ".swap");
            },
            true,
        ),
        (
            "old segments gone, nothing renamed",
            |post, d| {
                for b in [0, 10, 20, 30, 40] {
                    remove_segment(d, b);
                }
                place(post, d, &["log", "index", "timeindex"], ".swap");
            },
            true,
        ),
    ];
    for (i, (name, setup, committed)) in cases.iter().enumerate() {
        let d = root.path().join(format!("case{i}"));
        copy_dir(&pre, &d);
        setup(&post, &d);
        let log = Log::open(&d, config(), 0).unwrap();
        let want = if *committed { &cleaned } else { &original };
        assert_eq!(&kvs(&log), want, "{name}");
        assert_eq!(log.log_end_offset(), 50, "{name}");
        let stray = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect::<Vec<_>>();
        assert!(stray.is_empty(), "{name}: {stray:?}");
    }
}

/// One step of the property test's history.
#[derive(Clone, Debug)]
enum Op {
    /// Keys (0..6) and values (`None`: tombstone) of one batch.
    Append(Vec<(u8, Option<u16>)>),
    Roll,
    Clean,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, prop::option::weighted(0.8, any::<u16>()));
    prop_oneof![
        6 => prop::collection::vec(record, 1..6).prop_map(Op::Append),
        2 => Just(Op::Roll),
        1 => Just(Op::Clean),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random keyed appends, rolls and cleans (with small segments, a small map and small
    /// steps), then a final clean: each key's latest value is readable at the offset it
    /// was written at, and nothing else of that key; deleted keys are gone.
    #[test]
    fn compaction_keeps_exactly_the_latest_value_per_key(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { segment_bytes: 400, ..config() };
        let mut log = Log::open(dir.path(), cfg, 0).unwrap();
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        let mut now = 0;
        for op in ops {
            now += 1;
            match op {
                Op::Append(recs) => {
                    let owned: Vec<(String, Option<String>)> = recs
                        .iter()
                        .map(|(k, v)| (format!("key{k}"), v.map(|v| format!("value{v}"))))
                        .collect();
                    let kv: Vec<Kv> = owned.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    let first = put(&mut log, &kv, now);
                    for (i, (k, v)) in owned.into_iter().enumerate() {
                        latest.insert(k, (first + i as i64, v));
                    }
                }
                Op::Roll => log.roll(now).unwrap(),
                Op::Clean => {
                    let opts = CleanOptions { map_bytes: 300, ..CleanOptions::new(now) };
                    if let Some(mut pass) = log.plan_clean(opts).unwrap() {
                        while let CleanStep::More = log.clean_step(&mut pass, 150).unwrap() {}
                    }
                }
            }
        }
        let leo = log.log_end_offset();
        log.roll(now).unwrap();
        log.clean(forced(now)).unwrap();
        log.clean(forced(now + RETENTION)).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        let got = kvs(&log);
        let offsets: Vec<i64> = got.iter().map(|r| r.0).collect();
        prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        let want: Vec<(i64, String, Option<String>)> = {
            let mut w: Vec<_> = latest
                .into_iter()
                .filter_map(|(k, (o, v))| v.map(|v| (o, k, Some(v))))
                .collect();
            w.sort();
            w
        };
        prop_assert_eq!(got, want);
    }
}

/// Producer 7 writes key `a` `n` times from sequence `seq`, one batch each.
fn idempotent_overwrites(log: &mut Log, seq: i32, n: i32) {
    for s in seq..seq + n {
        let v = format!("v{s}");
        let b = BatchBuilder::new(0, 0).producer(7, 0, s);
        let mut batch = kv_batch_with(b, &[("a", Some(v.as_str()))]);
        log.append_as_leader(&mut batch, 0, 0).unwrap();
    }
}

#[test]
fn emptied_batches_go_except_each_tracked_producers_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    // Producer 9 (offset 0) is no longer tracked (expired): nothing of it need stay.
    let b = BatchBuilder::new(0, 0).producer(9, 0, 0);
    log.append_as_leader(&mut kv_batch_with(b, &[("a", Some("p9"))]), 0, 0)
        .unwrap();
    idempotent_overwrites(&mut log, 0, 20); // offsets 1..=20
    let b = BatchBuilder::new(0, 0).producer(8, 0, 0);
    log.append_as_leader(&mut kv_batch_with(b, &[("b", Some("p8"))]), 0, 0)
        .unwrap();
    put(&mut log, &[("a", Some("last"))], 0); // offset 22
    log.roll(0).unwrap();
    let (before, _) = crate::producer::load(&log).unwrap();
    let mut opts = forced_with_producers(&log, 0);
    assert_eq!(opts.producer_last_batch.remove(&9), Some(0));
    let stats = log.clean(opts).unwrap().unwrap();
    assert_eq!(stats.records_removed, 21);
    let summary = |log: &Log| -> Vec<(i64, i64, i32, i32)> {
        batches(log)
            .iter()
            .map(|(h, _)| {
                (
                    h.producer_id,
                    h.last_offset(),
                    h.base_sequence,
                    h.record_count,
                )
            })
            .collect()
    };
    // Producer 7's last batch stays as an empty header; its 19 older ones and producer
    // 9's batch go.
    assert_eq!(
        summary(&log),
        vec![(7, 20, 19, 0), (8, 21, 0, 1), (-1, 22, -1, 1)]
    );
    assert_eq!(log.log_end_offset(), 23);
    // Producer 7's state rebuilt from the cleaned log is what it was: a retry or the
    // next sequence is judged the same way.
    let (after, _) = crate::producer::load(&log).unwrap();
    let last = |s: &crate::producer::ProducerStateManager, id| {
        let e = s.get(id).unwrap();
        (e.epoch, *e.batches.back().unwrap())
    };
    assert_eq!(last(&after, 7), last(&before, 7));
    assert_eq!(last(&after, 8), last(&before, 8));
    // More overwrites: the log stays at one header per producer instead of growing.
    for round in 1..4 {
        log.roll(round).unwrap();
        idempotent_overwrites(&mut log, 20 * round as i32, 20);
        put(&mut log, &[("a", Some("last"))], round);
        log.roll(round).unwrap();
        let opts = forced_with_producers(&log, round);
        log.clean(opts).unwrap().unwrap();
        let left = summary(&log);
        assert_eq!(left.len(), 3, "round {round}: {left:?}");
        assert_eq!(left[1].0, 7, "round {round}: {left:?}");
        assert_eq!(left[1].2, 20 * round as i32 + 19, "round {round}");
    }
}

#[test]
fn tombstones_above_a_batch_kept_whole_stay() {
    // Records that do not decompress, then the transactional bit (with a producer id,
    // as such batches have).
    for (attributes, pid) in [(1i16, -1i64), (0x10, 5)] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0).unwrap();
        put(&mut log, &[("t", Some("1"))], 0);
        put(&mut log, &[("t", None)], 0); // offset 1: nothing unreadable below it
        let whole = BatchBuilder::new(0, 0).producer(pid, 0, 0);
        if attributes == 1 {
            append_unreadable(&mut log, whole, &[("k", Some("old"))], 0); // offset 2
        } else {
            let mut whole = whole;
            whole.attributes = attributes;
            log.append_as_leader(&mut kv_batch_with(whole, &[("k", Some("old"))]), 0, 0)
                .unwrap();
        }
        put(&mut log, &[("k", None)], 0); // offset 3
        log.roll(0).unwrap();
        let t0 = 5_000;
        log.clean(forced(t0)).unwrap().unwrap();
        let stats = log.clean(forced(t0 + RETENTION)).unwrap().unwrap();
        // The tombstone of `t` goes; the one of `k` stays, or `k=old` would come back.
        assert_eq!(stats.tombstones_removed, 1, "attributes {attributes}");
        assert_eq!(
            kvs(&log),
            vec![(2, "k".into(), Some("old".into())), (3, "k".into(), None)],
            "attributes {attributes}"
        );
        assert!(consumer_view(&log).is_empty(), "attributes {attributes}");
        // The pinned tombstone waits for no time: no pass is planned for it.
        let cp = std::fs::read_to_string(dir.path().join(CLEANER_CHECKPOINT_FILE)).unwrap();
        assert_eq!(
            cp.trim(),
            format!("4 {}", i64::MAX),
            "attributes {attributes}"
        );
        assert!(log
            .plan_clean(CleanOptions::new(t0 + 10 * RETENTION))
            .unwrap()
            .is_none());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random appends (plain, compressed with each codec, or unreadable: kept whole),
    /// rolls and cleans, then a final clean past every delete horizon: a consumer
    /// reading the log from its start ends with each key's latest value, and no deleted
    /// key comes back.
    #[test]
    fn compaction_never_revives_a_key_hidden_in_a_batch_kept_whole(
        ops in prop::collection::vec((op(), 0u8..6), 1..60)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig { segment_bytes: 400, ..config() };
        let mut log = Log::open(dir.path(), cfg, 0).unwrap();
        let mut latest: BTreeMap<String, String> = BTreeMap::new();
        let mut now = 0;
        for (op, kind) in ops {
            now += 1;
            match op {
                Op::Append(recs) => {
                    let owned: Vec<(String, Option<String>)> = recs
                        .iter()
                        .map(|(k, v)| (format!("key{k}"), v.map(|v| format!("value{v}"))))
                        .collect();
                    let kv: Vec<Kv> = owned.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    // 0: plain, 1-4: that codec, 5: unreadable (kept whole).
                    match kind {
                        0 => { log.append_as_leader(&mut kv_batch(&kv, now), 0, now).unwrap(); }
                        5 => append_unreadable(&mut log, BatchBuilder::new(0, now), &kv, now),
                        c => {
                            let mut b = compress_batch(&kv_batch(&kv, now), c);
                            log.append_as_leader(&mut b, 0, now).unwrap();
                        }
                    }
                    for (k, v) in owned {
                        match v {
                            Some(v) => latest.insert(k, v),
                            None => latest.remove(&k),
                        };
                    }
                }
                Op::Roll => log.roll(now).unwrap(),
                Op::Clean => {
                    let opts = CleanOptions { map_bytes: 300, ..CleanOptions::new(now) };
                    if let Some(mut pass) = log.plan_clean(opts).unwrap() {
                        while let CleanStep::More = log.clean_step(&mut pass, 150).unwrap() {}
                    }
                }
            }
        }
        let leo = log.log_end_offset();
        log.roll(now).unwrap();
        log.clean(forced(now)).unwrap();
        log.clean(forced(now + RETENTION)).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(consumer_view(&log), latest);
    }
}

#[test]
fn topic_compression_type_recompresses_batches_on_append() {
    for target in [codec::ZSTD, codec::GZIP, codec::NONE] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            compression: Some(target),
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), cfg, 0).unwrap();
        let recs = [("a", Some("1")), ("b", Some("2")), ("c", None)];
        let plain_batch = kv_batch_with(BatchBuilder::new(0, 7).producer(42, 3, 10), &recs);
        // In place and from a shared buffer; plain, lz4 and snappy in.
        log.append_as_leader(&mut plain_batch.clone(), 0, 7)
            .unwrap();
        let lz4 = compress_batch(&plain_batch, codec::LZ4);
        log.append_as_leader_shared(&lz4, 0, 7).unwrap();
        let snappy = compress_batch(&plain_batch, codec::SNAPPY);
        assert_eq!(
            log.append_as_leader(&mut snappy.clone(), 0, 7)
                .unwrap()
                .first_offset,
            6
        );
        let b = batches(&log);
        assert_eq!(b.len(), 3);
        for (h, bytes) in &b {
            assert_eq!(h.compression(), target, "stored with compression.type");
            assert_eq!(compute_crc(bytes), h.crc);
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, 10)
            );
            assert_eq!((h.record_count, h.base_timestamp), (3, 7));
        }
        let keys = kvs(&log);
        assert_eq!(keys.len(), 9);
        assert_eq!(keys[7], (7, "b".into(), Some("2".into())));
        assert_eq!(keys[8], (8, "c".into(), None));
    }
    // `producer` (None) keeps every batch as sent.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let gz = compress_batch(&kv_batch(&[("k", Some("v"))], 0), codec::GZIP);
    log.append_as_leader_shared(&gz, 0, 0).unwrap();
    assert_eq!(
        batches(&log)[0].1[16..],
        gz[16..],
        "bytes after the stamped offset and epoch"
    );
}

/// Append-time checks that share this file's batch helpers (compressed batches).
#[test]
fn record_timestamps_outside_the_topic_bounds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_before_max_ms: 1_000,
        timestamp_after_max_ms: 500,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    let now = 1_000_000;
    let at = |ts: i64| kv_batch(&[("k", Some("v"))], ts);
    // On the bounds: accepted.
    log.append_as_leader(&mut at(now - 1_000), 0, now).unwrap();
    log.append_as_leader_shared(&at(now + 500), 0, now).unwrap();
    // Past them, plain or compressed, in place or shared: INVALID_TIMESTAMP, nothing written.
    for mut bad in [
        at(now - 1_001),
        at(now + 501),
        compress_batch(&at(now + 10_000), codec::GZIP),
    ] {
        let err = log.append_as_leader(&mut bad.clone(), 0, now).unwrap_err();
        assert_eq!(err.kafka_error_code(), 32, "{err}");
        let err = log.append_as_leader_shared(&bad, 0, now).unwrap_err();
        assert_eq!(err.kafka_error_code(), 32, "{err}");
        assert_eq!(err.record_errors()[0].batch_index, 0, "{err}");
        bad.clear();
    }
    // One record out of range in a batch refuses the batch (not only its max timestamp).
    let mut b = BatchBuilder::new(0, now);
    b.timestamp_deltas = vec![0, -5_000, 0];
    let mut mixed = kv_batch_with(b, &[("a", Some("1")), ("b", Some("2")), ("c", Some("3"))]);
    let err = log.append_as_leader(&mut mixed, 0, now).unwrap_err();
    let indexes: Vec<i32> = err.record_errors().iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1], "only the middle record is named: {err}");
    assert_eq!(log.log_end_offset(), 2);
    // Unbounded (the default): anything goes.
    log.set_config(LogConfig::default());
    log.append_as_leader(&mut at(0), 0, now).unwrap();
    log.append_as_leader(&mut at(i64::MAX / 2), 0, now).unwrap();
}

#[test]
fn a_batch_whose_records_do_not_parse_is_kept_whole_and_cleaning_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    put(&mut log, &[("k", Some("1"))], 0);
    // A plain batch with a valid CRC whose record bytes are garbage (a length varint
    // running past the end): a leader refuses it, a log copied from an older broker
    // may hold it.
    let mut bad = kv_batch(&[("x", Some("y"))], 0).to_vec();
    bad.truncate(HEADER_SIZE);
    bad.extend_from_slice(&[0x7f, 1, 2, 3]);
    seal(&mut bad, |a| a);
    let err = log
        .append_as_leader(&mut BytesMut::from(&bad[..]), 0, 0)
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 2, "CORRUPT_MESSAGE: {err}");
    append_copied(&mut log, BytesMut::from(&bad[..]));
    put(&mut log, &[("k", Some("2"))], 0);
    log.roll(0).unwrap();
    let stats = log.clean(forced(0)).unwrap().unwrap();
    assert_eq!(
        stats.records_removed, 1,
        "k=1 went, the unreadable batch stayed"
    );
    let b = batches(&log);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].1[HEADER_SIZE..], bad[HEADER_SIZE..]);
}

#[test]
fn recompressing_to_uncompressed_stops_at_max_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression: Some(codec::NONE),
        max_message_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    // 1 MiB of zeros gzips to about 1 KiB: accepted as sent, too big once decompressed.
    let zeros = vec![0u8; 1 << 20];
    let big = BatchBuilder::new(0, 0).build(&[(Some(&b"k"[..]), Some(&zeros[..]))]);
    let gz = compress_batch(&big, codec::GZIP);
    assert!(gz.len() < 64 * 1024);
    let err = log.append_as_leader_shared(&gz, 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 10, "MESSAGE_TOO_LARGE: {err}");
    assert_eq!(log.log_end_offset(), 0);
    // A small one converts.
    let small = compress_batch(&kv_batch(&[("k", Some("v"))], 0), codec::GZIP);
    log.append_as_leader_shared(&small, 0, 0).unwrap();
    assert_eq!(batches(&log)[0].0.compression(), codec::NONE);
}

#[test]
fn records_without_timestamps_pass_the_timestamp_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_before_max_ms: 1_000,
        timestamp_after_max_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    log.append_as_leader(&mut kv_batch(&[("k", Some("v"))], -1), 0, 1_000_000)
        .unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn an_emptied_compressed_producer_batch_stays_as_an_uncompressed_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), 0).unwrap();
    let b = kv_batch_with(
        BatchBuilder::new(0, 0).producer(9, 0, 0),
        &[("a", Some("1"))],
    );
    log.append_as_leader(&mut compress_batch(&b, codec::ZSTD), 0, 0)
        .unwrap();
    put(&mut log, &[("a", Some("2"))], 0);
    log.roll(0).unwrap();
    log.clean(CleanOptions {
        producer_last_batch: [(9, 0)].into_iter().collect(),
        ..forced(0)
    })
    .unwrap()
    .unwrap();
    let b = batches(&log);
    assert_eq!((b[0].0.producer_id, b[0].0.record_count), (9, 0));
    assert_eq!(b[0].0.compression(), codec::NONE);
    assert_eq!(b[0].1.len(), HEADER_SIZE, "a bare 61-byte header");
}
