//! Tests of the `Log` actor's lifecycle: concurrent closes off the storage thread,
//! reopening a log whose open failed, and a closed log that ends without timers.

use super::messages::{Append, Close, EndOffsetForEpoch, EnforceRetention, GetOffsets};
use super::{CleanerSettings, LogActor, LogPort};
use actix::prelude::*;
use std::time::Duration;
use troupe::storage::checkpoint::{read_offset, RECOVERY_POINT_FILE};
use troupe::storage::{build_batch, Log, LogConfig};

fn records(n: usize) -> bytes::Bytes {
    let kv: Vec<troupe::storage::KeyValue<'_>> = vec![(Some(b"k"), Some(b"v")); n];
    build_batch(0, 1_000, &kv)
}

#[actix_rt::test]
async fn concurrent_closes_flush_and_checkpoint_every_log() {
    let root = tempfile::tempdir().unwrap();
    let mut logs = Vec::new();
    for i in 0..40usize {
        let dir = root.path().join(format!("t-{i}"));
        let addr = LogActor::new(dir.clone(), LogConfig::default()).start();
        let append = Append {
            records: records(i % 3 + 1),
            leader_epoch: 3,
            now_ms: 1_000,
        };
        addr.send(append).await.unwrap().unwrap();
        logs.push((addr, dir, (i % 3 + 1) as i64));
    }
    // Sent together, as a broker shutdown does; each reply comes once its log is closed.
    let closes: Vec<_> = logs
        .iter()
        .map(|(addr, _, _)| addr.send(Close { delete: false }))
        .collect();
    for close in closes {
        close.await.unwrap().unwrap();
    }
    for (addr, dir, n) in &logs {
        // Nothing was flushed before the close (flush.messages is unbounded by default),
        // so the recovery point proves the close itself ran to the end.
        assert_eq!(
            read_offset(&dir.join(RECOVERY_POINT_FILE)).unwrap(),
            Some(*n)
        );
        assert!(
            addr.send(GetOffsets).await.unwrap().is_err(),
            "closed logs stay offline"
        );
        let log = Log::open(dir, LogConfig::default(), 2_000).unwrap();
        assert_eq!(log.log_end_offset(), *n);
    }
    let (addr, dir, _) = &logs[0];
    addr.send(Close { delete: true }).await.unwrap().unwrap();
    let other = LogActor::new(dir.clone(), LogConfig::default()).start();
    other.send(Close { delete: true }).await.unwrap().unwrap();
    assert!(
        !dir.exists(),
        "Close {{ delete: true }} removes the partition directory"
    );
}

#[actix_rt::test]
async fn a_log_whose_open_failed_opens_on_a_later_get_offsets() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    // A file where the partition directory should be: every open fails.
    std::fs::write(&dir, b"in the way").unwrap();
    let addr = LogActor::new(dir.clone(), LogConfig::default()).start();
    for _ in 0..2 {
        let err = addr.send(GetOffsets).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("open failed"), "{err}");
        assert_eq!(err.kafka_error_code(), 56);
    }
    std::fs::remove_file(&dir).unwrap();
    let offsets = addr.send(GetOffsets).await.unwrap().unwrap();
    assert_eq!((offsets.log_start_offset, offsets.log_end_offset), (0, 0));
    let append = Append {
        records: records(2),
        leader_epoch: 0,
        now_ms: 1_000,
    };
    let info = addr.send(append).await.unwrap().unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 1));
}

/// A deleted partition's log: after `Close` no timer of its own keeps it alive or
/// ticking, a late request (the retention tick of its leader) neither fails it nor
/// restarts it, and the actor ends once its owner drops the last address.
#[actix_rt::test]
async fn a_closed_log_has_no_timers_and_ends_with_its_last_address() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let cleaner = CleanerSettings {
        backoff: Duration::from_millis(20),
        ..CleanerSettings::default()
    };
    let d = dir.clone();
    let addr = Supervisor::start(move |_| {
        LogActor::new(d.clone(), LogConfig::default()).with_cleaner(cleaner.clone())
    });
    let append = Append {
        records: records(2),
        leader_epoch: 0,
        now_ms: 1_000,
    };
    addr.send(append).await.unwrap().unwrap();
    addr.send(Close { delete: true }).await.unwrap().unwrap();
    assert!(!dir.exists());
    for _ in 0..3 {
        let late = EnforceRetention {
            now_ms: crate::now_ms(),
            high_watermark: i64::MAX,
        };
        let err = addr.send(late).await.unwrap().unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let weak = addr.downgrade();
    drop(addr);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while weak.upgrade().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed log actor is still alive 2 s after its last address was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// OffsetForLeaderEpoch on an offline log (open failed, or closed) is a storage error,
/// not "no such epoch".
#[actix_rt::test]
async fn end_offset_for_epoch_of_an_offline_log_is_a_storage_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    std::fs::write(&dir, b"in the way").unwrap();
    let addr = LogActor::new(dir.clone(), LogConfig::default()).start();
    let err = addr
        .send(EndOffsetForEpoch { epoch: 0 })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 56, "{err}");

    std::fs::remove_file(&dir).unwrap();
    addr.send(GetOffsets).await.unwrap().unwrap();
    let append = Append {
        records: records(2),
        leader_epoch: 4,
        now_ms: 1_000,
    };
    addr.send(append).await.unwrap().unwrap();
    let end = addr.send(EndOffsetForEpoch { epoch: 4 }).await.unwrap();
    assert_eq!(end.unwrap(), Some((4, 2)));
    addr.send(Close { delete: false }).await.unwrap().unwrap();
    let err = addr
        .send(EndOffsetForEpoch { epoch: 4 })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kafka_error_code(), 56, "{err}");
}

#[test]
fn a_full_disk_is_reported_once_per_run() {
    let mut d = super::DiskFull::default();
    // (event, expected answer): `full` answers "start of a run", `written` the run's
    // refused appends when it ends one.
    assert!(!d.is_full());
    assert_eq!(d.on_written(), None);
    assert!(d.on_full());
    assert!(!d.on_full());
    assert!(!d.on_full());
    assert!(d.is_full());
    assert_eq!(d.on_written(), Some(3));
    assert!(!d.is_full());
    assert_eq!(d.on_written(), None);
    assert!(d.on_full());
    assert_eq!(d.on_written(), Some(1));
}

#[test]
fn failed_opens_are_retried_with_backoff_to_a_minute() {
    let delays: Vec<i64> = (1..10).map(super::reopen_delay_ms).collect();
    assert_eq!(
        delays,
        vec![1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
    );
    assert_eq!(super::reopen_delay_ms(u32::MAX), 60_000);
}

/// A log that could not open comes back by itself once the cause is gone: an append
/// (not only the partition's `GetOffsets`) retries the open once the backoff passed.
#[actix_rt::test]
async fn an_append_reopens_a_log_whose_open_failed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    // A file where the directory should be: the open fails.
    std::fs::write(&dir, b"in the way").unwrap();
    let addr = LogActor::new(dir.clone(), LogConfig::default()).start();
    let append = || Append {
        records: records(2),
        leader_epoch: 0,
        now_ms: 1_000,
    };
    let err = addr.send(append()).await.unwrap().unwrap_err();
    assert_eq!(err.kafka_error_code(), 56, "{err}");
    std::fs::remove_file(&dir).unwrap();
    // The first retry is due 1 s after the failure.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match addr.send(append()).await.unwrap() {
            Ok(info) => {
                assert_eq!(info.first_offset, 0);
                break;
            }
            Err(e) => assert!(std::time::Instant::now() < deadline, "never reopened: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn the_shared_high_watermark_is_reported_and_checkpointed_without_a_message() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let hw = super::SharedHighWatermark::default();
    let addr = LogActor::new(dir.clone(), LogConfig::default())
        .with_high_watermark(hw.clone())
        .start();
    addr.send(Append {
        records: records(3),
        leader_epoch: 0,
        now_ms: 1_000,
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        addr.send(GetOffsets).await.unwrap().unwrap().high_watermark,
        None
    );
    // The partition actor moves it; the log sees it at its next use.
    hw.set(2);
    assert_eq!(
        addr.send(GetOffsets).await.unwrap().unwrap().high_watermark,
        Some(2)
    );
    hw.set(3);
    addr.send(Close { delete: false }).await.unwrap().unwrap();
    assert_eq!(
        read_offset(&dir.join(super::HIGH_WATERMARK_FILE)).unwrap(),
        Some(3),
        "the close checkpoints the latest high watermark"
    );
}

/// A log actor on a storage thread of its own, as the broker runs it, and its port.
fn start_on_storage_thread(dir: std::path::PathBuf, config: LogConfig) -> (LogPort, Arbiter) {
    let storage = Arbiter::new();
    let actor = LogActor::new(dir, config);
    let core = actor.core();
    let addr = Supervisor::start_in_arbiter(&storage.handle(), move |_| actor);
    (LogPort::new(addr, core), storage)
}

/// Appends through a port take the offsets of the order they were made in, whether
/// made at once on the caller's thread or sent to the storage thread: one that could
/// be made at once never passes a message still in the mailbox.
#[actix_rt::test]
async fn a_port_appends_in_call_order_on_its_thread_or_through_the_mailbox() {
    let root = tempfile::tempdir().unwrap();
    let (port, storage) = start_on_storage_thread(root.path().join("t-0"), LogConfig::default());
    port.send(GetOffsets).await.unwrap().unwrap();
    let append = || Append {
        records: records(1),
        leader_epoch: 0,
        now_ms: 1_000,
    };
    let (mut sent, mut inline) = (Vec::new(), 0);
    for i in 0..600i64 {
        // Every tenth goes as a message, the others at once if the port allows. Half
        // way between, a barrier (a reply from the storage thread) lets it catch up.
        if i % 10 == 5 {
            port.send(GetOffsets).await.unwrap().unwrap();
        }
        let made = (i % 10 != 0).then(|| port.try_append(&append())).flatten();
        match made {
            Some(r) => {
                assert_eq!(r.unwrap().first_offset, i, "append {i}, made at once");
                inline += 1;
            }
            None => sent.push((i, port.send(append()))),
        }
    }
    let messages = sent.len();
    for (i, reply) in sent {
        let info = reply.await.unwrap().unwrap();
        assert_eq!(info.first_offset, i, "append {i}, sent");
    }
    assert!(
        inline >= 200 && messages >= 60,
        "{inline} at once, {messages} sent"
    );
    let offsets = port.send(GetOffsets).await.unwrap().unwrap();
    assert_eq!(offsets.log_end_offset, 600);
    // Now that every message is handled, an append is made at once again.
    assert!(port.try_append(&append()).is_some());
    storage.stop();
}

/// What a port leaves to the storage thread: an append that would roll a segment, any
/// append while one of its messages waits, and every append once the log is closed.
#[actix_rt::test]
async fn a_port_leaves_rolls_waiting_messages_and_closed_logs_to_the_storage_thread() {
    let root = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let (port, storage) = start_on_storage_thread(root.path().join("t-0"), config);
    port.send(GetOffsets).await.unwrap().unwrap();
    let append = || Append {
        records: records(4),
        leader_epoch: 0,
        now_ms: 1_000,
    };
    // A message of the port not yet handled holds appends back.
    port.sent.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    assert!(port.try_append(&append()).is_none());
    super::lock(&port.core).received += 1;
    assert!(port.try_append(&append()).is_some());
    // Neither are appends made while the storage thread holds the log.
    let held = super::lock(&port.core);
    assert!(port.try_append(&append()).is_none());
    drop(held);
    let segments = |port: &LogPort| {
        super::lock(&port.core)
            .log
            .as_ref()
            .unwrap()
            .segment_count()
    };
    let mut rolls = 0;
    for i in 0..40 {
        let before = segments(&port);
        match port.try_append(&append()) {
            Some(r) => {
                r.unwrap();
                assert_eq!(segments(&port), before, "append {i} made at once rolled");
            }
            None => {
                port.send(append()).await.unwrap().unwrap();
                assert_eq!(
                    segments(&port),
                    before + 1,
                    "append {i} was sent but did not roll"
                );
                rolls += 1;
            }
        }
    }
    assert!(rolls >= 3, "{rolls} rolls");
    // A bad batch made at once is refused as it would be by the actor.
    let mut bad = records(1).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let refused = port
        .try_append(&Append {
            records: bad.into(),
            leader_epoch: 0,
            now_ms: 1_000,
        })
        .expect("a bad batch is refused at once")
        .unwrap_err();
    assert_eq!(refused.kafka_error_code(), 2, "CORRUPT_MESSAGE: {refused}");
    port.send(Close { delete: false }).await.unwrap().unwrap();
    assert!(port.try_append(&append()).is_none());
    storage.stop();
}
