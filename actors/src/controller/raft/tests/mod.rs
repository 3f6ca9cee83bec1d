//! Tests of the controller quorum glue.
//!
//! Runtime: the storage suite is a plain `#[test]` because openraft's `Suite` builds its own
//! tokio runtime per case (it panics inside another runtime); everything else runs on
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`, the way Raft's spawned
//! tasks and `spawn_blocking` file IO run in production.

mod frames;
mod learner;
mod quorum;
mod storage;

use super::types::{Entry, LogId, MetaRaft, MetadataBatch};
use openraft::{CommittedLeaderId, EntryPayload};
use std::collections::BTreeMap;
use troupe::metadata::MetadataRecord;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn topic_record(name: &str, id: u8) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: [id; 16],
        configs: BTreeMap::new(),
    }
}

fn normal(term: u64, index: u64, records: Vec<MetadataRecord>) -> Entry {
    openraft::Entry::<MetaRaft> {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataBatch { records }),
    }
}

fn blank(term: u64, index: u64) -> Entry {
    openraft::Entry::<MetaRaft> {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}
