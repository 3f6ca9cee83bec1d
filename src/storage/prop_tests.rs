//! Property test: random appends, reads, rolls, clean and unclean restarts (with a torn
//! write left at the tail) always give back exactly the appended records, in order,
//! with contiguous offsets.

use std::io::Write;

use bytes::BytesMut;
use proptest::prelude::*;

use crate::storage::batch::validate_batches;
use crate::storage::records::{build_batch, decode_records};
use crate::storage::{Log, LogConfig};

#[derive(Clone, Debug)]
enum Op {
    /// Batches of `(record count, value length)`, appended in one call.
    Append(Vec<(usize, usize)>),
    /// Read from a fraction of the log, with a byte budget.
    Read(f64, usize),
    Roll,
    /// Reopen: clean (`close`) or a crash, optionally leaving a torn batch behind.
    Reopen {
        clean: bool,
        torn_bytes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // At most 3 batches of 4 records of 80 bytes (~1.3 KB): one append always
        // fits the 1500-byte segments, or it would be refused as RECORD_LIST_TOO_LARGE.
        4 => prop::collection::vec((1usize..5, 0usize..80), 1..4).prop_map(Op::Append),
        2 => (0.0f64..1.0, 1usize..2000).prop_map(|(f, b)| Op::Read(f, b)),
        1 => Just(Op::Roll),
        1 => (any::<bool>(), 0usize..80).prop_map(|(clean, torn_bytes)| Op::Reopen { clean, torn_bytes }),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        segment_index_bytes: 160,
        ..LogConfig::default()
    }
}

fn value(offset: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (offset * 31 + i) as u8).collect()
}

/// Records `(offset, value)` in the region read from `start`, after checking it holds
/// whole valid batches beginning with the batch that contains `start`.
fn read_from(log: &Log, start: i64, max_bytes: usize) -> Vec<(i64, Vec<u8>)> {
    let info = log.read(start, max_bytes, i64::MAX, true).unwrap();
    let Some(region) = info.region else {
        return Vec::new();
    };
    let bytes = region.read_to_vec().unwrap();
    let headers = validate_batches(&bytes, usize::MAX).unwrap();
    assert!(headers[0].base_offset <= start && headers[0].last_offset() >= start);
    assert!(headers.len() == 1 || bytes.len() <= max_bytes);
    let mut out = Vec::new();
    let mut at = 0;
    for h in &headers {
        for r in decode_records(&bytes[at..at + h.total_size()]).unwrap() {
            out.push((r.offset, r.value.unwrap()));
        }
        at += h.total_size();
    }
    out
}

fn check_all(log: &Log, model: &[Vec<u8>]) {
    assert_eq!(log.log_end_offset(), model.len() as i64);
    let mut next = 0i64;
    while next < model.len() as i64 {
        let recs = read_from(log, next, 700);
        assert!(!recs.is_empty());
        for (offset, v) in recs {
            if offset >= next {
                assert_eq!(offset, next, "offsets must be contiguous");
                assert_eq!(v, model[offset as usize]);
                next += 1;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn log_gives_back_what_was_appended(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(Log::open(dir.path(), config(), 0).unwrap());
        let mut model: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append(batches) => {
                    let mut buf = BytesMut::new();
                    let mut offset = model.len();
                    for (n, len) in batches {
                        let values: Vec<Vec<u8>> = (offset..offset + n).map(|o| value(o, len)).collect();
                        let recs: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
                        buf.extend_from_slice(&build_batch(999, offset as i64, &recs));
                        model.extend(values);
                        offset += n;
                    }
                    let info = l.append_as_leader(&mut buf, 0, 0).unwrap();
                    prop_assert_eq!(info.last_offset + 1, model.len() as i64);
                }
                Op::Read(frac, budget) => {
                    let start = (frac * model.len() as f64) as i64;
                    for (offset, v) in read_from(l, start, budget) {
                        prop_assert_eq!(&v, &model[offset as usize]);
                    }
                }
                Op::Roll => l.roll(0).unwrap(),
                Op::Reopen { clean, torn_bytes } => {
                    let l = log.take().unwrap();
                    let active = dir.path().join(format!("{:020}.log", l.segment_base_offsets().last().unwrap()));
                    if clean { l.close().unwrap() } else { drop(l) }
                    if torn_bytes > 0 {
                        let partial = build_batch(model.len() as i64, 0, &[(None, Some(&[7u8; 100]))]);
                        let mut f = std::fs::OpenOptions::new().append(true).open(&active).unwrap();
                        f.write_all(&partial[..torn_bytes]).unwrap();
                    }
                    log = Some(Log::open(dir.path(), config(), 0).unwrap());
                }
            }
            check_all(log.as_ref().unwrap(), &model);
        }
    }
}
