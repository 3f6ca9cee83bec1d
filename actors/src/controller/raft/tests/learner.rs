//! A broker-only node as a Raft learner: it attaches to the voters, is added by the
//! leader, catches up through a snapshot plus the tail, follows a new leader after the
//! old one stops, and never votes. A voter's id cannot attach as a learner.

use super::super::network::{read_frame, write_frame};
use super::super::{start_learner, ControllerReply, ControllerRpc, QuorumError, WriteError};
use super::quorum::{agreed_leader, has_topic, options, start, wait_for, write_via};
use super::topic_record;
use crate::controller::raft::files::{decode, encode};
use std::collections::BTreeMap;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_follows_the_committed_log_across_a_leader_change() {
    let mut listeners = BTreeMap::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, l.local_addr().unwrap().to_string());
        listeners.insert(id, l);
    }
    let dirs: BTreeMap<u64, tempfile::TempDir> = (1..=4)
        .map(|id| (id, tempfile::tempdir().unwrap()))
        .collect();
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let dir = dirs[&id].path().to_path_buf();
        nodes.insert(id, start(id, &voters, dir, listener).await);
    }
    wait_for("a leader", || async { agreed_leader(&nodes).is_some() }).await;
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
        start_learner(2, voters.clone(), dirs[&4].path().into(), options().config).await,
        Err(QuorumError::IsAVoter(2))
    ));
    let mut s = TcpStream::connect(&voters[&1]).await.unwrap();
    write_frame(
        &mut s,
        &encode(&ControllerRpc::Attach { node_id: 2 }).unwrap(),
    )
    .await
    .unwrap();
    let reply = read_frame(&mut s).await.unwrap().unwrap();
    assert!(matches!(
        decode::<ControllerReply>(&reply).unwrap(),
        ControllerReply::Attached(Err(e)) if e.contains("voter")
    ));

    let learner = start_learner(4, voters.clone(), dirs[&4].path().into(), options().config)
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
