//! Consumer groups at the actor level: a group coordinator crashed in the middle of a
//! rebalance restarts, reloads its `__consumer_offsets` partition, the group forms
//! again and the committed offsets are intact.

use crate::common::{client::Client, eventually, test_config};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use troupe_actors::group::manager::CrashCoordinator;

const GROUP: &str = "crash-group";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid() -> GroupId {
    GroupId(s(GROUP))
}

async fn find_coordinator(c: &mut Client) -> i16 {
    let req = FindCoordinatorRequest::default().with_key(s(GROUP));
    c.call(&req, 3).await.error_code
}

async fn join(c: &mut Client, member_id: &str) -> JoinGroupResponse {
    let protocol = join_group_request::JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x01t\xff\xff\xff\xff"));
    let req = JoinGroupRequest::default()
        .with_group_id(gid())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol]);
    c.call(&req, 5).await
}

/// Join until admitted: the MEMBER_ID_REQUIRED round trip, and a fresh id after
/// UNKNOWN_MEMBER_ID (a member the reloaded coordinator never stored).
async fn join_until_admitted(addr: SocketAddr, mut member_id: String) -> JoinGroupResponse {
    let mut c = Client::connect(addr).await;
    for _ in 0..10 {
        let r = join(&mut c, &member_id).await;
        match r.error_code {
            0 => return r,
            79 => member_id = r.member_id.to_string(), // MEMBER_ID_REQUIRED
            25 => member_id = String::new(),           // UNKNOWN_MEMBER_ID
            14 => tokio::time::sleep(std::time::Duration::from_millis(20)).await, // loading
            code => panic!("join failed with {code}"),
        }
    }
    panic!("not admitted after 10 joins")
}

async fn sync(
    c: &mut Client,
    r: &JoinGroupResponse,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupResponse {
    let assignments = assignments
        .iter()
        .map(|(m, a)| {
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(m))
                .with_assignment(Bytes::from_static(a))
        })
        .collect();
    let req = SyncGroupRequest::default()
        .with_group_id(gid())
        .with_generation_id(r.generation_id)
        .with_member_id(r.member_id.clone())
        .with_assignments(assignments);
    c.call(&req, 3).await
}

async fn commit(
    c: &mut Client,
    generation: i32,
    member_id: &StrBytes,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(gid())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member_id.clone())
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(partitions),
        ]);
    let resp = c.call(&req, 8).await;
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Committed offsets of t-0..3, or the error (e.g. COORDINATOR_LOAD_IN_PROGRESS).
async fn fetch_offsets(c: &mut Client) -> Result<Vec<i64>, i16> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid())
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partition_indexes(vec![0, 1, 2, 3]),
        ]));
    let resp = c.call(&req, 5).await;
    if resp.error_code != 0 {
        return Err(resp.error_code);
    }
    Ok(resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect())
}

async fn describe(c: &mut Client) -> (String, usize) {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid()]);
    let resp = c.call(&req, 4).await;
    let g = &resp.groups[0];
    (g.group_state.to_string(), g.members.len())
}

#[actix_rt::test]
async fn coordinator_crash_mid_rebalance_reloads_group_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path().to_path_buf(),
        &[
            ("offsets.topic.num.partitions", "4"),
            ("group.initial.rebalance.delay.ms", "0"),
            ("group.min.session.timeout.ms", "1000"),
        ],
    );
    let broker = troupe_actors::start(config).await.unwrap();
    let addr = broker.addr;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.create_topic("t", 4).await, 0);
    assert_eq!(
        find_coordinator(&mut c).await,
        0,
        "creates __consumer_offsets"
    );

    // Generation 1: member a alone, with committed offsets.
    let a = join_until_admitted(addr, String::new()).await;
    assert_eq!((a.generation_id, a.members.len()), (1, 1));
    let a_id = a.member_id.to_string();
    let synced = sync(&mut c, &a, &[(&a_id, b"all")]).await;
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"all"[..])
    );
    assert_eq!(
        commit(&mut c, 1, &a.member_id, &[(0, 42), (1, 7)]).await,
        [0, 0]
    );

    // Member b joins: a rebalance starts and waits for a to rejoin.
    let b_join = actix_rt::spawn(async move {
        let mut c = Client::connect(addr).await;
        let first = join(&mut c, "").await;
        assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
        let id = first.member_id.to_string();
        (id.clone(), join(&mut c, &id).await)
    });
    eventually(5, "the rebalance to start", || async {
        let mut c = Client::connect(addr).await;
        (describe(&mut c).await.0 == "PreparingRebalance").then_some(())
    })
    .await;

    // Crash the coordinator mid-rebalance.
    let partition = troupe::group::partition_for(GROUP, 4);
    let crashed = broker
        .context
        .groups
        .manager
        .send(CrashCoordinator { partition })
        .await
        .unwrap();
    assert!(crashed);
    let (b_id, b_answer) = b_join.await.unwrap();
    assert_eq!(
        b_answer.error_code, 16,
        "b's pending JoinGroup gets NOT_COORDINATOR"
    );

    // The restarted coordinator serves the committed offsets from its partition.
    let offsets = eventually(10, "the coordinator to reload", || async {
        let mut c = Client::connect(addr).await;
        fetch_offsets(&mut c).await.ok()
    })
    .await;
    assert_eq!(offsets, [42, 7, -1, -1]);
    assert_eq!(
        describe(&mut c).await,
        ("Stable".to_string(), 1),
        "generation 1 as stored"
    );

    // The group forms again. b was never stored: its old id is unknown, it gets a new
    // one (which holds its slot), then a rejoins and waits for b, and both make
    // generation 2.
    let mut cb = Client::connect(addr).await;
    assert_eq!(
        join(&mut cb, &b_id).await.error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let pending = join(&mut cb, "").await;
    assert_eq!(pending.error_code, 79);
    let a_again = actix_rt::spawn(join_until_admitted(addr, a_id.clone()));
    let b2 = join(&mut cb, &pending.member_id).await;
    let a2 = a_again.await.unwrap();
    assert_eq!(b2.error_code, 0);
    assert_eq!((a2.generation_id, b2.generation_id), (2, 2));
    let (leader, follower) = if a2.members.is_empty() {
        (&b2, &a2)
    } else {
        (&a2, &b2)
    };
    assert_eq!(leader.members.len(), 2, "the leader gets both members");
    let (lid, fid) = (leader.member_id.to_string(), follower.member_id.to_string());
    let follower_sync = {
        let f = follower.clone();
        actix_rt::spawn(async move {
            let mut c = Client::connect(addr).await;
            sync(&mut c, &f, &[]).await
        })
    };
    let l = sync(&mut c, leader, &[(&lid, b"p0p1"), (&fid, b"p2p3")]).await;
    assert_eq!((l.error_code, &l.assignment[..]), (0, &b"p0p1"[..]));
    let f = follower_sync.await.unwrap();
    assert_eq!((f.error_code, &f.assignment[..]), (0, &b"p2p3"[..]));
    assert_eq!(describe(&mut c).await, ("Stable".to_string(), 2));

    // Commits continue on the new generation; the old offsets were there all along.
    assert_eq!(commit(&mut c, 2, &leader.member_id, &[(0, 50)]).await, [0]);
    assert_eq!(fetch_offsets(&mut c).await, Ok(vec![50, 7, -1, -1]));
    broker.shutdown().await;
}

/// Every record of `__consumer_offsets-0`, fetched batch by batch: (key, has value).
async fn offsets_topic_records(c: &mut Client) -> Vec<(Vec<u8>, bool)> {
    use bytes::Buf;
    let (mut offset, mut out) = (0, Vec::new());
    loop {
        let (code, _, mut records) = c.fetch("__consumer_offsets", 0, offset, 0).await;
        assert_eq!(code, 0);
        if records.is_empty() {
            return out;
        }
        while records.remaining() >= 61 {
            let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
            let batch: Bytes = records.split_to(len);
            let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap()) as i64;
            offset = i64::from_be_bytes(batch[..8].try_into().unwrap()) + last_delta + 1;
            for r in troupe::storage::decode_records(&batch).unwrap() {
                out.push((r.key.unwrap_or_default(), r.value.is_some()));
            }
        }
    }
}

#[actix_rt::test]
async fn offsets_topic_is_compacted_and_reloads_from_the_compacted_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path().to_path_buf(),
        &[
            ("offsets.topic.num.partitions", "1"),
            // About one commit per segment: every commit but the last is in a closed
            // segment the cleaner may compact.
            ("offsets.topic.segment.bytes", "200"),
            ("log.cleaner.backoff.ms", "50"),
        ],
    );
    let broker = troupe_actors::start(config).await.unwrap();
    let addr = broker.addr;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.create_topic("t", 4).await, 0);
    assert_eq!(find_coordinator(&mut c).await, 0);
    let nobody = s("");
    for offset in 1..=60 {
        assert_eq!(commit(&mut c, -1, &nobody, &[(0, offset)]).await, [0]);
    }
    let (_, high_watermark, _) = c.fetch("__consumer_offsets", 0, 0, 0).await;
    assert_eq!(high_watermark, 60, "one record per commit");

    // The cleaner keeps the latest commit per key.
    let left = eventually(
        20,
        "the cleaner to compact __consumer_offsets",
        || async move {
            let mut c = Client::connect(addr).await;
            let records = offsets_topic_records(&mut c).await;
            (records.len() <= 2).then_some(records)
        },
    )
    .await;
    assert!(left.iter().all(|(_, has_value)| *has_value));

    // A coordinator restart reloads the compacted log: the latest offset is there.
    let crashed = broker
        .context
        .groups
        .manager
        .send(CrashCoordinator { partition: 0 })
        .await
        .unwrap();
    assert!(crashed);
    let offsets = eventually(10, "the coordinator to reload", || async {
        let mut c = Client::connect(addr).await;
        fetch_offsets(&mut c).await.ok()
    })
    .await;
    assert_eq!(offsets, [60, -1, -1, -1]);
    broker.shutdown().await;
}

/// (group, error, [(partition, committed offset)]) of an OffsetFetch v8+ answer.
type FetchedGroup = (String, i16, Vec<(i32, i64)>);

#[actix_rt::test]
async fn batched_find_coordinator_and_multi_group_offset_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path().to_path_buf(),
        &[("offsets.topic.num.partitions", "3")],
    );
    let broker = troupe_actors::start(config).await.unwrap();
    let mut c = Client::connect(broker.addr).await;
    assert_eq!(c.create_topic("t", 4).await, 0);

    // v4+: several keys in one request, one answer each.
    let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]);
    let resp = c.call(&req, 4).await;
    let found: Vec<(String, i16, i32)> = resp
        .coordinators
        .iter()
        .map(|k| (k.key.to_string(), k.error_code, k.port))
        .collect();
    let port = broker.addr.port() as i32;
    assert_eq!(found, [("g1".into(), 0, port), ("g2".into(), 0, port)]);
    // Transaction coordinators are not served (yet).
    let txn = FindCoordinatorRequest::default()
        .with_key(s("txn"))
        .with_key_type(1);
    assert_eq!(c.call(&txn, 3).await.error_code, 42, "INVALID_REQUEST");

    for (group, offset) in [("g1", 11), ("g2", 22)] {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(offset),
                    ]),
            ]);
        let resp = c.call(&req, 2).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    }
    // v8+: several groups in one request; a null topic list means "all committed".
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g1")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0, 1]),
            ])),
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g2")))
            .with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("unknown")))
            .with_topics(None),
    ]);
    let resp = c.call(&req, 8).await;
    let got: Vec<FetchedGroup> = resp
        .groups
        .iter()
        .map(|g| {
            let parts = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.committed_offset))
                })
                .collect();
            (g.group_id.to_string(), g.error_code, parts)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("g1".into(), 0, vec![(0, -1), (1, 11)]),
            ("g2".into(), 0, vec![(1, 22)]),
            ("unknown".into(), 0, vec![]),
        ]
    );
    broker.shutdown().await;
}

/// Hostile or mistaken group requests over the wire get Kafka's codes, and the
/// connection and the coordinator keep serving.
#[actix_rt::test]
async fn bad_group_requests_get_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(
        dir.path().to_path_buf(),
        &[("offsets.topic.num.partitions", "2")],
    );
    let broker = troupe_actors::start(config).await.unwrap();
    let mut c = Client::connect(broker.addr).await;
    let addr = broker.addr;
    eventually(10, "coordinator", || async move {
        let mut c = Client::connect(addr).await;
        (find_coordinator(&mut c).await == 0).then_some(())
    })
    .await;
    let protocol = join_group_request::JoinGroupRequestProtocol::default()
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"garbage that is not consumer metadata"));
    let base = JoinGroupRequest::default()
        .with_group_id(gid())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![protocol]);
    // Empty group id: INVALID_GROUP_ID.
    let r = c.call(&base.clone().with_group_id(GroupId(s(""))), 5).await;
    assert_eq!(r.error_code, 24);
    // Session timeout outside group.min/max.session.timeout.ms: INVALID_SESSION_TIMEOUT.
    let r = c.call(&base.clone().with_session_timeout_ms(1), 5).await;
    assert_eq!(r.error_code, 26);
    let r = c
        .call(&base.clone().with_session_timeout_ms(i32::MAX), 5)
        .await;
    assert_eq!(r.error_code, 26);
    // No protocols at all: INCONSISTENT_GROUP_PROTOCOL.
    let r = c.call(&base.clone().with_protocols(vec![]), 5).await;
    assert_eq!(r.error_code, 23);
    // Heartbeat and SyncGroup from a member the group never admitted: UNKNOWN_MEMBER_ID.
    let hb = HeartbeatRequest::default()
        .with_group_id(gid())
        .with_generation_id(7)
        .with_member_id(s("nobody"));
    assert_eq!(c.call(&hb, 4).await.error_code, 25);
    let sync = SyncGroupRequest::default()
        .with_group_id(gid())
        .with_generation_id(7)
        .with_member_id(s("nobody"));
    assert_eq!(c.call(&sync, 5).await.error_code, 25);
    // A commit claiming a generation of a group with no members: ILLEGAL_GENERATION or
    // UNKNOWN_MEMBER_ID, never stored.
    let commit = OffsetCommitRequest::default()
        .with_group_id(gid())
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("nobody"))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    let code = c.call(&commit, 8).await.topics[0].partitions[0].error_code;
    assert!(matches!(code, 22 | 25), "commit answered {code}");
    assert_eq!(
        fetch_offsets(&mut c)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|o| **o >= 0)
            .count(),
        0
    );
    // After all that, a proper member is admitted on the same connection.
    let r = join_until_admitted(broker.addr, String::new()).await;
    assert_eq!(r.error_code, 0);
    broker.shutdown().await;
}
