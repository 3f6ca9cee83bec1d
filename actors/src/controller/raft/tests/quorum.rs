//! Three voters on loopback: election, writes through any node, leader loss, and a
//! restarted voter catching up through a snapshot.

use super::super::{
    config_for_election_timeout, default_config, start_quorum_with, QuorumHandle, QuorumOptions,
    WriteError,
};
use super::topic_record;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use troupe::metadata::MetadataRecord;

const DEADLINE: Duration = Duration::from_secs(10);

/// Short elections keep the test quick; a snapshot every 5 entries with nothing kept
/// behind it makes a voter that was away catch up by snapshot.
pub(super) fn options() -> QuorumOptions {
    QuorumOptions {
        config: openraft::Config {
            election_timeout_min: 300,
            election_timeout_max: 600,
            heartbeat_interval: 100,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(5),
            max_in_snapshot_log_to_keep: 0,
            ..default_config()
        },
        other: None,
        cluster_id: Some(TEST_CLUSTER.into()),
        learner_removal_ms: LEARNER_REMOVAL_MS,
    }
}

/// The cluster id the test voters and learners share.
pub(super) const TEST_CLUSTER: &str = "test-cluster";
/// Short, so a dead learner leaves the membership within the test's deadline.
pub(super) const LEARNER_REMOVAL_MS: i64 = 1000;

/// Poll `cond` until it holds, failing the test with `what` at the deadline.
pub(super) async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The leader all running nodes agree on.
pub(super) fn agreed_leader(nodes: &BTreeMap<u64, QuorumHandle>) -> Option<u64> {
    let mut leaders = nodes.values().map(|n| n.leader());
    let first = leaders.next()??;
    leaders.all(|l| l == Some(first)).then_some(first)
}

/// Write through node `via`, forwarding to the leader it names, as a broker would.
pub(super) async fn write_via(
    nodes: &BTreeMap<u64, QuorumHandle>,
    voters: &BTreeMap<u64, String>,
    via: u64,
    records: Vec<MetadataRecord>,
) -> i64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match nodes[&via].write(records.clone()).await {
            Ok(offset) => return offset,
            Err(WriteError::NotLeader {
                leader_id: Some(leader),
                leader_addr,
            }) if nodes.contains_key(&leader) => {
                assert_eq!(leader_addr.as_ref(), Some(&voters[&leader]));
                match nodes[&leader].write(records.clone()).await {
                    Ok(offset) => return offset,
                    Err(e) => tracing::debug!(error = %e, "forwarded write refused, retrying"),
                }
            }
            Err(e) => tracing::debug!(error = %e, "write refused, retrying"),
        }
        assert!(Instant::now() < deadline, "no leader accepted the write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) fn has_topic(node: &QuorumHandle, name: &str) -> bool {
    node.images.borrow().topics.contains_key(name)
}

pub(super) async fn start(
    id: u64,
    voters: &BTreeMap<u64, String>,
    dir: PathBuf,
    listener: TcpListener,
) -> QuorumHandle {
    start_quorum_with(id, voters.clone(), dir, listener, options())
        .await
        .expect("start a voter")
}

/// Three voters on loopback, started, with a leader; their directories (ids 1..=4, the
/// fourth for a learner) live as long as the returned guard.
pub(super) async fn three_voters() -> (
    BTreeMap<u64, QuorumHandle>,
    BTreeMap<u64, String>,
    BTreeMap<u64, tempfile::TempDir>,
) {
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
    (nodes, voters, dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_replicate_fail_over_and_catch_up() {
    let (mut nodes, voters, dirs) = three_voters().await;
    let leader = agreed_leader(&nodes).unwrap();
    // Every voter initialized with the same set; doing it again is refused, harmlessly.
    let members: BTreeMap<u64, BasicNode> = voters
        .iter()
        .map(|(id, a)| (*id, BasicNode::new(a)))
        .collect();
    for node in nodes.values() {
        match node.raft.initialize(members.clone()).await {
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            other => panic!("second initialize: {other:?}"),
        }
    }
    let follower = *nodes.keys().find(|&&id| id != leader).unwrap();
    write_via(&nodes, &voters, follower, vec![topic_record("a", 1)]).await;
    wait_for("topic a everywhere", || async {
        nodes.values().all(|n| has_topic(n, "a"))
    })
    .await;

    // The leader goes away: the two others elect a new one, in a later term.
    let old_term = nodes[&leader].current_term();
    let stopped = nodes.remove(&leader).unwrap();
    let stopped_last = stopped.raft.metrics().borrow().last_log_index.unwrap();
    stopped.shutdown().await;
    drop(stopped);
    wait_for("a new leader", || async {
        agreed_leader(&nodes).is_some_and(|l| l != leader)
            && nodes.values().all(|n| n.current_term() > old_term)
    })
    .await;
    for i in 0..12u8 {
        let via = *nodes.keys().nth(usize::from(i) % 2).unwrap();
        write_via(
            &nodes,
            &voters,
            via,
            vec![topic_record(&format!("b{i}"), 10 + i)],
        )
        .await;
    }
    // The survivors snapshot and purge past what the stopped voter has: it can only catch
    // up through a snapshot.
    wait_for("purged logs on the survivors", || async {
        nodes.values().all(|n| {
            let m = n.raft.metrics().borrow().clone();
            m.purged.is_some_and(|p| p.index > stopped_last)
        })
    })
    .await;

    let listener = TcpListener::bind(&voters[&leader]).await.unwrap();
    let restarted = start(
        leader,
        &voters,
        dirs[&leader].path().to_path_buf(),
        listener,
    )
    .await;
    nodes.insert(leader, restarted);
    wait_for("the restarted voter to catch up", || async {
        (0..12).all(|i| has_topic(&nodes[&leader], &format!("b{i}")))
    })
    .await;
    let snapshot = nodes[&leader].raft.metrics().borrow().snapshot;
    assert!(
        snapshot.is_some_and(|s| s.index > stopped_last),
        "caught up by snapshot"
    );

    // It takes part again: a write through it reaches all three, identical images.
    write_via(&nodes, &voters, leader, vec![topic_record("c", 99)]).await;
    wait_for("identical images", || async {
        let images: Vec<_> = nodes.values().map(|n| n.images.borrow().clone()).collect();
        has_topic(&nodes[&leader], "c") && images.windows(2).all(|w| w[0] == w[1])
    })
    .await;
    for node in nodes.values() {
        node.shutdown().await;
    }
}

/// `controller.quorum.election.timeout.ms` bounds how long the voters go without a
/// leader after theirs stops: openraft's leader lease comes on top of its election
/// timeout, and [`config_for_election_timeout`] accounts for it. The new leader also
/// knows which leader it last heard from, and when: that is when the old one stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_elect_a_new_leader_within_the_election_timeout() {
    const ELECTION_MS: u64 = 1000;
    for e in [100, 150, 1000, 9000, 60_000] {
        let c = config_for_election_timeout(e)
            .validate()
            .expect("valid timings");
        // openraft waits lease (= max) + a timeout in [min, max) with a leader known.
        assert!(2 * c.election_timeout_max <= e.max(100), "{e}: {c:?}");
        assert!(
            c.heartbeat_interval * 2 <= c.election_timeout_min,
            "{e}: {c:?}"
        );
    }
    let mut listeners = BTreeMap::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, l.local_addr().unwrap().to_string());
        listeners.insert(id, l);
    }
    let dirs: BTreeMap<u64, tempfile::TempDir> = (1..=3)
        .map(|id| (id, tempfile::tempdir().unwrap()))
        .collect();
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let options = QuorumOptions {
            config: config_for_election_timeout(ELECTION_MS),
            ..QuorumOptions::default()
        };
        let dir = dirs[&id].path().to_path_buf();
        let node = start_quorum_with(id, voters.clone(), dir, listener, options)
            .await
            .expect("start a voter");
        nodes.insert(id, node);
    }
    wait_for("a leader", || async { agreed_leader(&nodes).is_some() }).await;
    let leader = agreed_leader(&nodes).unwrap();
    // Followers hear from the leader all the time (heartbeats).
    for (id, node) in &nodes {
        if *id != leader {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (from, ago) = node.leader_contact.take().expect("heard from the leader");
            assert_eq!(from, leader);
            assert!(ago < Duration::from_millis(500), "last heard {ago:?} ago");
        }
    }
    // The contacts were taken above: let every follower hear at least one more
    // heartbeat before the leader stops, or the last one checked may have none.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = nodes.remove(&leader).unwrap();
    stopped.shutdown().await;
    let t0 = Instant::now();
    drop(stopped);
    wait_for("a new leader", || async {
        agreed_leader(&nodes).is_some_and(|l| l != leader)
    })
    .await;
    let took = t0.elapsed();
    let new = agreed_leader(&nodes).unwrap();
    // The last heartbeat came at most 100 ms before the stop, the vote takes a round
    // trip: 300 ms of slack. The old timings (lease 1 s + timeout 0.5-1 s) took at
    // least 1.5 s after the last heartbeat, 1.4 s after the stop.
    assert!(
        took < Duration::from_millis(ELECTION_MS + 300),
        "no leader for {took:?}"
    );
    let (from, ago) = nodes[&new]
        .leader_contact
        .take()
        .expect("the new leader heard from the old one");
    assert_eq!(
        from, leader,
        "the last leader heard from is the stopped one"
    );
    assert!(
        ago >= t0.elapsed().saturating_sub(Duration::from_millis(50)),
        "last heard {ago:?} ago, stopped {:?} ago",
        t0.elapsed()
    );
    for node in nodes.values() {
        node.shutdown().await;
    }
}

/// Pre-vote: a voter that reaches no other voter cannot win an election, so it does not
/// call one, and its term stays put however long it waits (openraft's own timer raised
/// it on every election timeout: 300-600 ms here, so about 8 times in these 3 s). Its
/// peers' addresses are ports nobody listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_cut_off_from_the_others_does_not_raise_its_term() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut voters = BTreeMap::new();
    voters.insert(1, listener.local_addr().unwrap().to_string());
    for id in 2..=3u64 {
        // Bound, then closed: connection refused.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, dead.local_addr().unwrap().to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let node = start(1, &voters, dir.path().to_path_buf(), listener).await;
    // A pristine voter stands once as it initializes (term 1); none of it can win.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = node.current_term();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = node.current_term();
    assert!(first <= 1, "term {first} after 0.5 s");
    assert_eq!(later, first, "the cut-off voter raised its term");
    assert_eq!(node.leader(), None);
    node.shutdown().await;
}

/// A follower that hears from a live leader refuses a pre-vote (the candidate is the
/// one cut off), and so does the leader; once the leader is gone, the followers grant
/// each other and one of them leads within lease + election timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prevotes_are_refused_while_the_leader_lives_and_granted_after() {
    let (mut nodes, voters, _dirs) = three_voters().await;
    let leader = agreed_leader(&nodes).unwrap();
    let term = nodes[&leader].current_term();
    let follower = *nodes.keys().find(|&&id| id != leader).unwrap();
    let other = *nodes
        .keys()
        .find(|&&id| id != leader && id != follower)
        .unwrap();
    // Ask as `other` would, with a log far ahead: only liveness can refuse it.
    let ask = |target: u64| {
        let network = super::super::network::Network::new(other).with_addresses(voters.clone());
        async move {
            network
                .prevote(target, Some((u64::MAX, u64::MAX)), Duration::from_secs(2))
                .await
        }
    };
    assert_eq!(ask(follower).await, Some(Some("LeaderAlive".into())));
    assert_eq!(ask(leader).await, Some(Some("IAmTheLeader".into())));
    // Refused pre-votes cost nobody a term.
    for (id, node) in &nodes {
        assert_eq!(node.current_term(), term, "node {id} changed term");
    }
    let stopped = Instant::now();
    let old = nodes.remove(&leader).unwrap();
    old.shutdown().await;
    wait_for("a new leader", || async {
        agreed_leader(&nodes).is_some_and(|l| l != leader)
    })
    .await;
    let took = stopped.elapsed();
    // Lease (600) + timeout (< 600) + a pre-vote round and the vote; two voters left
    // can split their votes, and each split costs another timeout (300..600 ms), so a
    // loaded machine gets slack for a few rounds.
    assert!(
        took < Duration::from_millis(4000),
        "new leader after {took:?}"
    );
    // Terms are not burned faster than one election timeout each: every round after
    // the first waited at least the minimum timeout (300 ms) after the lease (600 ms,
    // counted from a last heartbeat that came up to 100 ms before the stop).
    let new_term = nodes[&agreed_leader(&nodes).unwrap()].current_term();
    let rounds_possible = 1 + took.as_millis().saturating_sub(500) as u64 / 300;
    assert!(
        new_term > term && new_term <= term + rounds_possible,
        "term {term} -> {new_term} in {took:?}"
    );
    for node in nodes.values() {
        node.shutdown().await;
    }
}
