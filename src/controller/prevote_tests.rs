use super::prevote::{
    grant_prevote, leader_alive, prevote_won, should_stand, Refusal, Timings, VoterView,
};
use std::collections::BTreeSet;

/// A grant table row: (case, voter, candidate's log, answer).
type GrantRow = (&'static str, VoterView, Option<(u64, u64)>, Option<Refusal>);
/// A count table row: (case, voters, candidate, granted by, won).
type WonRow<'a> = (&'static str, &'a BTreeSet<u64>, u64, BTreeSet<u64>, bool);

/// `controller.quorum.election.timeout.ms` = 1000: election 250-500 ms, lease 500 ms.
const T: Timings = Timings {
    election_min_ms: 250,
    election_max_ms: 500,
    lease_ms: 500,
};

fn follower(since_leader_ms: Option<u64>, since_quiet_start_ms: u64) -> VoterView {
    VoterView {
        is_leader: false,
        since_leader_ms,
        since_quiet_start_ms,
        knew_leader: since_leader_ms.is_some(),
        last_log: Some((3, 40)),
        sole_voter: false,
    }
}

#[test]
fn the_election_timeout_is_drawn_from_min_to_max() {
    assert_eq!(T.election_timeout_ms(0), 250);
    assert_eq!(T.election_timeout_ms(249), 499);
    assert_eq!(T.election_timeout_ms(250), 250);
    assert_eq!(T.election_timeout_ms(u64::MAX), 250 + u64::MAX % 250);
    let flat = Timings {
        election_min_ms: 300,
        election_max_ms: 300,
        lease_ms: 300,
    };
    assert_eq!(
        flat.election_timeout_ms(12345),
        300,
        "an empty range is min"
    );
}

/// (case, view, drawn timeout, stands).
#[test]
fn a_voter_stands_only_after_its_leader_lease_and_election_timeout_of_silence() {
    let leader = VoterView {
        is_leader: true,
        ..follower(None, 60_000)
    };
    let table: &[(&str, VoterView, u64, bool)] = &[
        ("the leader never stands", leader, 250, false),
        (
            "heard from the leader just now",
            follower(Some(10), 60_000),
            250,
            false,
        ),
        (
            "knew a leader: lease + timeout not yet over",
            follower(Some(749), 60_000),
            250,
            false,
        ),
        (
            "knew a leader: lease + timeout over",
            follower(Some(750), 60_000),
            250,
            true,
        ),
        (
            "a longer draw waits longer",
            follower(Some(750), 60_000),
            499,
            false,
        ),
        (
            "a longer draw, over",
            follower(Some(999), 60_000),
            499,
            true,
        ),
        (
            "the leader long gone, but it voted (or stood) 100 ms ago",
            follower(Some(5_000), 100),
            250,
            false,
        ),
        (
            "never heard a leader: the timeout alone, not over",
            follower(None, 249),
            250,
            false,
        ),
        (
            "never heard a leader: the timeout alone, over",
            follower(None, 250),
            250,
            true,
        ),
        (
            "the only voter: no lease to wait out",
            VoterView {
                sole_voter: true,
                ..follower(Some(0), 250)
            },
            250,
            true,
        ),
        (
            "the only voter: its timeout not yet over",
            VoterView {
                sole_voter: true,
                ..follower(Some(0), 249)
            },
            250,
            false,
        ),
        (
            "the only voter, leading, does not",
            VoterView {
                sole_voter: true,
                ..leader
            },
            250,
            false,
        ),
    ];
    for (case, view, draw, stands) in table {
        assert_eq!(should_stand(view, &T, *draw), *stands, "{case}");
    }
}

/// (case, voter, candidate's log, answer).
#[test]
fn a_voter_grants_a_prevote_only_without_a_live_leader_and_to_a_log_as_long_as_its_own() {
    let leader = VoterView {
        is_leader: true,
        ..follower(None, 60_000)
    };
    let table: &[GrantRow] = &[
        (
            "the leader refuses",
            leader,
            Some((9, 99)),
            Some(Refusal::IAmTheLeader),
        ),
        (
            "heard from the leader within the lease: the candidate is cut off, not the leader",
            follower(Some(499), 60_000),
            Some((3, 40)),
            Some(Refusal::LeaderAlive),
        ),
        (
            "the lease is over: granted",
            follower(Some(500), 60_000),
            Some((3, 40)),
            None,
        ),
        (
            "never heard a leader: granted",
            follower(None, 0),
            Some((3, 40)),
            None,
        ),
        (
            "the candidate's log has a later term, shorter: granted",
            follower(None, 0),
            Some((4, 1)),
            None,
        ),
        (
            "same term, longer: granted",
            follower(None, 0),
            Some((3, 41)),
            None,
        ),
        (
            "same term, shorter: refused",
            follower(None, 0),
            Some((3, 39)),
            Some(Refusal::LogBehind),
        ),
        (
            "an earlier term, longer: refused",
            follower(None, 0),
            Some((2, 100)),
            Some(Refusal::LogBehind),
        ),
        (
            "an empty log: refused",
            follower(None, 0),
            None,
            Some(Refusal::LogBehind),
        ),
    ];
    for (case, view, log, answer) in table {
        assert_eq!(grant_prevote(view, &T, *log), *answer, "{case}");
    }
    let empty = VoterView {
        last_log: None,
        ..follower(None, 0)
    };
    assert_eq!(
        grant_prevote(&empty, &T, None),
        None,
        "two empty logs: granted"
    );
}

#[test]
fn a_prevote_is_won_by_a_majority_of_the_voters_counting_the_candidate() {
    let set = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
    let three = set(&[1, 2, 3]);
    let five = set(&[1, 2, 3, 4, 5]);
    let table: &[WonRow] = &[
        (
            "3 voters, nobody granted: cut off",
            &three,
            1,
            set(&[]),
            false,
        ),
        ("3 voters, one granted", &three, 1, set(&[2]), true),
        (
            "3 voters, a grant from a non-voter does not count",
            &three,
            1,
            set(&[7]),
            false,
        ),
        (
            "3 voters, its own grant counts once",
            &three,
            1,
            set(&[1]),
            false,
        ),
        ("5 voters, one granted", &five, 1, set(&[2]), false),
        ("5 voters, two granted", &five, 1, set(&[2, 5]), true),
        ("not a voter itself", &three, 4, set(&[1, 2, 3]), false),
        ("a single voter wins alone", &set(&[1]), 1, set(&[]), true),
    ];
    for (case, voters, me, granted, won) in table {
        assert_eq!(prevote_won(voters, *me, granted), *won, "{case}");
    }
}

#[test]
fn a_leader_is_alive_for_a_voter_that_leads_or_heard_from_one_within_the_lease() {
    let leader = VoterView {
        is_leader: true,
        ..follower(None, 0)
    };
    let table: &[(&str, VoterView, bool)] = &[
        ("it leads", leader, true),
        ("heard 499 ms ago", follower(Some(499), 0), true),
        (
            "heard 500 ms ago: the lease is over",
            follower(Some(500), 0),
            false,
        ),
        ("never heard one", follower(None, 0), false),
    ];
    for (case, view, alive) in table {
        assert_eq!(leader_alive(view, &T), *alive, "{case}");
    }
}
