//! A diagnostic consumer without a client library: Fetch requests written by hand, one
//! in flight like librdkafka's, 1 MiB per partition like its default, and record
//! batches only walked by their headers, never parsed record by record. Comparing it
//! with run 4 tells whether the broker or librdkafka's per-message work is the limit.

use crate::client::Throughput;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

const VERSION: i16 = 12;
const PARTITION_MAX_BYTES: i32 = 1 << 20;

/// Reads `expected` records of `size` bytes from partition 0 of `topic`, from offset 0.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    expected: u64,
    size: usize,
) -> Result<Throughput, String> {
    let mut s = TcpStream::connect(bootstrap).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut offset = 0i64;
    let mut msgs = 0u64;
    let started = Instant::now();
    let mut correlation = 0;
    while msgs < expected {
        correlation += 1;
        let records = fetch(&mut s, topic, offset, correlation)?;
        let mut at = 0usize;
        // Batch header: base offset (8), length (4), ..., last offset delta at 23,
        // record count at 57; a partial batch at the end is fetched again next time.
        while at + 61 <= records.len() {
            let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap_or_default());
            let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap_or_default());
            let total = 12 + len.max(0) as usize;
            if at + total > records.len() {
                break;
            }
            let delta =
                i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap_or_default());
            let count =
                i32::from_be_bytes(records[at + 57..at + 61].try_into().unwrap_or_default());
            msgs += count.max(0) as u64;
            offset = base + delta as i64 + 1;
            at += total;
        }
    }
    Ok(Throughput {
        msgs,
        bytes: msgs * size as u64,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// One Fetch of partition 0 of `topic` at `offset` on a fresh connection; the bytes of
/// record batches it returned (an error code is an error).
pub fn fetch_once(bootstrap: &str, topic: &str, offset: i64) -> Result<usize, String> {
    let addr: std::net::SocketAddr = bootstrap.parse().map_err(|e| format!("{bootstrap}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    Ok(fetch(&mut s, topic, offset, 1)?.len())
}

/// One Fetch round trip of partition 0 of `topic` at `offset`: its record bytes (an
/// error code is an error).
fn fetch(s: &mut TcpStream, topic: &str, offset: i64, correlation: i32) -> Result<Bytes, String> {
    s.write_all(&request(topic, offset, correlation)?)
        .map_err(|e| e.to_string())?;
    let mut size_buf = [0u8; 4];
    s.read_exact(&mut size_buf).map_err(|e| e.to_string())?;
    let len = usize::try_from(i32::from_be_bytes(size_buf)).map_err(|e| e.to_string())?;
    let mut frame = vec![0u8; len];
    s.read_exact(&mut frame).map_err(|e| e.to_string())?;
    let mut b = Bytes::from(frame);
    ResponseHeader::decode(&mut b, ApiKey::Fetch.response_header_version(VERSION))
        .map_err(|e| e.to_string())?;
    let resp = FetchResponse::decode(&mut b, VERSION).map_err(|e| e.to_string())?;
    let part = resp
        .responses
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .ok_or("empty fetch response")?;
    if part.error_code != 0 {
        return Err(format!("fetch error {}", part.error_code));
    }
    Ok(part.records.unwrap_or_default())
}

fn request(topic: &str, offset: i64, correlation: i32) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("e2e-rawfetch")));
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(PARTITION_MAX_BYTES)])]);
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Fetch.request_header_version(VERSION))
        .map_err(|e| e.to_string())?;
    req.encode(&mut body, VERSION).map_err(|e| e.to_string())?;
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    Ok(out.freeze())
}
