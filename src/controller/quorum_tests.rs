use super::quorum::{attach_refusal, learners_to_remove, LinkChange, ReplicaLinks};
use super::test_support::{cluster, fence};

const BOUND: i64 = 9000;

/// Which learners leave the membership: (case, broker state, link history, now, removed).
#[test]
fn learners_leave_the_membership_only_when_fenced_and_silent_past_the_bound() {
    // Broker 4 live, 5 fenced, 6 never registered (attached, then died).
    let mut img = cluster(&[(4, None), (5, None)]);
    fence(&mut img, 5);
    enum Link {
        Never,
        AnsweredAt(i64),
        AttachedAt(i64),
        FailingSince(i64),
    }
    let table: &[(&str, u64, Link, i64, bool)] = &[
        (
            "live broker, long silent: fencing comes first",
            4,
            Link::AnsweredAt(0),
            60_000,
            false,
        ),
        (
            "fenced, silent past the bound",
            5,
            Link::AnsweredAt(0),
            BOUND + 1,
            true,
        ),
        (
            "fenced, silent exactly the bound",
            5,
            Link::AnsweredAt(0),
            BOUND,
            false,
        ),
        (
            "fenced but answering (alive, kept fenced)",
            5,
            Link::AnsweredAt(50_000),
            50_100,
            false,
        ),
        (
            "fenced, re-attached after a restart",
            5,
            Link::AttachedAt(20_000),
            20_500,
            false,
        ),
        (
            "fenced, never answered this leader",
            5,
            Link::FailingSince(1_000),
            1_000 + BOUND + 1,
            true,
        ),
        (
            "fenced, failing but not for long",
            5,
            Link::FailingSince(1_000),
            2_000,
            false,
        ),
        (
            "fenced, unknown to this new leader",
            5,
            Link::Never,
            60_000,
            false,
        ),
        (
            "never registered, silent past the bound",
            6,
            Link::AnsweredAt(0),
            BOUND + 1,
            true,
        ),
        (
            "never registered, recently attached",
            6,
            Link::AttachedAt(5_000),
            6_000,
            false,
        ),
    ];
    for (case, node, link, now, removed) in table {
        let mut links = ReplicaLinks::default();
        match link {
            Link::Never => {}
            Link::AnsweredAt(t) => {
                links.on_reply(*node, *t, Some(10), 10);
            }
            Link::AttachedAt(t) => links.on_attach(*node, *t),
            Link::FailingSince(t) => {
                links.on_failure(*node, *t);
                links.on_failure(*node, t + 500);
            }
        }
        let got = learners_to_remove(&img, [*node], &links, *now, BOUND);
        assert_eq!(got.contains(node), *removed, "{case}");
    }
}

#[test]
fn a_link_change_is_reported_once_and_times_follow_the_answers() {
    let mut links = ReplicaLinks::default();
    assert_eq!(
        links.on_reply(4, 100, Some(5), 5),
        None,
        "up from the start"
    );
    assert_eq!(links.on_failure(4, 200), Some(LinkChange::Lost));
    for t in [700, 1200, 1700] {
        assert_eq!(links.on_failure(4, t), None, "no change, no report");
    }
    // Back, behind the leader: fetched now, caught up when it last was.
    assert_eq!(
        links.on_reply(4, 2000, Some(3), 8),
        Some(LinkChange::Back {
            silent_ms: Some(1900)
        })
    );
    let l = *links.get(4).unwrap();
    assert_eq!(
        (l.last_fetch_ms, l.last_caught_up_ms),
        (Some(2000), Some(100))
    );
    // A heartbeat answered at the leader's end: caught up.
    assert_eq!(links.on_reply(4, 2100, Some(8), 8), None);
    assert_eq!(links.get(4).unwrap().last_caught_up_ms, Some(2100));
    // A snapshot's answer says nothing of the log end.
    links.on_reply(4, 2200, None, 9);
    assert_eq!(links.get(4).unwrap().last_caught_up_ms, Some(2100));
    assert_eq!(links.silent_ms(4, 2500), Some(300));
    links.forget(4);
    assert_eq!(links.silent_ms(4, 2500), None);
    // The first RPC ever failing is a change too.
    assert_eq!(links.on_failure(5, 0), Some(LinkChange::Lost));
}

#[test]
fn attach_is_refused_for_voters_and_other_clusters() {
    // (case, a voter's id, our cluster, theirs, a word of the refusal or None)
    type Row = (
        &'static str,
        bool,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let table: &[Row] = &[
        ("same cluster", false, Some("abc"), Some("abc"), None),
        ("a node too old to say", false, Some("abc"), None, None),
        (
            "another cluster",
            false,
            Some("abc"),
            Some("xyz"),
            Some("cluster.id=xyz"),
        ),
        (
            "a voter's id",
            true,
            Some("abc"),
            Some("abc"),
            Some("voter"),
        ),
        (
            "a voter's id, old node",
            true,
            Some("abc"),
            None,
            Some("voter"),
        ),
        ("no cluster id here (tests)", false, None, Some("xyz"), None),
    ];
    for (case, voter, ours, theirs, refused) in table {
        let got = attach_refusal(4, *voter, *ours, *theirs);
        match refused {
            None => assert_eq!(got, None, "{case}"),
            Some(word) => assert!(
                got.as_deref().is_some_and(|m| m.contains(word)),
                "{case}: {got:?}"
            ),
        }
    }
}
