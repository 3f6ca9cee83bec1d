//! A diagnostic producer without a client library: Produce requests (v9, acks=1)
//! written by hand over one or more connections, each carrying one pre-built
//! uncompressed v2 batch of ~1 MiB, pipelined with a bounded number in flight.
//!
//! Every request frame is encoded once before the clock starts; per request the loop
//! only patches the correlation id in place and writes the frame, and per response it
//! reads into a reused buffer and checks the error code and the assigned base offset.
//! The client's work per byte is therefore close to a socket write, so comparing this
//! with run 3 tells whether the broker or librdkafka's per-message work is the limit.

use crate::client::Throughput;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use troupe::storage::{build_batch, KeyValue};

const VERSION: i16 = 9;
/// Records per batch: 1,000 values of 1 KiB make a batch just under librdkafka's
/// `batch.size` of 1 MiB, as run 3 configures it.
const RECORDS_PER_BATCH: u64 = 1000;
/// Byte offset of the correlation id in a frame: size (4), api key (2), version (2).
const CORRELATION_AT: usize = 8;

/// What one raw produce run sends.
pub struct Spec<'a> {
    pub topic: &'a str,
    pub partitions: i32,
    pub connections: usize,
    /// Value size of each record, in bytes.
    pub size: usize,
    /// Records in all; rounded up to whole batches.
    pub count: u64,
    /// Produce requests in flight per connection.
    pub in_flight: usize,
}

/// Sends `spec.count` records round-robin over the partitions; connection `c` owns the
/// partitions `p` with `p % connections == c` and an equal share of the batches.
pub fn produce(bootstrap: &str, spec: &Spec<'_>) -> Result<Throughput, String> {
    let conns = spec.connections.max(1);
    if spec.partitions < conns as i32 {
        return Err("fewer partitions than connections".into());
    }
    let batches = spec.count.div_ceil(RECORDS_PER_BATCH);
    let value = vec![b'x'; spec.size];
    let records: Vec<KeyValue<'_>> = (0..RECORDS_PER_BATCH)
        .map(|_| (None, Some(&value[..])))
        .collect();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let batch = build_batch(0, now_ms, &records);
    let mut workers = Vec::new();
    for c in 0..conns {
        let parts: Vec<i32> = (0..spec.partitions)
            .filter(|p| *p as usize % conns == c)
            .collect();
        let frames = parts
            .iter()
            .map(|&p| frame(spec.topic, p, &batch))
            .collect::<Result<Vec<_>, _>>()?;
        let stream = TcpStream::connect(bootstrap).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        // Batches c, c + conns, c + 2 conns, ... of the run's total.
        let share = (batches + (conns - 1 - c) as u64) / conns as u64;
        workers.push((stream, frames, share));
    }
    let start = Barrier::new(conns + 1);
    let in_flight = spec.in_flight.max(1) as u64;
    let (secs, results) = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|(stream, frames, share)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    send_loop(stream, frames, share, in_flight)
                })
            })
            .collect();
        start.wait();
        let started = Instant::now();
        let results: Vec<Result<(), String>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("producer panicked".into())))
            .collect();
        (started.elapsed().as_secs_f64(), results)
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    let msgs = batches * RECORDS_PER_BATCH;
    Ok(Throughput {
        msgs,
        bytes: msgs * spec.size as u64,
        secs,
    })
}

/// Sends `total` requests cycling through `frames`, at most `in_flight` unanswered,
/// and checks each response: request order, no error, and the base offset the
/// partition should have reached (the topic is fresh, so offsets start at 0).
fn send_loop(
    mut s: TcpStream,
    mut frames: Vec<Vec<u8>>,
    total: u64,
    in_flight: u64,
) -> Result<(), String> {
    let n = frames.len() as u64;
    let mut next_offset = vec![0i64; frames.len()];
    let mut buf = Vec::with_capacity(256);
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < total {
        while sent < total && sent - acked < in_flight {
            let f = &mut frames[(sent % n) as usize];
            f[CORRELATION_AT..CORRELATION_AT + 4].copy_from_slice(&(sent as i32).to_be_bytes());
            s.write_all(f).map_err(|e| e.to_string())?;
            sent += 1;
        }
        let mut size = [0u8; 4];
        s.read_exact(&mut size).map_err(|e| e.to_string())?;
        let len = usize::try_from(i32::from_be_bytes(size)).map_err(|e| e.to_string())?;
        buf.resize(len, 0);
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let mut b: &[u8] = &buf;
        let header =
            ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(VERSION))
                .map_err(|e| e.to_string())?;
        if header.correlation_id != acked as i32 {
            return Err(format!(
                "response {} answers request {}",
                acked, header.correlation_id
            ));
        }
        let resp = ProduceResponse::decode(&mut b, VERSION).map_err(|e| e.to_string())?;
        let part = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or("empty produce response")?;
        if part.error_code != 0 {
            return Err(format!("produce error {}", part.error_code));
        }
        let expect = &mut next_offset[(acked % n) as usize];
        if part.base_offset != *expect {
            return Err(format!(
                "base offset {} where {} was due",
                part.base_offset, expect
            ));
        }
        *expect += RECORDS_PER_BATCH as i64;
        acked += 1;
    }
    Ok(())
}

/// One complete Produce request frame (size prefix included) for `batch` on one
/// partition; the correlation id is patched per send.
fn frame(topic: &str, partition: i32, batch: &Bytes) -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(0)
        .with_client_id(Some(StrBytes::from_static_str("e2e-rawproduce")));
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch.clone()))])]);
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(VERSION))
        .map_err(|e| e.to_string())?;
    req.encode(&mut body, VERSION).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    Ok(out)
}
