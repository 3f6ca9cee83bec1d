//! The idempotent producer over the wire: retries are answered from producer state
//! (one copy in the log, the original offset), gaps and stale epochs are refused, and
//! all of it holds after a restart, when the state comes back from snapshot and log.

use crate::common::{client::batch_offsets, client::Client, eventually, test_config};
use kafka_protocol::messages::InitProducerIdRequest;
use troupe::storage::BatchBuilder;

fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> bytes::Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{seq}-{i}").into_bytes()).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    BatchBuilder::new(0, troupe_actors::now_ms())
        .producer(pid, epoch, seq)
        .build(&records)
}

async fn init_producer_id(c: &mut Client) -> (i16, i64, i16) {
    let r = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1),
            4,
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn hw(c: &mut Client) -> i64 {
    c.fetch("idem", 0, 0, 0).await.1
}

#[actix_rt::test]
async fn retries_are_written_once_and_gaps_refused_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path().to_path_buf(), &[]);
    let broker = troupe_actors::start(config.clone()).await.unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("idem", 1).await, 0);
    let (code, pid, epoch) = init_producer_id(&mut c).await;
    assert_eq!((code, epoch), (0, 0));
    assert!(pid >= 0);

    assert_eq!(c.produce("idem", 0, batch(pid, 0, 0, 3)).await, (0, 0));
    // The same batch again (a retry after a lost answer): same offset, no second copy.
    assert_eq!(c.produce("idem", 0, batch(pid, 0, 0, 3)).await, (0, 0));
    assert_eq!(hw(&mut c).await, 3);
    assert_eq!(c.produce("idem", 0, batch(pid, 0, 3, 2)).await, (0, 3));
    // A gap: sequence 9 after 4.
    assert_eq!(c.produce("idem", 0, batch(pid, 0, 9, 1)).await.0, 45);
    // A producer id the partition has never seen, not starting at 0.
    assert_eq!(c.produce("idem", 0, batch(pid + 500, 0, 7, 1)).await.0, 59);
    // A newer epoch starting at 0 is accepted, after which the old epoch is fenced.
    assert_eq!(c.produce("idem", 0, batch(pid, 1, 0, 1)).await, (0, 5));
    assert_eq!(c.produce("idem", 0, batch(pid, 0, 5, 1)).await.0, 47);
    // A corrupt copy of a written batch is not acknowledged as its duplicate.
    let mut corrupt = batch(pid, 1, 0, 1).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(c.produce("idem", 0, corrupt.into()).await.0, 2);
    // A forged header whose sequence range cannot exist (negative last offset delta).
    let mut forged = batch(pid, 1, 1, 1).to_vec();
    forged[23..27].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(c.produce("idem", 0, forged.into()).await.0, 87);
    let (_, _, records) = c.fetch("idem", 0, 0, 0).await;
    assert_eq!(batch_offsets(records), vec![(0, 2), (3, 4), (5, 5)]);

    broker.shutdown().await;
    let broker = troupe_actors::start(config).await.unwrap();
    let addr = broker.addr;
    eventually(10, "partition idem-0 online after restart", || async move {
        let mut c = Client::connect(addr).await;
        (c.fetch("idem", 0, 0, 0).await.0 == 0).then_some(())
    })
    .await;
    let mut c = Client::connect(addr).await;
    // The retry of the last batch is still recognised, with its original offset.
    assert_eq!(c.produce("idem", 0, batch(pid, 1, 0, 1)).await, (0, 5));
    assert_eq!(c.produce("idem", 0, batch(pid, 1, 5, 1)).await.0, 45);
    assert_eq!(c.produce("idem", 0, batch(pid, 0, 5, 1)).await.0, 47);
    assert_eq!(c.produce("idem", 0, batch(pid, 1, 1, 2)).await, (0, 6));
    assert_eq!(hw(&mut c).await, 8);
    // Producer ids are never handed out twice, restarts included.
    let (code, pid2, _) = init_producer_id(&mut c).await;
    assert_eq!(code, 0);
    assert!(pid2 > pid, "new id {pid2} after {pid}");
    broker.shutdown().await;
}
