//! The records of the metadata log (serde + rmp-serde on disk).
//!
//! Written with named fields (`rmp_serde::to_vec_named`), so a field added later is
//! read as its `#[serde(default)]` from older logs, and older code skips fields it does
//! not know. Logs written before that (positional arrays) still decode: serde fills a
//! missing trailing field with its default too. Variants are only ever appended.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One change to the cluster. Records are only ever added to this enum (never reordered
/// or renumbered): old logs must stay readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker registered (or registered again after a restart). Its broker epoch is
    /// the offset of this record. Fields after `rack` came with the cluster version and
    /// default for logs written before it (a single node registered unfenced).
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        /// Random per process start: tells a restart from a retried registration.
        #[serde(default)]
        incarnation_id: [u8; 16],
        /// A registered broker is fenced until it has caught up with the metadata log.
        #[serde(default)]
        fenced: bool,
    },
    /// A topic was created; its partitions follow as `PartitionRecord`s.
    Topic {
        name: String,
        topic_id: [u8; 16],
        configs: BTreeMap<String, String>,
    },
    /// A partition's replica assignment and leadership. A later record for the same
    /// partition replaces the earlier one; `leader_epoch` only ever grows.
    Partition {
        topic_id: [u8; 16],
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A topic and all its partitions were deleted.
    RemoveTopic { topic_id: [u8; 16] },
    /// A topic config was set (`Some`) or reset to the broker default (`None`).
    TopicConfig {
        topic_id: [u8; 16],
        key: String,
        value: Option<String>,
    },
    /// Producer ids `[first, first + size)` were handed to a broker (never reused).
    ProducerIds { node_id: i32, first: i64, size: i64 },
    /// A broker missed heartbeats for `broker.session.timeout.ms` or shut down: it is
    /// not listed in Metadata and may not lead or be in an ISR until unfenced.
    FenceBroker { node_id: i32, broker_epoch: i64 },
    /// A registered broker caught up with the metadata log and serves again.
    UnfenceBroker { node_id: i32, broker_epoch: i64 },
    /// A dynamic broker config (Kafka's BROKER resource) was set (`Some`) or removed
    /// (`None`). `resource` is the broker id as text, or empty for the cluster-wide
    /// default that every broker without its own value uses.
    BrokerConfig {
        resource: String,
        key: String,
        value: Option<String>,
    },
}

/// A record as stored: its position in the log and the controller epoch that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub offset: i64,
    pub epoch: i32,
    pub record: MetadataRecord,
}

/// Encode an entry as stored (named fields: see the module comment).
pub fn encode_entry(entry: &MetadataEntry) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(entry)
}

/// Decode a stored entry, whichever encoding wrote it.
pub fn decode_entry(bytes: &[u8]) -> Result<MetadataEntry, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes written by the single-node version (positional arrays, before
    /// `incarnation_id` and `fenced` existed): they still decode, with the defaults.
    #[test]
    fn records_written_by_the_previous_version_decode() {
        let register =
            hex("93070281ae526567697374657242726f6b65729401a93132372e302e302e31cd2384c0");
        let e = decode_entry(&register).unwrap();
        assert_eq!((e.offset, e.epoch), (7, 2));
        assert_eq!(
            e.record,
            MetadataRecord::RegisterBroker {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
                incarnation_id: [0; 16],
                fenced: false,
            }
        );
        let partition = hex(
            "93080281a9506172746974696f6e97dc0010010101010101010101010101010101010091019101010000",
        );
        let e = decode_entry(&partition).unwrap();
        assert!(matches!(
            e.record,
            MetadataRecord::Partition {
                leader: 1,
                partition: 0,
                ..
            }
        ));
    }

    /// What is written now has named fields: it round-trips, and a reader that knows
    /// fewer fields (the previous struct, here a mirror of it) skips the new ones.
    #[test]
    fn named_encoding_round_trips_and_older_readers_skip_new_fields() {
        let e = MetadataEntry {
            offset: 3,
            epoch: 1,
            record: MetadataRecord::RegisterBroker {
                node_id: 2,
                host: "h".into(),
                port: 1,
                rack: Some("r1".into()),
                incarnation_id: [9; 16],
                fenced: true,
            },
        };
        let bytes = encode_entry(&e).unwrap();
        assert_eq!(decode_entry(&bytes).unwrap(), e);
        #[derive(Deserialize)]
        enum OldRecord {
            RegisterBroker {
                node_id: i32,
                host: String,
                port: u16,
                rack: Option<String>,
            },
        }
        #[derive(Deserialize)]
        struct OldEntry {
            offset: i64,
            record: OldRecord,
        }
        let old: OldEntry = rmp_serde::from_slice(&bytes).unwrap();
        let OldRecord::RegisterBroker {
            node_id,
            host,
            port,
            rack,
        } = old.record;
        assert_eq!((old.offset, node_id, host.as_str(), port), (3, 2, "h", 1));
        assert_eq!(rack.as_deref(), Some("r1"));
    }

    /// The broker-config record has named fields: it round-trips, and a reader whose
    /// copy of the record lacks a field added later still decodes it.
    #[test]
    fn broker_config_record_round_trips() {
        let e = MetadataEntry {
            offset: 9,
            epoch: 1,
            record: MetadataRecord::BrokerConfig {
                resource: "".into(),
                key: "log.retention.ms".into(),
                value: Some("1000".into()),
            },
        };
        let bytes = encode_entry(&e).unwrap();
        assert_eq!(decode_entry(&bytes).unwrap(), e);
        #[derive(Deserialize)]
        enum OldRecord {
            BrokerConfig { resource: String, key: String },
        }
        #[derive(Deserialize)]
        struct OldEntry {
            record: OldRecord,
        }
        let old: OldEntry = rmp_serde::from_slice(&bytes).unwrap();
        let OldRecord::BrokerConfig { resource, key } = old.record;
        assert_eq!((resource.as_str(), key.as_str()), ("", "log.retention.ms"));
    }
}
