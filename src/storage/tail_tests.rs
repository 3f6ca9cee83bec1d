//! The tail index against the log it describes: wherever [`Tail::read`] answers, its
//! answer is the one [`Log::read`] gives; it answers at the log end, and stops
//! answering (so reads go to the log) after any change but an append.

use crate::storage::log_tests::{append, batch, small_config};
use crate::storage::{Log, LogConfig, ReadInfo, SharedTail, TAIL_BATCHES};

fn same(a: &ReadInfo, b: &ReadInfo) -> bool {
    let region = |i: &ReadInfo| i.region.as_ref().map(|r| (r.position, r.len));
    a.log_start_offset == b.log_start_offset
        && a.log_end_offset == b.log_end_offset
        && region(a) == region(b)
        && match (&a.region, &b.region) {
            (Some(x), Some(y)) => std::sync::Arc::ptr_eq(&x.file, &y.file),
            _ => true,
        }
}

/// Every start offset, budget and bound around the log: the tail agrees with the log
/// wherever it answers. Returns the offsets it answered for.
fn check_agrees(log: &Log, tail: &SharedTail) -> Vec<i64> {
    let end = log.log_end_offset();
    let mut answered = Vec::new();
    for start in (log.log_start_offset() - 1)..=(end + 1) {
        for max_bytes in [0usize, 1, 60, 100, 150, 300, 1000, usize::MAX / 2] {
            for max_offset in [start, start + 1, start + 3, end - 1, end, i64::MAX] {
                for min_one_batch in [false, true] {
                    let Some(t) = tail.read(start, max_bytes, max_offset, min_one_batch) else {
                        continue;
                    };
                    let l = log
                        .read(start, max_bytes, max_offset, min_one_batch)
                        .unwrap_or_else(|e| panic!("tail answered where the log refused: {e}"));
                    assert!(
                        same(&t, &l),
                        "start {start} max_bytes {max_bytes} max_offset {max_offset} \
                         min_one {min_one_batch}: tail {:?} log {:?}",
                        t.region.as_ref().map(|r| (r.position, r.len)),
                        l.region.as_ref().map(|r| (r.position, r.len))
                    );
                }
            }
        }
        if tail.read(start, 1000, i64::MAX, true).is_some() {
            answered.push(start);
        }
    }
    answered
}

fn shared_log(dir: &std::path::Path, config: LogConfig) -> (Log, SharedTail) {
    let mut log = Log::open(dir, config, 0).unwrap();
    let tail = SharedTail::default();
    log.share_tail(tail.clone());
    (log, tail)
}

/// Segments large enough that the tests' appends never roll.
fn one_segment() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    }
}

#[test]
fn a_tail_agrees_with_the_log_and_covers_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, tail) = shared_log(dir.path(), one_segment());
    assert!(
        tail.read(0, 1000, i64::MAX, true).is_none(),
        "empty before any append"
    );
    for i in 0..10 {
        append(&mut log, 1 + i % 3, 1000 + i as i64);
    }
    let answered = check_agrees(&log, &tail);
    let end = log.log_end_offset();
    assert_eq!(
        answered,
        (0..=end).collect::<Vec<_>>(),
        "all 10 batches are held"
    );
    // More batches than it keeps: the oldest go to the log.
    for i in 0..(TAIL_BATCHES + 5) {
        append(&mut log, 2, 2000 + i as i64);
    }
    let answered = check_agrees(&log, &tail);
    let end = log.log_end_offset();
    assert_eq!(answered.last(), Some(&end));
    assert_eq!(answered.len() as i64, 2 * TAIL_BATCHES as i64 + 1);
    assert!(tail.read(0, 1000, i64::MAX, true).is_none());
}

#[test]
fn a_roll_moves_the_tail_to_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, tail) = shared_log(dir.path(), small_config());
    for i in 0..40 {
        append(&mut log, 2, 1000 + i);
        check_agrees(&log, &tail);
    }
    assert!(log.segment_count() > 3, "small segments rolled");
    let first_of_active = tail.lock().batches().next().unwrap().base_offset;
    let active_base = log.segments.last().unwrap().meta.base_offset;
    assert_eq!(
        first_of_active, active_base,
        "only the active segment's batches"
    );
}

#[test]
fn changes_other_than_appends_clear_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, tail) = shared_log(dir.path(), one_segment());
    for i in 0..6 {
        append(&mut log, 2, 1000 + i);
    }
    let end = log.log_end_offset();
    assert!(tail.read(end - 1, 1000, i64::MAX, true).is_some());

    log.truncate_to(end - 4).unwrap();
    assert!(
        tail.read(end - 5, 1000, i64::MAX, true).is_none(),
        "truncation clears it"
    );
    append(&mut log, 1, 3000);
    check_agrees(&log, &tail);

    log.delete_records_before(3).unwrap();
    assert!(
        tail.read(3, 1000, i64::MAX, true).is_none(),
        "DeleteRecords clears it"
    );
    append(&mut log, 1, 3001);
    let answered = check_agrees(&log, &tail);
    assert_eq!(
        answered,
        vec![log.log_end_offset() - 1, log.log_end_offset()]
    );

    log.roll(5000).unwrap();
    assert!(
        tail.read(log.log_end_offset(), 1000, i64::MAX, true)
            .is_none(),
        "a roll clears it"
    );

    log.append_as_leader(&mut batch(3, 6000, 8), 1, 6000)
        .unwrap();
    check_agrees(&log, &tail);
    drop(log);
    assert!(
        tail.read(0, 1000, i64::MAX, true).is_none(),
        "a dropped log leaves none"
    );
}

#[test]
fn follower_appends_fill_the_tail_too() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), small_config(), 0).unwrap();
    let (mut follower, tail) = shared_log(dir.path(), small_config());
    for i in 0..5 {
        append(&mut leader, 3, 1000 + i);
        let at = follower.log_end_offset();
        let region = leader
            .read(at, 1 << 20, i64::MAX, true)
            .unwrap()
            .region
            .unwrap();
        follower
            .append_as_follower(&region.read_to_vec().unwrap(), 1000 + i)
            .unwrap();
        assert!(tail.read(at, 1000, i64::MAX, true).is_some());
        check_agrees(&follower, &tail);
    }
}
