//! The broker-wide actors (Gateway, BrokerSupervisor, GroupManager) are supervised like
//! the partition actors: one that stops is restarted and keeps serving.

use crate::controller::messages::{CreateTopics, NewTopic};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use troupe::config::BrokerConfig;

async fn broker(dir: &std::path::Path) -> crate::BrokerHandle {
    let pairs = [
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.display().to_string()),
        ("offsets.topic.num.partitions", "2".to_string()),
        ("metrics.http.listener", "127.0.0.1:0".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let (config, _) = BrokerConfig::load(None, &pairs).unwrap();
    crate::start(config).await.unwrap()
}

/// Poll `f` every 20 ms until it holds, failing after `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An ApiVersions v0 round trip on a new connection: true when answered.
async fn api_versions(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let client = b"t";
    let mut req = Vec::new();
    req.extend(18i16.to_be_bytes()); // ApiVersions
    req.extend(0i16.to_be_bytes());
    req.extend(7i32.to_be_bytes()); // correlation id
    req.extend((client.len() as i16).to_be_bytes());
    req.extend(client);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend(req);
    if s.write_all(&frame).await.is_err() {
        return false;
    }
    let mut head = [0u8; 10];
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head)).await;
    // size, correlation id, error code
    matches!(read, Ok(Ok(_))) && head[4..8] == 7i32.to_be_bytes() && head[8..10] == [0, 0]
}

#[actix_rt::test]
async fn a_stopped_gateway_is_restarted_and_accepts_again() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    assert!(api_versions(b.addr).await);
    b.gateway.send(crate::gateway::Crash).await.unwrap();
    let addr = b.addr;
    eventually(5, "the restarted gateway to accept", || api_versions(addr)).await;
    assert!(b.gateway.connected());
    b.shutdown().await;
}

#[actix_rt::test]
async fn a_stopped_broker_supervisor_is_restarted_and_starts_new_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    b.supervisor.send(crate::supervisor::Crash).await.unwrap();
    let topic = NewTopic {
        name: "after-restart".into(),
        num_partitions: 2,
        replication_factor: 1,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    let created = b
        .controller
        .send(CreateTopics {
            topics: vec![topic],
            validate_only: false,
        })
        .await
        .unwrap();
    assert!(created[0].is_ok());
    let ctx = b.context.clone();
    eventually(5, "partitions of the new topic to run", || {
        let routes = ctx.routes();
        async move { routes.partition("after-restart", 1).is_some() }
    })
    .await;
    b.shutdown().await;
}

#[actix_rt::test]
async fn a_stopped_group_manager_is_restarted_and_starts_coordinators() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path()).await;
    let groups = b.context.groups.clone();
    groups
        .manager
        .send(crate::group::manager::CrashManager)
        .await
        .unwrap();
    // __consumer_offsets is created after the restart: the manager must follow it.
    crate::group::ensure_offsets_topic(&b.context)
        .await
        .unwrap();
    assert!(groups.wait_for_coordinator(0).await);
    assert!(groups.wait_for_coordinator(1).await);
    b.shutdown().await;
}
