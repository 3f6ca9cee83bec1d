//! Record-level work of the log cleaner: walk the records of a v2 batch as byte slices
//! (no copies, no allocation per field; a compressed batch's records are decompressed
//! once, see `codec.rs`), decide which survive, and rebuild the batch from the
//! survivors, compressed again with the batch's own codec.
//!
//! A rebuilt batch keeps its base offset, `lastOffsetDelta`, producer id, epoch and
//! base sequence, so the batch's last offset (and with it the log end offset and the
//! producer's last sequence) is what it was; only the records in between go, leaving
//! gaps in offsets that readers step over. Record bytes after the offset delta (key,
//! value, headers) are copied verbatim.

use crate::storage::codec;
use crate::storage::records::put_varlong;
use std::borrow::Cow;
use std::collections::HashMap;

use crate::storage::batch::{compute_crc, BatchHeader, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use crate::storage::error::{RecordError, RecordRule, StorageError};

/// Attribute bit 6 (KIP-534): the batch's base timestamp holds the *delete horizon*,
/// the time after which the cleaner may drop its tombstones. Record timestamps stay
/// `baseTimestamp + timestampDelta`, so the deltas are rewritten when it is set.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// One record of a batch, as slices of the batch's bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord<'a> {
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    pub key: Option<&'a [u8]>,
    /// The value is null: a tombstone (a delete marker for `key`).
    pub tombstone: bool,
    /// The record's bytes from the key length to its end (key, value, headers).
    pub tail: &'a [u8],
}

/// Record bytes are read with the storage layer's shared cursor.
type Cursor<'a> = crate::storage::records::Reader<'a>;

/// Lengths on the wire are varlongs; a negative one is malformed here.
fn take<'a>(c: &mut Cursor<'a>, n: i64) -> Result<&'a [u8], StorageError> {
    let n = usize::try_from(n).map_err(|_| c.err("negative length"))?;
    c.take(n)
}

/// Largest records section a compressed batch may decompress to (Kafka has no such
/// bound; one keeps a small batch from expanding into unbounded memory here).
pub(crate) const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// The records section of `batch` (header included, described by `h`): the bytes after
/// the header as they are, or decompressed with the batch's codec.
pub(crate) fn record_section<'a>(
    batch: &'a [u8],
    h: &BatchHeader,
) -> Result<Cow<'a, [u8]>, StorageError> {
    record_section_within(batch, h, MAX_DECOMPRESSED_BYTES)
}

/// [`record_section`], failing if the records decompress to more than `limit` bytes.
pub(crate) fn record_section_within<'a>(
    batch: &'a [u8],
    h: &BatchHeader,
    limit: usize,
) -> Result<Cow<'a, [u8]>, StorageError> {
    let end = h.total_size().min(batch.len());
    let raw = batch.get(HEADER_SIZE..end).unwrap_or_default();
    match h.compression() {
        codec::NONE => Ok(Cow::Borrowed(raw)),
        c => codec::decompress(c, raw, limit).map(Cow::Owned),
    }
}

/// The `h.record_count` records of a batch's records section (see [`record_section`]).
pub(crate) fn parse_records<'a>(
    section: &'a [u8],
    h: &BatchHeader,
) -> Result<Vec<RawRecord<'a>>, StorageError> {
    let mut c = Cursor {
        buf: section,
        at: 0,
    };
    let mut out = Vec::with_capacity(h.record_count.clamp(0, 4096) as usize);
    for _ in 0..h.record_count.max(0) {
        let len = c.varlong()?;
        let body = take(&mut c, len)?;
        let mut r = Cursor { buf: body, at: 0 };
        take(&mut r, 1)?; // record attributes, unused in v2
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varlong()?;
        let tail_start = r.at;
        let key = r.nullable()?;
        let tombstone = r.nullable()?.is_none();
        out.push(RawRecord {
            timestamp_delta,
            offset_delta,
            key,
            tombstone,
            tail: &body[tail_start..],
        });
    }
    Ok(out)
}

/// Keys of compacted topics: Kafka rejects a record without one (INVALID_RECORD), naming
/// each keyless record of the batch.
/// Compressed batches are decompressed to look (CORRUPT_MESSAGE if that fails);
/// control batches carry markers, not keyed records.
pub(crate) fn check_keys(batch: &[u8], h: &BatchHeader) -> Result<(), StorageError> {
    if h.is_control() {
        return Ok(());
    }
    let section = record_section(batch, h)?;
    let errors: Vec<RecordError> = parse_records(&section, h)?
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| RecordError {
            batch_index: i as i32,
            message: "a compacted topic cannot accept a record without a key".into(),
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(StorageError::RecordsRejected {
        rule: RecordRule::Invalid,
        errors,
    })
}

/// The cleaner's offset map: for each key seen in the dirty section, the offset of its
/// latest record. Whole keys are stored (not a digest as Kafka's 16-byte MD5 slots),
/// so two keys can never be mistaken for each other; `max_bytes` bounds its memory.
#[derive(Debug, Default)]
pub(crate) struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    bytes: usize,
    pub max_bytes: usize,
}

impl OffsetMap {
    /// Estimated bytes one entry costs beside its key (box, offset, table slot).
    pub const ENTRY_OVERHEAD: usize = 48;

    pub fn new(max_bytes: usize) -> OffsetMap {
        OffsetMap {
            max_bytes,
            ..OffsetMap::default()
        }
    }

    pub fn put(&mut self, key: &[u8], offset: i64) {
        if let Some(o) = self.map.get_mut(key) {
            *o = (*o).max(offset);
            return;
        }
        self.bytes += key.len() + Self::ENTRY_OVERHEAD;
        self.map.insert(key.into(), offset);
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// Whether `extra` more bytes of keys would overflow the budget.
    pub fn would_overflow(&self, extra: usize) -> bool {
        self.bytes + extra > self.max_bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// What the cleaner does with one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Copy it as it is.
    Keep,
    /// Write these bytes instead (same offsets, fewer records or a new delete horizon).
    Rewrite(Vec<u8>),
    /// Nothing of it survives.
    Drop,
}

/// Counts of what one batch lost, and the horizon its surviving tombstones wait for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FilterOutcome {
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub keyless_removed: u64,
    /// Delete horizon of tombstones still in the batch (`None` if it keeps none).
    pub pending_horizon: Option<i64>,
    /// The batch was kept whole without reading its records (transactional, or its
    /// records would not decompress): any key may hide in it, so tombstones above it
    /// must stay.
    pub opaque: bool,
}

/// What [`filter_batch`] needs to know beside the batch itself.
pub(crate) struct FilterContext<'a> {
    /// Key → offset of its latest record in the mapped range.
    pub map: &'a OffsetMap,
    pub now_ms: i64,
    /// Horizon given to tombstones first rewritten in this pass.
    pub new_horizon_ms: i64,
    /// An opaque batch (see [`FilterOutcome::opaque`]) lies below this one. Its records
    /// were not read, so any of them may hold the key of a tombstone here: dropping
    /// the tombstone would bring that older value back. Tombstones stay while it holds.
    pub pin_tombstones: bool,
    /// Producer id → last offset of its last data batch, for the producers the
    /// partition still tracks. An emptied batch of a producer survives (as a bare
    /// header) only if it is that batch, so the producer's sequence and epoch can be
    /// rebuilt from the log; the producer's older emptied batches go, as Kafka's do.
    pub producer_last_batch: &'a HashMap<i64, i64>,
}

/// Apply the compaction rules to one batch. A record survives unless it has no key, a
/// later record of its key is in `map`, or it is a tombstone whose batch's delete
/// horizon has passed (`now_ms`) and that no batch kept whole lies below. A batch that
/// keeps a tombstone and has no horizon gets `new_horizon_ms`. Control and
/// transactional batches are kept whole (markers need transaction state this layer
/// lacks), and so is a compressed batch whose records do not decompress. A rewritten
/// compressed batch is compressed again with its own codec.
pub(crate) fn filter_batch(
    batch: &[u8],
    h: &BatchHeader,
    cx: &FilterContext,
) -> Result<(Filtered, FilterOutcome), StorageError> {
    let (map, now_ms, new_horizon_ms) = (cx.map, cx.now_ms, cx.new_horizon_ms);
    let mut out = FilterOutcome::default();
    if is_kept_whole(h) {
        out.opaque = !h.is_control();
        return Ok((Filtered::Keep, out));
    }
    let has_horizon = h.attributes & DELETE_HORIZON_FLAG != 0;
    let expired = has_horizon && now_ms >= h.base_timestamp;
    // A batch whose records cannot be read (they do not decompress, or are malformed:
    // possible in data written before a topic became compacted, or copied from a
    // leader) is kept whole rather than stalling every pass at it. Its CRC held when it
    // was appended and still does (the reader checks), so the bytes are the producer's.
    let section = record_section(batch, h);
    let parsed = match &section {
        Ok(s) => parse_records(s, h),
        Err(e) => Err(StorageError::CorruptMessage(e.to_string())),
    };
    let records = match parsed {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(
                base_offset = h.base_offset,
                codec = codec::name(h.compression()),
                error = %e,
                "log cleaner keeps a batch whole: its records cannot be read"
            );
            out.opaque = true;
            return Ok((Filtered::Keep, out));
        }
    };
    let mut kept = Vec::with_capacity(records.len());
    for r in &records {
        let offset = h.base_offset + r.offset_delta;
        let keep = match r.key {
            None => {
                out.keyless_removed += 1;
                false
            }
            Some(k) if map.get(k).is_some_and(|latest| latest > offset) => false,
            Some(_) if r.tombstone && expired && !cx.pin_tombstones => {
                out.tombstones_removed += 1;
                false
            }
            Some(_) => true,
        };
        if keep {
            kept.push(*r);
        } else {
            out.records_removed += 1;
        }
    }
    let keeps_tombstone = kept.iter().any(|r| r.tombstone);
    let needs_horizon = keeps_tombstone && !has_horizon;
    // A pinned tombstone past its horizon waits for the whole batch below to go, not
    // for a time: reporting its horizon would make every later check plan a pass.
    if keeps_tombstone && !(expired && cx.pin_tombstones) {
        out.pending_horizon = Some(if has_horizon {
            h.base_timestamp
        } else {
            new_horizon_ms
        });
    }
    // The last batch of a tracked producer stays, emptied, as a bare header, so the
    // producer's last sequence and epoch survive in the log. Any other empty batch goes,
    // including a header kept by an earlier pass whose producer has written since.
    if kept.is_empty() && cx.producer_last_batch.get(&h.producer_id) != Some(&h.last_offset()) {
        return Ok((Filtered::Drop, out));
    }
    if out.records_removed == 0 && !needs_horizon {
        return Ok((Filtered::Keep, out));
    }
    let base_timestamp = if needs_horizon {
        new_horizon_ms
    } else {
        h.base_timestamp
    };
    let attributes = if needs_horizon {
        h.attributes | DELETE_HORIZON_FLAG
    } else {
        h.attributes
    };
    // An emptied batch is a bare header, uncompressed (as Kafka writes it), not a
    // codec's frame around nothing.
    let attributes = if kept.is_empty() {
        attributes & !0x07
    } else {
        attributes
    };
    let record_ts = |r: &RawRecord| h.base_timestamp.wrapping_add(r.timestamp_delta);
    let max_timestamp = if h.is_log_append_time() || kept.is_empty() {
        h.max_timestamp
    } else {
        kept.iter().map(record_ts).max().unwrap_or(h.max_timestamp)
    };
    let header = BatchHeader {
        attributes,
        base_timestamp,
        max_timestamp,
        record_count: kept.len() as i32,
        ..*h
    };
    let records = kept
        .iter()
        .map(|r| (record_ts(r).wrapping_sub(base_timestamp), r));
    let like = batch
        .get(HEADER_SIZE..h.total_size().min(batch.len()))
        .unwrap_or_default();
    Ok((
        Filtered::Rewrite(encode_batch(&header, records, like)?),
        out,
    ))
}

/// Batches the cleaner must not change: control batches (transaction markers) and
/// transactional batches (no transaction index here).
pub(crate) fn is_kept_whole(h: &BatchHeader) -> bool {
    h.is_control() || h.is_transactional()
}

/// Encode a v2 batch with header fields from `h` (length and CRC computed here) and
/// `(timestamp delta, record)` pairs whose tails are copied as they are. The records
/// are compressed with `h`'s codec; `like` is the section they replace (see
/// [`codec::compress`]).
fn encode_batch<'a>(
    h: &BatchHeader,
    records: impl Iterator<Item = (i64, &'a RawRecord<'a>)>,
    like: &[u8],
) -> Result<Vec<u8>, StorageError> {
    let mut buf = Vec::with_capacity(HEADER_SIZE + 64);
    buf.extend_from_slice(&h.base_offset.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes()); // batch length, set below
    buf.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    buf.push(MAGIC_V2 as u8);
    buf.extend_from_slice(&0u32.to_be_bytes()); // CRC, set below
    buf.extend_from_slice(&h.attributes.to_be_bytes());
    buf.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    buf.extend_from_slice(&h.base_timestamp.to_be_bytes());
    buf.extend_from_slice(&h.max_timestamp.to_be_bytes());
    buf.extend_from_slice(&h.producer_id.to_be_bytes());
    buf.extend_from_slice(&h.producer_epoch.to_be_bytes());
    buf.extend_from_slice(&h.base_sequence.to_be_bytes());
    buf.extend_from_slice(&h.record_count.to_be_bytes());
    let mut section = Vec::new();
    let mut body = Vec::new();
    for (ts_delta, r) in records {
        body.clear();
        body.push(0);
        put_varlong(&mut body, ts_delta);
        put_varlong(&mut body, r.offset_delta);
        body.extend_from_slice(r.tail);
        put_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
    }
    match h.compression() {
        codec::NONE => buf.extend_from_slice(&section),
        c => buf.extend_from_slice(&codec::compress(c, &section, like)?),
    }
    let length = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(&buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(buf)
}
