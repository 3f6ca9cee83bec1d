//! Building and decoding the records inside an uncompressed v2 batch.
//!
//! The broker never needs this on the append or fetch path (batches are stored as
//! received); it serves timestamp lookups, which must find the exact record, and
//! tests and benchmarks in every crate that need well-formed batches.

use bytes::{BufMut, Bytes, BytesMut};

use crate::storage::batch::{compute_crc, BatchHeader, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use crate::storage::error::{RecordError, RecordRule, StorageError};

/// A record to build: `(key, value)`, each possibly null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// One decoded record, with its absolute offset and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Zig-zag varlong, as record fields are encoded (shared with the compactor).
pub(crate) fn put_varlong(buf: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varlong(buf, b.len() as i64);
            buf.put_slice(b);
        }
        None => put_varlong(buf, -1),
    }
}

/// Builds one uncompressed v2 batch with a correct CRC. Producer fields default to
/// "no idempotence" (-1), as a plain producer sends them.
#[derive(Clone, Debug)]
pub struct BatchBuilder {
    pub base_offset: i64,
    pub base_timestamp: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub attributes: i16,
    /// Per-record timestamp deltas; records without one get delta 0.
    pub timestamp_deltas: Vec<i64>,
    /// Overrides `lastOffsetDelta`, to build the batches compaction leaves behind
    /// (fewer records than the offset range); `None` = record count - 1.
    pub last_offset_delta: Option<i32>,
}

impl BatchBuilder {
    pub fn new(base_offset: i64, base_timestamp: i64) -> BatchBuilder {
        BatchBuilder {
            base_offset,
            base_timestamp,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
            timestamp_deltas: Vec::new(),
            last_offset_delta: None,
        }
    }

    /// Mark the batch as idempotent-producer output.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> BatchBuilder {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn build(&self, records: &[KeyValue<'_>]) -> Bytes {
        let mut body = BytesMut::new();
        let mut max_delta = 0i64;
        for (i, (key, value)) in records.iter().enumerate() {
            let ts_delta = self.timestamp_deltas.get(i).copied().unwrap_or(0);
            max_delta = max_delta.max(ts_delta);
            let mut rec = BytesMut::new();
            rec.put_i8(0);
            put_varlong(&mut rec, ts_delta);
            put_varlong(&mut rec, i as i64);
            put_bytes(&mut rec, *key);
            put_bytes(&mut rec, *value);
            put_varlong(&mut rec, 0);
            put_varlong(&mut body, rec.len() as i64);
            body.put_slice(&rec);
        }
        let count = records.len() as i32;
        let last_delta = self.last_offset_delta.unwrap_or((count - 1).max(0));
        let mut buf = BytesMut::with_capacity(HEADER_SIZE + body.len());
        buf.put_i64(self.base_offset);
        buf.put_i32((HEADER_SIZE - LOG_OVERHEAD + body.len()) as i32);
        buf.put_i32(self.partition_leader_epoch);
        buf.put_i8(MAGIC_V2);
        buf.put_u32(0); // CRC, filled below once the covered bytes exist
        buf.put_i16(self.attributes);
        buf.put_i32(last_delta);
        buf.put_i64(self.base_timestamp);
        buf.put_i64(self.base_timestamp + max_delta);
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.base_sequence);
        buf.put_i32(count);
        buf.put_slice(&body);
        let crc = compute_crc(&buf);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        buf.freeze()
    }
}

/// One uncompressed batch of `(key, value)` records, all stamped `base_timestamp`.
pub fn build_batch(base_offset: i64, base_timestamp: i64, records: &[KeyValue<'_>]) -> Bytes {
    BatchBuilder::new(base_offset, base_timestamp).build(records)
}

/// A cursor over record bytes: zig-zag varints and length-prefixed byte strings; every
/// read fails cleanly on truncated input. The slices it hands out borrow from the
/// batch, so the compactor reads without copying.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn err(&self, what: &str) -> StorageError {
        StorageError::CorruptMessage(format!("malformed record ({what}) at byte {}", self.at))
    }

    pub(crate) fn varlong(&mut self) -> Result<i64, StorageError> {
        let mut z: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self.buf.get(self.at).ok_or_else(|| self.err("varint"))?;
            self.at += 1;
            z |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.err("varint too long"))
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| self.err("length"))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A nullable byte string: `None` for a negative length (-1).
    pub(crate) fn nullable(&mut self) -> Result<Option<&'a [u8]>, StorageError> {
        let len = self.varlong()?;
        if len < 0 {
            return Ok(None);
        }
        let n = usize::try_from(len).map_err(|_| self.err("length"))?;
        self.take(n).map(Some)
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.nullable()?.map(<[u8]>::to_vec))
    }
}

/// Check the record structure of an uncompressed batch's records `section`, as Kafka's
/// validator does before accepting a produce: exactly `record_count` records, each
/// record's fields (attributes, timestamp delta, offset delta, key, value, headers)
/// filling its declared length, offset deltas `0, 1, 2, ...`, and no bytes after the
/// last record. A batch that passes its CRC but fails here would make every consumer of
/// the partition fail on it, so it is refused (CORRUPT_MESSAGE / INVALID_RECORD).
pub fn check_records(section: &[u8], header: &BatchHeader) -> Result<(), StorageError> {
    let mut r = Reader {
        buf: section,
        at: 0,
    };
    for i in 0..i64::from(header.record_count.max(0)) {
        // A record that does not parse is named by its index (KIP-467's record errors);
        // what follows it cannot be read, so it is the only one named.
        check_record(&mut r, i).map_err(|e| {
            let rule = match e {
                StorageError::InvalidRecord(_) => RecordRule::Invalid,
                _ => RecordRule::Malformed,
            };
            let message = match e {
                StorageError::InvalidRecord(m) | StorageError::CorruptMessage(m) => m,
                other => other.to_string(),
            };
            StorageError::RecordsRejected {
                rule,
                errors: vec![RecordError {
                    batch_index: i as i32,
                    message,
                }],
            }
        })?;
    }
    if r.at != section.len() {
        return Err(r.err("bytes after the last record"));
    }
    Ok(())
}

/// One record of [`check_records`], the `i`th of its batch.
fn check_record(r: &mut Reader<'_>, i: i64) -> Result<(), StorageError> {
    let len = r.varlong()?;
    let body = r.take(usize::try_from(len).map_err(|_| r.err("negative length"))?)?;
    let mut rec = Reader { buf: body, at: 0 };
    rec.take(1)?; // attributes
    rec.varlong()?; // timestamp delta
    if rec.varlong()? != i {
        return Err(StorageError::InvalidRecord(format!(
            "offset delta out of sequence (expected {i})"
        )));
    }
    rec.nullable()?; // key
    rec.nullable()?; // value
    let headers = rec.varlong()?;
    if headers < 0 {
        return Err(rec.err("negative header count"));
    }
    for _ in 0..headers {
        if rec.nullable()?.is_none() {
            return Err(rec.err("null header key"));
        }
        rec.nullable()?;
    }
    if rec.at != body.len() {
        return Err(rec.err("record shorter than its declared size"));
    }
    Ok(())
}

/// Decode the records of one batch (the whole batch, header included), decompressing
/// them first if the batch is compressed.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, StorageError> {
    let header = BatchHeader::parse(batch)
        .ok_or_else(|| StorageError::CorruptMessage("batch shorter than its header".into()))?;
    // Compressed records are decompressed first (see `codec.rs`).
    let section = crate::storage::compact_records::record_section(batch, &header)?;
    let mut r = Reader {
        buf: &section,
        at: 0,
    };
    let mut out = Vec::with_capacity(header.record_count.max(0) as usize);
    for _ in 0..header.record_count {
        let len = r.varlong()?;
        let body = r.take(usize::try_from(len).map_err(|_| r.err("negative length"))?)?;
        let mut rec = Reader { buf: body, at: 0 };
        rec.take(1)?; // record attributes: unused in v2
        let ts_delta = rec.varlong()?;
        let offset_delta = rec.varlong()?;
        let key = rec.bytes()?;
        let value = rec.bytes()?;
        let header_count = rec.varlong()?;
        let mut headers = Vec::new();
        for _ in 0..header_count.max(0) {
            let k = rec.bytes()?.unwrap_or_default();
            headers.push((String::from_utf8_lossy(&k).into_owned(), rec.bytes()?));
        }
        // With LogAppendTime the broker's time (the max timestamp) replaces every
        // record's own timestamp.
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp + ts_delta
        };
        out.push(Record {
            offset: header.base_offset + offset_delta,
            timestamp,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::validate_batches;

    /// `batch` with its records section replaced by `section` (length and CRC fixed).
    fn with_section(batch: &[u8], section: &[u8]) -> Vec<u8> {
        let mut b = [&batch[..HEADER_SIZE], section].concat();
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn record_structure_is_checked() {
        let good = build_batch(
            0,
            0,
            &[
                (Some(b"k"), Some(b"v")),
                (None, None),
                (Some(b""), Some(b"x")),
            ],
        );
        let h = BatchHeader::parse(&good).unwrap();
        check_records(&good[HEADER_SIZE..], &h).unwrap();
        let section = &good[HEADER_SIZE..];
        // Trailing garbage, a missing record, a record cut short.
        for (what, bad) in [
            ("trailing", [section, &[0u8][..]].concat()),
            ("missing", section[..section.len() - 1].to_vec()),
        ] {
            let b = with_section(&good, &bad);
            assert!(check_records(&b[HEADER_SIZE..], &h).is_err(), "{what}");
        }
        // Offset deltas out of sequence: records 0 and 1 swapped.
        let one = build_batch(0, 0, &[(Some(b"a"), Some(b"1"))]);
        let two = build_batch(0, 0, &[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"2"))]);
        let h2 = BatchHeader::parse(&two).unwrap();
        let first_len = one.len() - HEADER_SIZE;
        let s2 = &two[HEADER_SIZE..];
        let swapped = [&s2[first_len..], &s2[..first_len]].concat();
        let err = check_records(&swapped, &h2).unwrap_err();
        assert_eq!(err.kafka_error_code(), 87, "{err}");
        // The first record read (really record 1) is the one out of sequence.
        assert_eq!(err.record_errors()[0].batch_index, 0, "{err}");
        // A record whose declared length is longer than its fields.
        let mut padded = s2.to_vec();
        padded[0] += 2; // zig-zag: +1 byte of length
        padded.insert(first_len, 0);
        assert!(check_records(&padded, &h2).is_err());
    }

    #[test]
    fn roundtrip() {
        let mut b = BatchBuilder::new(10, 500).producer(7, 1, 3);
        b.timestamp_deltas = vec![0, 25, 5];
        let big = vec![9u8; 300];
        let batch = b.build(&[
            (Some(b"a"), Some(b"1")),
            (None, None),
            (Some(b"c"), Some(&big)),
        ]);
        let h = validate_batches(&batch, 1 << 20).unwrap()[0];
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 3)
        );
        assert_eq!(h.max_timestamp, 525);
        let recs = decode_records(&batch).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].key.as_deref(), Some(&b"a"[..]));
        assert_eq!(
            recs[1],
            Record {
                offset: 11,
                timestamp: 525,
                key: None,
                value: None,
                headers: vec![]
            }
        );
        assert_eq!(recs[2].value.as_deref(), Some(&big[..]));
        assert_eq!(recs[2].timestamp, 505);
    }

    #[test]
    fn truncated_records_fail_cleanly() {
        let batch = build_batch(0, 0, &[(Some(b"key"), Some(b"value"))]);
        for cut in HEADER_SIZE..batch.len() {
            assert!(decode_records(&batch[..cut]).is_err(), "cut at {cut}");
        }
    }
}
