//! A real `kill -9` in the middle of appends: a child process (this test binary,
//! re-run on one ignored test) appends as fast as it can while the parent kills it,
//! then the parent opens the log and checks every surviving record.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::storage::batch::validate_batches;
use crate::storage::records::{build_batch, decode_records};
use crate::storage::{Log, LogConfig};

const CHILD_DIR_ENV: &str = "TROUPE_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    // Small segments so the kill can land in a roll as well as in a write; a flush every
    // 50 records so the recovery point moves and both recovery paths are exercised.
    LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        flush_messages: 50,
        ..LogConfig::default()
    }
}

fn value(offset: i64) -> Vec<u8> {
    format!("record-{offset}").into_bytes().repeat(8)
}

/// The child: append forever (bounded, in case the parent dies first).
#[test]
#[ignore = "run by crash_mid_append_leaves_an_openable_log in a child process"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let mut log = Log::open(Path::new(&dir), config(), 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let first = log.log_end_offset();
        let values: Vec<Vec<u8>> = (first..first + 5).map(value).collect();
        let recs: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
        let mut buf = BytesMut::from(&build_batch(0, first, &recs)[..]);
        log.append_as_leader(&mut buf, 1, first).unwrap();
    }
}

#[test]
fn crash_mid_append_leaves_an_openable_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "storage::crash_tests::crash_child",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .spawn()
        .unwrap();
    let segments = || {
        std::fs::read_dir(dir.path()).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
            })
            .count()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while segments() < 4 {
        assert!(Instant::now() < deadline, "child never wrote 4 segments");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let log = Log::open(dir.path(), config(), 0).unwrap();
    let leo = log.log_end_offset();
    assert!(leo > 0);
    let mut next = 0;
    while next < leo {
        let region = log
            .read(next, 1 << 20, i64::MAX, true)
            .unwrap()
            .region
            .unwrap();
        let bytes = region.read_to_vec().unwrap();
        let mut at = 0;
        for h in validate_batches(&bytes, usize::MAX).unwrap() {
            for r in decode_records(&bytes[at..at + h.total_size()]).unwrap() {
                assert_eq!((r.offset, r.value.unwrap()), (next, value(next)));
                next += 1;
            }
            at += h.total_size();
        }
    }
    assert_eq!(next, leo);
    assert_eq!(log.latest_epoch(), Some(1));
}
