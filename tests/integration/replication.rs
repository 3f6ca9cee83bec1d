//! Replication at the actor level: three brokers in one process (each a controller
//! voter, the quorum over loopback), a replication factor 3 topic, and faults injected
//! through the actors themselves: a follower's partition actor crashes while acks=all
//! produces continue, restarts from disk, catches up, and every replica's log is
//! byte-identical to the leader's; then the leader's own actors crash and restart.

use crate::common::{client::Client, eventually, test_config};
use std::net::TcpListener;
use troupe::storage::batch::build_batch;
use troupe_actors::supervisor::CrashPartition;
use troupe_actors::BrokerHandle;

pub(crate) fn batch(i: usize) -> bytes::Bytes {
    let values: Vec<Vec<u8>> = (0..4).map(|j| format!("r{i}-{j}").into_bytes()).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    build_batch(0, troupe_actors::now_ms(), &records)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn start_cluster(dirs: &[tempfile::TempDir]) -> Vec<BrokerHandle> {
    let cports: Vec<u16> = dirs.iter().map(|_| free_port()).collect();
    let voters = cports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut starts = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let node = (i + 1).to_string();
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
            cports[i]
        );
        let config = test_config(
            dir.path().to_path_buf(),
            &[
                ("node.id", node.as_str()),
                ("process.roles", "broker,controller"),
                ("listeners", listeners.as_str()),
                (
                    "listener.security.protocol.map",
                    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                ),
                ("controller.listener.names", "CONTROLLER"),
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("controller.quorum.voters", voters.as_str()),
                ("controller.quorum.election.timeout.ms", "500"),
                ("broker.heartbeat.interval.ms", "200"),
                ("broker.session.timeout.ms", "3000"),
                ("default.replication.factor", "3"),
                ("min.insync.replicas", "2"),
                ("replica.lag.time.max.ms", "2000"),
                ("offsets.topic.num.partitions", "3"),
                ("offsets.topic.replication.factor", "3"),
            ],
        );
        // Voters must all be up before any can elect a controller: start them together.
        starts.push(actix_rt::spawn(troupe_actors::start(config)));
    }
    let mut brokers = Vec::new();
    for s in starts {
        brokers.push(s.await.unwrap().unwrap());
    }
    eventually(30, "three unfenced brokers", || {
        let ok = brokers.iter().all(|b| {
            let image = b.context.routes().image.clone();
            image.brokers.values().filter(|r| !r.fenced).count() == 3
        });
        async move { ok.then_some(()) }
    })
    .await;
    brokers
}

fn log_bytes(dir: &tempfile::TempDir) -> Vec<u8> {
    std::fs::read(dir.path().join("rep-0/00000000000000000000.log")).unwrap_or_default()
}

#[actix_rt::test]
async fn three_replicas_stay_byte_identical_through_a_follower_actor_crash() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers = start_cluster(&dirs).await;
    let mut c = Client::connect(brokers[0].addr).await;
    assert_eq!(c.create_topic_rf("rep", 1, 3).await, 0);
    let leader = eventually(20, "a leader for rep-0", || {
        let p = brokers[0]
            .context
            .routes()
            .image
            .topics
            .get("rep")
            .and_then(|t| t.partitions.get(&0).cloned());
        async move { p.filter(|p| p.leader > 0).map(|p| p.leader) }
    })
    .await;
    let li = (leader - 1) as usize;
    let mut lc = Client::connect(brokers[li].addr).await;
    for i in 0..10 {
        let (code, offset) = eventually(10, "acks=all produce", || {
            let addr = brokers[li].addr;
            let b = batch(i);
            async move {
                let mut c = Client::connect(addr).await;
                let (code, off) = c.produce_acks("rep", 0, b, -1).await;
                (code == 0).then_some((code, off))
            }
        })
        .await;
        assert_eq!((code, offset), (0, i as i64 * 4));
    }
    // Crash a follower's partition (and log) actors: acks=all goes on with the other two.
    let fi = (0..3).find(|i| *i != li).unwrap();
    assert!(brokers[fi]
        .supervisor
        .send(CrashPartition {
            topic: "rep".into(),
            partition: 0
        })
        .await
        .unwrap());
    for i in 10..20 {
        let (code, offset) = lc.produce_acks("rep", 0, batch(i), -1).await;
        assert_eq!(
            (code, offset),
            (0, i as i64 * 4),
            "acks=all during the crash"
        );
    }
    // The crashed follower restarts from disk, catches up: all three logs agree.
    eventually(20, "byte-identical replica logs", || {
        let logs: Vec<Vec<u8>> = dirs.iter().map(log_bytes).collect();
        let same = logs.iter().all(|l| *l == logs[li]) && !logs[li].is_empty();
        async move { same.then_some(()) }
    })
    .await;
    eventually(20, "the restarted follower back in the ISR", || {
        let isr = brokers[li].context.routes().image.topics["rep"].partitions[&0]
            .isr
            .len();
        async move { (isr == 3).then_some(()) }
    })
    .await;
    // Now the leader's own partition and log actors crash: they restart from disk as
    // leader in the same epoch (the controller saw nothing), writes resume where the
    // log ends, and the replicas still agree.
    assert!(brokers[li]
        .supervisor
        .send(CrashPartition {
            topic: "rep".into(),
            partition: 0
        })
        .await
        .unwrap());
    let offset = eventually(20, "acks=all after the leader's actors restarted", || {
        let addr = brokers[li].addr;
        async move {
            let mut c = Client::connect(addr).await;
            let (code, off) = c.produce_acks("rep", 0, batch(20), -1).await;
            (code == 0).then_some(off)
        }
    })
    .await;
    // (A retry after an attempt that appended but was not answered lands after it.)
    assert!(offset >= 80, "offset {offset} reused across the restart");
    eventually(
        20,
        "byte-identical replica logs after the leader's restart",
        || {
            let logs: Vec<Vec<u8>> = dirs.iter().map(log_bytes).collect();
            let same = logs.iter().all(|l| *l == logs[li]);
            async move { same.then_some(()) }
        },
    )
    .await;
    for b in brokers {
        b.shutdown().await;
    }
}
