use super::*;
use crate::storage::{BatchBuilder, BatchHeader, LogConfig};

const PID: i64 = 1000;

/// A header as the log would have written it: `n` records at `offset`, sequences from `seq`.
/// Only the header matters here, so one record is built and the counts are set after.
fn header(pid: i64, epoch: i16, seq: i32, n: i32, offset: i64) -> BatchHeader {
    let bytes = BatchBuilder::new(offset, 1_000)
        .producer(pid, epoch, seq)
        .build(&[(None, Some(&b"v"[..]))]);
    let mut h = BatchHeader::parse(&bytes).expect("built batch has a header");
    h.last_offset_delta = n - 1;
    h.record_count = n;
    h
}

fn batch(pid: i64, epoch: i16, seq: i32, n: i32) -> ProducerBatch {
    ProducerBatch::from_header(&header(pid, epoch, seq, n, 0))
}

/// State after writing `(epoch, first_seq, count, offset)` batches of producer `PID`.
fn written(batches: &[(i16, i32, i32, i64)]) -> ProducerStateManager {
    let mut s = ProducerStateManager::new();
    for &(e, seq, n, off) in batches {
        s.record(&header(PID, e, seq, n, off), 5_000);
    }
    s
}

#[test]
fn check_table() {
    use ProducerError::*;
    use Verdict::*;
    let ooo = |epoch, got, last| {
        Err(OutOfOrderSequence {
            producer_id: PID,
            epoch,
            got,
            last,
        })
    };
    // (name, history, incoming (epoch, seq, n), expected)
    type Case = (
        &'static str,
        Vec<(i16, i32, i32, i64)>,
        (i16, i32, i32),
        Result<Verdict, ProducerError>,
    );
    let cases: Vec<Case> = vec![
        ("new producer starting at 0", vec![], (0, 0, 5), Ok(Append)),
        (
            "new producer not at 0",
            vec![],
            (0, 7, 1),
            Err(UnknownProducerId {
                producer_id: PID,
                first_seq: 7,
            }),
        ),
        (
            "next in sequence",
            vec![(0, 0, 5, 0)],
            (0, 5, 3),
            Ok(Append),
        ),
        ("gap", vec![(0, 0, 5, 0)], (0, 6, 1), ooo(0, 6, Some(4))),
        (
            "repeat of last batch",
            vec![(0, 0, 5, 0), (0, 5, 5, 5)],
            (0, 5, 5),
            Ok(Duplicate {
                first_offset: 5,
                last_offset: 9,
            }),
        ),
        (
            "repeat of an older cached batch",
            vec![(0, 0, 5, 0), (0, 5, 5, 5)],
            (0, 0, 5),
            Ok(Duplicate {
                first_offset: 0,
                last_offset: 4,
            }),
        ),
        (
            "same start, other length",
            vec![(0, 0, 5, 0)],
            (0, 0, 3),
            ooo(0, 0, Some(4)),
        ),
        (
            "old epoch",
            vec![(2, 0, 5, 0)],
            (1, 5, 1),
            Err(InvalidProducerEpoch {
                producer_id: PID,
                epoch: 1,
                current: 2,
            }),
        ),
        (
            "new epoch from 0",
            vec![(0, 0, 5, 0)],
            (1, 0, 1),
            Ok(Append),
        ),
        (
            "new epoch not from 0",
            vec![(0, 0, 5, 0)],
            (1, 3, 1),
            ooo(1, 3, None),
        ),
        (
            "sequence wraps past i32::MAX",
            vec![(0, 0, 3, 0), (0, 3, i32::MAX - 2, 3)],
            (0, 0, 2),
            Ok(Append),
        ),
    ];
    for (name, history, (e, seq, n), want) in cases {
        let s = written(&history);
        assert_eq!(s.check(&batch(PID, e, seq, n)), want, "case: {name}");
    }
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let hist: Vec<_> = (0..7).map(|i| (0, i * 2, 2, i64::from(i) * 2)).collect();
    let s = written(&hist);
    assert_eq!(
        s.get(PID).map(|e| e.batches.len()),
        Some(MAX_CACHED_BATCHES)
    );
    // The first two batches fell out: their retry is out of order, not a duplicate.
    assert!(matches!(
        s.check(&batch(PID, 0, 0, 2)),
        Err(ProducerError::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        s.check(&batch(PID, 0, 4, 2)),
        Ok(Verdict::Duplicate {
            first_offset: 4,
            last_offset: 5
        })
    );
}

#[test]
fn non_idempotent_batches_pass_and_transactional_ones_are_refused() {
    let s = ProducerStateManager::new();
    assert_eq!(s.check(&batch(-1, -1, -1, 3)), Ok(Verdict::Append));
    let mut txn = batch(PID, 0, 0, 1);
    txn.is_transactional = true;
    assert_eq!(s.check(&txn).map_err(|e| e.kafka_error_code()), Err(48));
}

#[test]
fn error_codes_are_kafkas() {
    let s = written(&[(3, 0, 1, 0)]);
    let code = |b| s.check(&b).unwrap_err().kafka_error_code();
    assert_eq!(code(batch(PID, 2, 1, 1)), 47); // INVALID_PRODUCER_EPOCH
    assert_eq!(code(batch(PID, 3, 9, 1)), 45); // OUT_OF_ORDER_SEQUENCE_NUMBER
    assert_eq!(code(batch(PID + 1, 0, 9, 1)), 59); // UNKNOWN_PRODUCER_ID
}

#[test]
fn eviction_and_expiry() {
    let mut s = ProducerStateManager::new();
    s.record(&header(1, 0, 0, 5, 0), 1_000);
    s.record(&header(2, 0, 0, 5, 5), 9_000);
    assert_eq!(
        s.evict_below(5),
        1,
        "producer 1's only batch is below the log start"
    );
    assert!(s.get(1).is_none() && s.get(2).is_some());
    s.record(&header(3, 0, 0, 1, 10), 20_000);
    assert_eq!(s.expire(25_000, 10_000), 1, "producer 2 idle 16 s > 10 s");
    assert!(s.get(2).is_none() && s.get(3).is_some());
}

#[test]
fn snapshot_round_trip_and_damage_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let s = written(&[(0, 0, 5, 0), (0, 5, 5, 5)]);
    snapshot::write_snapshot(dir.path(), 10, &s).unwrap();
    let (at, back) = snapshot::read_snapshot(&snapshot::snapshot_path(dir.path(), 10))
        .unwrap()
        .unwrap();
    assert_eq!((at, &back), (10, &s));
    // Flip a byte in the body: the CRC catches it.
    let p = snapshot::snapshot_path(dir.path(), 10);
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    assert!(snapshot::read_snapshot(&p).unwrap().is_none());
    // Only the newest SNAPSHOTS_KEPT survive.
    for o in [20, 30, 40, 50] {
        snapshot::write_snapshot(dir.path(), o, &s).unwrap();
    }
    assert_eq!(
        snapshot::list_snapshots(dir.path()).unwrap(),
        vec![30, 40, 50]
    );
}

/// Append idempotent batches to a real log, checking each as the leader would.
fn append(log: &mut Log, state: &mut ProducerStateManager, pid: i64, seq: i32, n: i32) -> Verdict {
    let recs: Vec<_> = (0..n).map(|_| (None, Some(&b"value"[..]))).collect();
    let bytes = BatchBuilder::new(0, 1_000)
        .producer(pid, 0, seq)
        .build(&recs);
    let v = state
        .check(&ProducerBatch::from_header(
            &BatchHeader::parse(&bytes).unwrap(),
        ))
        .unwrap();
    if v == Verdict::Append {
        let mut buf = bytes.to_vec();
        let info = log.append_as_leader(&mut buf, 0, 1_000).unwrap();
        for h in &info.batches {
            state.record(h, 1_000);
        }
    }
    v
}

#[test]
fn load_rebuilds_from_the_log_with_and_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut state = ProducerStateManager::new();
    for i in 0..4 {
        assert_eq!(append(&mut log, &mut state, 7, i * 3, 3), Verdict::Append);
        append(&mut log, &mut state, 8, i, 1);
    }
    // No snapshot: full replay gives the same state.
    let (loaded, stats) = load(&log).unwrap();
    assert_eq!(loaded, state);
    assert_eq!((stats.snapshot_offset, stats.batches_replayed), (None, 8));
    // Snapshot in the middle, then more appends: snapshot + a short replay.
    snapshot::write_snapshot(dir.path(), log.log_end_offset(), &state).unwrap();
    append(&mut log, &mut state, 7, 12, 3);
    let (loaded, stats) = load(&log).unwrap();
    assert_eq!(loaded, state);
    assert_eq!(
        (stats.snapshot_offset, stats.batches_replayed),
        (Some(16), 1)
    );
    // A retry of the last batch after "restart" is a duplicate with its first offset.
    assert_eq!(
        append(&mut log, &mut loaded.clone(), 7, 12, 3),
        Verdict::Duplicate {
            first_offset: 16,
            last_offset: 18
        }
    );
    // Truncation below the snapshot: the snapshot is deleted and replay starts over.
    log.truncate_to(7).unwrap();
    let (loaded, stats) = load(&log).unwrap();
    assert_eq!(stats.snapshot_offset, None);
    assert_eq!(
        loaded.get(7).map(|e| e.batches.back().unwrap().last_seq),
        Some(5)
    );
    assert!(snapshot::list_snapshots(dir.path()).unwrap().is_empty());
}

#[test]
fn sequence_arithmetic_never_overflows() {
    assert_eq!(increment_seq(i32::MAX, 1), 0);
    assert_eq!(increment_seq(i32::MAX - 1, 3), 1);
    assert_eq!(increment_seq(5, 3), 8);
    // A forged negative delta must not panic (it is refused before the check anyway).
    let _ = increment_seq(0, i32::MIN);
    let _ = increment_seq(i32::MAX, i32::MAX);
}
