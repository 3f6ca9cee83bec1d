//! Table-driven edge cases of membership: what a static member that restarts into a
//! stable group is told (by JoinGroup version), and which members a session expiry
//! may remove while a rebalance is completing.

use super::test_harness::{config, subscription, ClientView, Harness, G};
use super::*;
use bytes::Bytes;
use codes::*;

/// Static members "a" (the leader, instance "ia") and "b" ("ib"), stable on
/// generation 1 with assignments "A" and "B".
fn static_group() -> Harness {
    let mut h = Harness::new(config());
    let p = [("range", subscription(&["t"]))];
    for (who, instance) in [("a", "ia"), ("b", "ib")] {
        let req = h.join_req(who, Some(instance), &p);
        h.join_with(who, req);
    }
    h.advance(200);
    let a = h.join_answer("a").expect("a joined");
    assert_eq!(a.leader, a.member_id, "the first member leads");
    h.join_answer("b").expect("b joined");
    h.sync("a", &[("a", "A"), ("b", "B")]);
    h.sync("b", &[]);
    assert_eq!(h.state(), GroupState::Stable);
    h
}

/// Kafka answers a static member that restarts into a stable group without a
/// rebalance. Before JoinGroup v9 nobody may think it must assign (the stable group
/// would ignore the assignment): the answer names the leader as it was before the
/// restart and lists no members. From v9 the restarted leader learns it leads, gets
/// the members and is told to skip the assignment.
#[test]
fn static_member_rejoining_a_stable_group_by_join_version() {
    struct Case {
        name: &'static str,
        who: &'static str,
        instance: &'static str,
        v9: bool,
        /// Whose member id the answer names as leader: "old a" (before the restart)
        /// or "new" (the rejoining member's new id).
        leader: &'static str,
        members: usize,
        skip_assignment: bool,
    }
    let cases = [
        Case {
            name: "leader, v8",
            who: "a",
            instance: "ia",
            v9: false,
            leader: "old a",
            members: 0,
            skip_assignment: false,
        },
        Case {
            name: "leader, v9",
            who: "a",
            instance: "ia",
            v9: true,
            leader: "new",
            members: 2,
            skip_assignment: true,
        },
        Case {
            name: "follower, v8",
            who: "b",
            instance: "ib",
            v9: false,
            leader: "old a",
            members: 0,
            skip_assignment: false,
        },
        Case {
            name: "follower, v9",
            who: "b",
            instance: "ib",
            v9: true,
            leader: "old a",
            members: 0,
            skip_assignment: false,
        },
    ];
    for c in cases {
        let mut h = static_group();
        let old_a = h.clients["a"].member_id.clone();
        h.clients.insert(c.who, ClientView::default());
        let p = [("range", subscription(&["t"]))];
        let mut req = h.join_req(c.who, Some(c.instance), &p);
        req.supports_skip_assignment = c.v9;
        h.join_with(c.who, req);
        let r = h
            .join_answer(c.who)
            .unwrap_or_else(|| panic!("{}: answered at once", c.name));
        assert_eq!(r.error, NONE, "{}", c.name);
        assert_eq!(r.generation_id, 1, "{}: no rebalance", c.name);
        let expected_leader = match c.leader {
            "old a" => old_a.clone(),
            _ => r.member_id.clone(),
        };
        assert_eq!(r.leader, expected_leader, "{}: leader id", c.name);
        assert_eq!(r.members.len(), c.members, "{}: members listed", c.name);
        assert_eq!(r.skip_assignment, c.skip_assignment, "{}", c.name);
        assert_eq!(h.state(), GroupState::Stable, "{}", c.name);
        // Whatever it was told, the group keeps its assignment and leadership moved
        // to the new member id when the leader restarted.
        h.sync(c.who, &[]);
        let own = if c.who == "a" { "A" } else { "B" };
        let s = h.sync_answer(c.who).expect("stable: answered at once");
        assert_eq!(s.assignment, Bytes::from(own), "{}", c.name);
        let g = h.s.group(G).expect("group");
        let leader_now = if c.who == "a" {
            h.clients["a"].member_id.clone()
        } else {
            old_a
        };
        assert_eq!(g.leader.as_deref(), Some(leader_now.as_str()), "{}", c.name);
    }
}

/// What the leader does once the follower waited past its session timeout.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Sends its assignment.
    Sync,
    /// Nothing, but a new member joins: the rebalance starts over.
    NewMember,
}

/// A member that sent SyncGroup waits on the leader and (kafka-python) does not
/// heartbeat meanwhile: like one waiting on JoinGroup, it is kept alive, and only the
/// rebalance timeout (the sync deadline) bounds the wait. When the wait ends, in an
/// assignment or an error, its session starts afresh (Kafka's propagateAssignment).
/// A member that neither syncs nor heartbeats still expires with its session.
#[test]
fn members_waiting_on_sync_group_do_not_expire() {
    struct Case {
        name: &'static str,
        follower_syncs: bool,
        then: Then,
        /// Members and state just after, and the follower's SyncGroup answer.
        members: usize,
        state: GroupState,
        follower_sync: Option<(i16, &'static str)>,
    }
    let cases = [
        Case {
            name: "follower waits on SyncGroup past its session timeout",
            follower_syncs: true,
            then: Then::Sync,
            members: 2,
            state: GroupState::Stable,
            follower_sync: Some((NONE, "B")),
        },
        Case {
            name: "follower silent past its session timeout",
            follower_syncs: false,
            then: Then::Sync,
            members: 1,
            state: GroupState::PreparingRebalance,
            follower_sync: None,
        },
        Case {
            name: "follower told to rejoin after a long SyncGroup wait",
            follower_syncs: true,
            then: Then::NewMember,
            members: 3,
            state: GroupState::PreparingRebalance,
            follower_sync: Some((REBALANCE_IN_PROGRESS, "")),
        },
    ];
    for c in cases {
        let mut h = Harness::new(config());
        let p = [("range", subscription(&["t"]))];
        let join = |h: &mut Harness, who: &'static str| {
            let mut req = h.join_req(who, None, &p);
            req.require_known_member_id = false;
            // A short session, a long rebalance: the session runs out first.
            req.session_timeout_ms = 2_000;
            req.rebalance_timeout_ms = 8_000;
            h.join_with(who, req);
        };
        join(&mut h, "a");
        join(&mut h, "b");
        h.advance(200);
        assert_eq!(h.join_answer("a").expect("joined").members.len(), 2);
        h.join_answer("b").expect("joined");
        assert_eq!(h.state(), GroupState::CompletingRebalance, "{}", c.name);
        if c.follower_syncs {
            h.sync("b", &[]);
        }
        // The leader is slow to assign but heartbeats (told to rejoin once the
        // follower expired, which it ignores here).
        for _ in 0..3 {
            h.advance(1_000);
            h.heartbeat("a", None);
        }
        match c.then {
            Then::Sync => h.sync("a", &[("a", "A"), ("b", "B")]),
            Then::NewMember => join(&mut h, "c"),
        }
        h.advance(1);
        let g = h.s.group(G).expect("group");
        assert_eq!(g.members.len(), c.members, "{}: members", c.name);
        assert_eq!(h.state(), c.state, "{}: state", c.name);
        if let Some((code, assignment)) = c.follower_sync {
            let r = h.sync_answer("b").expect("follower answered");
            assert_eq!(r.error, code, "{}", c.name);
            assert_eq!(r.assignment, Bytes::from(assignment), "{}", c.name);
        }
    }
}
