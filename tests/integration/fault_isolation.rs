//! A crashed partition restarts from disk while the others keep serving.

use crate::common::{client::batch_offsets, client::Client, eventually, test_config};
use troupe::storage::batch::build_batch;
use troupe_actors::supervisor::CrashPartition;

fn batch(n: usize) -> bytes::Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    build_batch(0, troupe_actors::now_ms(), &records)
}

#[actix_rt::test]
async fn crashed_partition_restarts_and_serves_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = troupe_actors::start(test_config(dir.path().to_path_buf(), &[]))
        .await
        .unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("a", 1).await, 0);
    assert_eq!(c.create_topic("b", 1).await, 0);
    for i in 0..5 {
        assert_eq!(c.produce("a", 0, batch(3)).await, (0, i * 3));
        assert_eq!(c.produce("b", 0, batch(2)).await, (0, i * 2));
    }
    let (_, _, before) = c.fetch("a", 0, 0, 0).await;
    assert_eq!(batch_offsets(before.clone()).len(), 5);

    assert!(broker
        .supervisor
        .send(CrashPartition {
            topic: "a".into(),
            partition: 0
        })
        .await
        .unwrap());

    // The other partition keeps serving, at once.
    assert_eq!(c.produce("b", 0, batch(2)).await, (0, 10));

    // The crashed one comes back with the same data, and appends continue after it.
    let after = eventually(10, "partition a-0 to come back", || {
        let addr = broker.addr;
        async move {
            let mut c = Client::connect(addr).await;
            let (code, hw, records) = c.fetch("a", 0, 0, 0).await;
            (code == 0 && hw == 15).then_some(records)
        }
    })
    .await;
    assert_eq!(
        after, before,
        "the restarted partition serves byte-identical batches"
    );
    let offset = eventually(10, "produce to a-0 after restart", || {
        let addr = broker.addr;
        async move {
            let mut c = Client::connect(addr).await;
            let (code, off) = c.produce("a", 0, batch(1)).await;
            (code == 0).then_some(off)
        }
    })
    .await;
    assert_eq!(offset, 15);
    broker.shutdown().await;
}
