//! The record formats of `__consumer_offsets`, byte for byte as Kafka writes them, so
//! that tools reading the topic (kafka-console-consumer with the offsets formatter,
//! kcat, our own loader after a restart) understand every record.
//!
//! Keys carry a version that says what the record is:
//!
//! ```text
//! OffsetCommitKey   v0/v1: version i16, group string, topic string, partition i32
//! GroupMetadataKey  v2:    version i16, group string
//! ```
//!
//! Values (a null value is a tombstone: the key's offset or group is deleted, and
//! compaction eventually drops every earlier record with that key):
//!
//! ```text
//! OffsetCommitValue v0: offset i64, metadata string, timestamp i64
//!                   v1: offset i64, metadata string, commit_ts i64, expire_ts i64
//!                   v2: offset i64, metadata string, commit_ts i64
//!                   v3: offset i64, leader_epoch i32, metadata string, commit_ts i64
//!                   v4: v3 with a compact string and tagged fields (flexible)
//! GroupMetadataValue v0..v3: protocol_type string, generation i32, protocol string?,
//!                   leader string?, [v2+ current_state_timestamp i64], members:
//!                   member_id, [v3+ group_instance_id string?], client_id, client_host,
//!                   [v1+ rebalance_timeout i32], session_timeout i32,
//!                   subscription bytes, assignment bytes
//! ```
//!
//! We write OffsetCommitKey v1 + OffsetCommitValue v3 and GroupMetadataKey v2 +
//! GroupMetadataValue v3, the newest non-flexible layouts, and read all of the above.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Why a `__consumer_offsets` record could not be decoded. The loader skips such a
/// record (with a warning) rather than refusing to serve every group of the partition.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The bytes end before the field the layout says comes next.
    #[error("truncated {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    /// A key or value version this broker does not know (written by a newer Kafka).
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
    /// A string that is not UTF-8, or a negative length where none is allowed.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// What a record's key names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OffsetsKey {
    /// The committed offset of one partition for one group.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's membership and assignment (its latest generation).
    Group { group: String },
}

impl OffsetsKey {
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::Offset { group, .. } | OffsetsKey::Group { group } => group,
        }
    }
}

/// One committed offset, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not say (OffsetCommit before v6).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in v1 values (clients that asked for a per-commit retention).
    pub expire_timestamp: Option<i64>,
}

/// One member of a stored group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as stored after each completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (drives retention of empty groups).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// The current versions we write.
const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

fn put_str(buf: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; group ids, topics and metadata are
    // bounded well below that by the request decoder and offset.metadata.max.bytes.
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

pub fn encode_key(key: &OffsetsKey) -> Vec<u8> {
    let mut buf = BytesMut::new();
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            buf.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut buf, group);
            put_str(&mut buf, topic);
            buf.put_i32(*partition);
        }
        OffsetsKey::Group { group } => {
            buf.put_i16(GROUP_KEY_VERSION);
            put_str(&mut buf, group);
        }
    }
    buf.to_vec()
}

pub fn encode_offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Some(expire) = v.expire_timestamp {
        // Kafka's version 1, the only layout with an expire timestamp (and without a
        // leader epoch, which the OffsetCommit versions that set one do not carry).
        buf.put_i16(1);
        buf.put_i64(v.offset);
        put_str(&mut buf, &v.metadata);
        buf.put_i64(v.commit_timestamp);
        buf.put_i64(expire);
        return buf.to_vec();
    }
    buf.put_i16(OFFSET_VALUE_VERSION);
    buf.put_i64(v.offset);
    buf.put_i32(v.leader_epoch);
    put_str(&mut buf, &v.metadata);
    buf.put_i64(v.commit_timestamp);
    buf.to_vec()
}

pub fn encode_group_value(v: &GroupValue) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut buf, &v.protocol_type);
    buf.put_i32(v.generation);
    put_nullable_str(&mut buf, v.protocol.as_deref());
    put_nullable_str(&mut buf, v.leader.as_deref());
    buf.put_i64(v.current_state_timestamp);
    buf.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut buf, &m.member_id);
        put_nullable_str(&mut buf, m.group_instance_id.as_deref());
        put_str(&mut buf, &m.client_id);
        put_str(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout_ms);
        buf.put_i32(m.session_timeout_ms);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.to_vec()
}

/// A cursor that fails cleanly on short input.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(RecordError::Truncated { what, at: self.at })?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, RecordError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, RecordError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, RecordError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn nullable_str(
        &mut self,
        what: &'static str,
    ) -> Result<Option<String>, RecordError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize, what)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Malformed(what))
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<String, RecordError> {
        self.nullable_str(what)?.ok_or(RecordError::Malformed(what))
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, RecordError> {
        let len = self.i32(what)?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize, what)?))
    }

    fn uvarint(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, what)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Malformed(what))
    }

    fn compact_str(&mut self, what: &'static str) -> Result<String, RecordError> {
        let n = self.uvarint(what)?;
        let len = usize::try_from(n.saturating_sub(1)).map_err(|_| RecordError::Malformed(what))?;
        let b = self.take(len, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::Malformed(what))
    }
}

pub fn decode_key(key: &[u8]) -> Result<OffsetsKey, RecordError> {
    let mut r = Reader::new(key);
    match r.i16("key version")? {
        0 | 1 => Ok(OffsetsKey::Offset {
            group: r.str("group")?,
            topic: r.str("topic")?,
            partition: r.i32("partition")?,
        }),
        2 => Ok(OffsetsKey::Group {
            group: r.str("group")?,
        }),
        v => Err(RecordError::UnknownVersion {
            what: "key",
            version: v,
        }),
    }
}

pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16("offset value version")?;
    let offset = r.i64("offset")?;
    let (leader_epoch, metadata) = match version {
        0..=2 => (-1, r.str("metadata")?),
        3 => (r.i32("leader epoch")?, r.str("metadata")?),
        4 => (r.i32("leader epoch")?, r.compact_str("metadata")?),
        v => {
            return Err(RecordError::UnknownVersion {
                what: "offset value",
                version: v,
            })
        }
    };
    let commit_timestamp = r.i64("commit timestamp")?;
    let expire_timestamp = if version == 1 {
        Some(r.i64("expire timestamp")?)
    } else {
        None
    };
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

pub fn decode_group_value(value: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16("group value version")?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnknownVersion {
            what: "group value",
            version,
        });
    }
    let protocol_type = r.str("protocol type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_str("protocol")?;
    let leader = r.nullable_str("leader")?;
    let current_state_timestamp = if version >= 2 {
        r.i64("current state timestamp")?
    } else {
        -1
    };
    let count = r.i32("member count")?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = r.str("member id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_str("group instance id")?
        } else {
            None
        };
        let client_id = r.str("client id")?;
        let client_host = r.str("client host")?;
        let session_then_rebalance = r.i32("timeout")?;
        let (rebalance_timeout_ms, session_timeout_ms) = if version >= 1 {
            (session_then_rebalance, r.i32("session timeout")?)
        } else {
            (session_then_rebalance, session_then_rebalance)
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes("subscription")?,
            assignment: r.bytes("assignment")?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// The topics a consumer subscribes to, from its ConsumerProtocolSubscription metadata
/// (version i16, topics [string], ...). `None` when the bytes are not that format; the
/// callers then assume every topic is subscribed, which is the safe side.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(metadata);
    let version = r.i16("subscription version").ok()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let n = r.i32("topic count").ok()?;
    let mut topics = Vec::new();
    for _ in 0..n.max(0) {
        topics.push(r.str("topic").ok()?);
    }
    Some(topics)
}
