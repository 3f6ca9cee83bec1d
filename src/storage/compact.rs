//! Log compaction (`cleanup.policy=compact`), with Kafka's log cleaner semantics.
//!
//! A pass over a partition's log:
//!
//! 1. **Plan** ([`Log::plan_clean`]). The cleanable range is the closed segments (never
//!    the active one) up to the first *uncleanable* segment: one that ends past the
//!    caller's bound (the high watermark) or holds a record younger than
//!    `min.compaction.lag.ms`. The cleaner checkpoint splits it into a *clean* head
//!    and a *dirty* tail. A pass is due when `dirty / (clean + dirty) >=
//!    min.cleanable.dirty.ratio`, when the oldest dirty batch is older than
//!    `max.compaction.lag.ms`, or when a kept tombstone's delete horizon has passed.
//! 2. **Map**. The dirty tail is read once to build the offset map: key → offset of its
//!    latest record. The map is bounded in bytes; when it fills, the pass cleans up to
//!    where it got and the rest stays dirty for the next pass.
//! 3. **Rewrite**. Every segment from the log start to the end of the mapped range is
//!    filtered (see `compact_records.rs`): a record survives unless a later record of
//!    its key is in the map, it has no key, or it is a tombstone whose batch's delete
//!    horizon (KIP-534: set to `now + delete.retention.ms` the first time the cleaner
//!    rewrites the batch) has passed. Offsets never change; batches keep their last
//!    offset. Consecutive segments whose original sizes fit in `segment.bytes` (and
//!    whose offsets fit an index) are merged into one cleaned segment, written to
//!    `.cleaned` files and swapped in atomically (`compact_swap.rs`).
//! 4. **Checkpoint**: the end of the mapped range and the earliest pending horizon.
//!
//! The work is split into bounded steps ([`Log::clean_step`]) so the actor that owns the
//! log can serve appends and fetches between them; each step first checks that the
//! segments it planned on are still there and unchanged (retention, DeleteRecords or a
//! follower truncation may have run), and abandons the pass otherwise.
//!
//! Idempotent producers: a batch whose records all go is dropped, unless it is the last
//! data batch of a producer the partition still tracks (`producer_last_batch`, taken
//! from the partition's producer state when the pass is planned). That one stays as a
//! bare 61-byte header, so the producer's sequence and epoch can be rebuilt from the
//! log: one header per live producer, as in Kafka, not one per batch ever written.
//!
//! Compressed batches are decompressed (`codec.rs`: gzip, snappy, lz4, zstd), filtered
//! like any other, and written back with their own codec, as Kafka's cleaner does.
//!
//! Not done here, and documented as such: control batches (transaction markers) and
//! transactional batches are kept whole and do not feed the map (the storage layer has
//! no transaction index), so their records are never removed; so is a compressed batch
//! whose records do not decompress (logged). Since such a batch may hold any key, a
//! tombstone above one is never dropped (the value below would come back): the pass
//! pins every tombstone after the first such batch. Tombstones older than every such
//! batch still go.

use std::collections::HashMap;
use std::time::Instant;

use crate::storage::compact_records::{
    filter_batch, is_kept_whole, parse_records, record_section, FilterContext, FilterOutcome,
    Filtered, OffsetMap,
};
use crate::storage::compact_swap::{
    commit_swap, delete_cleaned, finish_swap, read_checkpoint, write_checkpoint, BatchReader,
    CleanedSegment,
};
use crate::storage::error::StorageError;
use crate::storage::log::Log;
use crate::storage::segment::{max_segment_bytes, LogSegment};

/// How a pass is asked for.
#[derive(Clone, Debug)]
pub struct CleanOptions {
    pub now_ms: i64,
    /// Exclusive bound: only segments wholly below it are cleaned (the high watermark;
    /// `i64::MAX` on a single node, where every closed segment is committed).
    pub max_offset: i64,
    /// Memory budget of the offset map (`log.cleaner.dedupe.buffer.size`).
    pub map_bytes: usize,
    /// Clean whatever the dirty ratio says (tests, tools).
    pub force: bool,
    /// Producer id → last offset of its last data batch, for every producer the
    /// partition still tracks (`ProducerStateManager::last_batch_offsets`). That batch
    /// is kept even when all its records go; other emptied batches are dropped. Empty
    /// (the default): no producer is tracked.
    pub producer_last_batch: HashMap<i64, i64>,
}

impl CleanOptions {
    pub fn new(now_ms: i64) -> CleanOptions {
        CleanOptions {
            now_ms,
            max_offset: i64::MAX,
            map_bytes: 128 << 20,
            force: false,
            producer_last_batch: HashMap::new(),
        }
    }
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanerStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub batches_read: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Records without a key, written before the topic became compacted.
    pub keyless_removed: u64,
    pub segments_before: usize,
    pub segments_after: usize,
    pub keys_in_map: usize,
    /// The log is clean below this offset now (the new cleaner checkpoint).
    pub clean_offset: i64,
    pub elapsed_ms: u64,
}

/// Result of one [`Log::clean_step`].
#[derive(Debug)]
pub enum CleanStep {
    /// More work remains: call again.
    More,
    Done(CleanerStats),
    /// The log changed under the pass (segments deleted or truncated); nothing was
    /// lost, the next pass starts over.
    Abandoned,
}

/// A pass in progress. Segments are named by base offset, never by position, since
/// each swapped group shrinks the segment list.
pub struct CleanPass {
    now_ms: i64,
    /// Horizon given to tombstones first rewritten in this pass.
    new_horizon_ms: i64,
    /// `(base offset, size)` of the segments the pass covers, as planned (updated as
    /// groups are swapped in).
    snapshot: Vec<(i64, u64)>,
    map: OffsetMap,
    dirty_from: i64,
    /// End of the mapped range; set when the map phase ends.
    map_end: i64,
    /// Offset of the first segment the pass must not touch.
    uncleanable_from: i64,
    phase: Phase,
    /// Earliest delete horizon of the tombstones the pass kept.
    next_horizon_ms: i64,
    /// See [`CleanOptions::producer_last_batch`].
    producer_last_batch: HashMap<i64, i64>,
    /// The rewrite has passed a data batch it keeps whole (compressed, transactional):
    /// its unreadable records may hold any key, so tombstones after it must stay.
    pin_tombstones: bool,
    stats: CleanerStats,
    started: Instant,
}

enum Phase {
    /// Reading the dirty tail into the map: segment `base`, at byte `pos`.
    Map { base: i64, pos: u64 },
    /// Rewriting group `group` (ranges of `snapshot` bases); `seg` is the next segment
    /// of the group to read, at `pos`.
    Rewrite {
        groups: Vec<Vec<i64>>,
        group: usize,
        seg: usize,
        pos: u64,
        /// Boxed: one pass holds one, and it keeps the enum small.
        out: Option<Box<CleanedSegment>>,
    },
}

impl CleanPass {
    /// Where the pass stands, for logs and tests.
    pub fn stats(&self) -> &CleanerStats {
        &self.stats
    }
}

impl Log {
    /// Decide whether a cleaning pass is due (see the module docs) and plan it.
    pub fn plan_clean(&self, opts: CleanOptions) -> Result<Option<CleanPass>, StorageError> {
        if !self.config.cleanup_compact {
            return Ok(None);
        }
        let closed = self.segments.len() - 1;
        let lag = self.config.min_compaction_lag_ms;
        let too_young = |s: &LogSegment| {
            let ts = if s.meta.max_timestamp >= 0 {
                s.meta.max_timestamp
            } else {
                s.meta.created_ms
            };
            lag > 0 && opts.now_ms.saturating_sub(ts) < lag
        };
        let uncleanable = self.segments[..closed]
            .iter()
            .position(|s| s.meta.next_offset > opts.max_offset || too_young(s))
            .unwrap_or(closed);
        if uncleanable == 0 {
            return Ok(None);
        }
        let segs = &self.segments[..uncleanable];
        let uncleanable_from = self.segments[uncleanable].meta.base_offset;
        let (checkpoint, horizon) = read_checkpoint(&self.dir)?;
        let checkpoint = if checkpoint > self.log_end_offset() {
            0 // the log was truncated below it: trust nothing
        } else {
            checkpoint
        };
        let dirty_from = checkpoint
            .max(self.log_start_offset)
            .max(segs[0].meta.base_offset)
            .min(uncleanable_from);
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for s in segs {
            if s.meta.next_offset <= dirty_from {
                clean_bytes += s.meta.size;
            } else {
                dirty_bytes += s.meta.size;
            }
        }
        // The first dirty batch; cleaned segments may end in an offset gap, so it can
        // sit in a later segment than the one holding `dirty_from`.
        let mut start = None;
        let mut overdue = false;
        for s in segs.iter().filter(|s| s.meta.next_offset > dirty_from) {
            if let Some((pos, h)) = s.find_batch(dirty_from)? {
                start = Some((s.meta.base_offset, pos));
                let ts = if h.max_timestamp >= 0 {
                    h.max_timestamp
                } else {
                    s.meta.created_ms
                };
                overdue = opts.now_ms.saturating_sub(ts) > self.config.max_compaction_lag_ms;
                break;
            }
        }
        let total = clean_bytes + dirty_bytes;
        let ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let due = opts.force
            || (dirty_bytes > 0 && (ratio >= self.config.min_cleanable_dirty_ratio || overdue))
            || (horizon <= opts.now_ms && clean_bytes > 0);
        if !due || total == 0 {
            return Ok(None);
        }
        tracing::debug!(dir = %self.dir.display(), dirty_from, uncleanable_from, clean_bytes, dirty_bytes, ratio, "planning log cleaning");
        let mut pass = CleanPass {
            now_ms: opts.now_ms,
            new_horizon_ms: opts
                .now_ms
                .saturating_add(self.config.delete_retention_ms.max(0)),
            snapshot: segs
                .iter()
                .map(|s| (s.meta.base_offset, s.meta.size))
                .collect(),
            map: OffsetMap::new(opts.map_bytes),
            dirty_from,
            map_end: dirty_from,
            uncleanable_from,
            phase: Phase::Map {
                base: uncleanable_from,
                pos: 0,
            },
            next_horizon_ms: i64::MAX,
            producer_last_batch: opts.producer_last_batch,
            pin_tombstones: false,
            stats: CleanerStats {
                segments_before: segs.len(),
                ..CleanerStats::default()
            },
            started: Instant::now(),
        };
        match start {
            Some((base, pos)) => pass.phase = Phase::Map { base, pos },
            None => self.start_rewrite(&mut pass),
        }
        Ok(Some(pass))
    }

    /// Do about `budget` bytes of the pass's reading and writing.
    pub fn clean_step(
        &mut self,
        pass: &mut CleanPass,
        budget: u64,
    ) -> Result<CleanStep, StorageError> {
        if !self.snapshot_holds(pass) {
            tracing::info!(dir = %self.dir.display(), "log changed during cleaning; pass abandoned");
            self.abandon_clean(pass)?;
            return Ok(CleanStep::Abandoned);
        }
        let step = match pass.phase {
            Phase::Map { .. } => self.map_step(pass, budget),
            Phase::Rewrite { .. } => self.rewrite_step(pass, budget),
        };
        match step {
            Ok(true) => {
                pass.stats.clean_offset = pass.map_end;
                pass.stats.keys_in_map = pass.map.len();
                pass.stats.segments_after = pass.snapshot.len();
                pass.stats.elapsed_ms = pass.started.elapsed().as_millis() as u64;
                write_checkpoint(&self.dir, pass.map_end, pass.next_horizon_ms)?;
                tracing::info!(dir = %self.dir.display(), stats = ?pass.stats, "cleaned log");
                Ok(CleanStep::Done(pass.stats.clone()))
            }
            Ok(false) => Ok(CleanStep::More),
            Err(e) => {
                // The old segments are intact until a swap commits; drop the temp files.
                let _ = self.abandon_clean(pass);
                Err(e)
            }
        }
    }

    /// Run a whole pass if one is due; `None` when none was.
    pub fn clean(&mut self, opts: CleanOptions) -> Result<Option<CleanerStats>, StorageError> {
        self.tail.lock().clear();
        let Some(mut pass) = self.plan_clean(opts)? else {
            return Ok(None);
        };
        loop {
            match self.clean_step(&mut pass, u64::MAX)? {
                CleanStep::More => {}
                CleanStep::Done(stats) => return Ok(Some(stats)),
                CleanStep::Abandoned => return Ok(None),
            }
        }
    }

    /// Drop a pass, deleting the `.cleaned` files it was writing.
    pub fn abandon_clean(&self, pass: &mut CleanPass) -> Result<(), StorageError> {
        if let Phase::Rewrite { out, .. } = &mut pass.phase {
            if let Some(out) = out.take() {
                return (*out).abort();
            }
        }
        Ok(())
    }

    /// Segments the pass planned on still exist with the same sizes.
    fn snapshot_holds(&self, pass: &CleanPass) -> bool {
        let n = pass.snapshot.len();
        self.segments.len() > n
            && self.segments[..n]
                .iter()
                .zip(&pass.snapshot)
                .all(|(s, &(base, size))| s.meta.base_offset == base && s.meta.size == size)
    }

    fn segment_index(&self, base: i64) -> usize {
        self.segments.partition_point(|s| s.meta.base_offset < base)
    }

    fn map_step(&mut self, pass: &mut CleanPass, budget: u64) -> Result<bool, StorageError> {
        let Phase::Map { mut base, mut pos } = pass.phase else {
            return Ok(true);
        };
        let mut spent = 0u64;
        while base < pass.uncleanable_from {
            let seg = &self.segments[self.segment_index(base)];
            let mut reader = BatchReader::new(seg.file(), seg.log_path(), seg.meta.size);
            while let Some((h, bytes)) = reader.batch_at(pos)? {
                if spent >= budget {
                    pass.phase = Phase::Map { base, pos };
                    return Ok(false);
                }
                let size = bytes.len() as u64;
                // A batch whose records do not decompress feeds nothing (the rewrite
                // keeps it whole and pins the tombstones above it).
                let section = match h.last_offset() >= pass.dirty_from && !is_kept_whole(&h) {
                    true => record_section(bytes, &h).ok(),
                    false => None,
                };
                // Records that do not parse feed nothing either (kept whole, as above).
                let records = section
                    .as_ref()
                    .and_then(|s| parse_records(s, &h).ok().map(|r| (s.len(), r)));
                if let Some((section_len, records)) = records {
                    // Budget check per batch: a key is no bigger than its records.
                    let worst =
                        section_len + h.record_count.max(0) as usize * OffsetMap::ENTRY_OVERHEAD;
                    if !pass.map.is_empty() && pass.map.would_overflow(worst) {
                        pass.map_end = h.base_offset.max(pass.dirty_from);
                        self.start_rewrite(pass);
                        return Ok(false);
                    }
                    // Decompressed bytes count against the step's budget too.
                    spent += (section_len as u64).saturating_sub(bytes.len() as u64);
                    for r in records {
                        let offset = h.base_offset + r.offset_delta;
                        if let (Some(k), true) = (r.key, offset >= pass.dirty_from) {
                            pass.map.put(k, offset);
                        }
                    }
                }
                pass.stats.bytes_read += size;
                spent += size;
                pos += size;
            }
            base = self.segments[self.segment_index(base) + 1].meta.base_offset;
            pos = 0;
        }
        pass.map_end = pass.uncleanable_from;
        self.start_rewrite(pass);
        Ok(false)
    }

    /// Group the segments below the mapped end and switch the pass to rewriting.
    fn start_rewrite(&self, pass: &mut CleanPass) {
        let max_bytes = max_segment_bytes(&self.config);
        let mut groups: Vec<Vec<i64>> = Vec::new();
        let mut group_bytes = 0u64;
        for (i, &(base, size)) in pass.snapshot.iter().enumerate() {
            if base >= pass.map_end {
                break;
            }
            let next = self.segments[i + 1].meta.base_offset;
            let fits = groups.last().is_some_and(|g| {
                group_bytes + size <= max_bytes && next - 1 - g[0] <= i32::MAX as i64
            });
            if fits {
                groups.last_mut().expect("fits implies a group").push(base);
                group_bytes += size;
            } else {
                groups.push(vec![base]);
                group_bytes = size;
            }
        }
        pass.phase = Phase::Rewrite {
            groups,
            group: 0,
            seg: 0,
            pos: 0,
            out: None,
        };
    }

    fn rewrite_step(&mut self, pass: &mut CleanPass, budget: u64) -> Result<bool, StorageError> {
        let mut spent = 0u64;
        loop {
            let Phase::Rewrite {
                groups,
                group,
                seg,
                pos,
                out,
            } = &mut pass.phase
            else {
                return Ok(true);
            };
            let Some(bases) = groups.get(*group) else {
                return Ok(true);
            };
            if out.is_none() {
                let input: u64 = bases.iter().map(|&b| self.segment_size(b)).sum();
                *out = Some(Box::new(CleanedSegment::create(
                    &self.dir,
                    bases[0],
                    input,
                    self.config.index_interval_bytes,
                )?));
            }
            let writer = out.as_mut().expect("created above");
            if let Some(&base) = bases.get(*seg) {
                let s = &self.segments[self.segment_index(base)];
                let mut reader = BatchReader::new(s.file(), s.log_path(), s.meta.size);
                while let Some((h, bytes)) = reader.batch_at(*pos)? {
                    if spent >= budget {
                        return Ok(false);
                    }
                    let cx = FilterContext {
                        map: &pass.map,
                        now_ms: pass.now_ms,
                        new_horizon_ms: pass.new_horizon_ms,
                        pin_tombstones: pass.pin_tombstones,
                        producer_last_batch: &pass.producer_last_batch,
                    };
                    let (what, outcome) = filter_batch(bytes, &h, &cx)?;
                    // Control batches hold markers, never keyed data: they pin nothing.
                    pass.pin_tombstones |= outcome.opaque;
                    let size = bytes.len() as u64;
                    match what {
                        Filtered::Keep => writer.append(bytes, &h)?,
                        Filtered::Rewrite(new) => {
                            let nh = crate::storage::batch::BatchHeader::parse(&new)
                                .expect("encoded batches have a full header");
                            writer.append(&new, &nh)?;
                        }
                        Filtered::Drop => {}
                    }
                    add_outcome(&mut pass.stats, &mut pass.next_horizon_ms, outcome);
                    pass.stats.batches_read += 1;
                    pass.stats.bytes_read += size;
                    spent += size;
                    *pos += size;
                }
                *seg += 1;
                *pos = 0;
                continue;
            }
            let bases = bases.clone();
            let writer = out.take().expect("created above");
            pass.stats.bytes_written += writer.size;
            self.swap_in(&bases, *writer, &mut pass.snapshot)?;
            *group += 1;
            *seg = 0;
        }
    }

    fn segment_size(&self, base: i64) -> u64 {
        self.segments[self.segment_index(base)].meta.size
    }

    /// Replace the segments `bases` (consecutive) by the finished cleaned segment.
    fn swap_in(
        &mut self,
        bases: &[i64],
        cleaned: CleanedSegment,
        snapshot: &mut Vec<(i64, u64)>,
    ) -> Result<(), StorageError> {
        self.tail.lock().clear();
        let first = self.segment_index(bases[0]);
        let last = first + bases.len();
        let end_offset = self.segments[last].meta.base_offset;
        let base = cleaned.base_offset;
        if let Err(e) = cleaned.finish() {
            delete_cleaned(&self.dir, base)?;
            return Err(e);
        }
        commit_swap(&self.dir, base)?;
        let created = self.segments[first].meta.created_ms;
        for old in self.segments.drain(first..last) {
            old.delete()?;
        }
        finish_swap(&self.dir, base)?;
        let mut seg = LogSegment::open_trusted(&self.dir, base, end_offset, &self.config, created)?;
        seg.meta.created_ms = created;
        let size = seg.meta.size;
        self.segments.insert(first, seg);
        let at = snapshot.partition_point(|&(b, _)| b < base);
        snapshot.splice(at..at + bases.len(), [(base, size)]);
        Ok(())
    }
}

fn add_outcome(stats: &mut CleanerStats, next_horizon: &mut i64, o: FilterOutcome) {
    stats.records_removed += o.records_removed;
    stats.tombstones_removed += o.tombstones_removed;
    stats.keyless_removed += o.keyless_removed;
    if let Some(h) = o.pending_horizon {
        *next_horizon = (*next_horizon).min(h);
    }
}
