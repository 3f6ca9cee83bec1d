//! A compacted topic end to end: keyless records are refused, and the log actor's own
//! cleaner (ticked by `log.cleaner.backoff.ms`) leaves the latest value per key.

use crate::common::{client::Client, eventually, test_config};
use bytes::{Buf, Bytes};
use troupe::storage::batch::build_batch;
use troupe::storage::decode_records;

/// Every record from `offset` on, fetched segment by segment, as (offset, key, value).
async fn fetch_all(c: &mut Client, topic: &str) -> (i64, Vec<(i64, String, String)>) {
    let (mut offset, mut out, mut hw) = (0, Vec::new(), 0);
    loop {
        let (code, high, mut records) = c.fetch(topic, 0, offset, 0).await;
        assert_eq!(code, 0);
        hw = hw.max(high);
        if records.is_empty() {
            return (hw, out);
        }
        while records.remaining() >= 61 {
            let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
            let batch: Bytes = records.split_to(len);
            let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap()) as i64;
            offset = i64::from_be_bytes(batch[..8].try_into().unwrap()) + last_delta + 1;
            for r in decode_records(&batch).unwrap() {
                let s = |b: Option<Vec<u8>>| String::from_utf8(b.unwrap_or_default()).unwrap();
                out.push((r.offset, s(r.key), s(r.value)));
            }
        }
    }
}

#[actix_rt::test]
async fn compacted_topic_keeps_latest_value_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path().to_path_buf(),
        &[
            ("log.cleanup.policy", "compact"),
            // About one 5-record batch per segment, so the active segment holds one.
            ("log.segment.bytes", "200"),
            ("log.cleaner.backoff.ms", "50"),
        ],
    );
    let broker = troupe_actors::start(config).await.unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("compacted", 1).await, 0);

    let keyless = build_batch(0, troupe_actors::now_ms(), &[(None, Some(b"v"))]);
    assert_eq!(
        c.produce("compacted", 0, keyless).await.0,
        87,
        "INVALID_RECORD"
    );

    for round in 0..20 {
        let values: Vec<String> = (0..5).map(|k| format!("r{round}-k{k}")).collect();
        let keys: Vec<String> = (0..5).map(|k| format!("k{k}")).collect();
        let recs: Vec<_> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
            .collect();
        let batch = build_batch(0, troupe_actors::now_ms(), &recs);
        assert_eq!(c.produce("compacted", 0, batch).await, (0, round * 5));
    }

    // Rounds 0..18 sit in closed segments and collapse to round 18; round 19 is in the
    // active segment, which the cleaner never touches.
    let addr = broker.addr;
    let (hw, records) = eventually(20, "the cleaner to compact the log", || async move {
        let mut c = Client::connect(addr).await;
        let (hw, records) = fetch_all(&mut c, "compacted").await;
        (records.len() == 10).then_some((hw, records))
    })
    .await;
    assert_eq!(hw, 100);
    let want: Vec<_> = (90..100)
        .map(|o| {
            let (round, k) = (o / 5, o % 5);
            (o, format!("k{k}"), format!("r{round}-k{k}"))
        })
        .collect();
    assert_eq!(records, want);
    // Appends continue after the log end offset, which compaction left unchanged.
    let batch = build_batch(0, 0, &[(Some(b"k0"), Some(b"again"))]);
    assert_eq!(c.produce("compacted", 0, batch).await, (0, 100));
    broker.shutdown().await;
}
