//! Opening a partition directory: find the segments, trust what the recovery point
//! vouches for, scan the rest, and cut off whatever a crash left half-written.
//!
//! * Segments wholly below the recovery point are trusted: only their index files are
//!   sanity-checked (whole entries, increasing, inside the log), and rebuilt from the
//!   batch headers if missing or wrong.
//! * The segment holding the recovery point and every later one are scanned batch by
//!   batch (header checks for all, CRC-32C for batches at or past the recovery point),
//!   and their indexes rebuilt. The active segment after a clean close is the
//!   exception: its trimmed indexes are trusted up to the recovery point, and the scan
//!   resumes at the last index entry below it. At the first torn or corrupt batch the file is
//!   truncated there and all later segments are deleted: a crash only ever tears the
//!   tail, so anything after a bad batch was never acknowledged as durable.

use std::fs;
use std::path::Path;

use crate::storage::checkpoint::{
    read_offset, write_offset, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::storage::config::LogConfig;
use crate::storage::epoch::LeaderEpochCache;
use crate::storage::error::{IoContext, StorageError};
use crate::storage::log::Log;
use crate::storage::segment::{segment_paths, LogSegment};

/// Base offsets of the `.log` files in `dir`, sorted; stray temp files and index files
/// without a `.log` are removed on the way (leftovers of a crash).
fn scan_dir(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        let base = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten();
        match (base, ext) {
            (Some(b), "log") => bases.push(b),
            (Some(b), "index" | "timeindex") => indexes.push((b, path)),
            (_, "tmp") => fs::remove_file(&path).at(&path)?,
            _ => {}
        }
    }
    bases.sort_unstable();
    for (b, path) in indexes {
        if bases.binary_search(&b).is_err() {
            fs::remove_file(&path).at(&path)?;
        }
    }
    Ok(bases)
}

pub(crate) fn open_log(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, StorageError> {
    fs::create_dir_all(dir).at(dir)?;
    // A log cleaner swap cut short by a crash is finished (or undone) first.
    crate::storage::compact_swap::recover_swaps(dir)?;
    let bases = scan_dir(dir)?;
    let checkpointed_rp = read_offset(&dir.join(RECOVERY_POINT_FILE))?.unwrap_or(0);
    let checkpointed_lso = read_offset(&dir.join(LOG_START_OFFSET_FILE))?.unwrap_or(0);

    let mut segments: Vec<LogSegment> = Vec::with_capacity(bases.len().max(1));
    let mut truncated = 0u64;
    for (i, &base) in bases.iter().enumerate() {
        match bases.get(i + 1) {
            Some(&next) if next <= checkpointed_rp => {
                segments.push(LogSegment::open_trusted(dir, base, next, &config, now_ms)?);
            }
            next => {
                let (mut seg, cut) = if next.is_none() {
                    LogSegment::open_active(dir, base, &config, now_ms, checkpointed_rp)?
                } else {
                    LogSegment::recover(dir, base, &config, now_ms, checkpointed_rp)?
                };
                truncated += cut;
                let overlaps = next.is_some_and(|&n| seg.meta.next_offset > n);
                if cut > 0 || overlaps || next.is_none() {
                    if cut > 0 {
                        tracing::warn!(segment = %seg.log_path().display(), bytes = cut, "truncated torn or corrupt tail of segment");
                    }
                    for &later in &bases[i + 1..] {
                        tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after corrupt tail");
                        for path in segment_paths(dir, later) {
                            fs::remove_file(&path).or_else(ignore_missing).at(&path)?;
                        }
                    }
                    segments.push(seg);
                    break;
                }
                seg.close_indexes()?;
                segments.push(seg);
            }
        }
    }
    if segments.is_empty() {
        segments.push(LogSegment::create(
            dir,
            checkpointed_lso.max(0),
            &config,
            now_ms,
        )?);
    }
    let log_end_offset = segments.last().map_or(0, |s| s.meta.next_offset);
    let log_start_offset = checkpointed_lso.max(segments[0].meta.base_offset);
    if log_start_offset > log_end_offset {
        // The checkpoint says the log starts past its data (e.g. the tail was lost):
        // keep nothing and continue from the log start offset, as Kafka does.
        for seg in segments.drain(..) {
            seg.delete()?;
        }
        segments.push(LogSegment::create(dir, log_start_offset, &config, now_ms)?);
    }
    let log_end_offset = segments.last().map_or(0, |s| s.meta.next_offset);
    let recovery_point = checkpointed_rp.clamp(0, log_end_offset);
    if recovery_point != checkpointed_rp {
        write_offset(&dir.join(RECOVERY_POINT_FILE), recovery_point)?;
    }
    let mut epochs = LeaderEpochCache::load(dir)?;
    epochs.truncate_from_end(log_end_offset)?;
    epochs.truncate_from_start(log_start_offset)?;
    tracing::info!(
        dir = %dir.display(),
        segments = segments.len(),
        log_start_offset,
        log_end_offset,
        recovery_point,
        truncated_bytes = truncated,
        "recovered log"
    );
    let mut log = Log {
        dir: dir.to_path_buf(),
        config,
        segments,
        log_start_offset,
        recovery_point,
        epochs,
        unflushed_messages: 0,
        flush_times: Vec::new(),
        last_flush_ms: now_ms,
        tail: Default::default(),
    };
    // Epoch entries of appends after the recovery point may not have reached the
    // checkpoint file (it is written at flush): their batch headers carry them.
    log.rebuild_epochs_from(recovery_point)?;
    Ok(log)
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}
