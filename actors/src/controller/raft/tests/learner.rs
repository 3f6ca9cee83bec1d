//! A broker-only node as a Raft learner: it attaches to the voters, is added by the
//! leader, catches up through a snapshot plus the tail, follows a new leader after the
//! old one stops, and never votes. A voter's id cannot attach as a learner.

use super::super::network::{read_frame, write_frame};
use super::super::QuorumHandle;
use super::super::{start_learner, ControllerReply, ControllerRpc, QuorumError, WriteError};
use super::quorum::{
    agreed_leader, has_topic, options, three_voters, wait_for, write_via, LEARNER_REMOVAL_MS,
    TEST_CLUSTER,
};
use super::topic_record;
use crate::controller::raft::files::{decode, encode};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use troupe::metadata::MetadataRecord;

fn cluster() -> Option<String> {
    Some(TEST_CLUSTER.into())
}

/// Whether the leader's membership holds `id` (`None`: no agreed leader).
fn is_member(nodes: &BTreeMap<u64, QuorumHandle>, id: u64) -> Option<bool> {
    let leader = agreed_leader(nodes)?;
    let m = nodes[&leader].raft.metrics().borrow().clone();
    Some(m.membership_config.membership().get_node(&id).is_some())
}

/// A learner whose broker is fenced keeps its place while it answers; stopped, it
/// leaves the membership once silent for the bound (and DescribeQuorum no longer lists
/// it as an observer); restarted from its directory it attaches, is added again and
/// catches up with what was committed meanwhile. An attach from another cluster is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_learner_leaves_the_membership_and_rejoins_after_restart() {
    let (nodes, voters, dirs) = three_voters().await;
    let fenced_broker = MetadataRecord::RegisterBroker {
        node_id: 4,
        host: "127.0.0.1".into(),
        port: 1,
        rack: None,
        incarnation_id: [4; 16],
        fenced: true,
    };
    write_via(&nodes, &voters, 1, vec![fenced_broker]).await;
    let dir = dirs[&4].path().to_path_buf();
    let learner = start_learner(4, voters.clone(), dir.clone(), options().config, cluster())
        .await
        .expect("start the learner");
    wait_for("the learner added", || async {
        is_member(&nodes, 4) == Some(true)
    })
    .await;
    // Fenced but answering: kept well past the bound, and listed as an observer with
    // its log end and fetch times.
    tokio::time::sleep(Duration::from_millis(3 * LEARNER_REMOVAL_MS as u64)).await;
    assert_eq!(
        is_member(&nodes, 4),
        Some(true),
        "an answering learner is kept"
    );
    let leader = agreed_leader(&nodes).unwrap();
    let q = nodes[&leader].describe();
    let leo = q
        .observers
        .iter()
        .find(|(id, _)| *id == 4)
        .map(|(_, leo)| *leo);
    assert!(
        leo.is_some_and(|l| l >= q.high_watermark),
        "observers {:?}, hw {}",
        q.observers,
        q.high_watermark
    );
    let (fetch, caught_up) = q.times[&4];
    let now = crate::now_ms();
    assert!(
        now - fetch < 1000 && now - caught_up < 1000,
        "times {:?} at {now}",
        q.times[&4]
    );

    learner.shutdown().await;
    drop(learner);
    let stopped = Instant::now();
    wait_for("the dead learner removed", || async {
        is_member(&nodes, 4) == Some(false)
    })
    .await;
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(LEARNER_REMOVAL_MS as u64 - 200),
        "removed after {took:?}, before the bound"
    );
    let leader = agreed_leader(&nodes).unwrap();
    assert!(nodes[&leader].describe().observers.is_empty());

    // Committed while it was away, then it comes back from its directory.
    write_via(&nodes, &voters, leader, vec![topic_record("while-away", 9)]).await;
    let learner = start_learner(4, voters.clone(), dir, options().config, cluster())
        .await
        .expect("restart the learner");
    wait_for("the learner back and caught up", || async {
        is_member(&nodes, 4) == Some(true) && has_topic(&learner, "while-away")
    })
    .await;

    // A node formatted for another cluster is refused, saying which.
    let mut s = TcpStream::connect(&voters[&leader]).await.unwrap();
    let attach = ControllerRpc::Attach {
        node_id: 7,
        cluster_id: Some("other-cluster".into()),
    };
    write_frame(&mut s, &encode(&attach).unwrap())
        .await
        .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert!(matches!(
        decode::<ControllerReply>(&reply).unwrap(),
        ControllerReply::Attached(Err(e)) if e.contains("cluster.id=other-cluster")
    ));
    assert_eq!(is_member(&nodes, 7), Some(false));
    learner.shutdown().await;
    for node in nodes.values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_follows_the_committed_log_across_a_leader_change() {
    let (mut nodes, voters, dirs) = three_voters().await;
    // Enough entries that the voters snapshot and purge: the learner can only start
    // from a snapshot.
    for i in 0..12u8 {
        let r = vec![topic_record(&format!("before{i}"), i)];
        write_via(&nodes, &voters, 1, r).await;
    }
    wait_for("purged logs", || async {
        nodes
            .values()
            .all(|n| n.raft.metrics().borrow().purged.is_some())
    })
    .await;

    // A voter's id is refused as a learner, both at start and on the wire.
    assert!(matches!(
        start_learner(
            2,
            voters.clone(),
            dirs[&4].path().into(),
            options().config,
            cluster()
        )
        .await,
        Err(QuorumError::IsAVoter(2))
    ));
    let mut s = TcpStream::connect(&voters[&1]).await.unwrap();
    write_frame(
        &mut s,
        &encode(&ControllerRpc::Attach {
            node_id: 2,
            cluster_id: cluster(),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert!(matches!(
        decode::<ControllerReply>(&reply).unwrap(),
        ControllerReply::Attached(Err(e)) if e.contains("voter")
    ));

    let learner = start_learner(
        4,
        voters.clone(),
        dirs[&4].path().into(),
        options().config,
        cluster(),
    )
    .await
    .expect("start the learner");
    wait_for("the learner to catch up", || async {
        (0..12).all(|i| has_topic(&learner, &format!("before{i}")))
    })
    .await;
    // The snapshot it caught up from may predate its own add-learner entry, which
    // follows in the log tail.
    wait_for("the learner to see itself in the membership", || async {
        let m = learner.raft.metrics().borrow().clone();
        m.membership_config.membership().get_node(&4).is_some()
    })
    .await;
    let m = learner.raft.metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "caught up through a snapshot");
    let membership = m.membership_config.membership().clone();
    assert!(membership.get_node(&4).is_some(), "added to the membership");
    assert!(
        !membership.voter_ids().any(|v| v == 4),
        "as a learner, not a voter"
    );
    // It knows the leader, and writes through it are refused with the leader named.
    let leader = agreed_leader(&nodes).unwrap();
    assert_eq!(learner.leader(), Some(leader));
    assert!(matches!(
        learner.write(vec![topic_record("no", 0)]).await,
        Err(WriteError::NotLeader { leader_id: Some(l), .. }) if l == leader
    ));

    // The leader stops: the learner follows the new one, over its attached connections.
    let stopped = nodes.remove(&leader).unwrap();
    stopped.shutdown().await;
    drop(stopped);
    wait_for("a new leader", || async {
        agreed_leader(&nodes).is_some_and(|l| l != leader)
    })
    .await;
    let via = *nodes.keys().next().unwrap();
    write_via(&nodes, &voters, via, vec![topic_record("after", 50)]).await;
    wait_for("the learner to get the new leader's write", || async {
        has_topic(&learner, "after") && learner.leader() == agreed_leader(&nodes)
    })
    .await;
    wait_for("identical images", || async {
        *learner.images.borrow().clone() == *nodes[&via].images.borrow().clone()
    })
    .await;
    learner.shutdown().await;
    for node in nodes.values() {
        node.shutdown().await;
    }
}
