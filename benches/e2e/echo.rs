//! The fixed-rate latency run's ceiling: an *echo broker* mode of the null broker that
//! keeps every produced batch in memory and serves Fetch from it, with long polling.
//!
//! Driven by the same producer and consumer as the OMB run (`omb.rs`), it shows the
//! latency this machine allows for the client pair, the loopback hops and the thread
//! hand-offs of any broker, with no storage, no actors and no encoding work beyond a
//! copy: what Troupe's publish and end-to-end percentiles should be read against.
//!
//! Each partition's log is a list of batches (base offsets patched in, as a broker
//! assigns them). A Fetch (v11 only, as the null broker speaks) takes, per partition,
//! the batches from the fetch offset on within `partition_max_bytes` (at least one
//! batch) and the request's `max_bytes`; if fewer than `min_bytes` are there it waits
//! on a condition variable that every append signals, up to `max_wait_ms`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One batch: its base offset, the offset after its last record, its bytes.
type Batch = (i64, i64, Bytes);

#[derive(Default)]
pub struct Logs {
    parts: Mutex<HashMap<(String, i32), Vec<Batch>>>,
    grew: Condvar,
}

impl Logs {
    /// Appends the v2 batches of `records` to a partition; returns the base offset of
    /// the first.
    pub fn append(&self, topic: &str, partition: i32, records: &Bytes) -> i64 {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let log = parts.entry((topic.to_string(), partition)).or_default();
        let first = log.last().map_or(0, |b| b.1);
        let mut next = first;
        let mut rest = &records[..];
        while rest.len() >= 61 {
            let len = 12 + i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
            if rest.len() < len {
                break;
            }
            let count = i64::from(i32::from_be_bytes([rest[57], rest[58], rest[59], rest[60]]));
            let mut batch = BytesMut::from(&rest[..len]);
            batch[..8].copy_from_slice(&next.to_be_bytes());
            log.push((next, next + count, batch.freeze()));
            next += count;
            rest = &rest[len..];
        }
        drop(parts);
        self.grew.notify_all();
        first
    }

    /// The log end offset of a partition (0 if nothing was produced to it).
    fn end(parts: &HashMap<(String, i32), Vec<Batch>>, topic: &str, partition: i32) -> i64 {
        parts
            .get(&(topic.to_string(), partition))
            .and_then(|l| l.last())
            .map_or(0, |b| b.1)
    }
}

/// Fetch v11 from the echo logs, written to `s` as one frame.
pub fn fetch(
    s: &mut TcpStream,
    correlation_id: i32,
    body: &mut Bytes,
    version: i16,
    logs: &Logs,
) -> Result<(), String> {
    let req = FetchRequest::decode(body, version).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut parts = logs.parts.lock().unwrap_or_else(|e| e.into_inner());
    let response = loop {
        let mut budget = usize::try_from(req.max_bytes).unwrap_or(usize::MAX);
        let mut total = 0usize;
        let mut response = FetchResponse::default();
        for t in &req.topics {
            let mut topic = FetchableTopicResponse::default().with_topic(t.topic.clone());
            for p in &t.partitions {
                let key = (t.topic.0.to_string(), p.partition);
                let end = Logs::end(&parts, &key.0, key.1);
                let mut records = BytesMut::new();
                if let Some(log) = parts.get(&key) {
                    let from = log.partition_point(|b| b.1 <= p.fetch_offset);
                    let limit = usize::try_from(p.partition_max_bytes).unwrap_or(0);
                    for (_, _, batch) in &log[from..] {
                        let first = records.is_empty() && total == 0;
                        let fits = records.len() + batch.len() <= limit.min(budget);
                        if !(fits || first) {
                            break;
                        }
                        records.put_slice(batch);
                    }
                }
                total += records.len();
                budget = budget.saturating_sub(records.len());
                topic.partitions.push(
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(end)
                        .with_last_stable_offset(end)
                        .with_log_start_offset(0)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(Some(records.freeze())),
                );
            }
            response.responses.push(topic);
        }
        let now = Instant::now();
        if total as i64 >= i64::from(req.min_bytes) || now >= deadline {
            break response;
        }
        parts = logs
            .grew
            .wait_timeout(parts, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    };
    drop(parts);
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, ApiKey::Fetch.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut out, version)
        .map_err(|e| e.to_string())?;
    let n = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&n.to_be_bytes());
    s.write_all(&out).map_err(|e| e.to_string())
}
