//! Table-driven tests of the rebalance state machine: each case is a list of steps
//! (clients joining, syncing, heartbeating, leaving, time passing) with the answers
//! expected along the way. Clients are named by aliases; the harness
//! ([`super::test_harness`]) learns their member ids and generations from the answers.

use super::records::{decode_key, OffsetsKey};
use super::test_harness::*;
use super::*;
use bytes::Bytes;

/// One step of a scenario.
#[derive(Clone)]
enum Step {
    /// JoinGroup with the client's current member id (empty at first).
    Join(&'static str),
    /// Forget the member id (a restarted process).
    Forget(&'static str),
    /// The client's last JoinGroup is answered with this error (0 = joined).
    JoinAnswered(&'static str, i16),
    JoinWaiting(&'static str),
    /// Joined generation `.1` with `.2` members listed (the leader) or none.
    Joined(&'static str, i32, usize),
    Sync(&'static str, &'static [(&'static str, &'static str)]),
    Synced(&'static str, &'static str),
    SyncAnswered(&'static str, i16),
    SyncWaiting(&'static str),
    Heartbeat(&'static str, i16),
    Leave(&'static str, i16),
    Advance(i64),
    State(GroupState),
    Members(usize),
}
use codes::*;
use GroupState::*;
use Step::*;

fn run_case(name: &str, config: GroupConfig, steps: &[Step]) {
    let mut h = Harness::new(config);
    let protocols = vec![("range", subscription(&["t"]))];
    for (i, step) in steps.iter().enumerate() {
        let at = format!("case {name:?}, step {i}");
        match step.clone() {
            Join(who) => {
                // Learn the member id from the previous answer, as a client does.
                h.join_answer(who);
                let req = h.join_req(who, None, &protocols);
                h.join_with(who, req);
            }
            Forget(who) => {
                h.clients.insert(who, ClientView::default());
            }
            JoinAnswered(who, code) => {
                let r = h
                    .join_answer(who)
                    .unwrap_or_else(|| panic!("{at}: {who} has no join answer"));
                assert_eq!(r.error, code, "{at}: join error of {who}");
            }
            JoinWaiting(who) => assert!(h.join_answer(who).is_none(), "{at}: {who} was answered"),
            Joined(who, generation, members) => {
                let r = h
                    .join_answer(who)
                    .unwrap_or_else(|| panic!("{at}: {who} has no join answer"));
                assert_eq!(r.error, NONE, "{at}: join error of {who}");
                assert_eq!(r.generation_id, generation, "{at}: generation of {who}");
                assert_eq!(r.members.len(), members, "{at}: members listed to {who}");
                assert_eq!(r.protocol_name.as_deref(), Some("range"), "{at}");
                if members > 0 {
                    assert_eq!(r.leader, r.member_id, "{at}: only the leader gets members");
                }
            }
            Sync(who, a) => h.sync(who, a),
            Synced(who, assignment) => {
                let r = h
                    .sync_answer(who)
                    .unwrap_or_else(|| panic!("{at}: {who} has no sync answer"));
                assert_eq!(r.error, NONE, "{at}: sync error of {who}");
                assert_eq!(
                    r.assignment,
                    Bytes::from(assignment.to_string()),
                    "{at}: assignment of {who}"
                );
            }
            SyncAnswered(who, code) => {
                let r = h
                    .sync_answer(who)
                    .unwrap_or_else(|| panic!("{at}: {who} has no sync answer"));
                assert_eq!(r.error, code, "{at}: sync error of {who}");
            }
            SyncWaiting(who) => assert!(
                h.sync_answer(who).is_none(),
                "{at}: {who} sync was answered"
            ),
            Heartbeat(who, code) => {
                assert_eq!(h.heartbeat(who, None), code, "{at}: heartbeat of {who}")
            }
            Leave(who, code) => {
                let m = LeavingMember {
                    member_id: h.clients[who].member_id.clone(),
                    group_instance_id: None,
                };
                let now = h.now;
                let (resp, outs) = h.s.leave_group(G, &[m], now);
                h.run(outs);
                assert_eq!(resp.members[0].2, code, "{at}: leave of {who}");
            }
            Advance(ms) => h.advance(ms),
            State(s) => assert_eq!(h.state(), s, "{at}: group state"),
            Members(n) => assert_eq!(
                h.s.group(G).map(|g| g.members.len()),
                Some(n),
                "{at}: member count"
            ),
        }
    }
}

/// Two members form generation 1: a MEMBER_ID_REQUIRED round trip each, the initial
/// delay, the leader's assignment handed out when it syncs.
const TWO_MEMBERS: &[Step] = &[
    Join("a"),
    JoinAnswered("a", MEMBER_ID_REQUIRED),
    Join("a"),
    JoinWaiting("a"),
    State(PreparingRebalance),
    Join("b"),
    JoinAnswered("b", MEMBER_ID_REQUIRED),
    Join("b"),
    JoinWaiting("b"),
    Advance(99),
    JoinWaiting("a"),
    // The second member extended the initial delay once.
    Advance(100),
    JoinWaiting("a"),
    Advance(1),
    Joined("a", 1, 2),
    Joined("b", 1, 0),
    State(CompletingRebalance),
    Heartbeat("b", NONE),
    Sync("b", &[]),
    SyncWaiting("b"),
    Sync("a", &[("a", "A"), ("b", "B")]),
    Synced("a", "A"),
    Synced("b", "B"),
    State(Stable),
    Heartbeat("a", NONE),
];

fn with_prefix(rest: &[Step]) -> Vec<Step> {
    TWO_MEMBERS.iter().chain(rest.iter()).cloned().collect()
}

#[test]
fn two_members_form_a_generation() {
    run_case("two members", config(), TWO_MEMBERS);
}

#[test]
fn scenarios() {
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "a third member triggers a rebalance; the others rejoin",
            with_prefix(&[
                Join("c"),
                JoinAnswered("c", MEMBER_ID_REQUIRED),
                Join("c"),
                JoinWaiting("c"),
                State(PreparingRebalance),
                Heartbeat("a", REBALANCE_IN_PROGRESS),
                Heartbeat("b", REBALANCE_IN_PROGRESS),
                Join("a"),
                JoinWaiting("a"),
                Join("b"),
                // Everyone is in: no need to wait for the rebalance timeout.
                Joined("a", 2, 3),
                Joined("b", 2, 0),
                Joined("c", 2, 0),
                Heartbeat("a", NONE),
            ]),
        ),
        (
            "a member leaves; the other rejoins alone",
            with_prefix(&[
                Leave("b", NONE),
                State(PreparingRebalance),
                Heartbeat("a", REBALANCE_IN_PROGRESS),
                Join("a"),
                Joined("a", 2, 1),
                Leave("b", UNKNOWN_MEMBER_ID),
            ]),
        ),
        (
            "a member stops heartbeating: its session expires",
            with_prefix(&[
                Advance(6_000),
                Heartbeat("a", NONE),
                Advance(4_001),
                Members(1),
                State(PreparingRebalance),
                Heartbeat("b", UNKNOWN_MEMBER_ID),
                Join("a"),
                Joined("a", 2, 1),
            ]),
        ),
        (
            "a member that does not rejoin is dropped at the rebalance timeout",
            with_prefix(&[
                Leave("a", NONE),
                Join("b"),
                Joined("b", 2, 1),
                Sync("b", &[("b", "all")]),
                Synced("b", "all"),
                Join("c"),
                Join("c"),
                State(PreparingRebalance),
                Advance(4_999),
                JoinWaiting("c"),
                Advance(1),
                Joined("c", 3, 1),
                Members(1),
            ]),
        ),
        (
            "a follower that never syncs is removed after the rebalance timeout",
            vec![
                Join("a"),
                Join("a"),
                Join("b"),
                Join("b"),
                Advance(200),
                Joined("a", 1, 2),
                Joined("b", 1, 0),
                Sync("a", &[("a", "A"), ("b", "B")]),
                Synced("a", "A"),
                Heartbeat("a", NONE),
                Advance(5_000),
                Members(1),
                State(PreparingRebalance),
                SyncWaiting("b"),
            ],
        ),
        (
            "stale generations and unknown members are refused",
            with_prefix(&[
                Join("c"),
                Join("c"),
                Join("a"),
                Join("b"),
                // b has not read its answer yet: it still thinks generation 1.
                Heartbeat("b", ILLEGAL_GENERATION),
                Sync("c", &[]),
                SyncAnswered("c", ILLEGAL_GENERATION),
                Joined("a", 2, 3),
                Joined("b", 2, 0),
                Joined("c", 2, 0),
                Heartbeat("b", NONE),
                Forget("b"),
                Heartbeat("b", UNKNOWN_MEMBER_ID),
            ]),
        ),
        (
            "a waiting follower sync is cancelled when a new member joins",
            vec![
                Join("a"),
                Join("a"),
                Join("b"),
                Join("b"),
                Advance(200),
                Joined("a", 1, 2),
                Joined("b", 1, 0),
                Sync("b", &[]),
                SyncWaiting("b"),
                Join("c"),
                Join("c"),
                SyncAnswered("b", REBALANCE_IN_PROGRESS),
                State(PreparingRebalance),
            ],
        ),
        (
            "sync during a rebalance is refused; a pending sync is cancelled by a rebalance",
            with_prefix(&[
                Join("c"),
                Join("c"),
                Sync("b", &[]),
                SyncAnswered("b", REBALANCE_IN_PROGRESS),
            ]),
        ),
        (
            "the group empties when everyone leaves",
            with_prefix(&[Leave("a", NONE), Leave("b", NONE), State(Empty)]),
        ),
    ];
    for (name, steps) in cases {
        run_case(name, config(), &steps);
    }
}

#[test]
fn group_max_size_refuses_new_members() {
    let cfg = GroupConfig {
        max_size: 2,
        ..config()
    };
    run_case(
        "max size",
        cfg,
        &with_prefix(&[
            Join("c"),
            JoinAnswered("c", GROUP_MAX_SIZE_REACHED),
            State(Stable),
        ]),
    );
}

#[test]
fn inconsistent_protocols_and_bad_requests() {
    let mut h = Harness::new(config());
    let range = [("range", subscription(&["t"]))];
    let req = h.join_req("a", None, &range);
    h.join_with("a", req);
    assert_eq!(h.join_answer("a").unwrap().error, MEMBER_ID_REQUIRED);
    let req = h.join_req("a", None, &range);
    h.join_with("a", req);
    let mut other = h.join_req("b", None, &[("roundrobin", subscription(&["t"]))]);
    other.require_known_member_id = false;
    h.join_with("b", other);
    assert_eq!(
        h.join_answer("b").unwrap().error,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut bad = h.join_req("c", None, &range);
    bad.session_timeout_ms = 10;
    h.join_with("c", bad);
    assert_eq!(h.join_answer("c").unwrap().error, INVALID_SESSION_TIMEOUT);
    let mut unknown = h.join_req("d", None, &range);
    unknown.member_id = "nobody".into();
    h.join_with("d", unknown);
    assert_eq!(h.join_answer("d").unwrap().error, UNKNOWN_MEMBER_ID);
    let mut empty = h.join_req("e", None, &range);
    empty.group_id = String::new();
    let id = h.reply_id();
    let outs = h.s.join_group(empty, id, h.now);
    assert!(matches!(&outs[..], [Output::Reply(_, Reply::Join(r))] if r.error == INVALID_GROUP_ID));
}

#[test]
fn protocol_selection_by_vote() {
    let mut h = Harness::new(config());
    let m = subscription(&["t"]);
    for (who, prefs) in [
        ("a", ["range", "roundrobin"]),
        ("b", ["roundrobin", "range"]),
        ("c", ["roundrobin", "range"]),
    ] {
        let protocols: Vec<(&str, Bytes)> = prefs.iter().map(|p| (*p, m.clone())).collect();
        let mut req = h.join_req(who, None, &protocols);
        req.require_known_member_id = false;
        h.join_with(who, req);
    }
    h.advance(1_000);
    let r = h.join_answer("a").unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
}

fn static_group() -> Harness {
    let mut h = Harness::new(config());
    let p = [("range", subscription(&["t"]))];
    for (who, instance) in [("a", "ia"), ("b", "ib")] {
        let req = h.join_req(who, Some(instance), &p);
        h.join_with(who, req);
    }
    h.advance(200);
    assert_eq!(h.join_answer("a").unwrap().members.len(), 2);
    h.join_answer("b").unwrap();
    h.sync("a", &[("a", "A"), ("b", "B")]);
    h.sync("b", &[]);
    assert_eq!(h.sync_answer("b").unwrap().assignment, Bytes::from("B"));
    assert_eq!(h.state(), GroupState::Stable);
    h
}

#[test]
fn static_member_restart_gets_its_assignment_back_without_rebalance() {
    let mut h = static_group();
    let old_b = h.clients["b"].clone();
    h.advance(3_000);
    // "b" restarts: no member id, same instance id.
    h.clients.insert("b", ClientView::default());
    let p = [("range", subscription(&["t"]))];
    let req = h.join_req("b", Some("ib"), &p);
    h.join_with("b", req);
    let r = h.join_answer("b").expect("answered at once, no rebalance");
    assert_eq!(r.error, NONE);
    assert_eq!(r.generation_id, 1, "same generation: no rebalance");
    assert_ne!(r.member_id, old_b.member_id);
    assert_eq!(h.state(), GroupState::Stable);
    h.sync("b", &[]);
    assert_eq!(h.sync_answer("b").unwrap().assignment, Bytes::from("B"));
    assert_eq!(h.heartbeat("a", Some("ia")), NONE);
    // The old incarnation is fenced.
    let zombie = HeartbeatRequest {
        group_id: G.into(),
        generation_id: 1,
        member_id: old_b.member_id,
        group_instance_id: Some("ib".into()),
    };
    assert_eq!(h.s.heartbeat(&zombie, h.now), FENCED_INSTANCE_ID);
    // The new member id was stored: it survives a coordinator reload.
    let reloaded = reload(&h);
    let g = reloaded.group(G).unwrap();
    assert_eq!(g.static_members["ib"], h.clients["b"].member_id);
    assert_eq!(g.state, GroupState::Stable);
}

#[test]
fn static_member_rejoining_during_rebalance_keeps_its_slot() {
    let mut h = static_group();
    // A dynamic member arrives; "b" is slow to rejoin: static members are not
    // dropped at the end of the join phase.
    let p = [("range", subscription(&["t"]))];
    let mut req = h.join_req("c", None, &p);
    req.require_known_member_id = false;
    h.join_with("c", req);
    let req = h.join_req("a", Some("ia"), &p);
    h.join_with("a", req);
    h.advance(5_000);
    let r = h.join_answer("a").unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(
        r.members.len(),
        3,
        "b keeps its slot through the join phase"
    );
    assert_eq!(h.join_answer("c").unwrap().generation_id, 2);
    h.sync("a", &[("a", "A"), ("b", "B"), ("c", "C")]);
    h.sync("c", &[]);
    assert_eq!(h.sync_answer("c").unwrap().assignment, Bytes::from("C"));
    assert_eq!(h.state(), GroupState::Stable);
    // b never syncs this generation: it is dropped once the rebalance timeout passes.
    h.advance(5_000);
    assert_eq!(h.s.group(G).unwrap().members.len(), 2);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn leave_by_instance_id_and_duplicate_instance_fencing() {
    let mut h = static_group();
    let bogus = LeavingMember {
        member_id: "not-b".into(),
        group_instance_id: Some("ib".into()),
    };
    let by_instance = LeavingMember {
        member_id: String::new(),
        group_instance_id: Some("ib".into()),
    };
    let nobody = LeavingMember {
        member_id: String::new(),
        group_instance_id: Some("nope".into()),
    };
    let now = h.now;
    let (resp, outs) = h.s.leave_group(G, &[bogus, by_instance, nobody], now);
    h.run(outs);
    let codes: Vec<i16> = resp.members.iter().map(|m| m.2).collect();
    assert_eq!(codes, [FENCED_INSTANCE_ID, NONE, UNKNOWN_MEMBER_ID]);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(h.s.group(G).unwrap().members.len(), 1);
}

#[test]
fn failed_assignment_store_sends_members_back_to_rejoin() {
    let mut h = Harness::new(config());
    let p = [("range", subscription(&["t"]))];
    let mut req = h.join_req("a", None, &p);
    req.require_known_member_id = false;
    h.join_with("a", req);
    h.advance(200);
    h.join_answer("a").unwrap();
    h.fail_appends = Some(NOT_COORDINATOR);
    h.sync("a", &[("a", "A")]);
    assert_eq!(h.sync_answer("a").unwrap().error, NOT_COORDINATOR);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
}

#[test]
fn reload_restores_stable_group_and_members_expire_without_heartbeats() {
    let h = static_group();
    let mut s = reload(&h);
    let g = s.group(G).unwrap();
    assert_eq!(
        (g.state, g.generation, g.members.len()),
        (GroupState::Stable, 1, 2)
    );
    assert_eq!(g.leader.as_deref(), Some(h.clients["a"].member_id.as_str()));
    let b = &g.members[&h.clients["b"].member_id];
    assert_eq!(b.assignment, Bytes::from("B"));
    // Loaded members must heartbeat within their session, like everyone else.
    let outs = s.tick(h.now + 10_000);
    assert!(outs.iter().all(|o| matches!(o, Output::Append { .. })));
    assert_eq!(s.group(G).unwrap().state, GroupState::Empty);
    let keys: Vec<OffsetsKey> = h.log.iter().map(|r| decode_key(&r.key).unwrap()).collect();
    assert!(keys
        .iter()
        .all(|k| *k == OffsetsKey::Group { group: G.into() }));
}

/// A request frame as a connection reads it: one allocation, the field a slice of it
/// (the protocol crate decodes `bytes` fields with `split_to`, without copying).
fn frame_with(field: &[u8]) -> (Bytes, Bytes) {
    let mut buf = vec![0u8; 64 << 10];
    buf.extend_from_slice(field);
    let frame = Bytes::from(buf);
    let slice = frame.slice(64 << 10..);
    (frame, slice)
}

fn shares(stored: &Bytes, frame: &Bytes) -> bool {
    let range = frame.as_ptr_range();
    !stored.is_empty() && range.contains(&stored.as_ptr())
}

/// Stored member metadata and assignments are copies: once a request is handled, its
/// frame is owned by nobody else (no member pins a connection's read buffer).
#[test]
fn stored_member_metadata_and_assignments_do_not_pin_request_frames() {
    let mut h = Harness::new(config());
    let sub = subscription(&["t"]);
    let mut frames = Vec::new();
    for (who, instance) in [("a", None), ("b", Some("ib"))] {
        let (frame, metadata) = frame_with(&sub);
        let mut req = h.join_req(who, instance, &[("range", metadata)]);
        req.require_known_member_id = false;
        h.join_with(who, req);
        frames.push(frame);
    }
    h.advance(1_000);
    assert_eq!(h.join_answer("a").unwrap().error, NONE);
    assert_eq!(h.join_answer("b").unwrap().error, NONE);
    let (leader, other) = if h.join_answer("a").unwrap().members.is_empty() {
        ("b", "a")
    } else {
        ("a", "b")
    };
    // The leader's SyncGroup: both assignments are slices of its one frame.
    let mut body = b"assignment-of-a".to_vec();
    body.extend_from_slice(b"assignment-of-b");
    let (frame, all) = frame_with(&body);
    let assignments = vec![
        (h.clients["a"].member_id.clone(), all.slice(..15)),
        (h.clients["b"].member_id.clone(), all.slice(15..)),
    ];
    drop(all);
    let c = h.clients[leader].clone();
    let req = SyncRequest {
        group_id: G.into(),
        generation_id: c.generation,
        member_id: c.member_id,
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: None,
        assignments,
    };
    let id = h.reply_id();
    let outs = h.s.sync_group(req, id, h.now);
    h.run(outs);
    h.sync(other, &[]);
    assert_eq!(h.state(), GroupState::Stable);
    frames.push(frame);
    // A known member rejoins with new metadata, and the static member restarts.
    let (frame, metadata) = frame_with(&subscription(&["t", "u"]));
    let req = h.join_req("a", None, &[("range", metadata)]);
    h.join_with("a", req);
    frames.push(frame);
    h.clients.insert("b", ClientView::default());
    let (frame, metadata) = frame_with(&sub);
    let req = h.join_req("b", Some("ib"), &[("range", metadata)]);
    h.join_with("b", req);
    frames.push(frame);

    let g = h.s.group(G).expect("group exists");
    assert_eq!(g.members.len(), 2);
    for m in g.members.values() {
        for frame in &frames {
            for (_, metadata) in &m.protocols {
                assert!(
                    !shares(metadata, frame),
                    "metadata of {} shares a frame",
                    m.member_id
                );
            }
            assert!(
                !shares(&m.assignment, frame),
                "assignment of {} shares a frame",
                m.member_id
            );
        }
    }
    for (i, frame) in frames.iter().enumerate() {
        assert!(
            frame.is_unique(),
            "frame {i} is still referenced after its request"
        );
    }
}
