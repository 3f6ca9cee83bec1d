//! Topic decisions and replica placement, as tables.

use super::codes::*;
use super::placement::{place, Candidate};
use super::test_support::*;
use super::topics::*;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

fn brokers(spec: &[(i32, Option<&str>)]) -> Vec<Candidate> {
    spec.iter()
        .map(|(n, r)| Candidate {
            node_id: *n,
            rack: r.map(str::to_string),
        })
        .collect()
}

#[test]
fn placement_spreads_leaders_and_replicas() {
    let b = brokers(&[(1, None), (2, None), (3, None)]);
    for start in 0..9 {
        let a = place(&b, 0..6, 3, start).unwrap();
        let mut leaders = BTreeMap::<i32, usize>::new();
        for replicas in a.values() {
            assert_eq!(
                replicas.iter().collect::<BTreeSet<_>>().len(),
                3,
                "distinct: {replicas:?}"
            );
            *leaders.entry(replicas[0]).or_default() += 1;
        }
        assert_eq!(
            leaders.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "start {start}: {a:?}"
        );
    }
}

#[test]
fn placement_is_rack_aware() {
    let b = brokers(&[
        (1, Some("a")),
        (2, Some("a")),
        (3, Some("b")),
        (4, Some("b")),
        (5, Some("c")),
    ]);
    let rack = |n: i32| b.iter().find(|c| c.node_id == n).unwrap().rack.clone();
    for start in 0..10 {
        for (p, replicas) in place(&b, 0..10, 3, start).unwrap() {
            let racks: BTreeSet<_> = replicas.iter().map(|n| rack(*n)).collect();
            assert_eq!(racks.len(), 3, "start {start} partition {p}: {replicas:?}");
        }
        // RF 2: two racks each.
        for replicas in place(&b, 0..10, 2, start).unwrap().values() {
            assert_ne!(rack(replicas[0]), rack(replicas[1]));
        }
    }
}

#[test]
fn create_topic_checks_and_places_on_live_brokers() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    fence(&mut img, 3);
    let t = |n: i32, rf: i16| NewTopic {
        name: "t".into(),
        num_partitions: n,
        replication_factor: rf,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    let id = Uuid::from_bytes([1; 16]);
    let code = |r: Result<_, (i16, String)>| r.map(|_| ()).map_err(|e| e.0);
    assert_eq!(
        code(create_topic(&img, &c, &t(3, 3), id, 0)),
        Err(INVALID_REPLICATION_FACTOR),
        "one broker is fenced"
    );
    assert_eq!(
        code(create_topic(&img, &c, &t(0, 1), id, 0)),
        Err(INVALID_PARTITIONS)
    );
    assert_eq!(
        code(create_topic(&img, &c, &t(3, 0), id, 0)),
        Err(INVALID_REPLICATION_FACTOR)
    );
    let mut bad = t(1, 1);
    bad.name = "bad name".into();
    assert_eq!(
        code(create_topic(&img, &c, &bad, id, 0)),
        Err(INVALID_TOPIC_EXCEPTION)
    );
    let mut bad_cfg = t(1, 1);
    bad_cfg.configs.insert("retention.ms".into(), "soon".into());
    assert_eq!(
        code(create_topic(&img, &c, &bad_cfg, id, 0)),
        Err(INVALID_CONFIG)
    );
    let (records, created) = create_topic(&img, &c, &t(4, 2), id, 0).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (4, 2));
    commit(&mut img, &records);
    for p in img.topics["t"].partitions.values() {
        assert!(!p.replicas.contains(&3), "{p:?}");
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
    }
    assert_eq!(
        code(create_topic(&img, &c, &t(1, 1), id, 0)),
        Err(TOPIC_ALREADY_EXISTS)
    );
    // Explicit assignment: a fenced replica is placed but not in sync.
    let mut explicit = t(-1, -1);
    explicit.name = "e".into();
    explicit.assignments = BTreeMap::from([(0, vec![3, 1])]);
    let (records, _) = create_topic(&img, &c, &explicit, Uuid::from_bytes([2; 16]), 0).unwrap();
    commit(&mut img, &records);
    let p = &img.topics["e"].partitions[&0];
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    explicit.name = "f".into();
    explicit.assignments = BTreeMap::from([(0, vec![1, 1])]);
    assert_eq!(
        code(create_topic(&img, &c, &explicit, id, 0)),
        Err(INVALID_REPLICA_ASSIGNMENT)
    );
    explicit.assignments = BTreeMap::from([(0, vec![1, 7])]);
    assert_eq!(
        code(create_topic(&img, &c, &explicit, id, 0)),
        Err(INVALID_REPLICA_ASSIGNMENT)
    );
}

#[test]
fn partitions_configs_deletes_and_producer_ids() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None)]);
    with_topic(&mut img, "t", &[(&[1, 2], &[1, 2], 1)]);
    assert_eq!(
        create_partitions(&img, &cfg(), "t", 1, 0).unwrap_err().0,
        INVALID_PARTITIONS
    );
    assert_eq!(
        create_partitions(&img, &cfg(), "x", 3, 0).unwrap_err().0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    let records = create_partitions(&img, &cfg(), "t", 3, 0).unwrap();
    commit(&mut img, &records);
    assert_eq!(img.topics["t"].partitions.len(), 3);
    assert!(img.topics["t"]
        .partitions
        .values()
        .all(|p| p.replicas.len() == 2));

    let ops = vec![(
        "cleanup.policy".to_string(),
        ConfigOp::Set("compact".into()),
    )];
    let records = alter_topic_configs(&img, &c, "t", &ops, false).unwrap();
    commit(&mut img, &records);
    assert_eq!(img.topics["t"].configs["cleanup.policy"], "compact");
    let ops = vec![(
        "cleanup.policy".to_string(),
        ConfigOp::Append("delete".into()),
    )];
    let records = alter_topic_configs(&img, &c, "t", &ops, false).unwrap();
    commit(&mut img, &records);
    assert_eq!(img.topics["t"].configs["cleanup.policy"], "compact,delete");
    let bad = vec![("segment.bytes".to_string(), ConfigOp::Set("-5".into()))];
    assert_eq!(
        alter_topic_configs(&img, &c, "t", &bad, false)
            .unwrap_err()
            .0,
        INVALID_CONFIG
    );
    let records = alter_topic_configs(&img, &c, "t", &[], true).unwrap();
    commit(&mut img, &records);
    assert!(
        img.topics["t"].configs.is_empty(),
        "replace_all with nothing resets"
    );

    let (records, (first, size)) = allocate_producer_ids(&img, 1);
    commit(&mut img, &records);
    let (_, (second, _)) = allocate_producer_ids(&img, 2);
    assert_eq!((first, second), (0, size));

    let mut no_delete = c.clone();
    no_delete.delete_topic_enable = false;
    let by_name = TopicRef::Name("t".into());
    assert_eq!(
        delete_topic(&img, &no_delete, &by_name).unwrap_err().0,
        TOPIC_DELETION_DISABLED
    );
    assert_eq!(
        delete_topic(&img, &c, &TopicRef::Id(Uuid::nil()))
            .unwrap_err()
            .0,
        UNKNOWN_TOPIC_ID
    );
    let (records, (name, _)) = delete_topic(&img, &c, &by_name).unwrap();
    commit(&mut img, &records);
    assert_eq!(name, "t");
    assert!(img.topics.is_empty());
}

/// KIP-578's limits: a request asking for more than max.partitions is refused before
/// placement (INVALID_PARTITIONS, even for 2^31-1), and what would take the cluster
/// or one broker past its limit is a POLICY_VIOLATION, for CreateTopics and
/// CreatePartitions alike; the descriptor bound tightens the per-broker one.
#[test]
fn partition_limits() {
    let mut c = cfg();
    c.max_partitions = 10;
    c.max_broker_partitions = 6;
    let mut img = cluster(&[(1, None), (2, None)]);
    let topic = |name: &str, n: i32, rf: i16| NewTopic {
        name: name.into(),
        num_partitions: n,
        replication_factor: rf,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    let id = Uuid::from_bytes([1; 16]);
    let refused = |r: Result<_, (i16, String)>| r.map(|_| ()).unwrap_err();
    let (code, msg) = refused(create_topic(&img, &c, &topic("a", i32::MAX, 1), id, 0));
    assert_eq!(code, INVALID_PARTITIONS, "{msg}");
    assert!(msg.contains("max.partitions"), "{msg}");
    let (code, msg) = refused(create_topic(&img, &c, &topic("a", 7, 2), id, 0));
    assert_eq!(code, POLICY_VIOLATION, "{msg}");
    assert!(msg.contains("max.broker.partitions"), "{msg}");
    // 6 on each broker with RF 2: at the limit, allowed.
    let (records, _) = create_topic(&img, &c, &topic("a", 6, 2), id, 0).unwrap();
    commit(&mut img, &records);
    let (code, msg) = refused(create_topic(&img, &c, &topic("b", 1, 1), id, 0));
    assert_eq!(code, POLICY_VIOLATION, "{msg}");
    assert_eq!(
        create_partitions(&img, &c, "a", 7, 0).unwrap_err().0,
        POLICY_VIOLATION
    );
    assert_eq!(
        create_partitions(&img, &c, "a", i32::MAX, 0).unwrap_err().0,
        INVALID_PARTITIONS
    );
    // The cluster-wide limit: RF 1 leaves room on the brokers, not in the cluster.
    c.max_broker_partitions = 100;
    let (records, _) = create_topic(&img, &c, &topic("b", 4, 1), id, 0).unwrap();
    commit(&mut img, &records);
    let (code, msg) = refused(create_topic(&img, &c, &topic("c", 1, 1), id, 0));
    assert_eq!(code, POLICY_VIOLATION, "{msg}");
    assert!(msg.contains("max.partitions"), "{msg}");
    // The open-files bound, when lower, is the one that refuses and says so.
    c.max_partitions = 100;
    c.descriptor_partitions = Some(8);
    let (code, msg) = refused(create_topic(&img, &c, &topic("c", 1, 2), id, 0));
    assert_eq!(code, POLICY_VIOLATION, "{msg}");
    assert!(msg.contains("open-files"), "{msg}");
}
