//! The CONTROLLER listener against bad input, on a single-voter quorum (the default
//! deployment: one process, sole voter).

use super::super::files::{decode, encode};
use super::super::network::{read_frame, write_frame, ControllerReply, ControllerRpc, MAX_FRAME};
use super::super::start_quorum;
use super::topic_record;
use openraft::raft::VoteRequest;
use openraft::Vote;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server closed the connection: a read sees the end of the stream.
async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(matches!(n, Ok(0) | Err(_)), "connection still open: {n:?}");
}

async fn ask(s: &mut TcpStream, rpc: &ControllerRpc) -> ControllerReply {
    write_frame(s, &encode(rpc).unwrap()).await.unwrap();
    decode(&read_frame(s).await.unwrap().expect("a reply")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_connection_and_the_server_keeps_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let voters = BTreeMap::from([(1, addr.to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let node = start_quorum(1, voters, dir.path().to_path_buf(), listener)
        .await
        .unwrap();

    // Garbage that frames correctly but decodes to nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 5, 0xc1, 0xc1, 0xff, 0x00, 0x13])
        .await
        .unwrap();
    assert_closed(&mut s).await;

    // A length over the limit: refused before any allocation.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&((MAX_FRAME as u32) + 1).to_be_bytes())
        .await
        .unwrap();
    assert_closed(&mut s).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_closed(&mut s).await;

    // Still serving, several requests in order on one connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let stale_vote = ControllerRpc::Vote(VoteRequest {
        vote: Vote::new(0, 7),
        last_log_id: None,
    });
    match ask(&mut s, &stale_vote).await {
        ControllerReply::Vote(Ok(resp)) => assert!(!resp.vote_granted),
        other => panic!("unexpected reply {other:?}"),
    }
    match ask(&mut s, &ControllerRpc::Other(b"register".to_vec())).await {
        ControllerReply::Error(msg) => assert!(msg.contains("no handler")),
        other => panic!("unexpected reply {other:?}"),
    }

    // The sole voter leads and commits alone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let offset = loop {
        match node.write(vec![topic_record("solo", 1)]).await {
            Ok(offset) => break offset,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "no write: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(node.leader(), Some(1));
    let mut images = node.images.clone();
    images.wait_for(|i| i.last_offset >= offset).await.unwrap();
    assert!(images.borrow().topics.contains_key("solo"));
    node.shutdown().await;
}

/// The Controller actor will start the quorum from an actix arbiter: a current-thread
/// runtime where every Raft task shares one thread (file IO still goes to the blocking pool).
#[actix_rt::test]
async fn single_voter_runs_on_an_actix_runtime() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let voters = BTreeMap::from([(1, listener.local_addr().unwrap().to_string())]);
    let dir = tempfile::tempdir().unwrap();
    let node = start_quorum(1, voters.clone(), dir.path().to_path_buf(), listener)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = node.write(vec![topic_record("a", 1)]).await {
        assert!(tokio::time::Instant::now() < deadline, "no write: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = node.current_term();
    node.shutdown().await;
    drop(node);

    // Restarted from its directory: same data, no second initialization.
    let listener = TcpListener::bind(&voters[&1]).await.unwrap();
    let node = start_quorum(1, voters, dir.path().to_path_buf(), listener)
        .await
        .unwrap();
    let mut images = node.images.clone();
    let image = tokio::time::timeout(
        Duration::from_secs(10),
        images.wait_for(|i| i.topics.contains_key("a")),
    )
    .await
    .expect("the write is back after a restart")
    .unwrap()
    .clone();
    assert_eq!(image.topics.len(), 1);
    // openraft 0.9 restores a node whose vote it committed for itself as leader at once,
    // in the same term: a sole voter's restart does not bump the controller epoch.
    assert_eq!(node.current_term(), term);
    assert_eq!(node.leader(), Some(1));
    node.shutdown().await;
}

/// `Attach` as the previous version wrote it (no cluster id; the enum mirrors the old
/// one, variants in the same order) still decodes, with no cluster id; and a reader of
/// the previous version skips the new field.
#[test]
fn attach_written_by_the_previous_version_decodes() {
    #[derive(serde::Serialize, serde::Deserialize)]
    #[allow(dead_code)]
    enum OldRpc {
        AppendEntries(()),
        Vote(()),
        InstallSnapshot(()),
        Other(Vec<u8>),
        Attach { node_id: u64 },
    }
    let old = encode(&OldRpc::Attach { node_id: 4 }).unwrap();
    assert!(matches!(
        decode::<ControllerRpc>(&old).unwrap(),
        ControllerRpc::Attach {
            node_id: 4,
            cluster_id: None
        }
    ));
    let new = encode(&ControllerRpc::Attach {
        node_id: 5,
        cluster_id: Some("abc".into()),
    })
    .unwrap();
    assert!(matches!(
        decode::<OldRpc>(&new).unwrap(),
        OldRpc::Attach { node_id: 5 }
    ));
}
