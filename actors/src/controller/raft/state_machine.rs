//! The controller quorum's [`RaftStateMachine`]: the [`MetadataImage`].
//!
//! Applying a normal entry applies each of its records with the entry's log index as the
//! metadata offset and its term as the controller epoch. Every apply publishes the new
//! image on a `watch` channel, which the broker side follows.
//!
//! A snapshot is `(last_applied, membership, image)` in rmp-serde (named fields). The
//! current one is also kept in `<dir>/snapshot` (replaced atomically), so a restarted node
//! starts from it instead of an empty image.

use super::files::{decode, encode, read_optional, write_atomic};
use super::types::{
    term_of, Entry, LogId, MetaRaft, MetadataApplied, SnapshotMeta, StorageResult, StoredMembership,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError,
};
use serde::{Deserialize, Serialize};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use troupe::metadata::{MetadataEntry, MetadataImage};

const SNAPSHOT_FILE: &str = "snapshot";

/// The state a snapshot carries (its data, encoded).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotState {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: MetadataImage,
}

/// A built or received snapshot: what `get_current_snapshot` hands out and what the
/// `snapshot` file holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

impl StoredSnapshot {
    fn to_snapshot(&self) -> Snapshot<MetaRaft> {
        Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        }
    }
}

/// Shared by the state machine and its snapshot builders.
struct SnapshotStore {
    dir: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    /// Serialises snapshot file writes (held on blocking threads only), so that the check
    /// "not older than the current one" and the write go together.
    writing: Mutex<()>,
    /// Makes snapshot ids unique when two snapshots end at the same log id.
    built: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poison is harmless: the guarded values are replaced whole, never half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SnapshotStore {
    fn current(&self) -> Option<StoredSnapshot> {
        lock(&self.current).clone()
    }

    /// Persist `snap` (blocking thread) and make it the current snapshot, unless a newer
    /// one got there first: a builder runs concurrently with the state machine, which
    /// may meanwhile install a leader's newer snapshot and let Raft purge the log up to
    /// it; falling back to the older snapshot on restart would then leave a gap.
    async fn save(self: &Arc<Self>, snap: StoredSnapshot) -> io::Result<()> {
        let bytes = encode(&snap)?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = lock(&store.writing);
            let newer = lock(&store.current)
                .as_ref()
                .is_some_and(|cur| cur.meta.last_log_id > snap.meta.last_log_id);
            if newer {
                return Ok(());
            }
            write_atomic(&store.dir, SNAPSHOT_FILE, &bytes)?;
            *lock(&store.current) = Some(snap);
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn sm_err(verb: ErrorVerb, e: io::Error) -> super::types::StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snap_err(
    meta: Option<&SnapshotMeta>,
    verb: ErrorVerb,
    e: io::Error,
) -> super::types::StorageError {
    let subject = match meta {
        Some(m) => ErrorSubject::Snapshot(Some(m.signature())),
        None => ErrorSubject::Snapshot(None),
    };
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

/// The controller's [`RaftStateMachine`].
pub struct StateMachine {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<MetadataImage>,
    publish: watch::Sender<Arc<MetadataImage>>,
    snapshots: Arc<SnapshotStore>,
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<MetadataImage>,
    snapshots: Arc<SnapshotStore>,
}

impl StateMachine {
    /// Open the state machine in `dir`, starting from the saved snapshot if any, and
    /// publish its image on `publish`.
    pub async fn open(
        dir: impl Into<PathBuf>,
        publish: watch::Sender<Arc<MetadataImage>>,
    ) -> io::Result<StateMachine> {
        let dir = dir.into();
        let (dir, saved) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let saved: Option<StoredSnapshot> = read_optional(&dir, SNAPSHOT_FILE)?;
            Ok::<_, io::Error>((dir, saved))
        })
        .await
        .map_err(io::Error::other)??;
        let state = match &saved {
            Some(s) => decode::<SnapshotState>(&s.data)?,
            None => SnapshotState {
                last_applied: None,
                membership: StoredMembership::default(),
                image: MetadataImage::new(),
            },
        };
        let image = Arc::new(state.image);
        publish.send_replace(image.clone());
        Ok(StateMachine {
            last_applied: state.last_applied,
            membership: state.membership,
            image,
            publish,
            snapshots: Arc::new(SnapshotStore {
                dir,
                current: Mutex::new(saved),
                writing: Mutex::new(()),
                built: AtomicU64::new(0),
            }),
        })
    }

    /// The directory this state machine keeps its snapshot in.
    pub fn dir(&self) -> &Path {
        &self.snapshots.dir
    }
}

impl RaftSnapshotBuilder<MetaRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<MetaRaft>> {
        let state = SnapshotState {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: (*self.image).clone(),
        };
        let data = encode(&state).map_err(|e| snap_err(None, ErrorVerb::Write, e))?;
        let n = self.snapshots.built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{n}", term_of(&l), l.index),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        self.snapshots
            .save(stored.clone())
            .await
            .map_err(|e| snap_err(Some(&stored.meta), ErrorVerb::Write, e))?;
        Ok(stored.to_snapshot())
    }
}

impl RaftStateMachine<MetaRaft> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<MetadataApplied>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        // Copy-on-write once per batch: readers keep the image they were handed.
        let image = Arc::make_mut(&mut self.image);
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    let epoch = i32::try_from(term_of(&log_id)).map_err(|e| {
                        sm_err(ErrorVerb::Write, io::Error::other(format!("term: {e}")))
                    })?;
                    for record in batch.records {
                        image.apply(&MetadataEntry {
                            offset: log_id.index as i64,
                            epoch,
                            record,
                        });
                    }
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m);
                }
            }
            self.last_applied = Some(log_id);
            replies.push(MetadataApplied {
                last_offset: log_id.index as i64,
            });
        }
        self.publish.send_replace(self.image.clone());
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: self.image.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let state: SnapshotState =
            decode(&data).map_err(|e| snap_err(Some(meta), ErrorVerb::Read, e))?;
        self.snapshots
            .save(StoredSnapshot {
                meta: meta.clone(),
                data,
            })
            .await
            .map_err(|e| snap_err(Some(meta), ErrorVerb::Write, e))?;
        // The meta is authoritative: it is what the leader's Raft decided the snapshot covers.
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.image = Arc::new(state.image);
        self.publish.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<MetaRaft>>> {
        Ok(self.snapshots.current().map(|s| s.to_snapshot()))
    }
}
