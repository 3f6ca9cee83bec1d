//! Tests of the [`Log`] operations that reshape it or look things up: retention,
//! DeleteRecords, truncation, timestamp and leader-epoch lookups.

use crate::storage::batch::validate_batches;
use crate::storage::log_tests::{append, batch, read_all, small_config};
use crate::storage::{Log, LogConfig, StorageError};

#[test]
fn retention_by_time_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 1000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg.clone(), 0).unwrap();
    for i in 0..60 {
        append(&mut log, 4, 1000 + i);
    }
    let n = log.segment_count();
    assert!(n >= 4);
    assert_eq!(log.enforce_retention(1500).unwrap(), 0);
    // Everything is older than retention.ms: the active segment is rolled, then all
    // closed segments go, and the log is empty but keeps its offsets.
    let leo = log.log_end_offset();
    assert_eq!(log.enforce_retention(10_000).unwrap(), n);
    assert_eq!(
        (
            log.segment_count(),
            log.log_start_offset(),
            log.log_end_offset()
        ),
        (1, leo, leo)
    );
    assert!(read_all(&log).is_empty());

    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: 5000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    for i in 0..60 {
        append(&mut log, 4, i);
    }
    assert!(log.segment_count() >= 6);
    let deleted = log.enforce_retention(0).unwrap();
    assert!(deleted >= 2);
    assert!(log.size_bytes() >= 5000 && log.size_bytes() < 5000 + 1024);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    let lso = log.log_start_offset();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), lso);
    assert!(matches!(
        log.read(lso - 1, 10, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..50 {
        append(&mut log, 4, i * 10); // records stamped i*10 .. i*10+3
    }
    assert!(log.segment_count() > 2);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(203).unwrap(), Some((83, 203)));
    assert_eq!(log.offset_for_timestamp(205).unwrap(), Some((84, 210)));
    assert_eq!(log.offset_for_timestamp(493).unwrap(), Some((199, 493)));
    assert_eq!(log.offset_for_timestamp(494).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset(), (493, 199));
    // A record with an older timestamp later in the log does not move the max.
    append(&mut log, 1, 5);
    assert_eq!(log.max_timestamp_and_offset(), (493, 199));
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.offset_for_timestamp(203).unwrap(), Some((83, 203)));
    assert_eq!(log.max_timestamp_and_offset(), (493, 199));
}

#[test]
fn truncate_then_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..30 {
        log.append_as_leader(&mut batch(4, i, 8), (i / 10) as i32, i)
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 40), (2, 80)]);
    let bases = log.segment_base_offsets();
    // Mid-batch: cut at the start of the batch holding 42 (40..=43).
    log.truncate_to(42).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.epoch_entries(), &[(0, 0)]);
    assert!(log.segment_count() <= bases.iter().filter(|&&b| b <= 42).count());
    let a = log.append_as_leader(&mut batch(2, 100, 8), 5, 100).unwrap();
    assert_eq!(a.first_offset, 40);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 40)));
    assert_eq!(log.end_offset_for_epoch(4), Some((0, 40)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 42)));
    assert_eq!(
        log.end_offset_for_epoch(6),
        None,
        "above the latest: undefined"
    );
    assert_eq!(
        read_all(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..42).collect::<Vec<_>>()
    );
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_end_offset(), log.segment_count()), (0, 1));
    assert_eq!(append(&mut log, 1, 1).first_offset, 0);
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn delete_records_before_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..40 {
        append(&mut log, 4, i);
    }
    let bases = log.segment_base_offsets();
    let target = bases[2] + 1;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert_eq!(read_all(&log).first().unwrap().0, target);
    assert!(log.read(target - 1, 10, i64::MAX, true).is_err());
    assert_eq!(log.delete_records_before(5).unwrap(), target);
    assert!(log.delete_records_before(161).is_err());
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.delete_records_before(160).unwrap(), 160);
    assert_eq!(log.segment_count(), 1);
    assert!(read_all(&log).is_empty());
}

#[test]
fn epochs_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    log.append_as_leader(&mut batch(3, 0, 1), 1, 0).unwrap();
    log.append_as_leader(&mut batch(3, 0, 1), 1, 0).unwrap();
    log.append_as_leader(&mut batch(2, 0, 1), 4, 0).unwrap();
    log.close().unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(
        log.end_offset_for_epoch(0),
        Some((0, 0)),
        "below the first: its start"
    );
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(3), Some((1, 6)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 8)));
    assert_eq!(
        log.end_offset_for_epoch(9),
        None,
        "above the latest: undefined"
    );
}

#[test]
fn region_outlives_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..40 {
        append(&mut log, 4, i);
    }
    let region = log
        .read(0, 1 << 20, i64::MAX, true)
        .unwrap()
        .region
        .unwrap();
    let before = region.read_to_vec().unwrap();
    let target = log.log_end_offset();
    log.delete_records_before(target).unwrap();
    assert!(!dir.path().join("00000000000000000000.log").exists());
    assert_eq!(region.read_to_vec().unwrap(), before);
    assert_eq!(
        validate_batches(&before, usize::MAX).unwrap()[0].base_offset,
        0
    );
}

#[test]
fn retention_keeps_segments_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 1000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), cfg, 0).unwrap();
    for i in 0..60 {
        append(&mut log, 4, 1000 + i);
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);
    // Everything is expired, but only the segments wholly below the high watermark
    // (the third segment's base) may go.
    let hw = bases[2];
    assert_eq!(log.enforce_retention_below(10_000, hw).unwrap(), 2);
    assert_eq!(log.log_start_offset(), hw);
    assert_eq!(log.enforce_retention_below(10_000, hw + 1).unwrap(), 0);
}

#[test]
fn a_follower_restarts_its_log_at_the_leaders_start_and_a_leader_records_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..10 {
        log.append_as_leader(&mut batch(4, i, 8), 0, i).unwrap();
    }
    log.begin_leader_epoch(3).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (3, 40)]);
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 40)));
    log.begin_leader_epoch(2).unwrap();
    assert_eq!(
        log.epoch_entries(),
        &[(0, 0), (3, 40)],
        "an older epoch changes nothing"
    );
    log.truncate_fully_and_start_at(500, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert!(log.epoch_entries().is_empty());
    assert!(read_all(&log).is_empty());
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    let mut b = batch(2, 1, 8);
    // A follower's append keeps the leader's offsets: base 500.
    b[0..8].copy_from_slice(&500i64.to_be_bytes());
    let a = log.append_as_follower(&b, 1).unwrap();
    assert_eq!((a.first_offset, log.log_end_offset()), (500, 502));
}
