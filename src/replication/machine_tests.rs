//! The partition machine's rules, as tables and short scripts.

use super::machine::codes::*;
use super::machine::*;
use crate::metadata::PartitionImage;

const LAG: i64 = 10_000;

fn image(leader: i32, epoch: i32, pepoch: i32, isr: &[i32]) -> PartitionImage {
    PartitionImage {
        partition: 0,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader,
        leader_epoch: epoch,
        partition_epoch: pepoch,
    }
}

fn leader(min_isr: i32) -> PartitionMachine {
    let mut m = PartitionMachine::new(
        1,
        ReplicationConfig {
            replica_lag_time_max_ms: LAG,
            min_insync_replicas: min_isr,
        },
        0,
        0,
    );
    m.apply(&image(1, 1, 1, &[1, 2, 3]), 0);
    m
}

fn fetch(m: &mut PartitionMachine, r: i32, offset: i64, now: i64) -> Vec<Output> {
    let mut out = Vec::new();
    m.on_follower_fetch(r, offset, m.leader_epoch(), now, &mut out)
        .unwrap();
    out
}

fn alters(out: &[Output]) -> Vec<Vec<i32>> {
    out.iter()
        .filter_map(|o| match o {
            Output::AlterIsr { isr, .. } => Some(isr.clone()),
            _ => None,
        })
        .collect()
}

/// Under steady produce a follower is always one fetch behind the leader's current end;
/// Kafka counts it caught up when it reaches the end as of its previous fetch. Such a
/// follower must stay in the ISR for as long as it keeps fetching; one that stops is
/// removed after the lag time.
#[test]
fn a_follower_one_fetch_behind_stays_in_sync_a_silent_one_leaves() {
    let mut m = leader(1);
    let mut now = 0;
    let mut leo = 0;
    let mut shrinks = Vec::new();
    for _ in 0..100 {
        now += 1000;
        leo += 10;
        m.on_local_append(leo, now);
        // Follower 2 fetches what the leader had at its previous fetch; 3 is silent.
        shrinks.extend(alters(&fetch(&mut m, 2, leo - 10, now)));
        shrinks.extend(alters(&m.tick(now)));
        if !shrinks.is_empty() {
            break;
        }
    }
    assert_eq!(shrinks, vec![vec![1, 2]], "only the silent follower leaves");
    assert!(now > LAG && now <= LAG + 2000, "after the lag time: {now}");
}

#[test]
fn high_watermark_is_the_minimum_of_the_maximal_isr_and_never_goes_back() {
    let mut m = leader(1);
    m.on_local_append(10, 1);
    assert_eq!(m.high_watermark(), 0, "followers have nothing yet");
    fetch(&mut m, 2, 10, 2);
    assert_eq!(m.high_watermark(), 0, "3 is in the ISR at -1");
    let out = fetch(&mut m, 3, 6, 3);
    assert!(out.contains(&Output::HighWatermark(6)));
    fetch(&mut m, 3, 4, 4);
    assert_eq!(m.high_watermark(), 6, "a stale fetch does not move it back");
    // Shrink 3 away (committed): the high watermark follows 1 and 2.
    let out = m.apply(&image(1, 1, 2, &[1, 2]), 5);
    assert!(out.contains(&Output::HighWatermark(10)), "{out:?}");
}

#[test]
fn a_follower_rejoins_once_it_reaches_the_high_watermark() {
    let mut m = leader(1);
    m.apply(&image(1, 1, 2, &[1, 2]), 0);
    m.on_local_append(20, 1);
    fetch(&mut m, 2, 20, 2);
    assert_eq!(m.high_watermark(), 20);
    assert!(
        alters(&fetch(&mut m, 3, 15, 3)).is_empty(),
        "below the high watermark"
    );
    assert_eq!(alters(&fetch(&mut m, 3, 20, 4)), vec![vec![1, 2, 3]]);
    // One change in flight at a time; the answer arrives as metadata.
    assert!(alters(&m.tick(LAG * 5)).is_empty());
    m.apply(&image(1, 1, 3, &[1, 2, 3]), 5);
    assert_eq!(m.isr(), &[1, 2, 3]);
}

/// (name, min ISR, ISR, what happens, answer to the acks=all produce)
/// Two appends complete and the shell reports the later one first: the log end stays
/// at the later end, so the high watermark reaches it and both produces are answered
/// (with the end moved back, the second waited for its whole timeout).
#[test]
fn appends_reported_out_of_order_never_move_the_log_end_back() {
    let mut m = leader(2);
    m.on_local_append(20, 1);
    m.on_local_append(10, 1);
    assert_eq!(m.log_end_offset(), 20);
    let mut out = m.wait_for_replication(1, 9, 1000);
    out.extend(m.wait_for_replication(2, 19, 1000));
    for r in [2, 3] {
        out.extend(fetch(&mut m, r, 20, 2));
    }
    let answered: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Complete(id, code) => Some((*id, *code)),
            _ => None,
        })
        .collect();
    assert_eq!(answered, vec![(1, NONE), (2, NONE)]);
    assert_eq!(m.high_watermark(), 20);
    // Only a truncation moves it back.
    m.on_local_truncate(15);
    assert_eq!(m.log_end_offset(), 15);
}

#[test]
fn acks_all_answers() {
    #[derive(Clone, Copy, Debug)]
    enum Then {
        Replicate,
        ShrinkThenReplicate,
        Timeout,
        LoseLeadership,
    }
    type Row = (&'static str, i32, &'static [i32], Then, Result<i16, i16>);
    let rows: &[Row] = &[
        ("replicated", 2, &[1, 2, 3], Then::Replicate, Ok(NONE)),
        (
            "too few in sync up front",
            3,
            &[1, 2],
            Then::Replicate,
            Err(NOT_ENOUGH_REPLICAS),
        ),
        (
            "ISR shrank under it",
            3,
            &[1, 2, 3],
            Then::ShrinkThenReplicate,
            Ok(NOT_ENOUGH_REPLICAS_AFTER_APPEND),
        ),
        (
            "not replicated in time",
            2,
            &[1, 2, 3],
            Then::Timeout,
            Ok(REQUEST_TIMED_OUT),
        ),
        (
            "leadership lost",
            2,
            &[1, 2, 3],
            Then::LoseLeadership,
            Ok(NOT_LEADER_OR_FOLLOWER),
        ),
    ];
    for (name, min, isr, then, want) in rows {
        let mut m = leader(*min);
        m.apply(&image(1, 1, 2, isr), 0);
        let got = m.check_produce(-1).map(|_| {
            m.on_local_append(5, 1);
            let mut out = m.wait_for_replication(7, 4, 1000);
            match then {
                Then::Replicate => {
                    for r in isr.iter().filter(|r| **r != 1) {
                        out.extend(fetch(&mut m, *r, 5, 2));
                    }
                }
                Then::ShrinkThenReplicate => {
                    out.extend(m.apply(&image(1, 1, 3, &[1, 2]), 2));
                    out.extend(fetch(&mut m, 2, 5, 3));
                }
                Then::Timeout => out.extend(m.tick(1000)),
                Then::LoseLeadership => out.extend(m.apply(&image(2, 2, 3, &[2, 3]), 2)),
            }
            out.iter()
                .find_map(|o| match o {
                    Output::Complete(7, code) => Some(*code),
                    _ => None,
                })
                .expect("answered")
        });
        assert_eq!(&got, want, "{name}");
        // acks=1 is never refused for replication reasons.
        if m.role() == Role::Leader {
            assert_eq!(m.check_produce(1), Ok(()), "{name}");
        }
    }
}

#[test]
fn fetches_with_other_epochs_are_refused() {
    let mut m = leader(1);
    let mut out = Vec::new();
    assert_eq!(
        m.on_follower_fetch(2, 0, 0, 1, &mut out),
        Err(FENCED_LEADER_EPOCH)
    );
    assert_eq!(
        m.on_follower_fetch(2, 0, 2, 1, &mut out),
        Err(UNKNOWN_LEADER_EPOCH)
    );
    assert_eq!(
        m.on_follower_fetch(9, 0, 1, 1, &mut out),
        Err(NOT_LEADER_OR_FOLLOWER),
        "not a replica"
    );
    m.apply(&image(2, 2, 2, &[2, 3]), 2);
    assert_eq!(
        m.on_follower_fetch(3, 0, 2, 3, &mut out),
        Err(NOT_LEADER_OR_FOLLOWER)
    );
    assert_eq!(m.check_produce(1), Err(NOT_LEADER_OR_FOLLOWER));
    // Stale metadata is ignored.
    m.apply(&image(1, 1, 9, &[1]), 4);
    assert_eq!(m.role(), Role::Follower { leader: 2 });
}

/// Follower truncation against Kafka's cases.
#[test]
fn truncation_offsets() {
    // The follower's epochs: 1 from 0, 3 from 10; log end 25.
    let local = |e: i32| -> Option<(i32, i64)> {
        match e {
            e if e >= 3 => Some((3, 25)),
            1 | 2 => Some((1, 10)),
            _ => None,
        }
    };
    type Row = (&'static str, Option<(i32, i64)>, i64);
    let rows: &[Row] = &[
        ("leader has the same epoch, shorter", Some((3, 18)), 18),
        ("leader has the same epoch, longer", Some((3, 40)), 25),
        (
            "leader's epoch 1 ends at 8: the follower cuts there",
            Some((1, 8)),
            8,
        ),
        (
            "leader's epoch 1 ends after the follower's",
            Some((1, 12)),
            10,
        ),
        ("epoch unknown to the follower", Some((2, 14)), 14),
        ("undefined answer: keep the high watermark", None, 5),
    ];
    for (name, answer, want) in rows {
        assert_eq!(truncation_offset(*answer, local, 25, 5), *want, "{name}");
    }
}
