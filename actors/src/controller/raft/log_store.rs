//! The durable Raft log of the controller quorum, in `<metadata dir>/raft/`.
//!
//! * `vote`: the last vote, replaced atomically (tmp file, fsync, rename, fsync dir).
//! * `log`: entries appended as records `[u32 BE body length][u32 BE CRC32C(body)][body]`,
//!   the body an rmp-serde (named fields) [`Entry`]. `append` fsyncs before it reports the
//!   entries flushed; `truncate` cuts the file at the first removed record and fsyncs.
//! * `log.meta`: the last purged log id, replaced atomically before `purge` rewrites
//!   `log` without the purged prefix (a crash in between only leaves purged records that
//!   open skips).
//!
//! At open, a torn tail (short record, bad CRC, undecodable body, index gap) is cut off.
//! Entries are kept in memory too: the metadata log is small and readers (replication
//! tasks) must not wait for the disk. File IO runs in `spawn_blocking`, so the runtime
//! thread driving Raft (maybe an actix arbiter) never waits for an fsync.

use super::files::{decode, encode, read_optional, sync_dir, write_atomic};
use super::types::{Entry, LogId, MetaRaft, StorageError, StorageResult, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

const LOG_FILE: &str = "log";
const VOTE_FILE: &str = "vote";
const META_FILE: &str = "log.meta";
const HEADER: usize = 8;

/// What survives a purge besides the entries: where the log now starts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LogMeta {
    last_purged: Option<LogId>,
}

/// The in-memory copy every reader shares.
#[derive(Debug, Default)]
struct Entries {
    map: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
}

/// The on-disk half, only touched from blocking threads.
struct LogFile {
    dir: PathBuf,
    file: File,
    /// Byte position of each retained entry's record: truncate cuts exactly there.
    positions: BTreeMap<u64, u64>,
    /// Valid bytes in `file`; the next record goes here.
    len: u64,
}

/// The controller's [`RaftLogStorage`].
pub struct LogStore {
    mem: Arc<RwLock<Entries>>,
    disk: Arc<Mutex<LogFile>>,
    vote: Option<Vote>,
}

/// A reader for openraft's replication tasks: memory only.
#[derive(Clone)]
pub struct LogReader {
    mem: Arc<RwLock<Entries>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the data half-updated (no critical
    // section here panics between two related writes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_entries<T>(mem: &RwLock<Entries>, f: impl FnOnce(&Entries) -> T) -> T {
    f(&mem.read().unwrap_or_else(|e| e.into_inner()))
}

fn write_entries<T>(mem: &RwLock<Entries>, f: impl FnOnce(&mut Entries) -> T) -> T {
    f(&mut mem.write().unwrap_or_else(|e| e.into_inner()))
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: io::Error) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

/// Run `f` on the log file in a blocking thread.
async fn on_disk<T, F>(disk: &Arc<Mutex<LogFile>>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut LogFile) -> io::Result<T> + Send + 'static,
{
    let disk = disk.clone();
    tokio::task::spawn_blocking(move || f(&mut lock(&disk)))
        .await
        .map_err(io::Error::other)?
}

/// Frame one entry as a log record.
fn record(entry: &Entry, out: &mut Vec<u8>) -> io::Result<()> {
    let body = encode(entry)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

/// Decode records from the start of `bytes`, stopping at the first that is incomplete,
/// corrupt or not the next index. Returns the entries with their positions and the
/// length of the valid prefix.
fn scan(bytes: &[u8]) -> (Vec<(u64, Entry)>, usize) {
    let mut out: Vec<(u64, Entry)> = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= HEADER {
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let len = word(pos) as usize;
        let crc = word(pos + 4);
        let Some(body) = bytes.get(pos + HEADER..pos + HEADER + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = decode::<Entry>(body) else {
            break;
        };
        if let Some((_, prev)) = out.last() {
            if entry.log_id.index != prev.log_id.index + 1 {
                break;
            }
        }
        out.push((pos as u64, entry));
        pos += HEADER + len;
    }
    (out, pos)
}

impl LogFile {
    /// Rewrite `log` without the records before `keep_from` (a byte position).
    fn drop_prefix(&mut self, keep_from: u64) -> io::Result<()> {
        if keep_from == 0 {
            return Ok(());
        }
        let mut rest = vec![0u8; (self.len - keep_from) as usize];
        self.file.read_exact_at(&mut rest, keep_from)?;
        write_atomic(&self.dir, LOG_FILE, &rest)?;
        self.file = open_log(&self.dir)?;
        self.len = rest.len() as u64;
        for pos in self.positions.values_mut() {
            *pos -= keep_from;
        }
        Ok(())
    }
}

fn open_log(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOG_FILE))
}

impl LogStore {
    /// Open (or create) the log in `dir`, cutting off a torn tail.
    pub async fn open(dir: impl Into<PathBuf>) -> io::Result<LogStore> {
        let dir = dir.into();
        tokio::task::spawn_blocking(move || Self::open_blocking(dir))
            .await
            .map_err(io::Error::other)?
    }

    fn open_blocking(dir: PathBuf) -> io::Result<LogStore> {
        std::fs::create_dir_all(&dir)?;
        let vote: Option<Vote> = read_optional(&dir, VOTE_FILE)?;
        let meta: LogMeta = read_optional(&dir, META_FILE)?.unwrap_or_default();
        let file = open_log(&dir)?;
        sync_dir(&dir)?;
        let bytes = std::fs::read(dir.join(LOG_FILE))?;
        let (records, valid) = scan(&bytes);
        if valid < bytes.len() {
            tracing::warn!(
                dir = %dir.display(),
                dropped_bytes = bytes.len() - valid,
                "raft log: cutting off a torn or corrupt tail"
            );
            file.set_len(valid as u64)?;
            file.sync_all()?;
        }
        let purged_up_to = meta.last_purged.map(|l| l.index);
        let mut positions = BTreeMap::new();
        let mut map = BTreeMap::new();
        for (pos, entry) in records {
            let index = entry.log_id.index;
            if purged_up_to.is_some_and(|p| index <= p) {
                continue;
            }
            positions.insert(index, pos);
            map.insert(index, entry);
        }
        let disk = LogFile {
            dir,
            file,
            positions,
            len: valid as u64,
        };
        Ok(LogStore {
            mem: Arc::new(RwLock::new(Entries {
                map,
                last_purged: meta.last_purged,
            })),
            disk: Arc::new(Mutex::new(disk)),
            vote,
        })
    }

    /// No vote, no entry and nothing purged: a node that has never joined a quorum.
    pub fn is_pristine(&self) -> bool {
        self.vote.is_none()
            && read_entries(&self.mem, |m| m.map.is_empty() && m.last_purged.is_none())
    }
}

impl LogStore {
    /// A reader of this log's entries (what openraft's replication gets, too).
    pub fn reader(&self) -> LogReader {
        LogReader {
            mem: self.mem.clone(),
        }
    }
}

impl LogReader {
    /// The id of the last entry (or of the last purged one; `None`: an empty log),
    /// entries not yet flushed included: what a pre-vote compares.
    pub fn last_log_id(&self) -> Option<LogId> {
        read_entries(&self.mem, |m| {
            m.map
                .values()
                .next_back()
                .map(|e| e.log_id)
                .or(m.last_purged)
        })
    }
}

fn get_entries<RB: RangeBounds<u64>>(mem: &RwLock<Entries>, range: RB) -> Vec<Entry> {
    read_entries(mem, |m| {
        m.map.range(range).map(|(_, e)| e.clone()).collect()
    })
}

impl RaftLogReader<MetaRaft> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        Ok(get_entries(&self.mem, range))
    }
}

impl RaftLogReader<MetaRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        Ok(get_entries(&self.mem, range))
    }
}

impl RaftLogStorage<MetaRaft> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> StorageResult<LogState<MetaRaft>> {
        Ok(read_entries(&self.mem, |m| {
            let last = m.map.values().next_back().map(|e| e.log_id);
            LogState {
                last_purged_log_id: m.last_purged,
                last_log_id: last.or(m.last_purged),
            }
        }))
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            mem: self.mem.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> StorageResult<()> {
        let bytes = encode(vote).map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        on_disk(&self.disk, move |d| write_atomic(&d.dir, VOTE_FILE, &bytes))
            .await
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote>> {
        Ok(self.vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<MetaRaft>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let write = |e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in &entries {
            offsets.push((entry.log_id.index, buf.len() as u64));
            record(entry, &mut buf).map_err(write)?;
        }
        let flushed = on_disk(&self.disk, move |d| {
            if buf.is_empty() {
                return Ok(());
            }
            d.file.write_all_at(&buf, d.len)?;
            d.file.sync_data()?;
            for (index, offset) in offsets {
                d.positions.insert(index, d.len + offset);
            }
            d.len += buf.len() as u64;
            Ok(())
        })
        .await;
        if let Err(e) = flushed {
            callback.log_io_completed(Err(io::Error::new(e.kind(), e.to_string())));
            return Err(write(e));
        }
        write_entries(&self.mem, |m| {
            for entry in entries {
                m.map.insert(entry.log_id.index, entry);
            }
        });
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> StorageResult<()> {
        let index = log_id.index;
        on_disk(&self.disk, move |d| {
            let Some(&pos) = d.positions.range(index..).next().map(|(_, p)| p) else {
                return Ok(());
            };
            d.file.set_len(pos)?;
            d.file.sync_all()?;
            d.len = pos;
            d.positions.split_off(&index);
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        write_entries(&self.mem, |m| m.map.split_off(&index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> StorageResult<()> {
        let index = log_id.index;
        let meta = encode(&LogMeta {
            last_purged: Some(log_id),
        })
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        on_disk(&self.disk, move |d| {
            write_atomic(&d.dir, META_FILE, &meta)?;
            let keep = d.positions.split_off(&(index + 1));
            d.positions = keep;
            let keep_from = d.positions.values().next().copied().unwrap_or(d.len);
            d.drop_prefix(keep_from)
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        write_entries(&self.mem, |m| {
            m.map = m.map.split_off(&(index + 1));
            m.last_purged = Some(log_id);
        });
        Ok(())
    }
}
