//! A view of the record batch v2 header, and the checks every appended batch passes.
//!
//! Batches are stored exactly as received, so this module never decodes records on
//! the append path: it reads the fixed 61-byte header, checks the CRC-32C, and lets
//! the log rewrite the two fields the CRC does not cover (base offset and partition
//! leader epoch) in place. Building and decoding records lives in
//! [`crate::storage::records`].

use crate::storage::error::StorageError;

/// Batch building and decoding live in `records`; re-exported here because callers
/// (tests in other crates) reach for them beside the header view.
pub use crate::storage::records::{build_batch, decode_records, BatchBuilder, Record};

/// Size of the v2 batch header; records start right after it.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest valid `batchLength`: the header after the log overhead.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// The only record format Troupe stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from the attributes to the end of the batch.
const ATTRIBUTES_AT: usize = 21;

/// The fixed header of one record batch (magic v2), all fields big-endian on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after this field (total size minus [`LOG_OVERHEAD`]).
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2-byte slice"))
}

impl BatchHeader {
    /// Parse the header at the start of `buf`. Returns `None` when fewer than
    /// [`HEADER_SIZE`] bytes are present; checks nothing else.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_SIZE {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_AT),
            batch_length: be_i32(buf, LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Offset of the last record (the batch may hold fewer records after compaction).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Bytes the whole batch takes on disk, log overhead included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// Timestamps are the broker's append time rather than the producer's create time.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Control batches carry transaction markers, not user records.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

/// Rewrite the two fields the CRC does not cover, so offsets and the leader epoch can
/// be assigned without re-encoding (or re-checksumming) the batch.
pub fn assign_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// `message.timestamp.type=LogAppendTime`: mark every batch of a validated record set
/// as carrying the broker's time and set its max timestamp to `now_ms`, then
/// re-checksum it (both fields are under the CRC). Validate *before* calling this, or
/// a corrupt batch would come out with a valid CRC.
pub fn set_log_append_time(records: &mut [u8], now_ms: i64) {
    let mut at = 0;
    while let Some(h) = BatchHeader::parse(&records[at..]) {
        let end = at + h.total_size();
        if end > records.len() {
            break;
        }
        let batch = &mut records[at..end];
        let attributes = h.attributes | 0x08;
        batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
        let crc = compute_crc(batch);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// CRC-32C of a whole batch's checksummed part (attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Check one batch at the start of `buf` without the record-count rule; returns its
/// header. Used by validation and by recovery, which must accept compacted batches.
pub(crate) fn check_batch(buf: &[u8], verify_crc: bool) -> Result<BatchHeader, StorageError> {
    if buf.len() < LOG_OVERHEAD + 5 {
        return Err(StorageError::CorruptMessage(format!(
            "truncated batch header: {} bytes",
            buf.len()
        )));
    }
    let length = be_i32(buf, LENGTH_AT);
    // The magic byte sits before the CRC, so reject old formats before anything else.
    let magic = buf[MAGIC_AT] as i8;
    if magic != MAGIC_V2 {
        return Err(StorageError::UnsupportedMagic(magic));
    }
    if length < MIN_BATCH_LENGTH {
        return Err(StorageError::InvalidRecord(format!(
            "batch length {length} too small"
        )));
    }
    let total = LOG_OVERHEAD + length as usize;
    if buf.len() < total {
        return Err(StorageError::CorruptMessage(format!(
            "batch of {total} bytes cut short at {}",
            buf.len()
        )));
    }
    let header = BatchHeader::parse(buf).expect("length checked above");
    if verify_crc {
        let actual = compute_crc(&buf[..total]);
        if actual != header.crc {
            return Err(StorageError::CorruptMessage(format!(
                "crc mismatch at offset {}: stored {:#010x}, computed {actual:#010x}",
                header.base_offset, header.crc
            )));
        }
    }
    if header.last_offset_delta < 0 {
        return Err(StorageError::InvalidRecord(format!(
            "negative last offset delta {}",
            header.last_offset_delta
        )));
    }
    Ok(header)
}

/// Validate a produced record set: at least one batch, every batch complete, magic 2,
/// a sane length, a matching CRC-32C, `1 <= record_count == last_offset_delta + 1`, and
/// each batch no larger than `max_batch_bytes`. Returns the headers in order.
pub fn validate_batches(
    records: &[u8],
    max_batch_bytes: usize,
) -> Result<Vec<BatchHeader>, StorageError> {
    validate_batches_with(records, max_batch_bytes, true)
}

/// [`validate_batches`], optionally without the strict record-count rule: a follower
/// copying a compacted leader may see batches whose records were partly removed.
pub(crate) fn validate_batches_with(
    records: &[u8],
    max_batch_bytes: usize,
    strict_count: bool,
) -> Result<Vec<BatchHeader>, StorageError> {
    if records.is_empty() {
        return Err(StorageError::InvalidRecord("empty record set".into()));
    }
    let mut headers = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let header = check_batch(&records[at..], true)?;
        let size = header.total_size();
        if size > max_batch_bytes {
            return Err(StorageError::RecordTooLarge {
                size,
                max: max_batch_bytes,
            });
        }
        let count_ok = if strict_count {
            header.record_count >= 1 && header.record_count == header.last_offset_delta + 1
        } else {
            header.record_count >= 0 && header.record_count <= header.last_offset_delta + 1
        };
        if !count_ok {
            return Err(StorageError::InvalidRecord(format!(
                "record count {} disagrees with last offset delta {}",
                header.record_count, header.last_offset_delta
            )));
        }
        headers.push(header);
        at += size;
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records::build_batch;

    fn two_records() -> bytes::Bytes {
        build_batch(5, 1000, &[(Some(b"k"), Some(b"v1")), (None, Some(b"v2"))])
    }

    #[test]
    fn parses_built_header() {
        let b = two_records();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 5);
        assert_eq!(h.magic, 2);
        assert_eq!(h.record_count, 2);
        assert_eq!(h.last_offset(), 6);
        assert_eq!(h.total_size(), b.len());
        assert_eq!(h.compression(), 0);
        assert!(!h.is_transactional() && !h.is_control());
        assert_eq!(validate_batches(&b, 1 << 20).unwrap(), vec![h]);
    }

    #[test]
    fn crc_does_not_cover_offset_and_epoch() {
        let mut b = two_records().to_vec();
        assign_offset_and_epoch(&mut b, 1234, 7);
        let h = validate_batches(&b, 1 << 20).unwrap()[0];
        assert_eq!((h.base_offset, h.partition_leader_epoch), (1234, 7));
    }

    #[test]
    fn rejects_bad_input() {
        let good = two_records().to_vec();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x40;
        assert!(matches!(
            validate_batches(&flipped, 1 << 20),
            Err(StorageError::CorruptMessage(_))
        ));
        let torn = &good[..good.len() - 1];
        assert!(matches!(
            validate_batches(torn, 1 << 20),
            Err(StorageError::CorruptMessage(_))
        ));
        let mut magic1 = good.clone();
        magic1[16] = 1;
        assert!(matches!(
            validate_batches(&magic1, 1 << 20),
            Err(StorageError::UnsupportedMagic(1))
        ));
        let mut short = good.clone();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(
            validate_batches(&short, 1 << 20),
            Err(StorageError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_batches(&good, 10),
            Err(StorageError::RecordTooLarge { .. })
        ));
        assert!(matches!(
            validate_batches(&[], 10),
            Err(StorageError::InvalidRecord(_))
        ));
        // A record count that disagrees with the offset delta (CRC fixed up so only the
        // count rule can reject it).
        let mut count = good.clone();
        count[57..61].copy_from_slice(&3i32.to_be_bytes());
        let crc = compute_crc(&count);
        count[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batches(&count, 1 << 20),
            Err(StorageError::InvalidRecord(_))
        ));
        assert!(validate_batches_with(&count, 1 << 20, false).is_err());
    }

    #[test]
    fn validates_several_batches() {
        let mut buf = two_records().to_vec();
        buf.extend_from_slice(&build_batch(0, 1, &[(None, Some(b"x"))]));
        assert_eq!(validate_batches(&buf, 1 << 20).unwrap().len(), 2);
        buf.push(0);
        assert!(validate_batches(&buf, 1 << 20).is_err());
    }
}
