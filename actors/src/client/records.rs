//! Record batches: built for Produce, read from Fetch answers.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One record as the CLI sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// A record to produce: key and value, either may be null.
pub type KeyValue = (Option<Bytes>, Option<Bytes>);

/// One uncompressed v2 batch holding `records` (key, value), stamped `timestamp_ms`,
/// without producer id (not idempotent).
pub fn encode_batch(records: &[KeyValue], timestamp_ms: i64) -> Result<Bytes, String> {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays
            // the same; offset - 1 makes the batch's base sequence -1 (none), as a
            // producer without idempotence sends.
            sequence: (i as i32).wrapping_sub(1),
            timestamp: timestamp_ms,
            key: k.clone(),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| format!("cannot encode records: {e}"))?;
    Ok(buf.freeze())
}

/// Byte offsets of a v2 batch header: base offset (8), then the batch length (4).
const LENGTH_END: usize = 12;
const MAGIC_AT: usize = 16;
/// End of the last offset delta (after epoch 4, magic 1, crc 4, attributes 2).
const LAST_DELTA_END: usize = 27;
/// Decompressed records of one batch may not exceed this.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The data records of a Fetch answer's `records`, in order, from `from_offset` on
/// (a batch may start before the offset asked for). Control batches (transaction
/// markers) are skipped; a partial batch at the end (the fetch size cut it) is ignored,
/// as Kafka's consumers do. Compressed batches go through the storage codecs.
/// Also returns the offset after the last complete batch (the next to fetch), which
/// moves past control batches and compacted gaps too; None if no batch was complete.
pub fn decode_fetched(
    mut data: Bytes,
    from_offset: i64,
) -> Result<(Vec<Message>, Option<i64>), String> {
    let mut out = Vec::new();
    let mut next = None;
    while data.len() >= LENGTH_END {
        let len = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let Ok(len) = usize::try_from(len) else {
            return Err(format!("negative batch length {len}"));
        };
        if data.len() < LENGTH_END + len {
            break;
        }
        let mut batch = data.split_to(LENGTH_END + len);
        if batch.len() >= LAST_DELTA_END {
            let base = i64::from_be_bytes(batch[..8].try_into().expect("8 bytes"));
            let delta = i32::from_be_bytes(
                batch[LAST_DELTA_END - 4..LAST_DELTA_END]
                    .try_into()
                    .expect("4 bytes"),
            );
            next = Some(base + i64::from(delta) + 1);
        }
        if batch.len() <= MAGIC_AT || batch[MAGIC_AT] != 2 {
            // Old message sets: skip, we only read v2 batches.
            continue;
        }
        let decompress = |compressed: &mut Bytes, c: Compression| -> anyhow::Result<Bytes> {
            let raw = troupe::storage::codec::decompress(c as u8, compressed, MAX_DECOMPRESSED)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            compressed.advance(compressed.len());
            Ok(Bytes::from(raw))
        };
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(decompress))
            .map_err(|e| format!("cannot decode a record batch: {e}"))?;
        for r in set.records {
            if r.control || r.offset < from_offset {
                continue;
            }
            out.push(Message {
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
            });
        }
    }
    Ok((out, next))
}
