//! Elections and AlterPartition, as tables.

use super::codes::*;
use super::partitions::*;
use super::test_support::*;
use crate::metadata::{MetadataImage, PartitionImage};

fn part(img: &MetadataImage, topic: &str, p: i32) -> PartitionImage {
    img.topics[topic].partitions[&p].clone()
}

/// (name, replicas, isr, leader, broker fenced, unclean allowed) →
/// (leader, isr, leader epoch, partition epoch) afterwards.
#[test]
fn fencing_a_broker_moves_leadership_within_the_isr() {
    type Row = (
        &'static str,
        &'static [i32],
        &'static [i32],
        i32,
        i32,
        bool,
        (i32, &'static [i32], i32, i32),
    );
    let rows: &[Row] = &[
        (
            "leader fenced, follower in sync takes over",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            1,
            false,
            (2, &[2, 3], 1, 1),
        ),
        (
            "follower fenced leaves the ISR, leader stays",
            &[1, 2, 3],
            &[1, 2, 3],
            1,
            3,
            false,
            (1, &[1, 2], 0, 1),
        ),
        (
            "replica order decides among the ISR",
            &[3, 1, 2],
            &[1, 2, 3],
            3,
            3,
            false,
            (1, &[1, 2], 1, 1),
        ),
        (
            "out-of-sync replica never leads cleanly",
            &[1, 2, 3],
            &[1],
            1,
            1,
            false,
            (NO_LEADER, &[1], 1, 1),
        ),
        (
            "unclean allowed: an out-of-ISR replica leads alone",
            &[1, 2, 3],
            &[1],
            1,
            1,
            true,
            (2, &[2], 1, 1),
        ),
        (
            "fenced broker not a replica: nothing changes",
            &[1, 2],
            &[1, 2],
            1,
            3,
            false,
            (1, &[1, 2], 0, 0),
        ),
    ];
    let mut failures = Vec::new();
    for (name, replicas, isr, leader, gone, unclean, want) in rows {
        let mut img = cluster(&[(1, None), (2, None), (3, None)]);
        with_topic(&mut img, "t", &[(replicas, isr, *leader)]);
        let mut c = cfg();
        c.topic_defaults.unclean_leader_election_enable = *unclean;
        let records = on_broker_gone(&img, &c, *gone);
        commit(&mut img, &records);
        let p = part(&img, "t", 0);
        let got = (
            p.leader,
            p.isr.as_slice(),
            p.leader_epoch,
            p.partition_epoch,
        );
        if got != (want.0, want.1, want.2, want.3) {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_last_in_sync_replica_comes_back_as_leader() {
    let mut img = cluster(&[(1, None), (2, None)]);
    with_topic(&mut img, "t", &[(&[1, 2], &[1], 1)]);
    let records = on_broker_gone(&img, &cfg(), 1);
    commit(&mut img, &records);
    fence(&mut img, 1);
    let p = part(&img, "t", 0);
    assert_eq!(
        (p.leader, p.isr.clone()),
        (NO_LEADER, vec![1]),
        "offline, ISR kept"
    );
    // Broker 2 (out of sync) coming back changes nothing without unclean election.
    assert!(on_broker_back(&img, &cfg(), 2).is_empty());
    // Broker 1 unfenced: it leads again, with a new epoch.
    let epoch = img.brokers[&1].epoch;
    commit(
        &mut img,
        &[crate::metadata::MetadataRecord::UnfenceBroker {
            node_id: 1,
            broker_epoch: epoch,
        }],
    );
    let records = on_broker_back(&img, &cfg(), 1);
    commit(&mut img, &records);
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (1, vec![1], 2));
}

#[test]
fn alter_partition_checks_epochs_and_membership() {
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    let id = with_topic(&mut img, "t", &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let epoch1 = img.brokers[&1].epoch;
    let req = |isr: &[i32]| AlterPartition {
        broker_id: 1,
        broker_epoch: epoch1,
        topic_id: id,
        partition: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: isr.to_vec(),
    };
    // (name, request, expected code or new (isr, partition epoch))
    let stale_leader = AlterPartition {
        leader_epoch: -1,
        ..req(&[1, 2])
    };
    let newer_leader = AlterPartition {
        leader_epoch: 1,
        ..req(&[1, 2])
    };
    let stale_version = AlterPartition {
        partition_epoch: 5,
        ..req(&[1, 2])
    };
    let not_leader = AlterPartition {
        broker_id: 2,
        broker_epoch: img.brokers[&2].epoch,
        ..req(&[1, 2])
    };
    let stale_broker = AlterPartition {
        broker_epoch: epoch1 + 100,
        ..req(&[1, 2])
    };
    type Want = Result<(Vec<i32>, i32), i16>;
    let cases: Vec<(&str, AlterPartition, Want)> = vec![
        ("shrink", req(&[1, 2]), Ok((vec![1, 2], 1))),
        ("unchanged", req(&[1, 2, 3]), Ok((vec![1, 2, 3], 0))),
        ("stale leader epoch", stale_leader, Err(FENCED_LEADER_EPOCH)),
        (
            "leader epoch from the future",
            newer_leader,
            Err(FENCED_LEADER_EPOCH),
        ),
        (
            "stale partition epoch",
            stale_version,
            Err(INVALID_UPDATE_VERSION),
        ),
        ("not the leader", not_leader, Err(NOT_LEADER_OR_FOLLOWER)),
        ("stale broker epoch", stale_broker, Err(STALE_BROKER_EPOCH)),
        (
            "leader missing from the ISR",
            req(&[2, 3]),
            Err(INVALID_REQUEST),
        ),
        ("not a replica", req(&[1, 4]), Err(INVALID_REQUEST)),
        ("duplicates", req(&[1, 1]), Err(INVALID_REQUEST)),
    ];
    for (name, r, want) in cases {
        let got = alter_partition(&img, &r).map(|(_, p)| (p.isr, p.partition_epoch));
        assert_eq!(got, want, "{name}");
    }
    // Shrink, then a fenced replica may not rejoin; a live one may.
    let (records, _) = alter_partition(&img, &req(&[1, 2])).unwrap();
    commit(&mut img, &records);
    fence(&mut img, 3);
    let expand = AlterPartition {
        partition_epoch: 1,
        ..req(&[1, 2, 3])
    };
    assert_eq!(
        alter_partition(&img, &expand).unwrap_err(),
        INELIGIBLE_REPLICA
    );
}

#[test]
fn elect_leaders_preferred_and_unclean() {
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(
        &mut img,
        "t",
        &[
            (&[1, 2, 3], &[1, 2, 3], 2), // preferred 1 in sync, not leading
            (&[1, 2, 3], &[1, 2, 3], 1), // already preferred
            (&[3, 1, 2], &[1, 2], 1),    // preferred 3 out of sync
            (&[2, 3], &[2], NO_LEADER),  // offline, 2 fenced below
        ],
    );
    fence(&mut img, 2);
    let code = |r: Result<Vec<_>, (i16, String)>| r.map(|v| v.len()).map_err(|e| e.0);
    assert_eq!(
        code(elect_leader(&img, "t", 0, ElectionKind::Preferred)),
        Ok(1)
    );
    assert_eq!(
        code(elect_leader(&img, "t", 1, ElectionKind::Preferred)),
        Err(ELECTION_NOT_NEEDED)
    );
    assert_eq!(
        code(elect_leader(&img, "t", 2, ElectionKind::Preferred)),
        Err(PREFERRED_LEADER_NOT_AVAILABLE)
    );
    assert_eq!(
        code(elect_leader(&img, "t", 9, ElectionKind::Preferred)),
        Err(UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        code(elect_leader(&img, "t", 1, ElectionKind::Unclean)),
        Err(ELECTION_NOT_NEEDED)
    );
    // Unclean: 3 is live but out of sync: it leads alone.
    let records = elect_leader(&img, "t", 3, ElectionKind::Unclean).unwrap();
    commit(&mut img, &records);
    let p = part(&img, "t", 3);
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (3, vec![3], 1));
}

#[test]
fn preferred_rebalance_only_past_the_imbalance_threshold() {
    let mut img = cluster(&[(1, None), (2, None)]);
    // Broker 1 prefers 4 partitions and leads 3 of them (25% off); broker 2 prefers 4
    // and leads all.
    let parts: Vec<(&[i32], &[i32], i32)> = vec![
        (&[1, 2], &[1, 2], 2),
        (&[1, 2], &[1, 2], 1),
        (&[1, 2], &[1, 2], 1),
        (&[1, 2], &[1, 2], 1),
        (&[2, 1], &[1, 2], 2),
        (&[2, 1], &[1, 2], 2),
        (&[2, 1], &[1, 2], 2),
        (&[2, 1], &[1, 2], 2),
    ];
    with_topic(&mut img, "t", &parts);
    assert_eq!(rebalance_preferred(&img, 30).len(), 0, "25% is under 30%");
    let records = rebalance_preferred(&img, 10);
    assert_eq!(records.len(), 1);
    commit(&mut img, &records);
    assert_eq!(part(&img, "t", 0).leader, 1);
}
