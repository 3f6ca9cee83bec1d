//! The Fetch response, encoded around record bytes that stay in segment files.
//!
//! kafka-protocol can only encode a `FetchResponse` whose records are in memory. To
//! send records with `sendfile(2)` we encode the envelope ourselves, field by field and
//! version by version exactly as the crate does (tests check byte identity with its
//! encoder for every version), and leave a gap wherever a partition's records are a
//! [`FileRegion`]. The result is a list of [`Chunk`]s: in-memory runs, all carved out of
//! one buffer, alternating with file regions.
//!
//! Versions 4..=18 are supported; 17 and 18 changed only the request, so their
//! responses are laid out as 16's. Sub-structures that never hold records (aborted
//! transactions, tagged-field structs, node endpoints) are encoded by the crate itself.
//!
//! The encoding runs twice over the response: once counting (to write the size prefix
//! first and to allocate the buffer once), once writing.

use super::error::EncodeError;
use super::frame::SIZE_PREFIX_LEN;
use super::response::{put_response_header, response_header_len};
use crate::storage::FileRegion;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchResponse};
use kafka_protocol::protocol::Encodable;
use std::collections::BTreeMap;
use std::ops::RangeFrom;

/// Versions of the Fetch response this module can encode (the crate's whole range).
pub const FETCH_VERSIONS: std::ops::RangeInclusive<i16> = 4..=18;

/// Part of a response frame, in sending order.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes built in memory (size prefix, header, envelope, in-memory records).
    Bytes(Bytes),
    /// Record bytes to send straight from a segment file.
    File(FileRegion),
}

impl Chunk {
    /// Bytes this chunk puts on the wire.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File(r) => r.len,
        }
    }

    /// True when the chunk sends nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete Fetch response frame as chunks.
#[derive(Debug, Clone)]
pub struct EncodedFetch {
    pub chunks: Vec<Chunk>,
    /// Bytes of the whole frame, the 4-byte size prefix included.
    pub total_len: usize,
}

impl EncodedFetch {
    /// Copies the whole frame into memory, reading file regions: the path for
    /// transports that cannot `sendfile` (TLS) and for tests.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.total_len);
        for chunk in &self.chunks {
            match chunk {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(r) => out.extend_from_slice(&r.read_to_vec()?),
            }
        }
        Ok(out)
    }
}

/// Encodes `response` as a Fetch response frame of `version`, answering
/// `correlation_id`.
///
/// `regions[t][p]`, when `Some`, holds the records of
/// `response.responses[t].partitions[p]` and replaces that partition's `records`.
/// `regions` (and each inner list) may be shorter than the response, missing entries
/// meaning "no region", but not longer: a region without a partition is a bug.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    response: &FetchResponse,
    regions: &[Vec<Option<FileRegion>>],
) -> Result<EncodedFetch, EncodeError> {
    if !FETCH_VERSIONS.contains(&version) {
        return Err(body_error(
            version,
            "specified version not supported by this message type",
        ));
    }
    check_shape(response, regions)?;

    let mut count = Count::default();
    encode_body(&mut count, version, response, regions)?;
    let header_version = ApiKey::Fetch.response_header_version(version);
    let header_len = response_header_len(header_version);
    let size = header_len + count.total;
    if size > i32::MAX as usize {
        return Err(EncodeError::TooLarge { size });
    }

    let mut out = Write {
        buf: BytesMut::with_capacity(SIZE_PREFIX_LEN + header_len + count.in_memory),
        chunks: Vec::with_capacity(2 * count.regions + 1),
    };
    out.buf.put_i32(size as i32);
    put_response_header(&mut out.buf, correlation_id, header_version);
    encode_body(&mut out, version, response, regions)?;
    let chunks = out.finish();

    let written: u64 = chunks.iter().map(Chunk::len).sum();
    if written != (SIZE_PREFIX_LEN + size) as u64 {
        return Err(EncodeError::SizeMismatch {
            expected: SIZE_PREFIX_LEN + size,
            written: written as usize,
        });
    }
    Ok(EncodedFetch {
        chunks,
        total_len: SIZE_PREFIX_LEN + size,
    })
}

fn check_shape(
    response: &FetchResponse,
    regions: &[Vec<Option<FileRegion>>],
) -> Result<(), EncodeError> {
    if regions.len() > response.responses.len() {
        return Err(EncodeError::RegionShape(format!(
            "{} topics of regions for {} topics",
            regions.len(),
            response.responses.len()
        )));
    }
    for (t, (topic_regions, topic)) in regions.iter().zip(&response.responses).enumerate() {
        if topic_regions.len() > topic.partitions.len() {
            return Err(EncodeError::RegionShape(format!(
                "topic #{t}: {} regions for {} partitions",
                topic_regions.len(),
                topic.partitions.len()
            )));
        }
    }
    Ok(())
}

fn body_error(version: i16, reason: impl std::fmt::Display) -> EncodeError {
    EncodeError::Body {
        api_key: ApiKey::Fetch,
        version,
        reason: reason.to_string(),
    }
}

/// Where the encoder's output goes: counted, or written.
trait Out {
    fn put(&mut self, bytes: &[u8]);
    fn region(&mut self, region: &FileRegion);
    /// A sub-structure the crate encodes for us.
    fn message<M: Encodable>(&mut self, msg: &M, version: i16) -> Result<(), EncodeError>;
}

/// Sizing pass.
#[derive(Default)]
struct Count {
    total: usize,
    /// The part that is not file regions: the capacity of the one buffer.
    in_memory: usize,
    regions: usize,
}

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        self.in_memory += bytes.len();
    }
    fn region(&mut self, region: &FileRegion) {
        self.total += region.len as usize;
        self.regions += 1;
    }
    fn message<M: Encodable>(&mut self, msg: &M, version: i16) -> Result<(), EncodeError> {
        let len = msg
            .compute_size(version)
            .map_err(|e| body_error(version, e))?;
        self.total += len;
        self.in_memory += len;
        Ok(())
    }
}

/// Writing pass. Each in-memory run is split off the front of `buf`, so all runs share
/// the single allocation made from the sizing pass.
struct Write {
    buf: BytesMut,
    chunks: Vec<Chunk>,
}

impl Write {
    fn finish(mut self) -> Vec<Chunk> {
        if !self.buf.is_empty() {
            self.chunks.push(Chunk::Bytes(self.buf.split().freeze()));
        }
        self.chunks
    }
}

impl Out for Write {
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    fn region(&mut self, region: &FileRegion) {
        // An empty region sends nothing; keeping it out keeps neighbouring bytes in
        // one chunk.
        if region.len == 0 {
            return;
        }
        if !self.buf.is_empty() {
            self.chunks.push(Chunk::Bytes(self.buf.split().freeze()));
        }
        self.chunks.push(Chunk::File(region.clone()));
    }
    fn message<M: Encodable>(&mut self, msg: &M, version: i16) -> Result<(), EncodeError> {
        msg.encode(&mut self.buf, version)
            .map_err(|e| body_error(version, e))
    }
}

/// First flexible version: compact lengths, tagged fields, header v1.
const FLEXIBLE: i16 = 12;

fn encode_body<O: Out>(
    o: &mut O,
    version: i16,
    response: &FetchResponse,
    regions: &[Vec<Option<FileRegion>>],
) -> Result<(), EncodeError> {
    let flexible = version >= FLEXIBLE;
    o.put(&response.throttle_time_ms.to_be_bytes());
    if version >= 7 {
        o.put(&response.error_code.to_be_bytes());
        o.put(&response.session_id.to_be_bytes());
    } else if response.session_id != 0 {
        return Err(field_not_available(version, "session_id"));
    }
    array_len(o, version, response.responses.len())?;
    for (t, topic) in response.responses.iter().enumerate() {
        let topic_regions = regions.get(t).map(Vec::as_slice).unwrap_or(&[]);
        encode_topic(o, version, topic, topic_regions)?;
    }
    if flexible {
        // Tag 0 (node_endpoints, v16+) is written only when non-empty, as the crate
        // does; unknown fields from tag 1 follow, but all of them are counted.
        let endpoints = version >= 16 && !response.node_endpoints.is_empty();
        uvarint(
            o,
            (response.unknown_tagged_fields.len() + endpoints as usize) as u32,
        );
        if endpoints {
            let mut size = Count::default();
            array_len(&mut size, version, response.node_endpoints.len())?;
            for endpoint in &response.node_endpoints {
                size.message(endpoint, version)?;
            }
            uvarint(o, 0);
            uvarint(o, tagged_size(version, size.total)?);
            array_len(o, version, response.node_endpoints.len())?;
            for endpoint in &response.node_endpoints {
                o.message(endpoint, version)?;
            }
        }
        unknown_tagged_fields(o, version, 1.., &response.unknown_tagged_fields)?;
    }
    Ok(())
}

fn encode_topic<O: Out>(
    o: &mut O,
    version: i16,
    topic: &FetchableTopicResponse,
    regions: &[Option<FileRegion>],
) -> Result<(), EncodeError> {
    if version <= 12 {
        string(o, version, topic.topic.0.as_str())?;
    }
    if version >= 13 {
        o.put(topic.topic_id.as_bytes());
    }
    array_len(o, version, topic.partitions.len())?;
    for (p, partition) in topic.partitions.iter().enumerate() {
        let region = regions.get(p).and_then(Option::as_ref);
        encode_partition(o, version, partition, region)?;
    }
    if version >= FLEXIBLE {
        uvarint(o, topic.unknown_tagged_fields.len() as u32);
        unknown_tagged_fields(o, version, 0.., &topic.unknown_tagged_fields)?;
    }
    Ok(())
}

fn encode_partition<O: Out>(
    o: &mut O,
    version: i16,
    partition: &PartitionData,
    region: Option<&FileRegion>,
) -> Result<(), EncodeError> {
    let flexible = version >= FLEXIBLE;
    o.put(&partition.partition_index.to_be_bytes());
    o.put(&partition.error_code.to_be_bytes());
    o.put(&partition.high_watermark.to_be_bytes());
    o.put(&partition.last_stable_offset.to_be_bytes());
    if version >= 5 {
        o.put(&partition.log_start_offset.to_be_bytes());
    }
    match &partition.aborted_transactions {
        None => null_len(o, version),
        Some(aborted) => {
            array_len(o, version, aborted.len())?;
            for txn in aborted {
                o.message(txn, version)?;
            }
        }
    }
    if version >= 11 {
        o.put(&partition.preferred_read_replica.0.to_be_bytes());
    } else if partition.preferred_read_replica.0 != -1 {
        return Err(field_not_available(version, "preferred_read_replica"));
    }
    match (region, &partition.records) {
        (Some(region), _) => {
            bytes_len(o, version, region.len)?;
            o.region(region);
        }
        (None, Some(records)) => {
            bytes_len(o, version, records.len() as u64)?;
            o.put(records);
        }
        (None, None) => null_len(o, version),
    }
    if flexible {
        let diverging = partition.diverging_epoch != Default::default();
        let leader = partition.current_leader != Default::default();
        let snapshot = partition.snapshot_id != Default::default();
        let known = diverging as usize + leader as usize + snapshot as usize;
        uvarint(o, (partition.unknown_tagged_fields.len() + known) as u32);
        if diverging {
            tagged_message(o, version, 0, &partition.diverging_epoch)?;
        }
        if leader {
            tagged_message(o, version, 1, &partition.current_leader)?;
        }
        if snapshot {
            tagged_message(o, version, 2, &partition.snapshot_id)?;
        }
        // As in the crate, unknown fields under the known tags (0..=2) are counted
        // above but not written; Troupe never sets them.
        unknown_tagged_fields(o, version, 3.., &partition.unknown_tagged_fields)?;
    }
    Ok(())
}

fn field_not_available(version: i16, field: &str) -> EncodeError {
    body_error(
        version,
        format_args!("field {field} is set but not available in version {version}"),
    )
}

fn uvarint<O: Out>(o: &mut O, mut value: u32) {
    let mut bytes = [0u8; 5];
    let mut n = 0;
    while value >= 0x80 {
        bytes[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    bytes[n] = value as u8;
    o.put(&bytes[..=n]);
}

/// An array length: `i32` before v12, `len + 1` as an unsigned varint from v12.
fn array_len<O: Out>(o: &mut O, version: i16, len: usize) -> Result<(), EncodeError> {
    if version >= FLEXIBLE {
        let len = u32::try_from(len)
            .ok()
            .and_then(|l| l.checked_add(1))
            .ok_or_else(|| body_error(version, "array too long"))?;
        uvarint(o, len);
    } else {
        let len = i32::try_from(len).map_err(|_| body_error(version, "array too long"))?;
        o.put(&len.to_be_bytes());
    }
    Ok(())
}

/// A nullable bytes field's length (records): as an array length, the bytes follow.
fn bytes_len<O: Out>(o: &mut O, version: i16, len: u64) -> Result<(), EncodeError> {
    let len = usize::try_from(len).map_err(|_| body_error(version, "records too long"))?;
    array_len(o, version, len)
}

/// Null for nullable arrays and bytes: `-1` before v12, `0` from v12.
fn null_len<O: Out>(o: &mut O, version: i16) {
    if version >= FLEXIBLE {
        uvarint(o, 0);
    } else {
        o.put(&(-1i32).to_be_bytes());
    }
}

fn string<O: Out>(o: &mut O, version: i16, s: &str) -> Result<(), EncodeError> {
    if version >= FLEXIBLE {
        array_len(o, version, s.len())?;
    } else {
        let len = i16::try_from(s.len()).map_err(|_| body_error(version, "string too long"))?;
        o.put(&len.to_be_bytes());
    }
    o.put(s.as_bytes());
    Ok(())
}

fn tagged_size(version: i16, size: usize) -> Result<u32, EncodeError> {
    u32::try_from(size).map_err(|_| body_error(version, "tagged field too large"))
}

fn tagged_message<O: Out, M: Encodable>(
    o: &mut O,
    version: i16,
    tag: u32,
    msg: &M,
) -> Result<(), EncodeError> {
    let size = msg
        .compute_size(version)
        .map_err(|e| body_error(version, e))?;
    uvarint(o, tag);
    uvarint(o, tagged_size(version, size)?);
    o.message(msg, version)
}

fn unknown_tagged_fields<O: Out>(
    o: &mut O,
    version: i16,
    tags: RangeFrom<i32>,
    fields: &BTreeMap<i32, Bytes>,
) -> Result<(), EncodeError> {
    for (&tag, value) in fields.range(tags) {
        uvarint(o, tag as u32);
        uvarint(o, tagged_size(version, value.len())?);
        o.put(value);
    }
    Ok(())
}
