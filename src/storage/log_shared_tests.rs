//! Tests of [`Log::append_as_leader_shared`], the zero-copy leader append: what lands on
//! disk must be exactly what the in-place path writes, and the caller's buffer must
//! come back untouched.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::storage::batch::assign_offset_and_epoch;
use crate::storage::log_tests::{batch, read_all, small_config};
use crate::storage::records::BatchBuilder;
use crate::storage::{validate_batches, Log, LogConfig};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// `records` with each batch's base offset and leader epoch set as a leader would.
fn stamped(records: &[u8], first_offset: i64, epoch: i32) -> Vec<u8> {
    let mut out = records.to_vec();
    let mut next = first_offset;
    let mut at = 0;
    for h in validate_batches(records, usize::MAX).unwrap() {
        assign_offset_and_epoch(&mut out[at..], next, epoch);
        next += h.last_offset_delta as i64 + 1;
        at += h.total_size();
    }
    out
}

#[test]
fn disk_holds_the_batches_stamped_and_the_buffer_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 64,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let first = batch(3, 100, 4).freeze();
    log.append_as_leader_shared(&first, 2, 100).unwrap();
    // Two batches in one record set; the producer sent base offset 0 and epoch -1.
    let mut two = BytesMut::from(&batch(2, 200, 16)[..]);
    two.extend_from_slice(&batch(4, 300, 9));
    let two: Bytes = two.freeze();
    let before = two.to_vec();
    let info = log.append_as_leader_shared(&two, 5, 300).unwrap();
    assert_eq!(&two[..], &before[..], "the produced buffer must not change");
    assert_eq!((info.first_offset, info.last_offset), (3, 8));
    assert_eq!(
        info.batches
            .iter()
            .map(|h| (h.base_offset, h.partition_leader_epoch))
            .collect::<Vec<_>>(),
        vec![(3, 5), (5, 5)]
    );
    let segment = std::fs::read(dir.path().join("00000000000000000000.log")).unwrap();
    let expected: Vec<u8> = [stamped(&first, 0, 2), stamped(&two, 3, 5)].concat();
    assert_eq!(segment, expected);
    // The stamped batches still pass the CRC (the stamped fields are outside it).
    assert_eq!(validate_batches(&segment, usize::MAX).unwrap().len(), 3);
    assert_eq!(
        read_all(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 3)));
}

#[test]
fn same_files_as_the_in_place_path_across_rolls_and_reopen() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut in_place = Log::open(a.path(), small_config(), 0).unwrap();
    let mut shared = Log::open(b.path(), small_config(), 0).unwrap();
    for i in 0..40i64 {
        // Varying sizes and batch counts, so segments roll and index entries fall at
        // different places; the epoch changes every 10 appends.
        let mut records = batch(1 + (i % 4) as usize, i * 10, 3 + (i % 13) as usize);
        if i % 3 == 0 {
            records.extend_from_slice(&batch(2, i * 10 + 5, 7));
        }
        let epoch = (i / 10) as i32;
        let frozen = records.clone().freeze();
        let x = in_place
            .append_as_leader(&mut records, epoch, i * 10)
            .unwrap();
        let y = shared
            .append_as_leader_shared(&frozen, epoch, i * 10)
            .unwrap();
        assert_eq!(x, y, "append {i}");
        assert_eq!(&records[..], &stamped(&frozen, x.first_offset, epoch)[..]);
    }
    assert!(
        shared.segment_count() > 3,
        "the test must cross segment rolls"
    );
    in_place.close().unwrap();
    shared.close().unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(
        fa.iter().map(|p| p.file_name()).collect::<Vec<_>>(),
        fb.iter().map(|p| p.file_name()).collect::<Vec<_>>()
    );
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{} differs",
            y.display()
        );
    }
    let reopened = Log::open(b.path(), small_config(), 1_000).unwrap();
    assert_eq!(read_all(&reopened).len() as i64, reopened.log_end_offset());
}

#[test]
fn refused_appends_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cleanup_compact: true,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let keyed = BatchBuilder::new(0, 1).build(&[(Some(b"k"), Some(b"v"))]);
    log.append_as_leader_shared(&keyed, 0, 1).unwrap();
    let size = log.size_bytes();
    let keyless = batch(1, 2, 4).freeze();
    let err = log.append_as_leader_shared(&keyless, 0, 2).unwrap_err();
    assert_eq!(err.kafka_error_code(), 87, "{err:?}");
    assert!(!err.record_errors().is_empty(), "{err:?}");
    let mut corrupt = BytesMut::from(&keyed[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let err = log
        .append_as_leader_shared(&corrupt.freeze(), 0, 3)
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 2, "{err:?}");
    assert_eq!((log.size_bytes(), log.log_end_offset()), (size, 1));
}
