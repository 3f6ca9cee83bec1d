//! Committed offsets: commit checks, answers only after the append, fetches,
//! retention, deletes, and the records a reload must understand.

use super::records::{decode_key, OffsetsKey};
use super::test_harness::{config, reload, subscription, ClientView, Harness, G};
use super::*;
use codes::*;

pub(super) fn commit_req(
    generation: i32,
    member: &str,
    parts: &[(&str, i32, i64)],
) -> CommitRequest {
    CommitRequest {
        group_id: G.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: parts
            .iter()
            .map(|(t, p, o)| CommitPartition {
                topic: t.to_string(),
                partition: *p,
                offset: *o,
                leader_epoch: 3,
                metadata: Some("meta".into()),
                error: NONE,
            })
            .collect(),
    }
}

pub(super) fn commit(h: &mut Harness, req: CommitRequest) -> Option<CommitResponse> {
    let id = h.reply_id();
    let outs = h.s.commit_offsets(req, id, h.now);
    h.run(outs);
    match h.replies.get(&id)? {
        Reply::Commit(r) => Some(r.clone()),
        _ => panic!("not a commit reply"),
    }
}

fn codes_of(r: &CommitResponse) -> Vec<i16> {
    r.iter().map(|(_, _, c)| *c).collect()
}

fn fetched(h: &Harness, topic: &str, partition: i32) -> i64 {
    let topics = [(topic.to_string(), vec![partition])];
    h.s.fetch_offsets(G, Some(&topics))[0].offset
}

/// One consumer in a stable group on generation 1, subscribed to "t".
fn stable_member() -> Harness {
    let mut h = Harness::new(config());
    let p = [("range", subscription(&["t"]))];
    let mut req = h.join_req("a", None, &p);
    req.require_known_member_id = false;
    h.join_with("a", req);
    h.advance(200);
    h.join_answer("a").expect("joined");
    h.sync("a", &[("a", "A")]);
    assert_eq!(h.state(), GroupState::Stable);
    h
}

#[test]
fn standalone_commit_creates_the_group_and_is_fetchable() {
    let mut h = Harness::new(config());
    assert_eq!(fetched(&h, "t", 0), -1, "nothing committed yet");
    let r = commit(&mut h, commit_req(-1, "", &[("t", 0, 10), ("t", 1, 20)])).unwrap();
    assert_eq!(codes_of(&r), [NONE, NONE]);
    assert_eq!((fetched(&h, "t", 0), fetched(&h, "t", 1)), (10, 20));
    let all = h.s.fetch_offsets(G, None);
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].leader_epoch, all[0].metadata.as_str()), (3, "meta"));
    assert_eq!(h.state(), GroupState::Empty);
    // A stale generation of a group we do not know is refused.
    let mut other = commit_req(4, "x", &[("t", 0, 1)]);
    other.group_id = "unknown".into();
    assert_eq!(
        codes_of(&commit(&mut h, other).unwrap()),
        [ILLEGAL_GENERATION]
    );
}

#[test]
fn commit_is_answered_and_visible_only_after_the_append() {
    let mut h = Harness::new(config());
    h.hold_appends = true;
    assert!(
        commit(&mut h, commit_req(-1, "", &[("t", 0, 5)])).is_none(),
        "not before the append"
    );
    assert_eq!(fetched(&h, "t", 0), -1, "not visible before the append");
    h.release_held();
    assert_eq!(fetched(&h, "t", 0), 5);
    // A failed append answers the error and changes nothing.
    h.fail_appends = Some(NOT_COORDINATOR);
    let r = commit(&mut h, commit_req(-1, "", &[("t", 0, 9)])).unwrap();
    assert_eq!(codes_of(&r), [NOT_COORDINATOR]);
    assert_eq!(fetched(&h, "t", 0), 5);
}

#[test]
fn member_commits_are_checked_against_the_generation() {
    let mut h = stable_member();
    let a = h.clients["a"].clone();
    let ok = commit(&mut h, commit_req(1, &a.member_id, &[("t", 0, 7)])).unwrap();
    assert_eq!(codes_of(&ok), [NONE]);
    let cases = [
        (
            commit_req(2, &a.member_id, &[("t", 0, 8)]),
            ILLEGAL_GENERATION,
        ),
        (commit_req(1, "stranger", &[("t", 0, 8)]), UNKNOWN_MEMBER_ID),
        // A group with members does not take standalone commits.
        (commit_req(-1, "", &[("t", 0, 8)]), UNKNOWN_MEMBER_ID),
    ];
    for (req, code) in cases {
        assert_eq!(codes_of(&commit(&mut h, req).unwrap()), [code]);
    }
    assert_eq!(fetched(&h, "t", 0), 7);
    // Too much metadata is refused per partition, the rest is written.
    let mut req = commit_req(1, &a.member_id, &[("t", 0, 8), ("t", 1, 9)]);
    req.partitions[0].metadata = Some("x".repeat(100));
    assert_eq!(
        codes_of(&commit(&mut h, req).unwrap()),
        [OFFSET_METADATA_TOO_LARGE, NONE]
    );
    // Partitions the handler already refused (unknown topic) keep their error.
    let mut req = commit_req(1, &a.member_id, &[("nope", 0, 1)]);
    req.partitions[0].error = UNKNOWN_TOPIC_OR_PARTITION;
    assert_eq!(
        codes_of(&commit(&mut h, req).unwrap()),
        [UNKNOWN_TOPIC_OR_PARTITION]
    );
    // During the join phase commits are still accepted; while waiting for the
    // assignment they are not.
    let p = [("range", subscription(&["t"]))];
    let mut req = h.join_req("b", None, &p);
    req.require_known_member_id = false;
    h.join_with("b", req);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        codes_of(&commit(&mut h, commit_req(1, &a.member_id, &[("t", 0, 11)])).unwrap()),
        [NONE]
    );
    let req = h.join_req("a", None, &p);
    h.join_with("a", req);
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    let r = commit(&mut h, commit_req(2, &a.member_id, &[("t", 0, 12)])).unwrap();
    assert_eq!(codes_of(&r), [REBALANCE_IN_PROGRESS]);
    assert_eq!(fetched(&h, "t", 0), 11);
}

#[test]
fn retention_expires_offsets_of_empty_groups_only() {
    let mut h = stable_member();
    let a = h.clients["a"].clone();
    commit(&mut h, commit_req(1, &a.member_id, &[("t", 0, 7)])).unwrap();
    let now = h.now;
    // Stable and still subscribed to "t": kept however old.
    assert!(h.s.expire_offsets(now + 120_000).is_empty());
    let (_, outs) = h.s.leave_group(
        G,
        &[LeavingMember {
            member_id: a.member_id,
            group_instance_id: None,
        }],
        now,
    );
    h.run(outs);
    assert_eq!(h.state(), GroupState::Empty);
    h.clients.insert("a", ClientView::default());
    // Retention counts from when the group became empty.
    assert!(h.s.expire_offsets(now + 59_999).is_empty());
    h.now = now + 60_000;
    let outs = h.s.expire_offsets(h.now);
    let log_before = h.log.len();
    h.run(outs);
    assert_eq!(fetched(&h, "t", 0), -1);
    assert!(
        h.s.group(G).is_none(),
        "an empty group without offsets is deleted"
    );
    let tombstones: Vec<OffsetsKey> = h.log[log_before..]
        .iter()
        .inspect(|r| assert!(r.value.is_none()))
        .map(|r| decode_key(&r.key).unwrap())
        .collect();
    assert_eq!(
        tombstones,
        [
            OffsetsKey::Offset {
                group: G.into(),
                topic: "t".into(),
                partition: 0
            },
            OffsetsKey::Group { group: G.into() },
        ]
    );
    // The tombstones also win on reload.
    assert!(reload(&h).group(G).is_none());
}

#[test]
fn delete_groups_only_when_empty() {
    let mut h = stable_member();
    let id = h.reply_id();
    let outs = h.s.delete_groups(&[G.into(), "missing".into()], id, h.now);
    h.run(outs);
    let Reply::DeleteGroups(r) = h.replies[&id].clone() else {
        panic!()
    };
    assert_eq!(
        r,
        [
            (G.to_string(), NON_EMPTY_GROUP),
            ("missing".into(), GROUP_ID_NOT_FOUND)
        ]
    );

    let mut h = Harness::new(config());
    commit(&mut h, commit_req(-1, "", &[("t", 0, 1)])).unwrap();
    let id = h.reply_id();
    let outs = h.s.delete_groups(&[G.into()], id, h.now);
    h.run(outs);
    assert_eq!(h.replies[&id], Reply::DeleteGroups(vec![(G.into(), NONE)]));
    assert!(h.s.list_groups(&[]).is_empty());
    assert!(reload(&h).group(G).is_none());
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = stable_member();
    let a = h.clients["a"].clone();
    commit(
        &mut h,
        commit_req(1, &a.member_id, &[("t", 0, 1), ("old", 0, 2)]),
    )
    .unwrap();
    let id = h.reply_id();
    let outs =
        h.s.delete_offsets(G, &[("t".into(), 0), ("old".into(), 0)], id, h.now);
    h.run(outs);
    let Reply::OffsetDelete(r) = h.replies[&id].clone() else {
        panic!()
    };
    assert_eq!(r.error, NONE);
    assert_eq!(
        r.partitions,
        [
            ("t".into(), 0, GROUP_SUBSCRIBED_TO_TOPIC),
            ("old".into(), 0, NONE)
        ]
    );
    assert_eq!((fetched(&h, "t", 0), fetched(&h, "old", 0)), (1, -1));
    let id = h.reply_id();
    let outs = h.s.delete_offsets("nope", &[("t".into(), 0)], id, h.now);
    h.run(outs);
    let Reply::OffsetDelete(r) = h.replies[&id].clone() else {
        panic!()
    };
    assert_eq!(r.error, GROUP_ID_NOT_FOUND);
}

#[test]
fn describe_and_list_with_state_filter() {
    let mut h = stable_member();
    let mut other = commit_req(-1, "", &[("t", 0, 1)]);
    other.group_id = "standalone".into();
    commit(&mut h, other).unwrap();
    let d = h.s.describe_group(G);
    assert_eq!(
        (d.state, d.protocol.as_str(), d.members.len()),
        ("Stable", "range", 1)
    );
    assert_eq!(d.members[0].assignment, bytes::Bytes::from("A"));
    assert_eq!(h.s.describe_group("missing").state, "Dead");
    let all: Vec<String> =
        h.s.list_groups(&[])
            .into_iter()
            .map(|g| g.group_id)
            .collect();
    assert_eq!(all, ["g", "standalone"]);
    let empty = h.s.list_groups(&["empty".into()]);
    assert_eq!(empty.len(), 1);
    assert_eq!(
        (empty[0].group_id.as_str(), empty[0].protocol_type.as_str()),
        ("standalone", "")
    );
}

#[test]
fn reload_restores_offsets_and_skips_garbage() {
    let mut h = stable_member();
    let a = h.clients["a"].clone();
    commit(
        &mut h,
        commit_req(1, &a.member_id, &[("t", 0, 7), ("t", 1, 8)]),
    )
    .unwrap();
    commit(&mut h, commit_req(1, &a.member_id, &[("t", 0, 9)])).unwrap();
    let mut s = reload(&h);
    assert!(s.load_record(&[0, 7, 1], Some(&[1]), 0).is_err());
    let topics = [("t".to_string(), vec![0, 1])];
    let got: Vec<i64> = s
        .fetch_offsets(G, Some(&topics))
        .iter()
        .map(|f| f.offset)
        .collect();
    assert_eq!(got, [9, 8]);
    assert_eq!(s.group(G).unwrap().state, GroupState::Stable);
}
