//! The entries of a DescribeConfigs answer, for a topic or for the broker.
//!
//! Kafka reports each setting with its value and where that value came from, so tools
//! such as `kafka-configs --describe --all` can show what is overridden. Broker values
//! come from the dynamic layers of [`super::dynamic`] (per broker, then the cluster
//! default), then the file or `--override`, then the defaults table.

use std::collections::BTreeMap;

use super::broker::BrokerConfig;
use super::defs::{topic_defs, CONFIG_DEFS};
use super::dynamic::{is_dynamic, DynamicLayers};
use super::kind::ConfigType;

/// Where a value came from; the discriminants are Kafka's `ConfigSource` wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    /// Set on the topic itself (TOPIC_CONFIG).
    DynamicTopic = 1,
    /// Set on this broker at run time (AlterConfigs on BROKER "<id>").
    DynamicBroker = 2,
    /// Set as the cluster-wide broker default at run time (BROKER "").
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

/// One place a setting's value may come from, best first (DescribeConfigs synonyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The broker key (a topic entry's synonyms are broker keys).
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
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
    /// Broker settings that can change only with a restart.
    pub read_only: bool,
    /// Never true today: we have no password settings.
    pub sensitive: bool,
    pub doc: &'static str,
    pub config_type: ConfigType,
    /// Every layer that sets the value, in Kafka's precedence; sent when the client
    /// asks for synonyms.
    pub synonyms: Vec<ConfigSynonym>,
}

/// The broker-level synonyms of a topic row: each of `[name, fallbacks...]` through
/// the dynamic and static layers, best first.
fn broker_synonyms(
    broker: &BrokerConfig,
    layers: &DynamicLayers,
    keys: impl Iterator<Item = &'static str>,
) -> Vec<ConfigSynonym> {
    keys.flat_map(|k| {
        layers
            .synonyms_of(broker, k)
            .into_iter()
            .map(move |(value, source)| ConfigSynonym {
                name: k.to_string(),
                value,
                source,
            })
    })
    .collect()
}

/// Every topic-level setting of a topic with these stored `overrides`, over the
/// broker's defaults as the dynamic `layers` change them. Unknown keys in `overrides`
/// are skipped: validation keeps them from being stored.
pub fn describe_topic(
    broker: &BrokerConfig,
    layers: &DynamicLayers,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    let defaults = layers
        .topic_defaults(broker)
        .unwrap_or_else(|_| broker.topic_defaults.clone());
    topic_defs()
        .filter_map(|def| {
            let name = def.topic?;
            let mut synonyms = broker_synonyms(
                broker,
                layers,
                std::iter::once(def.name).chain(def.fallbacks.iter().copied()),
            );
            let own = overrides.get(name).map(|v| ConfigSynonym {
                name: name.to_string(),
                value: Some(v.clone()),
                source: ConfigSource::DynamicTopic,
            });
            if let Some(own) = own {
                synonyms.insert(0, own);
            }
            let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
            let value = match overrides.get(name) {
                Some(v) => Some(v.clone()),
                // The broker value in the topic key's unit (hours become ms).
                None => defaults.get(name),
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
                synonyms,
            })
        })
        .collect()
}

/// Every broker setting, as the dynamic `layers`, the file or the defaults set it.
/// Keys that can change at run time are not read-only.
pub fn describe_broker(broker: &BrokerConfig, layers: &DynamicLayers) -> Vec<ConfigEntry> {
    CONFIG_DEFS
        .iter()
        .map(|def| {
            let synonyms = broker_synonyms(
                broker,
                layers,
                std::iter::once(def.name).chain(def.fallbacks.iter().copied()),
            );
            // A key's own value; its synonyms may still decide the effective setting.
            let (value, source) = layers
                .lookup(broker, def.name)
                .map_or((None, ConfigSource::Default), |(v, s)| (Some(v), s));
            ConfigEntry {
                name: def.name.to_string(),
                value,
                source,
                is_default: source == ConfigSource::Default,
                read_only: !is_dynamic(def.name),
                sensitive: false,
                doc: def.doc,
                config_type: def.config_type(),
                synonyms,
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
        let entries = describe_topic(&broker, &DynamicLayers::default(), &overrides);
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
        let entries = describe_broker(&broker, &DynamicLayers::default());
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

    /// Kafka's precedence, shown per layer: per-broker dynamic, cluster-default
    /// dynamic, static, default; a topic without its own value reports the layer its
    /// default comes from.
    #[test]
    fn dynamic_layers_show_as_sources_and_synonyms() {
        let (broker, _) =
            BrokerConfig::load_str("log.segment.bytes=2000000\n", "test", &[]).unwrap();
        let default = BTreeMap::from([
            ("log.segment.bytes".to_string(), "3000000".to_string()),
            ("log.retention.hours".to_string(), "2".to_string()),
        ]);
        let per = BTreeMap::from([("log.segment.bytes".to_string(), "4000000".to_string())]);
        let layers = DynamicLayers {
            per_broker: Some(&per),
            cluster_default: Some(&default),
        };
        let entries = describe_broker(&broker, &layers);
        let seg = find(&entries, "log.segment.bytes");
        assert_eq!(seg.value.as_deref(), Some("4000000"));
        assert_eq!(seg.source, ConfigSource::DynamicBroker);
        assert!(!seg.read_only);
        let layers_seen: Vec<_> = seg
            .synonyms
            .iter()
            .map(|s| (s.value.as_deref().unwrap(), s.source.code()))
            .collect();
        assert_eq!(
            layers_seen,
            vec![
                ("4000000", 2),
                ("3000000", 3),
                ("2000000", 4),
                ("1073741824", 5)
            ]
        );
        let ms = find(&entries, "log.retention.ms");
        assert_eq!(ms.value, None);
        // The synonyms of log.retention.ms walk minutes and hours after it.
        assert_eq!(
            ms.synonyms
                .iter()
                .map(|s| (s.name.as_str(), s.source.code()))
                .collect::<Vec<_>>(),
            vec![("log.retention.hours", 3), ("log.retention.hours", 5)]
        );
        assert!(find(&entries, "log.dirs").read_only);

        let topic = describe_topic(&broker, &layers, &BTreeMap::new());
        let seg = find(&topic, "segment.bytes");
        assert_eq!(
            (seg.value.as_deref(), seg.source),
            (Some("4000000"), ConfigSource::DynamicBroker)
        );
        let ret = find(&topic, "retention.ms");
        assert_eq!(
            (ret.value.as_deref(), ret.source),
            (Some("7200000"), ConfigSource::DynamicDefaultBroker)
        );
    }
}
