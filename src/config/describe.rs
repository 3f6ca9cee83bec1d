//! The entries of a DescribeConfigs answer, for a topic or for the broker.
//!
//! Kafka reports each setting with its value and where that value came from, so tools
//! such as `kafka-configs --describe --all` can show what is overridden. We have no
//! dynamic broker configs (AlterConfigs on a broker is not supported), so broker values
//! are either static (set in the file or by `--override`) or defaults.

use std::collections::BTreeMap;

use super::broker::BrokerConfig;
use super::defs::{topic_defs, CONFIG_DEFS};
use super::kind::ConfigType;

/// Where a value came from; the discriminants are Kafka's `ConfigSource` wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic itself (TOPIC_CONFIG).
    DynamicTopic = 1,
    /// Set on this broker at runtime; we never produce it (no dynamic broker configs).
    DynamicBroker = 2,
    /// Set as the cluster-wide broker default at runtime; never produced either.
    DynamicDefaultBroker = 3,
    /// Set in server.properties or by `--override`.
    StaticBroker = 4,
    /// Nobody set it: the built-in default.
    Default = 5,
}

impl ConfigSource {
    /// The wire code.
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// One line of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` for a setting with no value and no default (Kafka's null).
    pub value: Option<String>,
    pub source: ConfigSource,
    /// `source == Default`; old protocol versions send this flag instead of the source.
    pub is_default: bool,
    /// Broker settings are read-only: they can change only with a restart.
    pub read_only: bool,
    /// Never true today: we have no password settings.
    pub sensitive: bool,
    pub doc: &'static str,
    pub config_type: ConfigType,
}

/// Every topic-level setting of a topic with these stored `overrides`. Unknown keys in
/// `overrides` are skipped: validation keeps them from being stored.
pub fn describe_topic(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    topic_defs()
        .filter_map(|def| {
            let name = def.topic?;
            let (value, source) = if let Some(v) = overrides.get(name) {
                (Some(v.clone()), ConfigSource::DynamicTopic)
            } else {
                let set_on_broker = std::iter::once(&def.name)
                    .chain(def.fallbacks)
                    .any(|k| broker.is_set(k));
                let source = if set_on_broker {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                };
                // The broker value in the topic key's unit (hours become ms).
                (broker.topic_defaults.get(name), source)
            };
            Some(ConfigEntry {
                name: name.to_string(),
                value,
                source,
                is_default: source == ConfigSource::Default,
                read_only: false,
                sensitive: false,
                doc: def.doc,
                config_type: def.config_type(),
            })
        })
        .collect()
}

/// Every broker setting, as set or defaulted.
pub fn describe_broker(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    CONFIG_DEFS
        .iter()
        .map(|def| {
            let source = if broker.is_set(def.name) {
                ConfigSource::StaticBroker
            } else {
                ConfigSource::Default
            };
            ConfigEntry {
                name: def.name.to_string(),
                value: broker.get(def.name),
                source,
                is_default: source == ConfigSource::Default,
                read_only: true,
                sensitive: false,
                doc: def.doc,
                config_type: def.config_type(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(entries: &'a [ConfigEntry], name: &str) -> &'a ConfigEntry {
        entries.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn topic_sources_topic_then_broker_then_default() {
        let (broker, _) = BrokerConfig::load_str("log.retention.hours=1\n", "test", &[]).unwrap();
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "2048".to_string())]);
        let entries = describe_topic(&broker, &overrides);
        assert_eq!(entries.len(), topic_defs().count());

        let seg = find(&entries, "segment.bytes");
        assert_eq!(seg.value.as_deref(), Some("2048"));
        assert_eq!(seg.source.code(), 1);
        assert!(!seg.is_default && !seg.read_only);
        assert_eq!(seg.config_type.code(), ConfigType::Int.code());

        let ret = find(&entries, "retention.ms");
        assert_eq!(ret.value.as_deref(), Some("3600000"));
        assert_eq!(ret.source, ConfigSource::StaticBroker);
        assert_eq!(ret.source.code(), 4);
        assert_eq!(ret.config_type, ConfigType::Long);

        let policy = find(&entries, "cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("delete"));
        assert_eq!(policy.source.code(), 5);
        assert!(policy.is_default);
        assert_eq!(policy.config_type, ConfigType::List);
        assert!(!policy.doc.is_empty());
    }

    #[test]
    fn broker_entries_cover_the_table() {
        let (broker, _) = BrokerConfig::load_str("num.partitions=3\n", "test", &[]).unwrap();
        let entries = describe_broker(&broker);
        assert_eq!(entries.len(), CONFIG_DEFS.len());
        let np = find(&entries, "num.partitions");
        assert_eq!(np.value.as_deref(), Some("3"));
        assert_eq!(np.source, ConfigSource::StaticBroker);
        assert!(np.read_only);
        let ms = find(&entries, "log.retention.ms");
        assert_eq!(ms.value, None);
        assert!(ms.is_default);
        let hours = find(&entries, "log.retention.hours");
        assert_eq!(hours.value.as_deref(), Some("168"));
        assert_eq!(hours.config_type, ConfigType::Int);
    }
}
