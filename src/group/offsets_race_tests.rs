//! Table-driven cases of commits that are still being appended while retention,
//! DeleteGroups or OffsetDelete run, and of the per-commit retention of OffsetCommit
//! v2-4. Each checks memory against a reload of what was appended: a restart must
//! not change what OffsetFetch answers.

use super::offsets_tests::{commit, commit_req};
use super::records::decode_offset_value;
use super::test_harness::{config, reload, Harness, G};
use super::*;
use codes::*;

/// What runs while the commit is being appended.
#[derive(Clone, Copy, Debug)]
enum Meanwhile {
    /// The retention check, `.0` ms after the earlier commits.
    Expire(i64),
    DeleteGroup,
    /// OffsetDelete of ("t", 0).
    DeleteOffset,
}

fn offsets_of(s: &GroupCoordinatorState) -> Vec<i64> {
    let topics = [("t".to_string(), vec![0, 1])];
    s.fetch_offsets(G, Some(&topics))
        .iter()
        .map(|f| f.offset)
        .collect()
}

#[test]
fn commits_in_flight_survive_retention_and_deletes_consistently() {
    struct Case {
        name: &'static str,
        /// Standalone commits applied first, as (topic, partition, offset).
        before: &'static [(&'static str, i32, i64)],
        /// The commit whose append is held while `meanwhile` runs.
        in_flight: &'static [(&'static str, i32, i64)],
        meanwhile: Meanwhile,
        /// OffsetFetch of ("t", 0) and ("t", 1) afterwards, in memory and after a reload.
        after: [i64; 2],
        group_kept: bool,
    }
    let cases = [
        Case {
            // The group exists only for the commit being written: it has no applied
            // offsets yet, but must not be taken for an empty, offset-less group.
            name: "retention during a group's first commit",
            before: &[],
            in_flight: &[("t", 0, 10)],
            meanwhile: Meanwhile::Expire(0),
            after: [10, -1],
            group_kept: true,
        },
        Case {
            // An old offset due for expiry is overwritten by the commit in flight:
            // Kafka does not expire partitions with a pending commit.
            name: "retention of a partition being committed again",
            before: &[("t", 0, 5)],
            in_flight: &[("t", 0, 10)],
            meanwhile: Meanwhile::Expire(60_000),
            after: [10, -1],
            group_kept: true,
        },
        Case {
            name: "retention of other partitions still happens",
            before: &[("t", 0, 5)],
            in_flight: &[("t", 1, 11)],
            meanwhile: Meanwhile::Expire(60_000),
            after: [-1, 11],
            group_kept: true,
        },
        Case {
            // The commit was written first, the delete after it: the group and all
            // its offsets are gone, the new partition included, now and on reload.
            name: "DeleteGroups while a commit is written",
            before: &[("t", 0, 5)],
            in_flight: &[("t", 0, 10), ("t", 1, 11)],
            meanwhile: Meanwhile::DeleteGroup,
            after: [-1, -1],
            group_kept: false,
        },
        Case {
            name: "OffsetDelete while a commit of that partition is written",
            before: &[("t", 0, 5)],
            in_flight: &[("t", 0, 10), ("t", 1, 11)],
            meanwhile: Meanwhile::DeleteOffset,
            after: [-1, 11],
            group_kept: true,
        },
    ];
    let mut failures = Vec::new();
    for c in cases {
        let name = c.name;
        let mut h = Harness::new(config());
        if !c.before.is_empty() {
            let r = commit(&mut h, commit_req(-1, "", c.before)).expect("applied");
            assert!(r.iter().all(|p| p.2 == NONE), "{name}");
        }
        h.hold_appends = true;
        let in_flight = h.reply_id();
        let outs =
            h.s.commit_offsets(commit_req(-1, "", c.in_flight), in_flight, h.now);
        h.run(outs);
        assert!(!h.replies.contains_key(&in_flight), "{name}: held");
        h.hold_appends = false;
        let id = h.reply_id();
        let outs = match c.meanwhile {
            Meanwhile::Expire(after) => h.s.expire_offsets(h.now + after),
            Meanwhile::DeleteGroup => h.s.delete_groups(&[G.into()], id, h.now),
            Meanwhile::DeleteOffset => h.s.delete_offsets(G, &[("t".into(), 0)], id, h.now),
        };
        h.run(outs);
        h.release_held();
        // The held commit is answered with success: it was written.
        let Some(Reply::Commit(r)) = h.replies.get(&in_flight) else {
            panic!("{name}: commit not answered")
        };
        assert!(r.iter().all(|p| p.2 == NONE), "{name}: {r:?}");
        // Every row is checked before failing, so a regression shows all it breaks.
        let got = (
            offsets_of(&h.s),
            offsets_of(&reload(&h)),
            h.s.group(G).is_some(),
        );
        if got != (c.after.to_vec(), c.after.to_vec(), c.group_kept) {
            failures.push(format!(
                "{name}: (memory, reload, group kept) = {got:?}, expected {:?} / {}",
                c.after, c.group_kept
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// OffsetCommit v2-4 may ask for its own retention: Kafka then writes a version 1
/// offset value with an expire timestamp (commit time + retention) and expires the
/// offset at that moment, whatever offsets.retention.minutes (here 60 s) says.
#[test]
fn commit_retention_time_sets_the_expire_timestamp() {
    // (retention_time_ms, ms later the retention check runs, offset still there?)
    let cases: &[(i64, i64, bool)] = &[
        (-1, 59_999, true),
        (-1, 60_000, false),
        (1_000, 999, true),
        (1_000, 1_000, false),
        (120_000, 60_000, true),
        (120_000, 119_999, true),
        (120_000, 120_000, false),
    ];
    for &(retention, later, kept) in cases {
        let at = format!("retention {retention}, {later} ms later");
        let mut h = Harness::new(config());
        let mut req = commit_req(-1, "", &[("t", 0, 7)]);
        req.retention_time_ms = retention;
        let committed_at = h.now;
        commit(&mut h, req).expect("answered");
        let value = h.log.last().and_then(|r| r.value.clone()).expect("a value");
        let v = decode_offset_value(&value).expect("decodes");
        let expected_expire = (retention != -1).then_some(committed_at + retention);
        assert_eq!(v.expire_timestamp, expected_expire, "{at}: stored");
        assert_eq!((v.offset, v.metadata.as_str()), (7, "meta"), "{at}");
        let version = i16::from_be_bytes([value[0], value[1]]);
        assert_eq!(
            version == 1,
            retention != -1,
            "{at}: value version {version}"
        );
        // Memory and a reloaded coordinator expire it alike.
        let mut reloaded = reload(&h);
        for s in [&mut h.s, &mut reloaded] {
            let _ = s.expire_offsets(committed_at + later);
            let topics = [("t".to_string(), vec![0])];
            let offset = s.fetch_offsets(G, Some(&topics))[0].offset;
            assert_eq!(offset != -1, kept, "{at}");
        }
    }
}

/// Pipelined commits of one partition (offsets 1..=50, as a consumer committing
/// asynchronously after every record sends them) whose appends complete in another
/// order than they were issued: the last commit issued is what OffsetFetch answers,
/// in memory and after a reload, whatever order the completions arrive in. Before
/// completions were applied in log order, a reversed completion order left offset 1.
#[test]
fn pipelined_commits_apply_in_log_order_whatever_order_appends_complete() {
    // A small deterministic shuffle (xorshift), so a failure names its seed.
    fn shuffled(mut v: Vec<AppendToken>, seed: u64) -> Vec<AppendToken> {
        let mut x = seed | 1;
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
        v
    }
    type Order = Box<dyn Fn(Vec<AppendToken>) -> Vec<AppendToken>>;
    let orders: Vec<(String, Order)> = {
        let mut o: Vec<(String, Order)> = vec![
            ("in order".into(), Box::new(|v| v)),
            (
                "reversed".into(),
                Box::new(|mut v: Vec<AppendToken>| {
                    v.reverse();
                    v
                }),
            ),
        ];
        for seed in 1..=20u64 {
            o.push((
                format!("shuffled, seed {seed}"),
                Box::new(move |v| shuffled(v, seed)),
            ));
        }
        o
    };
    for (name, order) in orders {
        let mut h = Harness::new(config());
        h.hold_appends = true;
        let ids: Vec<ReplyId> = (1..=50)
            .map(|offset| {
                let id = h.reply_id();
                let outs =
                    h.s.commit_offsets(commit_req(-1, "", &[("t", 0, offset)]), id, h.now);
                h.run(outs);
                id
            })
            .collect();
        assert_eq!(h.held.len(), 50, "{name}: one append per commit");
        for token in order(std::mem::take(&mut h.held)) {
            let outs = h.s.append_done(token, Ok(()), h.now);
            h.run(outs);
        }
        for id in &ids {
            match h.replies.get(id) {
                Some(Reply::Commit(r)) => assert!(r.iter().all(|p| p.2 == NONE), "{name}"),
                other => panic!("{name}: commit {id} answered {other:?}"),
            }
        }
        assert_eq!(offsets_of(&h.s)[0], 50, "{name}: in memory");
        assert_eq!(offsets_of(&reload(&h))[0], 50, "{name}: after a reload");
    }
}

/// A failed append among pipelined commits: the ones after it still apply, in order,
/// and the failed one is answered with the error without rolling anything back.
#[test]
fn a_failed_append_between_pipelined_commits_does_not_reorder_the_rest() {
    let mut h = Harness::new(config());
    h.hold_appends = true;
    let ids: Vec<ReplyId> = [5, 6, 7]
        .iter()
        .map(|offset| {
            let id = h.reply_id();
            let outs =
                h.s.commit_offsets(commit_req(-1, "", &[("t", 0, *offset)]), id, h.now);
            h.run(outs);
            id
        })
        .collect();
    let held = std::mem::take(&mut h.held);
    // The last completes first, then the middle one fails, then the first succeeds.
    for (token, result) in [
        (held[2], Ok(())),
        (held[1], Err(COORDINATOR_NOT_AVAILABLE)),
        (held[0], Ok(())),
    ] {
        let outs = h.s.append_done(token, result, h.now);
        h.run(outs);
    }
    let code = |id: &ReplyId| match h.replies.get(id) {
        Some(Reply::Commit(r)) => r[0].2,
        other => panic!("commit {id}: {other:?}"),
    };
    assert_eq!(
        ids.iter().map(code).collect::<Vec<_>>(),
        [NONE, COORDINATOR_NOT_AVAILABLE, NONE]
    );
    assert_eq!(offsets_of(&h.s)[0], 7);
}
