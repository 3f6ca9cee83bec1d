//! The null broker's read side: ListOffsets and Fetch served from memory at almost no
//! cost, so librdkafka consuming from it measures the client's own ceiling.
//!
//! Every partition of every topic holds an endless run of 1 KiB records (high
//! watermark 2^40). A partition's answer is one pre-built block of batches of
//! [`BATCH_RECORDS`] records each; per response only the batches' base offsets are
//! patched (the CRC does not cover them) and the block is written as it is. Fetch is
//! spoken in v11 only (the last version before flexible encoding), so the response
//! envelope is a few hand-written fields.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, ListOffsetsRequest, ListOffsetsResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::io::Write;
use std::net::TcpStream;

/// Records per batch of the served blocks (1 KiB values, as run 3 writes them).
pub const BATCH_RECORDS: i64 = 100;
/// Offsets every partition claims to hold.
pub const HIGH_WATERMARK: i64 = 1 << 40;
/// The one Fetch version served.
pub const FETCH_VERSION: i16 = 11;

/// A partition's block: batches of [`BATCH_RECORDS`] records, at most `max_bytes`
/// (at least one batch), base offsets to be patched per response.
pub struct Block {
    bytes: Vec<u8>,
    batch_len: usize,
}

impl Block {
    pub fn new(max_bytes: usize) -> Block {
        let value = vec![b'x'; 1024];
        let records: Vec<troupe::storage::KeyValue<'_>> = (0..BATCH_RECORDS)
            .map(|_| (None, Some(&value[..])))
            .collect();
        let batch = troupe::storage::build_batch(0, 0, &records);
        let n = (max_bytes / batch.len()).max(1);
        Block {
            bytes: batch.repeat(n),
            batch_len: batch.len(),
        }
    }

    /// How many of the block's bytes a partition asking for `partition_max_bytes` gets:
    /// whole batches within it, at least one (as a log answers), at most the block.
    fn len_for(&self, partition_max_bytes: i32) -> usize {
        let want = usize::try_from(partition_max_bytes).unwrap_or(0);
        (want / self.batch_len * self.batch_len).clamp(self.batch_len, self.bytes.len())
    }

    /// The block with base offsets continuing from `from` (rounded down to a batch
    /// boundary, as a log returns the batch that holds the offset).
    fn at(&mut self, from: i64, len: usize) -> &[u8] {
        let mut base = from - from.rem_euclid(BATCH_RECORDS);
        for batch in self.bytes[..len].chunks_mut(self.batch_len) {
            batch[..8].copy_from_slice(&base.to_be_bytes());
            base += BATCH_RECORDS;
        }
        &self.bytes[..len]
    }
}

/// ListOffsets: 0 for the earliest offset, the high watermark for the latest.
pub fn list_offsets(body: &mut Bytes, version: i16, out: &mut BytesMut) -> Result<(), String> {
    let req = ListOffsetsRequest::decode(body, version).map_err(|e| e.to_string())?;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(if p.timestamp == -1 { HIGH_WATERMARK } else { 0 })
                        .with_leader_epoch(-1)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default()
        .with_topics(topics)
        .encode(out, version)
        .map_err(|e| e.to_string())
}

/// Fetch v11: every requested partition gets its block, within the request's byte
/// budget (at least one block, as a broker returns at least one batch). Written
/// straight to `s`: the envelope, then each partition's fields and block.
pub fn fetch(
    s: &mut TcpStream,
    correlation_id: i32,
    body: &mut Bytes,
    block: &mut Block,
) -> Result<(), String> {
    let req = FetchRequest::decode(body, FETCH_VERSION).map_err(|e| e.to_string())?;
    let mut budget = usize::try_from(req.max_bytes).unwrap_or(usize::MAX);
    // Size first (the frame length leads), then the bytes.
    // (topic, partition, offset, bytes of records; 0: none)
    let mut parts: Vec<(usize, i32, i64, usize)> = Vec::new();
    let mut size = 4 + 4 + 2 + 4 + 4; // correlation, throttle, error, session, topic count
    for (ti, t) in req.topics.iter().enumerate() {
        size += 2 + t.topic.0.len() + 4;
        for p in &t.partitions {
            let with = budget > 0 || parts.is_empty();
            let len = if with {
                block.len_for(p.partition_max_bytes)
            } else {
                0
            };
            budget = budget.saturating_sub(len);
            size += 4 + 2 + 8 + 8 + 8 + 4 + 4 + 4 + len;
            parts.push((ti, p.partition, p.fetch_offset, len));
        }
    }
    let mut head = BytesMut::with_capacity(64);
    head.put_i32(size as i32);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(
            &mut head,
            ApiKey::Fetch.response_header_version(FETCH_VERSION),
        )
        .map_err(|e| e.to_string())?;
    head.put_i32(0); // throttle_time_ms
    head.put_i16(0); // error_code
    head.put_i32(0); // session_id
    head.put_i32(req.topics.len() as i32);
    let mut parts = parts.into_iter().peekable();
    for (ti, t) in req.topics.iter().enumerate() {
        head.put_i16(t.topic.0.len() as i16);
        head.put_slice(t.topic.0.as_bytes());
        head.put_i32(t.partitions.len() as i32);
        while let Some(&(pti, partition, offset, len)) = parts.peek() {
            if pti != ti {
                break;
            }
            parts.next();
            head.put_i32(partition);
            head.put_i16(0); // error_code
            head.put_i64(HIGH_WATERMARK);
            head.put_i64(HIGH_WATERMARK); // last_stable_offset
            head.put_i64(0); // log_start_offset
            head.put_i32(0); // aborted_transactions: empty
            head.put_i32(-1); // preferred_read_replica
            if len > 0 {
                let records = block.at(offset, len);
                head.put_i32(records.len() as i32);
                s.write_all(&head).map_err(|e| e.to_string())?;
                head.clear();
                s.write_all(records).map_err(|e| e.to_string())?;
            } else {
                head.put_i32(0);
            }
        }
    }
    s.write_all(&head).map_err(|e| e.to_string())
}
