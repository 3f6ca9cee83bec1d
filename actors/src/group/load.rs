//! Rebuilding a coordinator's groups by reading its `__consumer_offsets` partition
//! from the log start to the high watermark, oldest record first (later records and
//! tombstones win, as compaction would decide).

use crate::log::messages as logm;
use crate::supervisor::PartitionRoute;
use std::time::Duration;
use troupe::group::{GroupConfig, GroupCoordinatorState};
use troupe::storage::{decode_records, BatchHeader};

/// How much to read per round trip to the `Log` actor.
const READ_CHUNK: usize = 4 << 20;
/// How long a coordinator waits for its partition to come online before retrying.
const ONLINE_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("partition did not come online within {0:?}")]
    Offline(Duration),
    #[error("log actor unavailable: {0}")]
    Mailbox(String),
    #[error("reading the log: {0}")]
    Storage(#[from] troupe::storage::StorageError),
    #[error("reading a file region: {0}")]
    Io(#[from] std::io::Error),
}

/// What a load found, for the log line.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub records: usize,
    pub skipped: usize,
    pub end_offset: i64,
}

pub async fn load_partition(
    route: PartitionRoute,
    config: GroupConfig,
) -> Result<(GroupCoordinatorState, LoadStats), LoadError> {
    let mut watch = route.state.clone();
    let online = tokio::time::timeout(ONLINE_WAIT, watch.wait_for(|s| s.online && s.is_leader))
        .await
        .map_err(|_| LoadError::Offline(ONLINE_WAIT))?
        .map(|s| *s)
        .map_err(|_| LoadError::Offline(ONLINE_WAIT))?;
    // A new leader's whole log is its history: what it has beyond the high watermark
    // is committed as soon as its followers catch up, never truncated.
    let (start, end) = (online.log_start_offset, online.log_end_offset);
    let now = crate::now_ms();
    let mut state = GroupCoordinatorState::new(config);
    let mut stats = LoadStats {
        end_offset: end,
        ..Default::default()
    };
    let mut offset = start;
    while offset < end {
        let read = logm::Read {
            offset,
            max_bytes: READ_CHUNK,
            max_offset: end,
            min_one_batch: true,
        };
        let info = route
            .log
            .send(read)
            .await
            .map_err(|e| LoadError::Mailbox(e.to_string()))??;
        let Some(region) = info.region else { break };
        // pread of up to a few MB: off the event loop, like the Log actor's own IO.
        let bytes = actix_rt::task::spawn_blocking(move || region.read_to_vec())
            .await
            .map_err(|e| LoadError::Io(std::io::Error::other(e.to_string())))??;
        let before = offset;
        let mut at = 0;
        while let Some(h) = BatchHeader::parse(&bytes[at..]) {
            let size = h.total_size();
            if size == 0 || at + size > bytes.len() {
                break;
            }
            let batch = &bytes[at..at + size];
            at += size;
            if h.next_offset() <= offset {
                continue;
            }
            offset = h.next_offset();
            if h.is_control() {
                continue;
            }
            let records = match decode_records(batch) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(base_offset = h.base_offset, error = %e, "skipping undecodable batch in __consumer_offsets");
                    stats.skipped += h.record_count.max(0) as usize;
                    continue;
                }
            };
            for r in records.into_iter().filter(|r| r.offset >= start) {
                let Some(key) = r.key else {
                    stats.skipped += 1;
                    continue;
                };
                match state.load_record(&key, r.value.as_deref(), now) {
                    Ok(()) => stats.records += 1,
                    Err(e) => {
                        tracing::warn!(offset = r.offset, error = %e, "skipping record in __consumer_offsets");
                        stats.skipped += 1;
                    }
                }
            }
        }
        if offset == before {
            break;
        }
    }
    Ok((state, stats))
}
