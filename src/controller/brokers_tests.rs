//! Registration, heartbeats, fencing and controlled shutdown, step by step.

use super::brokers::*;
use super::codes::*;
use super::partitions::NO_LEADER;
use super::test_support::*;
use crate::metadata::MetadataImage;

fn reg(node: i32, incarnation: u8) -> Registration {
    Registration {
        node_id: node,
        incarnation_id: [incarnation; 16],
        host: "127.0.0.1".into(),
        port: 9000 + node as u16,
        rack: None,
        previous_broker_epoch: None,
    }
}

fn hb(img: &MetadataImage, node: i32, offset: i64) -> Heartbeat {
    Heartbeat {
        node_id: node,
        broker_epoch: img.brokers[&node].epoch,
        current_metadata_offset: offset,
        want_fence: false,
        want_shutdown: false,
    }
}

#[test]
fn a_registered_broker_is_unfenced_once_caught_up() {
    let c = cfg();
    let mut img = MetadataImage::new();
    let mut live = BrokerLiveness::default();
    let records = register(&img, &mut live, &c, &reg(1, 1), 0).unwrap();
    commit(&mut img, &records);
    assert!(img.brokers[&1].fenced, "starts fenced");
    assert_eq!(img.live_brokers().count(), 0);
    let epoch = img.brokers[&1].epoch;
    // Behind its own registration: stays fenced.
    let (records, a) = heartbeat(&img, &mut live, &c, &hb(&img, 1, epoch - 1), 10);
    assert!(records.is_empty() && a.is_fenced && !a.is_caught_up);
    // Caught up: unfenced.
    let (records, a) = heartbeat(&img, &mut live, &c, &hb(&img, 1, epoch), 20);
    assert!(!a.is_fenced && a.is_caught_up && a.error == 0);
    commit(&mut img, &records);
    assert!(!img.brokers[&1].fenced);
    // A heartbeat with a stale broker epoch is refused.
    let mut stale = hb(&img, 1, epoch);
    stale.broker_epoch -= 1;
    let (records, a) = heartbeat(&img, &mut live, &c, &stale, 30);
    assert!(records.is_empty());
    assert_eq!(a.error, STALE_BROKER_EPOCH);
}

#[test]
fn duplicate_node_ids_are_refused_while_the_first_heartbeats() {
    let c = cfg();
    let mut img = cluster(&[(1, None)]);
    let mut live = BrokerLiveness::new_active(&img, 0);
    // Same incarnation: a retry, nothing to commit.
    assert_eq!(register(&img, &mut live, &c, &reg(1, 1), 100), Ok(vec![]));
    // Another process with node id 1 while the first heartbeats.
    let err = register(&img, &mut live, &c, &reg(1, 2), 1000).unwrap_err();
    assert_eq!(err.0, DUPLICATE_BROKER_REGISTRATION);
    // After a whole session of silence it is a restart: accepted, fenced.
    let records = register(
        &img,
        &mut live,
        &c,
        &reg(1, 2),
        1000 + c.broker_session_timeout_ms + 1,
    )
    .unwrap();
    commit(&mut img, &records);
    assert!(img.brokers[&1].fenced);
    assert_eq!(img.brokers[&1].incarnation_id, [2; 16]);
}

#[test]
fn a_restart_naming_the_registered_epoch_replaces_it_at_once() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(
        &mut img,
        "t",
        &[(&[1, 2, 3], &[1, 2, 3], 1), (&[1, 2], &[1], 1)],
    );
    let live = BrokerLiveness::new_active(&img, 0);
    let registered = img.brokers[&1].epoch;
    // Node 1 still heartbeats (its session runs from 0) when a new process with node
    // id 1 registers at 1000. (previous broker epoch, accepted at once)
    let table = [
        (None, false),                  // nothing recorded: Kafka's rule
        (Some(registered - 1), false),  // an older registration: not proof
        (Some(registered + 10), false), // one the controller never made
        (Some(-1), false),
        (Some(registered), true), // the registered incarnation's own epoch
    ];
    for (previous, accepted) in table {
        let mut r = reg(1, 7);
        r.previous_broker_epoch = previous;
        let got = register(&img, &mut live.clone(), &c, &r, 1000);
        match got {
            Ok(records) => assert!(accepted && !records.is_empty(), "{previous:?}"),
            Err((code, _)) => {
                assert!(!accepted, "{previous:?}");
                assert_eq!(code, DUPLICATE_BROKER_REGISTRATION, "{previous:?}");
            }
        }
    }
    let mut live = live;
    let mut r = reg(1, 7);
    r.previous_broker_epoch = Some(registered);
    let records = register(&img, &mut live, &c, &r, 1000).unwrap();
    commit(&mut img, &records);
    // Replaced in the same commit: the new incarnation registered (fenced), the old
    // one's leaderships moved and it left the ISRs, except where it is the last member.
    let b = &img.brokers[&1];
    assert!(b.fenced && b.incarnation_id == [7; 16] && b.epoch > registered);
    let t = &img.topics["t"];
    let (p0, p1) = (&t.partitions[&0], &t.partitions[&1]);
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.leader_epoch),
        (2, vec![2, 3], 1)
    );
    assert_eq!((p1.leader, p1.isr.clone()), (NO_LEADER, vec![1]));
    // The old process's heartbeat (were it alive) names a stale epoch.
    let mut zombie = hb(&img, 1, img.last_offset);
    zombie.broker_epoch = registered;
    let (records, a) = heartbeat(&img, &mut live, &c, &zombie, 1100);
    assert!(records.is_empty());
    assert_eq!(a.error, STALE_BROKER_EPOCH);
    // The new one catches up: unfenced, and it leads the partition only it has.
    let (records, a) = heartbeat(&img, &mut live, &c, &hb(&img, 1, img.last_offset), 1200);
    assert!(!a.is_fenced);
    commit(&mut img, &records);
    let p1 = &img.topics["t"].partitions[&1];
    assert_eq!(
        (p1.leader, p1.isr.clone(), p1.leader_epoch),
        (1, vec![1], 2)
    );
    // A retry of that registration (same incarnation) changes nothing.
    assert_eq!(register(&img, &mut live, &c, &r, 1300), Ok(vec![]));
}

#[test]
fn a_previous_broker_epoch_changes_nothing_once_the_old_one_is_fenced_or_silent() {
    let c = cfg();
    let s = c.broker_session_timeout_ms;
    // (fence the old one first, registered at, previous epoch names it)
    let table = [
        (true, 1000, false),
        (true, 1000, true),
        (false, s + 1, false),
        (false, s + 1, true),
    ];
    for (fenced, at, names_it) in table {
        let mut img = cluster(&[(1, None), (2, None)]);
        with_topic(&mut img, "t", &[(&[1, 2], &[1, 2], 1)]);
        if fenced {
            fence(&mut img, 1);
        }
        let mut live = BrokerLiveness::new_active(&img, 0);
        let mut r = reg(1, 7);
        r.previous_broker_epoch = names_it.then_some(img.brokers[&1].epoch);
        let records = register(&img, &mut live, &c, &r, at).unwrap();
        commit(&mut img, &records);
        let b = &img.brokers[&1];
        assert!(
            b.fenced && b.incarnation_id == [7; 16],
            "{fenced} {at} {names_it}"
        );
    }
}

/// A registration as brokers encoded it before `previous_broker_epoch` existed (a
/// mirror of the old struct, same variant name) still decodes: the field is `None`.
#[test]
fn registrations_encoded_before_previous_broker_epoch_decode() {
    #[derive(serde::Serialize)]
    struct OldRegistration {
        node_id: i32,
        incarnation_id: [u8; 16],
        host: String,
        port: u16,
        rack: Option<String>,
    }
    #[derive(serde::Serialize)]
    enum OldRequest {
        RegisterBroker(OldRegistration),
    }
    let old = OldRequest::RegisterBroker(OldRegistration {
        node_id: 3,
        incarnation_id: [5; 16],
        host: "127.0.0.1".into(),
        port: 9093,
        rack: Some("r1".into()),
    });
    let bytes = rmp_serde::to_vec_named(&old).unwrap();
    let req: crate::controller::ControllerRequest = rmp_serde::from_slice(&bytes).unwrap();
    let crate::controller::ControllerRequest::RegisterBroker(r) = req else {
        panic!("decoded as another request: {req:?}");
    };
    let mut want = reg(3, 5);
    want.port = 9093;
    want.rack = Some("r1".into());
    assert_eq!(r, want);
    // And the frozen bytes of that encoding.
    assert_eq!(bytes, hex(OLD_REGISTRATION));
}

/// `rmp_serde::to_vec_named` of a RegisterBroker request before the new field.
const OLD_REGISTRATION: &str = concat!(
    "81ae526567697374657242726f6b657285a76e6f64655f696403ae696e6361726e6174696f6e5f69",
    "64dc001005050505050505050505050505050505a4686f7374a93132372e302e302e31a4706f7274",
    "cd2385a47261636ba27231",
);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_silent_broker_is_fenced_after_its_session_and_its_partitions_move() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(
        &mut img,
        "t",
        &[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 3, 1], &[2, 3, 1], 2)],
    );
    let mut live = BrokerLiveness::new_active(&img, 0);
    let t = c.broker_session_timeout_ms;
    // 2 and 3 keep heartbeating; 1 is silent.
    for now in (0..=t + 1).step_by(1000) {
        for n in [2, 3] {
            let (r, _) = heartbeat(&img, &mut live, &c, &hb(&img, n, img.last_offset), now);
            assert!(r.is_empty());
        }
    }
    assert!(
        fence_expired(&img, &live, &c, t).is_empty(),
        "not before a whole session"
    );
    let records = fence_expired(&img, &live, &c, t + 1);
    commit(&mut img, &records);
    assert!(img.brokers[&1].fenced);
    assert!(!img.brokers[&2].fenced && !img.brokers[&3].fenced);
    let p0 = &img.topics["t"].partitions[&0];
    assert_eq!(
        (p0.leader, p0.isr.clone(), p0.leader_epoch),
        (2, vec![2, 3], 1)
    );
    let p1 = &img.topics["t"].partitions[&1];
    assert_eq!(
        (p1.leader, p1.isr.clone(), p1.leader_epoch),
        (2, vec![2, 3], 0)
    );
}

#[test]
fn a_new_controller_times_the_old_controllers_broker_from_its_last_voter_message() {
    // Node 1 led the quorum and went silent at 1000; node 3 won the election and
    // became active at 2500. Node 2's heartbeats went to node 1: nothing is known of it
    // but that it voted, so its session starts at activation. Node 3's own entry, later
    // than the activation (clocks read apart), counts as the activation.
    let c = cfg();
    let s = c.broker_session_timeout_ms;
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(&mut img, "t", &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let heard = std::collections::BTreeMap::from([(1, 1000), (3, 9_999_999)]);
    let live = BrokerLiveness::new_active_with(&img, 2500, &heard);
    // (now, fenced by the tick)
    let table: [(i64, &[i32]); 4] = [
        (1000 + s, &[]),
        (1000 + s + 1, &[1]),
        (2500 + s, &[1]),
        (2500 + s + 1, &[1, 2, 3]),
    ];
    for (now, want) in table {
        let records = fence_expired(&img, &live, &c, now);
        let mut fenced: Vec<i32> = records
            .iter()
            .filter_map(|r| match r {
                crate::metadata::MetadataRecord::FenceBroker { node_id, .. } => Some(*node_id),
                _ => None,
            })
            .collect();
        fenced.sort_unstable();
        assert_eq!(fenced, want, "at {now}");
    }
    // Fenced one session after its last message, node 1's leadership moves then.
    let mut after = img.clone();
    commit(&mut after, &fence_expired(&img, &live, &c, 1000 + s + 1));
    let p = &after.topics["t"].partitions[&0];
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2, 3]));
}

#[test]
fn two_brokers_expiring_together_are_decided_one_after_the_other() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None), (3, None)]);
    with_topic(&mut img, "t", &[(&[1, 2, 3], &[1, 2, 3], 1)]);
    let mut live = BrokerLiveness::new_active(&img, 0);
    live.touch(3, c.broker_session_timeout_ms);
    let records = fence_expired(&img, &live, &c, c.broker_session_timeout_ms + 1);
    commit(&mut img, &records);
    let p = &img.topics["t"].partitions[&0];
    // Not 2, which was fenced in the same tick: 3 leads.
    assert_eq!((p.leader, p.isr.clone()), (3, vec![3]));
}

#[test]
fn controlled_shutdown_moves_leadership_and_lets_the_broker_stop() {
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None)]);
    with_topic(&mut img, "t", &[(&[1, 2], &[1, 2], 1), (&[1], &[1], 1)]);
    let mut live = BrokerLiveness::new_active(&img, 0);
    let mut req = hb(&img, 1, img.last_offset);
    req.want_shutdown = true;
    let (records, a) = heartbeat(&img, &mut live, &c, &req, 10);
    assert!(a.should_shutdown && a.is_fenced);
    commit(&mut img, &records);
    assert!(img.brokers[&1].fenced);
    let t = &img.topics["t"];
    assert_eq!(
        (t.partitions[&0].leader, t.partitions[&0].isr.clone()),
        (2, vec![2])
    );
    // Its only replica is gone: offline, ISR kept, until it returns.
    assert_eq!(
        (t.partitions[&1].leader, t.partitions[&1].isr.clone()),
        (NO_LEADER, vec![1])
    );
    // Restarted (new incarnation), caught up: unfenced and leading its partition again.
    let records = register(&img, &mut live, &c, &reg(1, 9), 20).unwrap();
    commit(&mut img, &records);
    let (records, a) = heartbeat(&img, &mut live, &c, &hb(&img, 1, img.last_offset), 30);
    assert!(!a.is_fenced);
    commit(&mut img, &records);
    let p1 = &img.topics["t"].partitions[&1];
    assert_eq!((p1.leader, p1.leader_epoch), (1, 2));
}

#[test]
fn a_heartbeat_sent_before_a_controlled_shutdown_does_not_unfence_the_stopping_broker() {
    // The broker's ordinary heartbeat was in flight when SIGTERM came; its shutdown
    // heartbeat went on another connection and was decided first.
    let c = cfg();
    let mut img = cluster(&[(1, None), (2, None)]);
    with_topic(&mut img, "t", &[(&[1, 2], &[1, 2], 1), (&[1], &[1], 1)]);
    let mut live = BrokerLiveness::new_active(&img, 0);
    let ordinary = hb(&img, 1, img.last_offset);
    let mut shutdown = ordinary.clone();
    shutdown.want_shutdown = true;
    let (records, a) = heartbeat(&img, &mut live, &c, &shutdown, 10);
    assert!(a.should_shutdown);
    commit(&mut img, &records);
    let moved = img.clone();
    // (heartbeat, at) -> the broker stays fenced, nothing committed
    for (req, at) in [(&ordinary, 20), (&shutdown, 30), (&ordinary, 40)] {
        let (records, a) = heartbeat(&img, &mut live, &c, req, at);
        assert_eq!(
            (records, a.error, a.is_fenced),
            (vec![], 0, true),
            "{req:?}"
        );
    }
    assert_eq!(img, moved);
    // The restarted process registers anew and is unfenced as usual.
    let records = register(&img, &mut live, &c, &reg(1, 9), 50).unwrap();
    commit(&mut img, &records);
    let (records, a) = heartbeat(&img, &mut live, &c, &hb(&img, 1, img.last_offset), 60);
    assert!(!a.is_fenced);
    commit(&mut img, &records);
    assert!(!img.brokers[&1].fenced);
}

#[test]
fn clients_are_told_a_live_broker_as_controller() {
    // Brokers 4 and 5; controllers 1-3 are controller-only (never registered).
    let mut img = cluster(&[(4, None), (5, None)]);
    // (active controller, expected client-facing id)
    let table = [
        (Some(4), 4), // combined node: the active controller itself
        (Some(5), 5),
        (Some(1), 4), // controller-only: the lowest live broker instead
        (None, -1),   // no controller elected right now
    ];
    for (active, want) in table {
        assert_eq!(client_controller_id(&img, active), want, "{active:?}");
    }
    fence(&mut img, 4);
    assert_eq!(
        client_controller_id(&img, Some(4)),
        5,
        "a fenced broker is not named"
    );
    assert_eq!(client_controller_id(&img, Some(1)), 5);
    fence(&mut img, 5);
    assert_eq!(
        client_controller_id(&img, Some(1)),
        -1,
        "no live broker: none"
    );
}
