//! Cluster metadata: the records the controller appends, the image brokers apply them to,
//! and the on-disk metadata log.
//!
//! Every change to topics, partitions, configs or producer-id blocks is a
//! [`MetadataRecord`] appended (with the controller epoch) to the metadata log, then
//! applied to a [`MetadataImage`]. Today a single-node controller writes the log with
//! [`MetadataLog`]; the Raft quorum will replace that writer without changing records or
//! image, which is the seam this module exists for.

mod image;
mod log;
mod records;

pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError};
pub use records::{decode_entry, encode_entry, MetadataEntry, MetadataRecord};

/// Kafka's rule for topic names: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!("topic name contains illegal character {c:?}"));
    }
    Ok(())
}

/// A new random UUID (version 4) from the OS, used for topic ids and the cluster id.
pub fn random_uuid() -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    // getrandom(2) cannot fail for 16 bytes once the pool is initialised; a short
    // read would only weaken uniqueness, so fall back to time-based bits.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = t.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = random_uuid();
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(a, random_uuid());
    }
}
