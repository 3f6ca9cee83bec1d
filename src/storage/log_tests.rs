//! Behaviour tests of [`Log`] against real files in temporary directories: appends,
//! reads, rolling, retention, truncation, lookups, and recovery from damaged files.

use std::path::Path;

use bytes::BytesMut;

use crate::storage::batch::{validate_batches, validate_batches_with};
use crate::storage::records::{decode_records, BatchBuilder};
use crate::storage::{AppendInfo, Log, LogConfig, StorageError};

pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// A batch of `n` records valued `"v<i>"` padded to `pad` bytes, stamped `ts + i`.
pub(crate) fn batch(n: usize, ts: i64, pad: usize) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("{i:0pad$}").into_bytes()).collect();
    let recs: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let mut b = BatchBuilder::new(0, ts);
    b.timestamp_deltas = (0..n as i64).collect();
    BytesMut::from(&b.build(&recs)[..])
}

pub(crate) fn append(log: &mut Log, n: usize, ts: i64) -> AppendInfo {
    log.append_as_leader(&mut batch(n, ts, 8), 0, ts).unwrap()
}

/// Every record from the log start offset to the end, as `(offset, timestamp)`, checking
/// that each region is made of whole, valid batches.
pub(crate) fn read_all(log: &Log) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut start = log.log_start_offset();
    loop {
        let info = log.read(start, 1000, i64::MAX, true).unwrap();
        let Some(region) = info.region else { break };
        let bytes = region.read_to_vec().unwrap();
        let headers = validate_batches_with(&bytes, usize::MAX, false).unwrap();
        let mut at = 0;
        for h in &headers {
            for r in decode_records(&bytes[at..at + h.total_size()]).unwrap() {
                if r.offset >= start {
                    out.push((r.offset, r.timestamp));
                }
            }
            at += h.total_size();
        }
        start = headers.last().unwrap().next_offset();
    }
    out
}

fn log_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn append_assigns_offsets_and_epoch_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let a = log.append_as_leader(&mut batch(3, 100, 4), 7, 100).unwrap();
    assert_eq!((a.first_offset, a.last_offset, a.record_count), (0, 2, 3));
    assert_eq!((a.max_timestamp, a.offset_of_max_timestamp), (102, 2));
    let mut two = batch(2, 200, 4);
    two.extend_from_slice(&batch(1, 300, 4));
    let b = log.append_as_leader(&mut two, 7, 300).unwrap();
    assert_eq!((b.first_offset, b.last_offset), (3, 5));
    assert_eq!(
        b.batches.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![3, 5]
    );
    assert!(b.batches.iter().all(|h| h.partition_leader_epoch == 7));
    assert_eq!(log.log_end_offset(), 6);
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
    let info = log.read(6, 100, i64::MAX, true).unwrap();
    assert!(info.region.is_none());
    assert_eq!((info.log_start_offset, info.log_end_offset), (0, 6));
    let err = log.read(7, 100, i64::MAX, true).unwrap_err();
    assert!(matches!(
        err,
        StorageError::OffsetOutOfRange {
            requested: 7,
            log_start: 0,
            log_end: 6
        }
    ));
    assert_eq!(err.kafka_error_code(), 1);
}

#[test]
fn invalid_append_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    append(&mut log, 2, 10);
    let mut bad = batch(1, 10, 4);
    bad.extend_from_slice(&batch(1, 10, 4));
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let err = log.append_as_leader(&mut bad, 0, 10).unwrap_err();
    assert_eq!(err.kafka_error_code(), 2);
    let huge = LogConfig {
        max_message_bytes: 100,
        ..small_config()
    };
    log.set_config(huge);
    let err = log
        .append_as_leader(&mut batch(10, 10, 8), 0, 10)
        .unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { .. }));
    assert_eq!(
        (log.log_end_offset(), log.size_bytes() as usize),
        (2, batch(2, 10, 8).len())
    );
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..5 {
        append(&mut log, 2, i);
    }
    let size = log.size_bytes();
    drop(log); // a crash: nothing flushed, indexes not trimmed
    let seg = &log_files(dir.path(), "log")[0];
    let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    f.set_len(size - 10).unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(read_all(&log).len(), 8);
    assert_eq!(append(&mut log, 1, 9).first_offset, 8);
    assert_eq!(
        read_all(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
}

#[test]
fn corrupt_batch_is_truncated_with_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..30 {
        append(&mut log, 4, i);
    }
    assert!(log.segment_count() >= 3);
    let second = log.segment_base_offsets()[1];
    drop(log);
    // Recovery point 0: every segment is scanned. Flip a byte in the second segment's
    // first batch; it and everything after must go.
    std::fs::write(dir.path().join("recovery-point"), "0\n").unwrap();
    let path = &log_files(dir.path(), "log")[1];
    let mut bytes = std::fs::read(path).unwrap();
    bytes[70] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), second);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(read_all(&log).len() as i64, second);
    assert_eq!(log_files(dir.path(), "log").len(), 2);
}

#[test]
fn missing_or_bad_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..40 {
        append(&mut log, 3, i * 10);
    }
    let expected = read_all(&log);
    let ts_answer = log.offset_for_timestamp(205).unwrap();
    let probe = log.read(50, 300, i64::MAX, true).unwrap().region.unwrap();
    log.close().unwrap();
    for p in log_files(dir.path(), "index") {
        std::fs::remove_file(p).unwrap();
    }
    let times = log_files(dir.path(), "timeindex");
    std::fs::write(&times[0], [1u8; 13]).unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.offset_for_timestamp(205).unwrap(), ts_answer);
    let again = log.read(50, 300, i64::MAX, true).unwrap().region.unwrap();
    assert_eq!((again.position, again.len), (probe.position, probe.len));
    assert_eq!(log_files(dir.path(), "index").len(), log.segment_count());
}

#[test]
fn reads_start_at_the_batch_holding_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    let infos: Vec<_> = (0..10).map(|i| append(&mut log, 5, i)).collect();
    // Offset 23 is the 4th record of the batch 20..=24: the region starts at that batch.
    let region = log
        .read(23, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    let bytes = region.read_to_vec().unwrap();
    let headers = validate_batches(&bytes, usize::MAX).unwrap();
    assert_eq!(headers[0].base_offset, 20);
    assert_eq!(headers.len(), 6);
    let expected_pos: usize = infos[..4].iter().map(|i| i.bytes as usize).sum();
    assert_eq!(region.position as usize, expected_pos);
}

#[test]
fn read_budget_and_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let a = append(&mut log, 50, 0); // one big batch
    for i in 0..5 {
        append(&mut log, 1, i);
    }
    let small = a.bytes as usize / 2;
    let one = log.read(0, small, i64::MAX, true).unwrap().region.unwrap();
    assert_eq!(one.len, a.bytes);
    assert!(log
        .read(0, small, i64::MAX, false)
        .unwrap()
        .region
        .is_none());
    // Budget for the big batch plus two small ones: whole batches only.
    let single = log
        .read(50, usize::MAX, i64::MAX, true)
        .unwrap()
        .region
        .unwrap()
        .len
        / 5;
    let r = log
        .read(
            10,
            a.bytes as usize + 2 * single as usize + 3,
            i64::MAX,
            true,
        )
        .unwrap();
    assert_eq!(r.region.unwrap().len, a.bytes + 2 * single);
    // High watermark 52: batches 50 and 51 only.
    let r = log.read(0, usize::MAX, 52, true).unwrap().region.unwrap();
    assert_eq!(r.len, a.bytes + 2 * single);
    assert!(log.read(52, usize::MAX, 52, true).unwrap().region.is_none());
    assert!(log.read(0, usize::MAX, 49, true).unwrap().region.is_none());
}

#[test]
fn roll_on_segment_bytes_and_ms() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    let size = batch(4, 0, 8).len() as u64;
    let per_segment = small_config().segment_bytes / size;
    for _ in 0..per_segment {
        append(&mut log, 4, 0);
    }
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 4, 0);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets()[1], 4 * per_segment as i64);

    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    append(&mut log, 1, 5000);
    append(&mut log, 1, 6000); // exactly segment.ms after the first batch: no roll
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 1, 6001);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // Batches without timestamps fall back to the segment's wall-clock creation time.
    let mut no_ts = BytesMut::from(&BatchBuilder::new(0, -1).build(&[(None, Some(b"x"))])[..]);
    log.roll(10_000).unwrap();
    log.append_as_leader(&mut no_ts.clone(), 0, 10_500).unwrap();
    log.append_as_leader(&mut no_ts, 0, 11_001).unwrap();
    assert_eq!(log.segment_count(), 4);
}

/// `preallocate`: a new segment holds segment.bytes of blocks while its size stays
/// that of its data (so recovery reads it as before); rolled, it gives back what it
/// did not use, and the new active segment reserves its own.
#[test]
fn preallocated_segments_reserve_their_blocks_and_give_back_the_rest_at_roll() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 8 << 20,
        preallocate: true,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    append(&mut log, 4, 0);
    let size = batch(4, 0, 8).len() as u64;
    let first = dir.path().join("00000000000000000000.log");
    let allocated = |p: &std::path::Path| std::fs::metadata(p).unwrap().blocks() * 512;
    assert_eq!(std::fs::metadata(&first).unwrap().len(), size);
    assert!(
        allocated(&first) >= 8 << 20,
        "reserved {}",
        allocated(&first)
    );
    log.roll(1).unwrap();
    assert!(allocated(&first) < 1 << 20, "kept {}", allocated(&first));
    let second = dir.path().join("00000000000000000004.log");
    assert!(
        allocated(&second) >= 8 << 20,
        "reserved {}",
        allocated(&second)
    );
    append(&mut log, 2, 0);
    drop(log);
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(
        std::fs::metadata(&second).unwrap().len(),
        batch(2, 0, 8).len() as u64
    );
    // Without the setting, nothing is reserved.
    let plain = tempfile::tempdir().unwrap();
    let mut log = Log::open(plain.path(), LogConfig::default(), 0).unwrap();
    append(&mut log, 4, 0);
    let p = plain.path().join("00000000000000000000.log");
    assert!(allocated(&p) < 1 << 20, "allocated {}", allocated(&p));
}

#[test]
fn roll_on_full_index_and_offset_overflow() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two offset entries and one time entry; an entry every batch after the first.
    let cfg = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    append(&mut log, 1, 1);
    append(&mut log, 1, 2); // time index now full
    assert_eq!(log.segment_count(), 1);
    append(&mut log, 1, 3);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);

    // A follower copying a compacted batch whose offsets span almost 2^31.
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut b = BatchBuilder::new(0, 1);
    b.last_offset_delta = Some(i32::MAX - 1);
    log.append_as_follower(&b.build(&[(None, Some(b"a"))]), 1)
        .unwrap();
    let next = log.log_end_offset();
    assert_eq!(next, i32::MAX as i64);
    log.append_as_follower(&BatchBuilder::new(next, 1).build(&[(None, Some(b"b"))]), 1)
        .unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "relative offset i32::MAX still fits"
    );
    log.append_as_follower(
        &BatchBuilder::new(next + 1, 1).build(&[(None, Some(b"c"))]),
        1,
    )
    .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, next + 1]);
    let reopened = {
        log.close().unwrap();
        Log::open(dir.path(), LogConfig::default(), 0).unwrap()
    };
    assert_eq!(reopened.log_end_offset(), next + 2);
    assert_eq!(read_all(&reopened).len(), 3);
}

#[test]
fn follower_append_keeps_offsets_and_rejects_gaps_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut b = BatchBuilder::new(0, 5);
    b.partition_leader_epoch = 3;
    log.append_as_follower(&b.build(&[(None, Some(b"a")), (None, Some(b"b"))]), 0)
        .unwrap();
    let err = log
        .append_as_follower(&BatchBuilder::new(5, 5).build(&[(None, None)]), 0)
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::UnexpectedAppendOffset {
            expected: 2,
            first: 5
        }
    ));
    assert_eq!(log.latest_epoch(), Some(3));
}

#[test]
fn flush_policy_advances_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_messages: 3,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    append(&mut log, 2, 0);
    assert_eq!(log.recovery_point(), 0);
    append(&mut log, 2, 0);
    assert_eq!(log.recovery_point(), 4);
    let cfg = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    log.set_config(cfg);
    append(&mut log, 1, 50);
    assert_eq!(log.recovery_point(), 4);
    append(&mut log, 1, 200);
    assert_eq!(log.recovery_point(), 6);
    drop(log);
    let text = std::fs::read_to_string(dir.path().join("recovery-point")).unwrap();
    assert_eq!(text.trim(), "6");
}

#[test]
fn delete_dir_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("topic-0");
    let mut log = Log::open(&part, small_config(), 0).unwrap();
    append(&mut log, 1, 0);
    assert_eq!(log.dir(), part.as_path());
    log.delete_dir().unwrap();
    assert!(!part.exists());
}

#[test]
fn segments_below_the_recovery_point_are_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..20 {
        append(&mut log, 4, i);
    }
    // Rolling fsyncs the closed segment, so the recovery point moves past it.
    assert_eq!(
        log.recovery_point(),
        *log.segment_base_offsets().last().unwrap()
    );
    let leo = log.log_end_offset();
    drop(log);
    // A flipped record byte in a trusted segment is not looked for (no CRC scan there):
    // the log opens with everything, as Kafka does below its recovery point.
    let first = &log_files(dir.path(), "log")[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[70] ^= 0x01;
    std::fs::write(first, bytes).unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), leo);
}

#[test]
fn clean_reopen_resumes_from_the_index_and_crash_reopen_scans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    let sizes: Vec<u64> = (0..20).map(|i| append(&mut log, 3, i).bytes).collect();
    let probe = log
        .read(45, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    log.close().unwrap();
    // Damage the header of the third batch. A full scan would cut the log there; a
    // clean reopen trusts everything below the recovery point and never looks.
    let seg = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[(sizes[0] + sizes[1]) as usize + 16] = 0;
    std::fs::write(&seg, bytes).unwrap();
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 60);
    let again = log
        .read(45, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    assert_eq!((again.position, again.len), (probe.position, probe.len));
    assert_eq!(append(&mut log, 3, 30).first_offset, 60);
    let tail = log
        .read(57, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    assert_eq!(
        validate_batches(&tail.read_to_vec().unwrap(), usize::MAX)
            .unwrap()
            .len(),
        2
    );
    // A crash leaves the indexes untrimmed: they fail the sanity check, the whole
    // segment is scanned, and the damaged header ends the log.
    drop(log);
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
}

/// A new leader epoch costs no file write on the append path; after a crash before
/// any flush (nothing checkpointed), the epochs come back from the batch headers.
#[test]
fn leader_epochs_survive_a_crash_before_the_checkpoint_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig::default();
    {
        let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
        for (epoch, n) in [(0, 3), (2, 2), (5, 4)] {
            let recs: Vec<_> = (0..n).map(|_| (None, Some(&b"v"[..]))).collect();
            let mut b = crate::storage::build_batch(0, 1_000, &recs).to_vec();
            log.append_as_leader(&mut b, epoch, 1_000).unwrap();
        }
        assert!(
            !dir.path().join("leader-epoch-checkpoint").exists(),
            "no write on append"
        );
        // Dropped without flush or close: as after kill -9.
    }
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (2, 3), (5, 5)]);
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 5)));
}

/// `append_is_quick` says ahead of each append whether it will only write: every
/// append it calls quick neither rolls a segment nor flushes, and every other one does
/// one of the two (or recompresses), across sizes, ages, flush policies and codecs.
#[test]
fn append_is_quick_predicts_rolls_and_flushes() {
    /// A name, a config, and appends as (records, timestamp and clock).
    type Case = (&'static str, LogConfig, Vec<(usize, i64)>);
    let cases: Vec<Case> = vec![
        (
            "segment.bytes",
            small_config(),
            (0..40).map(|i| (4, i)).collect(),
        ),
        (
            "segment.ms",
            LogConfig {
                segment_ms: 1000,
                ..LogConfig::default()
            },
            vec![
                (1, 5000),
                (1, 6000),
                (1, 6001),
                (2, 6500),
                (1, 7002),
                (1, 7003),
            ],
        ),
        (
            "flush.messages",
            LogConfig {
                flush_messages: 5,
                ..LogConfig::default()
            },
            (0..12).map(|i| (2, i)).collect(),
        ),
        (
            "flush.ms",
            LogConfig {
                flush_ms: 100,
                ..LogConfig::default()
            },
            vec![
                (1, 10),
                (1, 50),
                (1, 99),
                (1, 100),
                (1, 150),
                (1, 250),
                (1, 260),
            ],
        ),
    ];
    for (name, cfg, appends) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), cfg, 0).unwrap();
        let (mut quick_seen, mut slow_seen) = (0, 0);
        for (i, (n, ts)) in appends.into_iter().enumerate() {
            let mut records = batch(n, ts, 8);
            let quick = log.append_is_quick(&records, ts);
            let (segments, recovery_point) = (log.segment_count(), log.recovery_point());
            log.append_as_leader(&mut records, 0, ts).unwrap();
            let slow = log.segment_count() != segments || log.recovery_point() != recovery_point;
            assert_eq!(quick, !slow, "{name}: append {i} ({n} records at {ts})");
            if quick {
                quick_seen += 1;
            } else {
                slow_seen += 1;
            }
        }
        assert!(quick_seen > 0 && slow_seen > 0, "{name}: both kinds occur");
    }
    // A topic that recompresses: never on the caller's thread.
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compression: Some(1),
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), cfg, 0).unwrap();
    assert!(!log.append_is_quick(&batch(1, 0, 8), 0));
}
