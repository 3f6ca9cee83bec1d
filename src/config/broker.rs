//! The broker's configuration: `server.properties`, then `--override key=value`
//! arguments, over the defaults of [`super::defs`].
//!
//! Loading is strict about values and lenient about names, as Kafka is: a file copied
//! from a Kafka install carries keys we have no use for (SASL, quotas, ...), so an
//! unknown key is a warning the caller logs; a value we cannot use stops start-up with
//! an error naming the key, the value and where it was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::defs::broker_def;
use super::listener::{Listener, QuorumVoter};
use super::load::Values;
use super::properties;
use super::topic::TopicConfig;
use super::ConfigError;

/// A role from `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    Broker,
    Controller,
}

/// Typed settings the runtime reads, plus every value as written. Field names are the
/// Kafka keys with `_`; see [`super::defs::CONFIG_DEFS`] for what each one means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// From `node.id` (or its old name `broker.id`).
    pub node_id: i32,
    pub process_roles: Vec<ProcessRole>,
    /// Empty: this node is the only voter (single node).
    pub controller_quorum_voters: Vec<QuorumVoter>,
    pub controller_listener_names: Vec<String>,
    /// `None` until the first start generates one and stores it in meta.properties.
    pub cluster_id: Option<String>,
    pub controller_quorum_election_timeout_ms: u64,
    pub controller_quorum_fetch_timeout_ms: u64,
    pub broker_heartbeat_interval_ms: u64,
    pub broker_session_timeout_ms: u64,
    pub broker_rack: Option<String>,
    pub auto_leader_rebalance_enable: bool,
    pub leader_imbalance_per_broker_percentage: u32,
    pub leader_imbalance_check_interval_seconds: u64,
    pub listeners: Vec<Listener>,
    /// What Metadata tells clients; defaults to `listeners` minus controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// The listener followers fetch from; the first broker listener when unset.
    pub inter_broker_listener_name: Option<String>,
    pub num_network_threads: usize,
    pub num_io_threads: usize,
    /// -1 keeps the OS default.
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub socket_request_max_bytes: usize,
    /// The listen(2) backlog of each listener.
    pub socket_listen_backlog_size: u32,
    /// Bound on requests in flight per connection (memory must not grow with a client).
    pub queued_max_requests: usize,
    /// Broker-wide bound on bytes of requests in flight (`queued.max.request.bytes`);
    /// -1: none.
    pub queued_max_request_bytes: i64,
    pub connections_max_idle_ms: u64,
    /// Client connections open at once, broker-wide (`max.connections`).
    pub max_connections: usize,
    /// Client connections open at once from one address (`max.connections.per.ip`).
    pub max_connections_per_ip: usize,
    /// KIP-578 caps: partitions in the cluster and replicas on one broker.
    pub max_partitions: i32,
    pub max_broker_partitions: i32,
    /// From `log.dirs` (or `log.dir`).
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub num_recovery_threads_per_data_dir: usize,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_replication_factor: i16,
    pub offsets_topic_segment_bytes: u64,
    /// From `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: u64,
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`: longest commit metadata accepted.
    pub offset_metadata_max_bytes: usize,
    pub offsets_commit_timeout_ms: u64,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    pub group_max_size: usize,
    pub replica_lag_time_max_ms: u64,
    /// The replica.fetch.* sizes and waits are i32 because they go into Fetch requests.
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_min_bytes: i32,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: u64,
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// `replica.selector.class` is Kafka's rack-aware selector: consumers are pointed
    /// at an in-sync replica in their rack (KIP-392).
    pub rack_aware_replica_selector: bool,
    pub producer_id_expiration_ms: u64,
    pub transactional_id_expiration_ms: u64,
    pub transaction_max_timeout_ms: u64,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub metrics_sample_window_ms: u64,
    pub metrics_num_samples: usize,
    pub metrics_recording_level: String,
    /// Where the operations HTTP endpoint listens (`metrics.http.listener`); `None`:
    /// turned off (the key set to an empty value).
    pub metrics_http_listener: Option<std::net::SocketAddr>,
    /// Defaults for every topic's config (retention.ms from log.retention.*, ...).
    pub topic_defaults: TopicConfig,
    /// Every key that was set (file, then overrides), under its canonical name. Kept
    /// so DescribeConfigs can tell a set value from a default, and so settings without
    /// a typed field are still at hand.
    pub raw: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    /// A single node: id 1, both roles, `./data`, `PLAINTEXT://127.0.0.1:9092`.
    fn default() -> Self {
        // `defaults_load_without_warnings` proves the table's defaults load.
        BrokerConfig::load(None, &[])
            .expect("built-in defaults are valid")
            .0
    }
}

impl BrokerConfig {
    /// Loads `file` (if any), then applies `overrides` in order; the last value of a
    /// key wins. Returns the config and warnings (unknown keys, ignored values) for
    /// the caller to log.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let (text, label) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            None => (String::new(), String::new()),
        };
        Self::load_str(&text, &label, overrides)
    }

    /// As [`BrokerConfig::load`], from the text of a properties file; `label` names it
    /// in messages.
    pub fn load_str(
        text: &str,
        label: &str,
        overrides: &[(String, String)],
    ) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let props = properties::parse(text).map_err(|e| match e {
            ConfigError::Syntax { line, reason } => ConfigError::Syntax {
                line,
                reason: format!("{label}: {reason}"),
            },
            other => other,
        })?;
        let mut warnings = Vec::new();
        let mut values = Values::default();
        for p in props {
            let origin = format!("line {} of {label}", p.line);
            values.insert(&p.key, p.value, origin, true, &mut warnings)?;
        }
        for (key, value) in overrides {
            values.insert(
                key,
                value.clone(),
                "--override".into(),
                false,
                &mut warnings,
            )?;
        }
        let config = values.build()?;
        Ok((config, warnings))
    }

    /// A key's value: as set, else its default; `None` if neither. Accepts aliases.
    pub fn get(&self, key: &str) -> Option<String> {
        let def = broker_def(key)?;
        self.raw
            .get(def.name)
            .cloned()
            .or_else(|| def.default.map(str::to_string))
    }

    /// Whether the file or an override set `key` (or its alias).
    pub fn is_set(&self, key: &str) -> bool {
        broker_def(key).is_some_and(|d| self.raw.contains_key(d.name))
    }

    /// Whether this node runs the controller quorum.
    pub fn is_controller(&self) -> bool {
        self.process_roles.contains(&ProcessRole::Controller)
    }
}

#[cfg(test)]
#[path = "broker_tests.rs"]
mod tests;
