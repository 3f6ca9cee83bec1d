//! Dynamic broker configs: the keys AlterConfigs / IncrementalAlterConfigs may change on
//! the BROKER resource at run time, and the layering Kafka reads them in.
//!
//! A key's effective value is, in Kafka's precedence: the value set on this broker
//! (DYNAMIC_BROKER_CONFIG), else the cluster-wide default set with an empty broker name
//! (DYNAMIC_DEFAULT_BROKER_CONFIG), else `server.properties` / `--override`
//! (STATIC_BROKER_CONFIG), else the built-in default. Keys with synonyms (the
//! `log.retention.{ms,minutes,hours}` family) are looked up key by key, each through
//! all four layers, so a static `log.retention.ms` still beats a dynamic
//! `log.retention.hours`, as in Kafka.
//!
//! The layers live in the metadata image (`broker_configs`), so they are persisted in
//! the metadata log and reach every broker; this module only reads them.

use std::collections::BTreeMap;

use super::broker::BrokerConfig;
use super::defs::broker_def;
use super::describe::ConfigSource;
use super::topic::TopicConfig;
use super::ConfigError;

/// Broker-only keys Troupe applies at run time (the connection quotas follow them).
const DYNAMIC_BROKER_ONLY: &[&str] = &["max.connections", "max.connections.per.ip"];

/// Broker-only keys Kafka can change at run time but Troupe reads only at start-up
/// (the cleaner and the thread pools are sized once). They are refused with a message
/// that says so rather than accepted and ignored.
const DYNAMIC_IN_KAFKA_STARTUP_HERE: &[&str] = &[
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
];

/// Why a dynamic broker config change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicConfigError {
    /// The key is no broker config we know.
    #[error("Unknown broker config {0}.")]
    Unknown(String),
    /// Kafka itself requires a restart for this key (`listeners`, `log.dirs`, ...).
    #[error("Cannot update these configs dynamically: Set({0})")]
    NotDynamic(String),
    /// Kafka can change it at run time; Troupe reads it only at start-up.
    #[error(
        "Cannot update these configs dynamically: Set({0}) (Troupe reads it only at \
         start-up; set it in server.properties)"
    )]
    StartupOnly(String),
    /// The value does not parse or is out of range for the key.
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// Whether `key` (a canonical broker key or alias) may be set dynamically: the
/// broker-level defaults of topic configs (Kafka's `DynamicLogConfig`) and their
/// synonyms, and the connection quotas.
pub fn is_dynamic(key: &str) -> bool {
    let Some(def) = broker_def(key) else {
        return false;
    };
    def.topic.is_some()
        || DYNAMIC_BROKER_ONLY.contains(&def.name)
        || super::defs::topic_defs().any(|t| t.fallbacks.contains(&def.name))
}

/// Check one key and value for a dynamic broker config change.
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), DynamicConfigError> {
    let def = broker_def(key).ok_or_else(|| DynamicConfigError::Unknown(key.to_string()))?;
    if !is_dynamic(key) {
        if DYNAMIC_IN_KAFKA_STARTUP_HERE.contains(&def.name) {
            return Err(DynamicConfigError::StartupOnly(key.to_string()));
        }
        return Err(DynamicConfigError::NotDynamic(key.to_string()));
    }
    def.kind
        .parse(value)
        .map(|_| ())
        .map_err(|reason| DynamicConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        })
}

/// The two dynamic layers that apply to one broker, as held in the metadata image.
#[derive(Debug, Clone, Copy, Default)]
pub struct DynamicLayers<'a> {
    /// Set on this broker by id.
    pub per_broker: Option<&'a BTreeMap<String, String>>,
    /// Set on the cluster default (empty broker name).
    pub cluster_default: Option<&'a BTreeMap<String, String>>,
}

impl<'a> DynamicLayers<'a> {
    /// The layers of broker `node_id` in the image's `broker_configs` map.
    pub fn of(all: &'a BTreeMap<String, BTreeMap<String, String>>, node_id: i32) -> Self {
        DynamicLayers {
            per_broker: all.get(&node_id.to_string()),
            cluster_default: all.get(""),
        }
    }

    /// Every layer that sets `key`, best first, with its source: per-broker,
    /// cluster default, static, default. The first one is the effective value.
    pub fn synonyms_of(
        &self,
        broker: &BrokerConfig,
        key: &str,
    ) -> Vec<(Option<String>, ConfigSource)> {
        let mut out = Vec::new();
        if let Some(v) = self.per_broker.and_then(|m| m.get(key)) {
            out.push((Some(v.clone()), ConfigSource::DynamicBroker));
        }
        if let Some(v) = self.cluster_default.and_then(|m| m.get(key)) {
            out.push((Some(v.clone()), ConfigSource::DynamicDefaultBroker));
        }
        if let Some(v) = broker.raw.get(key) {
            out.push((Some(v.clone()), ConfigSource::StaticBroker));
        }
        if let Some(d) = broker_def(key).and_then(|d| d.default) {
            out.push((Some(d.to_string()), ConfigSource::Default));
        }
        out
    }

    /// `key`'s effective value and where it came from (`None`: unset, no default).
    pub fn lookup(&self, broker: &BrokerConfig, key: &str) -> Option<(String, ConfigSource)> {
        self.synonyms_of(broker, key)
            .into_iter()
            .find_map(|(v, s)| Some((v?, s)))
    }

    /// Whether neither layer sets anything.
    pub fn is_empty(&self) -> bool {
        self.per_broker.is_none_or(|m| m.is_empty())
            && self.cluster_default.is_none_or(|m| m.is_empty())
    }

    /// The topic defaults with these layers over the static config. Without dynamic
    /// values this is `broker.topic_defaults` itself.
    pub fn topic_defaults(&self, broker: &BrokerConfig) -> Result<TopicConfig, ConfigError> {
        if self.is_empty() {
            return Ok(broker.topic_defaults.clone());
        }
        TopicConfig::from_broker(&|k| self.lookup(broker, k).map(|(v, _)| v))
    }
}

/// Check a whole resource's dynamic layer as it would be after a change: every key is
/// dynamic and valid, and together (over the built-in defaults) they give valid topic
/// defaults (e.g. `log.segment.bytes` within its bounds in the unit of its topic key).
pub fn validate_dynamic_layer(layer: &BTreeMap<String, String>) -> Result<(), DynamicConfigError> {
    for (k, v) in layer {
        validate_dynamic_broker_config(k, v)?;
    }
    let layers = DynamicLayers {
        per_broker: Some(layer),
        cluster_default: None,
    };
    let defaults = BrokerConfig::default();
    layers
        .topic_defaults(&defaults)
        .map(|_| ())
        .map_err(|e| match e {
            ConfigError::Invalid { key, value, reason } => {
                DynamicConfigError::Invalid { key, value, reason }
            }
            other => DynamicConfigError::Invalid {
                key: String::new(),
                value: String::new(),
                reason: other.to_string(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn which_keys_are_dynamic() {
        for k in [
            "log.retention.ms",
            "log.retention.hours",
            "log.retention.bytes",
            "log.segment.bytes",
            "log.roll.ms",
            "log.cleanup.policy",
            "message.max.bytes",
            "compression.type",
            "min.insync.replicas",
            "unclean.leader.election.enable",
            "log.message.timestamp.type",
            "log.cleaner.min.cleanable.ratio",
        ] {
            assert!(is_dynamic(k), "{k}");
        }
        assert!(matches!(
            validate_dynamic_broker_config("log.dirs", "/x"),
            Err(DynamicConfigError::NotDynamic(_))
        ));
        assert!(validate_dynamic_broker_config("max.connections", "5").is_ok());
        assert!(matches!(
            validate_dynamic_broker_config("log.cleaner.backoff.ms", "5"),
            Err(DynamicConfigError::StartupOnly(_))
        ));
        assert!(matches!(
            validate_dynamic_broker_config("no.such.key", "5"),
            Err(DynamicConfigError::Unknown(_))
        ));
        assert!(matches!(
            validate_dynamic_broker_config("log.segment.bytes", "abc"),
            Err(DynamicConfigError::Invalid { .. })
        ));
        assert!(validate_dynamic_layer(&map(&[("log.segment.bytes", "1")])).is_err());
        assert!(validate_dynamic_layer(&map(&[("log.segment.bytes", "1048576")])).is_ok());
    }

    /// Kafka's precedence: per-broker dynamic > cluster default > static > default,
    /// key by key through the synonyms.
    #[test]
    fn layers_apply_in_kafkas_order() {
        let (broker, _) = BrokerConfig::load_str("log.segment.bytes=2000000\n", "t", &[]).unwrap();
        let none = DynamicLayers::default();
        assert_eq!(
            none.topic_defaults(&broker).unwrap().segment_bytes,
            2_000_000
        );
        let default = map(&[
            ("log.segment.bytes", "3000000"),
            ("log.retention.hours", "1"),
        ]);
        let per = map(&[("log.segment.bytes", "4000000")]);
        let cluster = DynamicLayers {
            per_broker: None,
            cluster_default: Some(&default),
        };
        let t = cluster.topic_defaults(&broker).unwrap();
        assert_eq!((t.segment_bytes, t.retention_ms), (3_000_000, 3_600_000));
        let both = DynamicLayers {
            per_broker: Some(&per),
            cluster_default: Some(&default),
        };
        assert_eq!(
            both.topic_defaults(&broker).unwrap().segment_bytes,
            4_000_000
        );
        assert_eq!(
            both.lookup(&broker, "log.segment.bytes").unwrap().1,
            ConfigSource::DynamicBroker
        );
        assert_eq!(
            both.synonyms_of(&broker, "log.segment.bytes")
                .iter()
                .map(|(_, s)| *s)
                .collect::<Vec<_>>(),
            vec![
                ConfigSource::DynamicBroker,
                ConfigSource::DynamicDefaultBroker,
                ConfigSource::StaticBroker,
                ConfigSource::Default
            ]
        );
        // A static log.retention.ms beats a dynamic log.retention.hours.
        let (broker, _) = BrokerConfig::load_str("log.retention.ms=5000\n", "t", &[]).unwrap();
        assert_eq!(cluster.topic_defaults(&broker).unwrap().retention_ms, 5000);
    }
}
