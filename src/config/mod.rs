//! Broker and topic configuration, with Apache Kafka's key names, types and defaults.
//!
//! * [`properties`]: reads the `.properties` file format of `server.properties`.
//! * [`defs`]: **the** table of every setting Troupe knows: name, type, default, doc,
//!   and for topic-level settings the broker keys they fall back to. Defaults live
//!   there and nowhere else; everything below reads them from it.
//! * [`broker`]: [`BrokerConfig::load`] merges the file, then `--override key=value`
//!   arguments, over the defaults; unknown keys become warnings, bad values errors.
//! * [`topic`]: [`TopicConfig`] (a topic's effective settings: broker defaults plus
//!   its own overrides), validation of topic configs sent by clients, and the entries
//!   DescribeConfigs answers with (built in `describe`).
//!
//! * [`applied`]: the settings accepted but not applied yet, logged at start-up.
//!
//! Smaller pieces: `kind` (value types and their parsing), `listener` (`listeners` and
//! `controller.quorum.voters` syntax), `load` (the merge behind `BrokerConfig::load`).
//!
//! Nothing here touches a socket or an actor; the only IO is reading the file named to
//! [`BrokerConfig::load`].

pub mod applied;
pub mod broker;
pub mod defs;
mod describe;
pub mod dynamic;
mod kind;
mod listener;
mod load;
pub mod properties;
pub mod roles;
pub mod topic;

use std::path::PathBuf;

pub use broker::{BrokerConfig, ProcessRole};
pub use defs::{ConfigDef, CONFIG_DEFS};
pub use describe::{describe_broker, describe_topic, ConfigEntry, ConfigSource, ConfigSynonym};
pub use dynamic::{DynamicConfigError, DynamicLayers};
pub use kind::{ConfigKind, ConfigType, Parsed, Ratio, TimeUnit};
pub use listener::{Listener, QuorumVoter};
pub use topic::{
    topic_keys, validate_topic_config, CleanupPolicy, CompressionType, TimestampType, TopicConfig,
};

/// What can go wrong reading configuration. The protocol layer maps topic-config errors
/// to Kafka's INVALID_CONFIG (40); at start-up any of these stops the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a properties file is not `key=value` (or has a malformed escape).
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// A `--override` argument is not of the form `key=value`.
    #[error("override {arg:?} is not of the form key=value")]
    BadOverride { arg: String },
    /// A value does not parse as its setting's type, is out of range, is not one of the
    /// allowed values, or contradicts another setting.
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// A topic-level key Troupe does not know. For broker keys an unknown name is only a
    /// warning (Kafka files carry many keys we do not need), but a client setting a topic
    /// config we would silently ignore deserves an error.
    #[error("unknown topic configuration {key}")]
    Unknown { key: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Splits one `--override key=value` command-line argument, as Kafka's start script
/// takes them. Key and value are trimmed; the value may itself contain `=`.
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::BadOverride {
            arg: arg.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_arguments() {
        assert_eq!(
            parse_override("listeners=PLAINTEXT://h:1").unwrap(),
            ("listeners".to_string(), "PLAINTEXT://h:1".to_string())
        );
        assert_eq!(
            parse_override(" a = b=c ").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert!(matches!(
            parse_override("novalue"),
            Err(ConfigError::BadOverride { .. })
        ));
        assert!(matches!(
            parse_override("=x"),
            Err(ConfigError::BadOverride { .. })
        ));
    }
}
