//! The sparse, memory-mapped offset and time indexes of a segment (Kafka's format).
//!
//! * `.index`: 8-byte entries `(relative offset u32, position u32)`, big-endian: the
//!   last offset of a batch and the file position where that batch starts.
//! * `.timeindex`: 12-byte entries `(timestamp i64, relative offset u32)`: the largest
//!   timestamp seen so far in the segment and the last offset of the batch holding it.
//!
//! An active segment's index files are preallocated to `segment.index.bytes` (rounded
//! down to whole entries) and mapped once, so an append is a store into memory; when
//! the segment closes they are trimmed to the entries used, which is how a reader
//! (or a restart) knows how many entries a closed index has.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::storage::error::{IoContext, StorageError};

/// A file of fixed-size entries, mapped read-write.
///
/// No file descriptor is kept: a shared mapping stays valid after its descriptor is
/// closed (POSIX), and stores into it still reach the file and `msync`. Holding the
/// `.index` and `.timeindex` open would triple a partition's descriptors (measured:
/// 10,000 partitions needed ~30,000 fds, over this machine's hard limit of 20,000), so
/// the file is reopened by path only for the rare size changes (create, resize at
/// roll, trim). Its path is stable while mapped: the log that owns it renames index
/// files only after dropping them (compaction's swap).
#[derive(Debug)]
struct MmapIndex {
    path: PathBuf,
    /// `None` when the file is empty: a zero-length mapping is not portable.
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    /// Entries the file has room for; equal to `entries` once trimmed.
    max_entries: usize,
}

impl MmapIndex {
    fn open_file(path: &Path, create: bool) -> Result<File, StorageError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .at(path)
    }

    /// A new, empty index with room for `max_bytes` of entries (any old file is reset).
    fn create(path: &Path, entry_size: usize, max_bytes: u64) -> Result<MmapIndex, StorageError> {
        let file = Self::open_file(path, true)?;
        // Reset first: stale entries past the new length must not survive as non-holes.
        file.set_len(0).at(path)?;
        let mut index = MmapIndex {
            path: path.to_path_buf(),
            mmap: None,
            entry_size,
            entries: 0,
            max_entries: 0,
        };
        index.set_len_and_map(&file, max_bytes)?;
        Ok(index)
    }

    /// An existing index, trusted to hold `len / entry_size` entries. Fails if the
    /// file is missing or not a whole number of entries; the caller then rebuilds.
    fn load(path: &Path, entry_size: usize) -> Result<MmapIndex, StorageError> {
        let file = Self::open_file(path, false)?;
        let len = file.metadata().at(path)?.len() as usize;
        // Written without `is_multiple_of` so the crate keeps building on its declared MSRV.
        if (len / entry_size) * entry_size != len {
            return Err(StorageError::InvalidRecord(format!(
                "index {} size {len} is not a multiple of {entry_size}",
                path.display()
            )));
        }
        let mut index = MmapIndex {
            path: path.to_path_buf(),
            mmap: None,
            entry_size,
            entries: len / entry_size,
            max_entries: len / entry_size,
        };
        index.map(&file, len)?;
        // `file` closes on return; the mapping lives on without it.
        Ok(index)
    }

    fn map(&mut self, file: &File, len: usize) -> Result<(), StorageError> {
        self.mmap = None;
        if len > 0 {
            // SAFETY: the index file belongs to this partition's log, which one actor
            // owns; nothing else truncates it while mapped (we drop the map before
            // every set_len below), so the mapping never outlives the file's bytes.
            // The mapping does not need `file` to stay open.
            let map = unsafe { MmapOptions::new().len(len).map_mut(file) }.at(&self.path)?;
            // Index files are pre-sized (segment.index.bytes) and mostly holes. With the
            // default advice a fault reads ahead (8 MiB on this disk), zero-filling pages
            // nobody will touch: measured 81% of broker CPU when producing to 1,000
            // partitions. Lookups are binary searches anyway, so random access is right.
            // Advice is only a hint: failure changes nothing but speed.
            let _ = map.advise(memmap2::Advice::Random);
            self.mmap = Some(map);
        }
        Ok(())
    }

    /// Unmap, give `file` (this index, opened by the caller) room for `max_bytes` of
    /// entries (never fewer than are used), and map it again.
    fn set_len_and_map(&mut self, file: &File, max_bytes: u64) -> Result<(), StorageError> {
        let max_entries = ((max_bytes as usize) / self.entry_size).max(self.entries);
        let len = max_entries * self.entry_size;
        // Dirty pages of a shared mapping stay in the page cache when it is unmapped,
        // so nothing written is lost by remapping.
        self.mmap = None;
        file.set_len(len as u64).at(&self.path)?;
        self.max_entries = max_entries;
        self.map(file, len)
    }

    /// Give the file room for `max_bytes` of entries (never fewer than are used).
    fn resize(&mut self, max_bytes: u64) -> Result<(), StorageError> {
        let file = Self::open_file(&self.path, false)?;
        self.set_len_and_map(&file, max_bytes)
    }

    /// Shrink the file to the entries used, marking the index closed.
    fn trim(&mut self) -> Result<(), StorageError> {
        self.flush()?;
        self.resize(0)
    }

    fn flush(&self) -> Result<(), StorageError> {
        if let Some(m) = &self.mmap {
            m.flush().at(&self.path)?;
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> &[u8] {
        let m = self
            .mmap
            .as_ref()
            .expect("entry index < entries implies a mapping");
        &m[i * self.entry_size..(i + 1) * self.entry_size]
    }

    fn push(&mut self, bytes: &[u8]) {
        let at = self.entries * self.entry_size;
        let m = self
            .mmap
            .as_mut()
            .expect("callers check is_full before pushing");
        m[at..at + self.entry_size].copy_from_slice(bytes);
        self.entries += 1;
    }

    fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    /// Index of the last entry for which `le(entry)` holds, given entries sorted so
    /// that `le` is true for a prefix.
    fn last_where(&self, le: impl Fn(&[u8]) -> bool) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if le(self.entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn delete(self) -> Result<(), StorageError> {
        let path = self.path.clone();
        drop(self);
        std::fs::remove_file(&path).at(&path)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}

/// Offset -> file position, for the batch lookups of fetch and truncation.
#[derive(Debug)]
pub struct OffsetIndex {
    inner: MmapIndex,
    base_offset: i64,
}

impl OffsetIndex {
    pub const ENTRY_SIZE: usize = 8;

    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self, StorageError> {
        Ok(OffsetIndex {
            inner: MmapIndex::create(path, Self::ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Load a closed segment's index and check it against the segment's log size:
    /// offsets and positions strictly increasing, positions inside the log.
    pub fn load(path: &Path, base_offset: i64, log_size: u64) -> Result<Self, StorageError> {
        let index = OffsetIndex {
            inner: MmapIndex::load(path, Self::ENTRY_SIZE)?,
            base_offset,
        };
        let mut prev: Option<(u32, u32)> = None;
        for i in 0..index.inner.entries {
            let e = index.inner.entry(i);
            let (rel, pos) = (u32_at(e, 0), u32_at(e, 4));
            let increasing = !matches!(prev, Some((r, p)) if rel <= r || pos <= p);
            if !increasing || pos as u64 >= log_size || rel > i32::MAX as u32 {
                return Err(StorageError::InvalidRecord(format!(
                    "offset index {} entry {i} inconsistent",
                    path.display()
                )));
            }
            prev = Some((rel, pos));
        }
        Ok(index)
    }

    pub fn append(&mut self, offset: i64, position: u64) {
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        e[4..].copy_from_slice(&(position as u32).to_be_bytes());
        self.inner.push(&e);
    }

    /// The position to start scanning from for `offset`: the largest indexed entry at
    /// or below it, or the segment start.
    pub fn lookup(&self, offset: i64) -> (i64, u64) {
        let rel = offset - self.base_offset;
        match self.inner.last_where(|e| (u32_at(e, 0) as i64) <= rel) {
            Some(i) => {
                let e = self.inner.entry(i);
                (self.base_offset + u32_at(e, 0) as i64, u32_at(e, 4) as u64)
            }
            None => (self.base_offset, 0),
        }
    }

    /// The last entry whose offset is `<= offset`, as `(slot, offset, position)`.
    pub fn last_entry_at_or_below(&self, offset: i64) -> Option<(usize, i64, u64)> {
        let rel = offset - self.base_offset;
        let i = self.inner.last_where(|e| (u32_at(e, 0) as i64) <= rel)?;
        let e = self.inner.entry(i);
        Some((
            i,
            self.base_offset + u32_at(e, 0) as i64,
            u32_at(e, 4) as u64,
        ))
    }

    /// Keep only the first `n` entries (they will be appended to again).
    pub fn truncate_entries(&mut self, n: usize) {
        self.inner.entries = self.inner.entries.min(n);
    }

    pub fn entries(&self) -> usize {
        self.inner.entries
    }
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }
    pub fn resize(&mut self, max_bytes: u64) -> Result<(), StorageError> {
        self.inner.resize(max_bytes)
    }
    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.inner.trim()
    }
    pub fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
    pub fn delete(self) -> Result<(), StorageError> {
        self.inner.delete()
    }
}

/// Timestamp -> offset, for ListOffsets by time and for time-based retention.
#[derive(Debug)]
pub struct TimeIndex {
    inner: MmapIndex,
    base_offset: i64,
}

impl TimeIndex {
    pub const ENTRY_SIZE: usize = 12;

    pub fn create(path: &Path, base_offset: i64, max_bytes: u64) -> Result<Self, StorageError> {
        Ok(TimeIndex {
            inner: MmapIndex::create(path, Self::ENTRY_SIZE, max_bytes)?,
            base_offset,
        })
    }

    /// Load a closed segment's time index: timestamps strictly increase (entries are
    /// only added for a new maximum, so repeats mean a stale, zero-filled file) and
    /// offsets do not decrease.
    pub fn load(path: &Path, base_offset: i64) -> Result<Self, StorageError> {
        let index = TimeIndex {
            inner: MmapIndex::load(path, Self::ENTRY_SIZE)?,
            base_offset,
        };
        for i in 1..index.inner.entries {
            let (a, b) = (index.inner.entry(i - 1), index.inner.entry(i));
            if i64_at(b) <= i64_at(a) || u32_at(b, 8) < u32_at(a, 8) {
                return Err(StorageError::InvalidRecord(format!(
                    "time index {} entry {i} goes backwards",
                    path.display()
                )));
            }
        }
        Ok(index)
    }

    /// Record `(timestamp, offset)` if the timestamp is newer than the last entry's;
    /// entries only ever grow, so the last one is the segment's maximum.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if self.last_entry().is_some_and(|(ts, _)| timestamp <= ts) || self.inner.is_full() {
            return;
        }
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.inner.push(&e);
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        let i = self.inner.entries.checked_sub(1)?;
        Some(self.decode(i))
    }

    /// The last entry with a timestamp strictly below `timestamp`: every record up to
    /// its offset is older than `timestamp`, so a search may start there.
    pub fn lookup_before(&self, timestamp: i64) -> Option<(i64, i64)> {
        self.inner
            .last_where(|e| i64_at(e) < timestamp)
            .map(|i| self.decode(i))
    }

    /// Keep only the entries whose offset is `<= offset` (they will be appended to again).
    pub fn truncate_after_offset(&mut self, offset: i64) {
        let rel = offset - self.base_offset;
        let keep = self
            .inner
            .last_where(|e| (u32_at(e, 8) as i64) <= rel)
            .map_or(0, |i| i + 1);
        self.inner.entries = keep;
    }

    fn decode(&self, i: usize) -> (i64, i64) {
        let e = self.inner.entry(i);
        (i64_at(e), self.base_offset + u32_at(e, 8) as i64)
    }

    pub fn entries(&self) -> usize {
        self.inner.entries
    }
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }
    pub fn resize(&mut self, max_bytes: u64) -> Result<(), StorageError> {
        self.inner.resize(max_bytes)
    }
    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.inner.trim()
    }
    pub fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
    pub fn delete(self) -> Result<(), StorageError> {
        self.inner.delete()
    }
}

fn i64_at(e: &[u8]) -> i64 {
    i64::from_be_bytes(e[..8].try_into().expect("8-byte slice"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_trim_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("100.index");
        let mut idx = OffsetIndex::create(&path, 100, 8 * 4 + 5).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        assert_eq!(idx.lookup(150), (100, 0));
        idx.append(110, 1000);
        idx.append(120, 2000);
        idx.append(130, 3000);
        assert_eq!(idx.lookup(105), (100, 0));
        assert_eq!(idx.lookup(110), (110, 1000));
        assert_eq!(idx.lookup(125), (120, 2000));
        assert_eq!(idx.lookup(1 << 40), (130, 3000));
        assert!(!idx.is_full());
        idx.append(140, 4000);
        assert!(idx.is_full());
        idx.trim().unwrap();
        drop(idx);
        let idx = OffsetIndex::load(&path, 100, 5000).unwrap();
        assert_eq!(idx.entries(), 4);
        assert_eq!(idx.lookup(139), (130, 3000));
        // A position beyond the log's end means the index is stale.
        assert!(OffsetIndex::load(&path, 100, 3500).is_err());
        std::fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path, 100, 5000).is_err());
    }

    #[test]
    fn time_index_only_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::create(&path, 0, 12 * 10).unwrap();
        idx.maybe_append(100, 5);
        idx.maybe_append(90, 6);
        idx.maybe_append(200, 9);
        assert_eq!(idx.entries(), 2);
        assert_eq!(idx.lookup_before(100), None);
        assert_eq!(idx.lookup_before(101), Some((100, 5)));
        assert_eq!(idx.lookup_before(1000), Some((200, 9)));
        idx.trim().unwrap();
        drop(idx);
        let idx = TimeIndex::load(&path, 0).unwrap();
        assert_eq!(idx.last_entry(), Some((200, 9)));
        idx.delete().unwrap();
        assert!(!path.exists());
    }

    /// Descriptors of this process open on files under `dir`. Other tests run in
    /// parallel threads of the same process, so counting all of /proc/self/fd would
    /// race; nothing else opens files in this test's own temp dir.
    fn fds_into(dir: &Path) -> usize {
        let dir = dir.canonicalize().unwrap();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(&dir))
            .count()
    }

    #[test]
    fn segments_hold_one_descriptor_each() {
        use crate::storage::log_tests::{append, read_all, small_config};
        use crate::storage::Log;

        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(fds_into(dir.path()), 1, "a fresh segment: its .log only");
        // Rolls resize and trim the indexes, which reopens them by path.
        for i in 0..40 {
            append(&mut log, 3, 1000 + i * 10);
        }
        let segments = log.segment_count();
        assert!(segments > 3, "{segments} segments");
        assert_eq!(fds_into(dir.path()), segments);
        let before = read_all(&log);
        assert_eq!(before.len(), 120);
        log.close().unwrap();
        assert_eq!(fds_into(dir.path()), 0);

        // Reopened: the trimmed indexes written through fd-less mappings load and are
        // used for lookups, and still no index keeps a descriptor.
        let log = Log::open(dir.path(), small_config(), 0).unwrap();
        assert_eq!(log.segment_count(), segments);
        assert_eq!(fds_into(dir.path()), segments);
        assert_eq!(read_all(&log), before);
        let found = log.read(61, 1, i64::MAX, true).unwrap();
        assert!(found.region.is_some());
    }
}
