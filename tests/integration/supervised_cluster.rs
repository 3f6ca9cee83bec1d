//! Issue 12, scenario 7: supervised actors crash inside running cluster nodes under
//! load. Three brokers in one process (the quorum over loopback), an acks=all producer
//! running the whole time, and one crash after another through the test hooks: the
//! controller actor of the active controller and of another node, a group coordinator
//! while offsets are committed, the leader's partition and log actors, a follower's.
//! After each, the load must make progress again and the crashed actor must serve
//! (the controller creates a topic, the coordinator takes commits). At the end a
//! checker reads the partition back from its leader: every acknowledged batch is at
//! the offset it was acknowledged at with the content it was sent with (its CRC-32C,
//! which covers everything but the offset and epoch the leader assigns), no batch is
//! stored twice, and offsets are contiguous.

use crate::common::{client::Client, eventually};
use crate::replication::{batch, start_cluster};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use troupe_actors::group::manager::CrashCoordinator;
use troupe_actors::supervisor::CrashPartition;
use troupe_actors::BrokerHandle;

const TOPIC: &str = "load";
const GROUP: &str = "supervised-group";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The leader of `load-0` as node `via` sees it (an index into the brokers).
fn leader(brokers: &[BrokerHandle], via: usize) -> Option<usize> {
    let image = brokers[via].context.routes().image.clone();
    let p = image.topics.get(TOPIC)?.partitions.get(&0)?.leader;
    (p > 0).then(|| (p - 1) as usize)
}

/// (base offset, CRC) of each batch in a fetched record set.
fn batches(mut records: Bytes) -> Vec<(i64, i64, u32)> {
    let mut out = Vec::new();
    while records.remaining() >= 61 {
        let base = records.get_i64();
        let len = records.get_i32() as usize;
        if records.remaining() < len {
            break;
        }
        let rest = records.split_to(len);
        let crc = u32::from_be_bytes(rest[5..9].try_into().expect("4 bytes"));
        let last_delta = i32::from_be_bytes(rest[11..15].try_into().expect("4 bytes"));
        out.push((base, base + last_delta as i64, crc));
    }
    out
}

/// The CRC of a batch as built (after base offset, length, leader epoch and magic).
fn crc_of(b: &Bytes) -> u32 {
    u32::from_be_bytes(b[17..21].try_into().expect("a whole batch"))
}

/// acks=all batches to the current leader of `load-0` until `stop`; each
/// acknowledgement recorded as (base offset, CRC).
async fn run_load(
    brokers: Arc<Vec<BrokerHandle>>,
    acked: Arc<Mutex<Vec<(i64, u32)>>>,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<(usize, Client)> = None;
    let mut i = 100_000;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let b = batch(i);
        let crc = crc_of(&b);
        let Some(li) = leader(&brokers, 0).or_else(|| leader(&brokers, 1)) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if conn.as_ref().is_none_or(|(at, _)| *at != li) {
            conn = Some((li, Client::connect(brokers[li].addr).await));
        }
        let (_, c) = conn.as_mut().expect("connected above");
        let sent = tokio::time::timeout(Duration::from_secs(10), c.produce_acks(TOPIC, 0, b, -1));
        match sent.await {
            Ok((0, offset)) => acked.lock().unwrap().push((offset, crc)),
            _ => {
                // Not acknowledged: a new batch next time (a retry of this one could
                // land twice, which is allowed without idempotence and not checked).
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn progress(acked: &Arc<Mutex<Vec<(i64, u32)>>>, more: usize, what: &str) {
    let start = acked.lock().unwrap().len();
    eventually(30, what, || {
        let n = acked.lock().unwrap().len();
        async move { (n >= start + more).then_some(()) }
    })
    .await;
}

/// The node hosting the group's coordinator (an index), found over the wire.
async fn coordinator(brokers: &[BrokerHandle]) -> usize {
    eventually(20, "a coordinator for the group", || async {
        let mut c = Client::connect(brokers[0].addr).await;
        let req = FindCoordinatorRequest::default().with_key(s(GROUP));
        let r = c.call(&req, 3).await;
        (r.error_code == 0 && r.node_id.0 > 0).then(|| (r.node_id.0 - 1) as usize)
    })
    .await
}

/// A standalone commit (generation -1, as a consumer with manual assignment does) of
/// `offset` for load-0 at node `at`: its error code.
async fn commit(brokers: &[BrokerHandle], at: usize, offset: i64) -> i16 {
    let mut c = Client::connect(brokers[at].addr).await;
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    c.call(&req, 8).await.topics[0].partitions[0].error_code
}

async fn committed(brokers: &[BrokerHandle], at: usize) -> Option<i64> {
    let mut c = Client::connect(brokers[at].addr).await;
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(TOPIC)))
                .with_partition_indexes(vec![0]),
        ]));
    let r = c.call(&req, 5).await;
    (r.error_code == 0).then(|| r.topics[0].partitions[0].committed_offset)
}

/// Commit until the coordinator at `at` takes it (it may be loading after a restart).
async fn commit_until_taken(brokers: &[BrokerHandle], at: usize, offset: i64) {
    eventually(20, "a commit taken", || async {
        (commit(brokers, at, offset).await == 0).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn crashed_actors_restart_in_a_running_cluster_and_lose_no_acknowledged_write() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers = Arc::new(start_cluster(&dirs).await);
    let mut c = Client::connect(brokers[0].addr).await;
    assert_eq!(c.create_topic_rf(TOPIC, 1, 3).await, 0);
    eventually(20, "a leader for load-0", || {
        let l = leader(&brokers, 0);
        async move { l.map(|_| ()) }
    })
    .await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = actix_rt::spawn(run_load(brokers.clone(), acked.clone(), stop.clone()));
    progress(&acked, 20, "the load before any crash").await;
    let mut faults = Vec::new();

    // 1, 2: the controller actor of the active controller, then of another node. Each
    // restarts and serves: a topic created through that node.
    let active = (brokers[0].context.controller_id() - 1) as usize;
    let other = (0..3).find(|i| *i != active).expect("three nodes");
    for (n, at) in [active, other].into_iter().enumerate() {
        brokers[at]
            .controller
            .send(troupe_actors::controller::Crash)
            .await
            .unwrap();
        faults.push(format!("controller actor of node {}", at + 1));
        progress(&acked, 20, "the load after a controller actor crash").await;
        let name = format!("after-controller-crash-{n}");
        eventually(
            20,
            "a topic created through the restarted controller",
            || {
                let addr = brokers[at].addr;
                let name = name.clone();
                async move {
                    let mut c = Client::connect(addr).await;
                    (c.create_topic_rf(&name, 1, 3).await == 0).then_some(())
                }
            },
        )
        .await;
    }

    // 3: the group coordinator, between commits: they go on, never backwards.
    let co = coordinator(&brokers).await;
    let first = acked.lock().unwrap().last().expect("acked").0;
    commit_until_taken(&brokers, co, first).await;
    let partition = troupe::group::partition_for(GROUP, 3);
    assert!(brokers[co]
        .context
        .groups
        .manager
        .send(CrashCoordinator { partition })
        .await
        .unwrap());
    faults.push(format!("group coordinator on node {}", co + 1));
    progress(&acked, 20, "the load after the coordinator crash").await;
    let reloaded = eventually(20, "the reloaded coordinator's offsets", || async {
        committed(&brokers, co).await
    })
    .await;
    assert_eq!(reloaded, first, "the commit before the crash survives it");
    let second = acked.lock().unwrap().last().expect("acked").0;
    commit_until_taken(&brokers, co, second).await;
    assert_eq!(committed(&brokers, co).await, Some(second));

    // 4, 5: the leader's partition and log actors, then a follower's.
    let li = leader(&brokers, 0).expect("a leader");
    let fi = (0..3).find(|i| *i != li).expect("a follower");
    for at in [li, fi] {
        let crash = CrashPartition {
            topic: TOPIC.into(),
            partition: 0,
        };
        assert!(brokers[at].supervisor.send(crash).await.unwrap());
        faults.push(format!(
            "partition and log actors of load-0 on node {}",
            at + 1
        ));
        progress(&acked, 20, "the load after a partition actor crash").await;
    }

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let acked = acked.lock().unwrap().clone();

    // The checker: read load-0 back from its leader, up to the high watermark.
    let li = leader(&brokers, 0).expect("a leader");
    let mut c = Client::connect(brokers[li].addr).await;
    let mut stored: BTreeMap<i64, (i64, u32)> = BTreeMap::new();
    let mut next = 0;
    loop {
        let (code, hw, records) = c.fetch(TOPIC, 0, next, 100).await;
        assert_eq!(code, 0, "fetch at {next}");
        for (base, last, crc) in batches(records) {
            if base >= next {
                stored.insert(base, (last, crc));
                next = last + 1;
            }
        }
        if next >= hw {
            break;
        }
    }
    let mut gaps = 0;
    let mut expect = 0;
    for (base, (last, _)) in &stored {
        gaps += usize::from(*base != expect);
        expect = last + 1;
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|(o, crc)| stored.get(o).map(|(_, c)| c) != Some(crc))
        .collect();
    let mut seen = HashSet::new();
    let twice = stored
        .values()
        .filter(|(_, crc)| !seen.insert(*crc))
        .count();
    println!(
        "scenario 7: faults {faults:?}; {} acknowledged, {} batches stored, lost or misplaced {}, \
         stored twice {twice}, gaps {gaps}",
        acked.len(),
        stored.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged batches lost or moved: {lost:?}"
    );
    assert_eq!(twice, 0, "a batch stored twice");
    assert_eq!(gaps, 0, "offset gaps");
    assert!(acked.len() >= 100, "progress during the faults");
    for b in Arc::try_unwrap(brokers)
        .ok()
        .expect("the load task is done")
    {
        b.shutdown().await;
    }
}
