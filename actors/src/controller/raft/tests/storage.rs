//! The log store and state machine: openraft's conformance suite, then what must survive a
//! restart.

use super::super::log_store::LogStore;
use super::super::state_machine::StateMachine;
use super::super::types::{Entry, MetaRaft, StorageResult, Vote};
use super::{blank, log_id, normal, topic_record};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{RaftLogReader, RaftSnapshotBuilder};
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::watch;
use troupe::metadata::MetadataImage;

struct Builder;

impl StoreBuilder<MetaRaft, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> StorageResult<(TempDir, LogStore, StateMachine)> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, sm) = open(dir.path()).await;
        Ok((dir, log, sm))
    }
}

async fn open(dir: &Path) -> (LogStore, StateMachine) {
    let log = LogStore::open(dir).await.expect("open the log");
    let (tx, _) = watch::channel(Arc::new(MetadataImage::new()));
    let sm = StateMachine::open(dir, tx)
        .await
        .expect("open the state machine");
    (log, sm)
}

async fn all_entries(log: &mut LogStore) -> Vec<Entry> {
    log.try_get_log_entries(..).await.expect("read the log")
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.log_id.index).collect()
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft's storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(dir.path()).await;
        assert!(log.is_pristine());
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        let entries = (1..=5).map(|i| normal(3, i, vec![topic_record("t", i as u8)]));
        log.blocking_append(entries).await.unwrap();
    }
    let (mut log, _) = open(dir.path()).await;
    assert!(!log.is_pristine());
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let entries = all_entries(&mut log).await;
    assert_eq!(indexes(&entries), vec![1, 2, 3, 4, 5]);
    assert_eq!(entries[2], normal(3, 3, vec![topic_record("t", 3)]));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3, 5)));
    assert_eq!(state.last_purged_log_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_and_purge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(dir.path()).await;
        log.blocking_append((1..=10).map(|i| blank(1, i)))
            .await
            .unwrap();
        // A new leader overwrote entries 8.. : they go, then its own arrive.
        log.truncate(log_id(1, 8)).await.unwrap();
        log.blocking_append((8..=9).map(|i| blank(2, i)))
            .await
            .unwrap();
        log.purge(log_id(1, 4)).await.unwrap();
        let entries = all_entries(&mut log).await;
        assert_eq!(indexes(&entries), vec![5, 6, 7, 8, 9]);
    }
    let (mut log, _) = open(dir.path()).await;
    let entries = all_entries(&mut log).await;
    assert_eq!(indexes(&entries), vec![5, 6, 7, 8, 9]);
    assert_eq!(entries[3].log_id, log_id(2, 8));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(2, 9)));
    // Appends after a reopen land after the kept entries.
    log.blocking_append([blank(2, 10)]).await.unwrap();
    drop(log);
    let (mut log, _) = open(dir.path()).await;
    assert_eq!(
        indexes(&all_entries(&mut log).await),
        vec![5, 6, 7, 8, 9, 10]
    );

    // Purging past the end (after installing a snapshot) leaves an empty log that
    // still knows where it ends.
    log.purge(log_id(3, 20)).await.unwrap();
    drop(log);
    let (mut log, _) = open(dir.path()).await;
    assert!(all_entries(&mut log).await.is_empty());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(3, 20)));
    log.blocking_append([blank(3, 21)]).await.unwrap();
    assert_eq!(indexes(&all_entries(&mut log).await), vec![21]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _) = open(dir.path()).await;
        log.blocking_append((1..=3).map(|i| blank(1, i)))
            .await
            .unwrap();
    }
    let path = dir.path().join("log");
    let good = std::fs::metadata(&path).unwrap().len();
    // A record cut short by a crash: header promising more body than was written.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&100u32.to_be_bytes());
    bytes.extend_from_slice(&[0, 1, 2, 3, 4, 5]);
    std::fs::write(&path, &bytes).unwrap();
    {
        let (mut log, _) = open(dir.path()).await;
        assert_eq!(indexes(&all_entries(&mut log).await), vec![1, 2, 3]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        log.blocking_append([blank(1, 4)]).await.unwrap();
    }
    // A flipped bit in the last record: its CRC fails, it goes, the rest stays.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (mut log, _) = open(dir.path()).await;
    assert_eq!(indexes(&all_entries(&mut log).await), vec![1, 2, 3]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_machine_applies_publishes_and_restarts_from_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut images) = watch::channel(Arc::new(MetadataImage::new()));
    let mut sm = StateMachine::open(dir.path(), tx).await.unwrap();
    let replies = sm
        .apply([
            blank(2, 1),
            normal(2, 2, vec![topic_record("a", 1), topic_record("b", 2)]),
        ])
        .await
        .unwrap();
    assert_eq!(
        replies.iter().map(|r| r.last_offset).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(images.has_changed().unwrap());
    let image = images.borrow_and_update().clone();
    assert_eq!(image.topics.len(), 2);
    assert_eq!((image.last_offset, image.epoch), (2, 2));

    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 2)));
    sm.apply([normal(2, 3, vec![topic_record("c", 3)])])
        .await
        .unwrap();
    drop(sm);

    // Restart: the image is the snapshot's (entry 3 comes back from the log via Raft).
    let (tx, images) = watch::channel(Arc::new(MetadataImage::new()));
    let mut sm = StateMachine::open(dir.path(), tx).await.unwrap();
    assert_eq!(**images.borrow(), *image);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(2, 2)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);

    // Installing another node's snapshot replaces the image and is what a restart sees.
    let other = tempfile::tempdir().unwrap();
    let (tx, _) = watch::channel(Arc::new(MetadataImage::new()));
    let mut leader = StateMachine::open(other.path(), tx).await.unwrap();
    leader
        .apply([normal(5, 7, vec![topic_record("z", 9)])])
        .await
        .unwrap();
    let theirs = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    sm.install_snapshot(&theirs.meta, theirs.snapshot)
        .await
        .unwrap();
    assert!(images.borrow().topics.contains_key("z"));
    assert_eq!(images.borrow().topics.len(), 1);
    drop(sm);
    let (tx, images) = watch::channel(Arc::new(MetadataImage::new()));
    let mut sm = StateMachine::open(dir.path(), tx).await.unwrap();
    assert!(images.borrow().topics.contains_key("z"));
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(5, 7)));
}
