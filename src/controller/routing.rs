//! Where a controller request is decided, and when a request that did not get an
//! answer is tried again: plain functions the `Controller` actor follows.
//!
//! Only the active controller (the Raft leader) decides, one request after another,
//! each on top of the records of the one before. Every other node forwards to it, and
//! those forwards run side by side: a forward is a network call, not a decision, so a
//! slow or paused old controller holds only the requests sent to it, never the ones
//! behind them. A request that came from another node is never forwarded again: a
//! node that does not lead answers NOT_CONTROLLER and the sender looks for the leader
//! itself.

/// What to do with a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node leads: decide here, in turn with every other decision.
    Decide,
    /// Send it to the leader `0`, without waiting for other requests.
    Forward(u64),
    /// No leader is known (an election is running): try again shortly.
    AwaitLeader,
    /// A forwarded request reached a node that does not lead: say so.
    NotController,
}

/// How one attempt ended without an answer to give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// The node a request was forwarded to does not lead (any more).
    NotController,
    /// The leader could not be reached or did not answer in time.
    Unreachable,
    /// While waiting for the leader's answer, this node learned of another leader (or
    /// of an election): the old one will not commit anything now.
    LeaderChanged,
    /// No leader was known.
    NoLeader,
}

/// Where `request` goes, seen from node `me` that knows `leader`; `forwarded` requests
/// came from another node.
pub fn route(me: u64, leader: Option<u64>, forwarded: bool) -> Route {
    match leader {
        Some(l) if l == me => Route::Decide,
        _ if forwarded => Route::NotController,
        Some(l) => Route::Forward(l),
        None => Route::AwaitLeader,
    }
}

/// After `miss`: `Some(pause in ms)` to try again, `None` to give up. A request of
/// this node's own is retried across controller changes until `deadline` (ms, like
/// `now`); a forwarded one goes back to its sender, which retries. A leader known to
/// have changed is asked at once; otherwise a short pause keeps a node without a
/// leader from spinning.
pub fn next_attempt(miss: Miss, forwarded: bool, now: i64, deadline: i64) -> Option<u64> {
    if forwarded || now >= deadline {
        return None;
    }
    Some(match miss {
        Miss::LeaderChanged => 0,
        Miss::NotController | Miss::Unreachable | Miss::NoLeader => RETRY_PAUSE_MS,
    })
}

/// The pause between attempts when no new leader is known yet.
pub const RETRY_PAUSE_MS: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        // (me, leader, forwarded) -> route
        let table = [
            (1, Some(1), false, Route::Decide),
            (1, Some(1), true, Route::Decide),
            (1, Some(2), false, Route::Forward(2)),
            (1, Some(2), true, Route::NotController),
            (1, None, false, Route::AwaitLeader),
            (1, None, true, Route::NotController),
        ];
        for (me, leader, forwarded, want) in table {
            assert_eq!(
                route(me, leader, forwarded),
                want,
                "{me} {leader:?} {forwarded}"
            );
        }
    }

    #[test]
    fn own_requests_are_retried_until_the_deadline_forwarded_ones_never() {
        // (miss, forwarded, now, deadline) -> next attempt
        let table = [
            (Miss::LeaderChanged, false, 100, 200, Some(0)),
            (Miss::NotController, false, 100, 200, Some(RETRY_PAUSE_MS)),
            (Miss::Unreachable, false, 100, 200, Some(RETRY_PAUSE_MS)),
            (Miss::NoLeader, false, 100, 200, Some(RETRY_PAUSE_MS)),
            (Miss::Unreachable, false, 200, 200, None),
            (Miss::LeaderChanged, false, 250, 200, None),
            (Miss::NotController, true, 100, 200, None),
            (Miss::LeaderChanged, true, 100, 200, None),
        ];
        for (miss, forwarded, now, deadline, want) in table {
            assert_eq!(
                next_attempt(miss, forwarded, now, deadline),
                want,
                "{miss:?} {forwarded} {now} {deadline}"
            );
        }
    }
}
