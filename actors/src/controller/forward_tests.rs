//! The forward pool against a stand-in controller: a plain listener speaking the
//! CONTROLLER framing that counts the connections it accepts and the ones closed.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use troupe::controller::ControllerResponse as A;

/// A stand-in active controller: answers every forwarded DescribeQuorum with the
/// quorum state naming `leader`; `close_after_each` closes each connection after one
/// answer (a controller that dropped idle connections).
struct Fake {
    addr: String,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

async fn fake(leader: i32, close_after_each: bool) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, c) = (accepted.clone(), closed.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                while let Ok(Some(frame)) = read_frame(&mut s).await {
                    let Ok(ControllerRpc::Other(body)) = decode::<ControllerRpc>(&frame) else {
                        break;
                    };
                    let Ok(f) = decode::<Forwarded>(&body) else {
                        break;
                    };
                    assert!(matches!(f.request, ControllerRequest::DescribeQuorum));
                    let answer = A::Quorum(troupe::controller::QuorumState {
                        leader_id: leader,
                        ..Default::default()
                    });
                    let reply = ControllerReply::Other(encode(&answer).expect("encode"));
                    if write_frame(&mut s, &encode(&reply).expect("encode"))
                        .await
                        .is_err()
                        || close_after_each
                    {
                        break;
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Fake {
        addr,
        accepted,
        closed,
        task,
    }
}

fn leader_of(a: ControllerResponse) -> i32 {
    match a {
        A::Quorum(q) => q.leader_id,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn sequential_forwards_share_one_connection() {
    let c = fake(1, false).await;
    let metrics = crate::metrics::Metrics::new();
    let pool = ForwardPool::new(Some(metrics.clone()));
    for _ in 0..200 {
        let a = pool
            .forward(&c.addr, ControllerRequest::DescribeQuorum)
            .await;
        assert_eq!(leader_of(a.expect("answer")), 1);
    }
    assert_eq!(
        c.accepted.load(Ordering::SeqCst),
        1,
        "200 requests, one connection"
    );
    assert_eq!(metrics.forwarded_requests.get(), 200);
    assert_eq!(metrics.forward_connections.get(), 1);
    c.task.abort();
}

#[actix_rt::test]
async fn concurrent_forwards_open_at_most_one_connection_each_and_keep_a_few() {
    let c = fake(1, false).await;
    let pool = Arc::new(ForwardPool::new(None));
    for _round in 0..5 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (pool, addr) = (pool.clone(), c.addr.clone());
            set.spawn(async move { pool.forward(&addr, ControllerRequest::DescribeQuorum).await });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(leader_of(r.expect("task").expect("answer")), 1);
        }
    }
    let accepted = c.accepted.load(Ordering::SeqCst);
    // The first round may need one connection per request; later rounds reuse the
    // idle ones and dial only what is missing.
    assert!(
        accepted <= 32 + 4 * (32 - IDLE_MAX),
        "160 requests, {accepted} connections"
    );
    assert!(pool.idle() <= IDLE_MAX);
    c.task.abort();
}

#[actix_rt::test]
async fn a_leader_change_closes_the_old_connections_and_dials_the_new_leader() {
    let (a, b) = (fake(1, false).await, fake(2, false).await);
    let pool = ForwardPool::new(None);
    for _ in 0..10 {
        let answer = pool
            .forward(&a.addr, ControllerRequest::DescribeQuorum)
            .await;
        assert_eq!(leader_of(answer.expect("answer")), 1);
    }
    for _ in 0..10 {
        let answer = pool
            .forward(&b.addr, ControllerRequest::DescribeQuorum)
            .await;
        assert_eq!(leader_of(answer.expect("answer")), 2);
    }
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    wait_until("the old leader's connection closed", || {
        a.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // The old leader is gone: a request to it fails, and the one after goes on.
    a.task.abort();
    let _ = a.task.await;
    let gone = pool
        .forward(&a.addr, ControllerRequest::DescribeQuorum)
        .await;
    assert!(gone.is_err(), "{gone:?}");
    let answer = pool
        .forward(&b.addr, ControllerRequest::DescribeQuorum)
        .await;
    assert_eq!(leader_of(answer.expect("answer")), 2);
    b.task.abort();
}

#[actix_rt::test]
async fn a_connection_the_controller_closed_is_replaced_without_failing_the_request() {
    let c = fake(3, true).await;
    let pool = ForwardPool::new(None);
    for i in 1..=5 {
        let answer = pool
            .forward(&c.addr, ControllerRequest::DescribeQuorum)
            .await;
        assert_eq!(leader_of(answer.expect("answer")), 3, "request {i}");
        wait_until("the controller closed it", || {
            c.closed.load(Ordering::SeqCst) == i
        })
        .await;
    }
    assert_eq!(c.accepted.load(Ordering::SeqCst), 5);
    c.task.abort();
}
