//! Per-partition idempotent producer state: for each producer id, its epoch and the
//! sequence ranges and offsets of its last few batches.
//!
//! The leader checks every batch that carries a producer id before appending it:
//! a batch already written (same epoch, same sequence range, still cached) is a retry
//! and is answered with its original offsets instead of being written twice; a gap in
//! the sequence, an old epoch or an unknown producer are errors the client reacts to
//! (it resends in order, or bumps its epoch). The state is a pure function of the
//! batch headers in the log, so replaying headers (after a snapshot) rebuilds it on any
//! replica: a follower that becomes leader has it too.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::storage::BatchHeader;

/// How many batches per producer are remembered for duplicate detection. Clients keep
/// at most this many requests in flight per connection with idempotence on.
pub const MAX_CACHED_BATCHES: usize = 5;

/// The producer epoch of a batch without a producer (and of an unknown producer).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// Where one written batch of a producer landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// Batch max timestamp; producer expiry counts from the newest one.
    pub max_timestamp: i64,
}

/// One producer id's state in one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`MAX_CACHED_BATCHES`]. Empty after an epoch bump by a
    /// control batch, when any sequence is then accepted only from 0.
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock time of the last write, for `producer.id.expiration.ms`.
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    /// Offset of the last data batch, or -1 when none is cached.
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
}

/// The idempotence fields of a batch about to be appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// `first_seq + last_offset_delta`, wrapping past `i32::MAX` to 0 as clients do.
    pub last_seq: i32,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl ProducerBatch {
    pub fn from_header(h: &BatchHeader) -> ProducerBatch {
        ProducerBatch {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: increment_seq(h.base_sequence, h.last_offset_delta),
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
        }
    }
}

/// Sequence numbers wrap from `i32::MAX` to 0.
/// Computed in i64, so no input (even a negative delta from a forged header) overflows.
pub fn increment_seq(seq: i32, by: i32) -> i32 {
    let n = i64::from(seq) + i64::from(by);
    if n > i64::from(i32::MAX) {
        (n - i64::from(i32::MAX) - 1) as i32
    } else {
        n as i32
    }
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == increment_seq(last, 1)
}

/// What to do with a checked batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New data in sequence: append it, then [`ProducerStateManager::record`] it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets, write nothing.
    Duplicate { first_offset: i64, last_offset: i64 },
}

/// Why a batch was refused; each maps to the Kafka error code clients act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// The batch's epoch is older than the producer's: a zombie instance.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// A gap or a reordering in the sequence (or a retry too old to be cached).
    #[error("producer {producer_id} epoch {epoch}: sequence {got} follows {last:?}, expected the next one")]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        got: i32,
        last: Option<i32>,
    },
    /// No state for this producer (new, expired, or removed with retention) and the
    /// batch does not start a sequence at 0.
    #[error("producer {producer_id} is unknown here and its batch starts at sequence {first_seq}, not 0")]
    UnknownProducerId { producer_id: i64, first_seq: i32 },
    /// Transactions are not served yet; transactional batches cannot be appended.
    #[error("transactional batches are not supported")]
    Transactional,
}

impl ProducerError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ProducerError::InvalidProducerEpoch { .. } => 47,
            ProducerError::OutOfOrderSequence { .. } => 45,
            ProducerError::UnknownProducerId { .. } => 59,
            // INVALID_TXN_STATE: the client has no transaction this broker knows of.
            ProducerError::Transactional => 48,
        }
    }
}

/// All producers of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Decide whether a batch may be appended (as the leader). Batches without a
    /// producer id always may.
    pub fn check(&self, b: &ProducerBatch) -> Result<Verdict, ProducerError> {
        if b.producer_id < 0 {
            return Ok(Verdict::Append);
        }
        if b.is_transactional || b.is_control {
            return Err(ProducerError::Transactional);
        }
        let entry = self.producers.get(&b.producer_id);
        let current = entry.map_or(NO_PRODUCER_EPOCH, |e| e.epoch);
        if entry.is_some() && b.epoch < current {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id: b.producer_id,
                epoch: b.epoch,
                current,
            });
        }
        if let Some(e) = entry.filter(|e| e.epoch == b.epoch) {
            if let Some(dup) = e
                .batches
                .iter()
                .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
            {
                return Ok(Verdict::Duplicate {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                });
            }
        }
        if b.epoch != current {
            // A new epoch (or a producer we have no state for) must start at 0.
            if b.first_seq == 0 {
                return Ok(Verdict::Append);
            }
            return Err(match entry {
                Some(_) => ProducerError::OutOfOrderSequence {
                    producer_id: b.producer_id,
                    epoch: b.epoch,
                    got: b.first_seq,
                    last: None,
                },
                None => ProducerError::UnknownProducerId {
                    producer_id: b.producer_id,
                    first_seq: b.first_seq,
                },
            });
        }
        // Same epoch. With no cached batch (state rebuilt after retention removed the
        // data) the next sequence is unknown: accept, as Kafka does.
        let last = entry.and_then(ProducerEntry::last_seq);
        match last {
            None => Ok(Verdict::Append),
            Some(l) if in_sequence(l, b.first_seq) => Ok(Verdict::Append),
            Some(_) => Err(ProducerError::OutOfOrderSequence {
                producer_id: b.producer_id,
                epoch: b.epoch,
                got: b.first_seq,
                last,
            }),
        }
    }

    /// Remember a batch as written at its assigned offsets: after a leader append, on a
    /// follower, and when replaying the log. Performs no checks.
    pub fn record(&mut self, h: &BatchHeader, now_ms: i64) {
        if h.producer_id < 0 {
            return;
        }
        let b = ProducerBatch::from_header(h);
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: b.epoch,
                batches: VecDeque::new(),
                last_timestamp: now_ms,
            });
        if b.epoch != entry.epoch {
            entry.epoch = b.epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = entry.last_timestamp.max(now_ms).max(h.max_timestamp);
        if b.is_control {
            return;
        }
        if entry.batches.len() == MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
        });
    }

    /// The log start offset moved (retention, DeleteRecords): producers whose last
    /// batch is gone are forgotten; cached batches below it are dropped.
    pub fn evict_below(&mut self, log_start_offset: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.batches.retain(|m| m.last_offset >= log_start_offset);
            !e.batches.is_empty()
        });
        before - self.producers.len()
    }

    /// Drop producers idle for longer than `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// `(producer id, last offset of its last data batch)` of every producer with one
    /// cached: the batches the log cleaner must keep, even emptied, so this state can be
    /// rebuilt from the log.
    pub fn last_batch_offsets(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(&id, e)| e.batches.back().map(|b| (id, b.last_offset)))
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        ProducerStateManager {
            producers: entries.into_iter().collect(),
        }
    }
}
