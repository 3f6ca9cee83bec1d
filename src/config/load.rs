//! The merge behind [`BrokerConfig::load`]: set values with their origin, typed reads
//! that fall back to the defaults table, and the checks that span several keys
//! (listeners against the protocol map, voters against `node.id`, ...).
//!
//! Every error names the key as the operator wrote it (an alias included), the value,
//! and the file line or `--override` it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::broker::{BrokerConfig, ProcessRole};
use super::defs::{broker_def, topic_def};
use super::kind::Parsed;
use super::listener::{Listener, QuorumVoter};
use super::roles::{check_roles, RoleSettings};
use super::topic::TopicConfig;
use super::ConfigError;

/// Kafka's class name for KIP-392's rack-aware replica selection.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// One set value and where it came from, for error messages.
#[derive(Debug)]
struct Sourced {
    /// The name the operator used (may be an alias).
    written_as: String,
    value: String,
    origin: String,
}

/// Set values by canonical key, during loading.
#[derive(Debug, Default)]
pub(super) struct Values {
    set: BTreeMap<&'static str, Sourced>,
}

impl Values {
    pub(super) fn insert(
        &mut self,
        key: &str,
        value: String,
        origin: String,
        from_file: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let Some(def) = broker_def(key) else {
            warnings.push(match topic_def(key) {
                Some(d) => format!(
                    "{key} ({origin}) is a topic-level configuration and is ignored here; \
                     the broker default is {}",
                    d.name
                ),
                None => format!("unknown configuration {key} ({origin}) is ignored"),
            });
            return Ok(());
        };
        if let Err(reason) = def.kind.parse(&value) {
            return Err(ConfigError::invalid(
                key,
                &value,
                format!("{reason} ({origin})"),
            ));
        }
        let new = Sourced {
            written_as: key.to_string(),
            value,
            origin,
        };
        if let Some(old) = self.set.insert(def.name, new) {
            // Overrides replace file values by design; twice in the file is a slip.
            if from_file {
                warnings.push(format!(
                    "{} is set twice ({} as {}, {}); the last one wins",
                    def.name, old.origin, old.written_as, self.set[def.name].origin
                ));
            }
        }
        Ok(())
    }

    /// The set value, else the default.
    fn str(&self, key: &str) -> Option<&str> {
        match self.set.get(key) {
            Some(s) => Some(&s.value),
            None => broker_def(key)?.default,
        }
    }

    /// An error about `key`'s current value.
    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        let reason = reason.into();
        match self.set.get(key) {
            Some(s) => {
                ConfigError::invalid(&s.written_as, &s.value, format!("{reason} ({})", s.origin))
            }
            None => ConfigError::invalid(key, self.str(key).unwrap_or(""), reason),
        }
    }

    fn parsed(&self, key: &str) -> Result<Option<Parsed>, ConfigError> {
        let Some(def) = broker_def(key) else {
            return Err(ConfigError::invalid(key, "", "not in the config table"));
        };
        self.str(key)
            .map(|v| def.kind.parse(v).map_err(|r| self.invalid(key, r)))
            .transpose()
    }

    /// An integer setting, converted to the field's type.
    fn num<T: TryFrom<i64>>(&self, key: &str) -> Result<T, ConfigError> {
        match self.parsed(key)? {
            Some(Parsed::Number(n)) => {
                T::try_from(n).map_err(|_| self.invalid(key, "out of range"))
            }
            _ => Err(self.invalid(key, "an integer is required")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.parsed(key)? {
            Some(Parsed::Bool(b)) => Ok(b),
            _ => Err(self.invalid(key, "true or false is required")),
        }
    }

    /// A list setting; unset means empty.
    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.parsed(key)? {
            Some(Parsed::List(items)) => Ok(items),
            _ => Ok(Vec::new()),
        }
    }

    fn text(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(match self.parsed(key)? {
            Some(Parsed::Text(t)) if !t.is_empty() => Some(t),
            _ => None,
        })
    }

    fn listeners(&self, key: &str) -> Result<Vec<Listener>, ConfigError> {
        let listeners = self
            .list(key)?
            .iter()
            .map(|l| Listener::parse(l).map_err(|r| self.invalid(key, r)))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, l) in listeners.iter().enumerate() {
            if listeners[..i].iter().any(|o| o.name == l.name) {
                return Err(self.invalid(key, format!("listener name {} is used twice", l.name)));
            }
        }
        Ok(listeners)
    }

    pub(super) fn build(&self) -> Result<BrokerConfig, ConfigError> {
        let process_roles: Vec<ProcessRole> = self
            .list("process.roles")?
            .iter()
            .map(|r| match r.as_str() {
                "controller" => ProcessRole::Controller,
                _ => ProcessRole::Broker,
            })
            .collect();
        if process_roles.is_empty() {
            return Err(self.invalid("process.roles", "name broker, controller or both"));
        }
        let node_id: i32 = self.num("node.id")?;
        let controller_quorum_voters = self
            .list("controller.quorum.voters")?
            .iter()
            .map(|v| QuorumVoter::parse(v).map_err(|r| self.invalid("controller.quorum.voters", r)))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, v) in controller_quorum_voters.iter().enumerate() {
            if controller_quorum_voters[..i].iter().any(|o| o.id == v.id) {
                return Err(self.invalid(
                    "controller.quorum.voters",
                    format!("node id {} is listed twice", v.id),
                ));
            }
        }
        let controller_listener_names: Vec<String> = self
            .list("controller.listener.names")?
            .iter()
            .map(|n| n.to_ascii_uppercase())
            .collect();
        let listeners = self.listeners("listeners")?;
        if listeners.is_empty() {
            return Err(self.invalid("listeners", "at least one listener is required"));
        }
        self.check_security_protocols(&listeners, &controller_listener_names)?;
        let advertised_listeners = if self.set.contains_key("advertised.listeners") {
            let advertised = self.listeners("advertised.listeners")?;
            for a in &advertised {
                if !listeners.iter().any(|l| l.name == a.name) {
                    let reason = format!("listener name {} is not in listeners", a.name);
                    return Err(self.invalid("advertised.listeners", reason));
                }
                if a.host == "0.0.0.0" || a.host == "::" {
                    let reason = "clients cannot connect to a wildcard address";
                    return Err(self.invalid("advertised.listeners", reason));
                }
            }
            advertised
        } else {
            // Kafka never advertises controller listeners to clients.
            listeners
                .iter()
                .filter(|l| !controller_listener_names.contains(&l.name))
                .cloned()
                .collect()
        };
        let inter_broker_listener_name = match self.text("inter.broker.listener.name")? {
            Some(name) => {
                let name = name.to_ascii_uppercase();
                if !listeners.iter().any(|l| l.name == name) {
                    return Err(self.invalid("inter.broker.listener.name", "not one of listeners"));
                }
                Some(name)
            }
            None => advertised_listeners.first().map(|l| l.name.clone()),
        };

        let explicit_inter_broker = self
            .text("inter.broker.listener.name")?
            .map(|n| n.to_ascii_uppercase());
        let explicit_advertised = self
            .set
            .contains_key("advertised.listeners")
            .then_some(advertised_listeners.as_slice());
        check_roles(&RoleSettings {
            node_id,
            roles: &process_roles,
            voters: &controller_quorum_voters,
            controller_listener_names: &controller_listener_names,
            listeners: &listeners,
            advertised_listeners: explicit_advertised,
            inter_broker_listener_name: explicit_inter_broker.as_deref(),
        })
        .map_err(|e| self.invalid(e.key, e.reason))?;

        let log_dirs: Vec<PathBuf> = self.list("log.dirs")?.iter().map(PathBuf::from).collect();
        if log_dirs.is_empty() {
            return Err(self.invalid("log.dirs", "at least one directory is required"));
        }
        let group_min_session_timeout_ms: u64 = self.num("group.min.session.timeout.ms")?;
        let group_max_session_timeout_ms: u64 = self.num("group.max.session.timeout.ms")?;
        if group_min_session_timeout_ms > group_max_session_timeout_ms {
            let reason = "must not exceed group.max.session.timeout.ms";
            return Err(self.invalid("group.min.session.timeout.ms", reason));
        }
        let offsets_retention_minutes: u64 = self.num("offsets.retention.minutes")?;
        let topic_defaults = TopicConfig::from_broker(&|k| self.str(k).map(str::to_string))?;

        Ok(BrokerConfig {
            node_id,
            process_roles,
            controller_quorum_voters,
            controller_listener_names,
            cluster_id: self.text("cluster.id")?,
            controller_quorum_election_timeout_ms: self
                .num("controller.quorum.election.timeout.ms")?,
            controller_quorum_fetch_timeout_ms: self.num("controller.quorum.fetch.timeout.ms")?,
            broker_heartbeat_interval_ms: self.num("broker.heartbeat.interval.ms")?,
            broker_session_timeout_ms: self.num("broker.session.timeout.ms")?,
            broker_rack: self.text("broker.rack")?,
            auto_leader_rebalance_enable: self.bool("auto.leader.rebalance.enable")?,
            leader_imbalance_per_broker_percentage: self
                .num("leader.imbalance.per.broker.percentage")?,
            leader_imbalance_check_interval_seconds: self
                .num("leader.imbalance.check.interval.seconds")?,
            listeners,
            advertised_listeners,
            inter_broker_listener_name,
            num_network_threads: self.num("num.network.threads")?,
            num_io_threads: self.num("num.io.threads")?,
            socket_send_buffer_bytes: self.num("socket.send.buffer.bytes")?,
            socket_receive_buffer_bytes: self.num("socket.receive.buffer.bytes")?,
            socket_request_max_bytes: self.num("socket.request.max.bytes")?,
            socket_listen_backlog_size: self.num("socket.listen.backlog.size")?,
            queued_max_requests: self.num("queued.max.requests")?,
            queued_max_request_bytes: self.num("queued.max.request.bytes")?,
            connections_max_idle_ms: self.num("connections.max.idle.ms")?,
            max_connections: self.num("max.connections")?,
            max_connections_per_ip: self.num("max.connections.per.ip")?,
            max_partitions: self.num("max.partitions")?,
            max_broker_partitions: self.num("max.broker.partitions")?,
            log_dirs,
            num_partitions: self.num("num.partitions")?,
            default_replication_factor: self.num("default.replication.factor")?,
            auto_create_topics_enable: self.bool("auto.create.topics.enable")?,
            delete_topic_enable: self.bool("delete.topic.enable")?,
            num_recovery_threads_per_data_dir: self.num("num.recovery.threads.per.data.dir")?,
            log_retention_check_interval_ms: self.num("log.retention.check.interval.ms")?,
            log_flush_offset_checkpoint_interval_ms: self
                .num("log.flush.offset.checkpoint.interval.ms")?,
            log_flush_scheduler_interval_ms: self.num("log.flush.scheduler.interval.ms")?,
            offsets_topic_num_partitions: self.num("offsets.topic.num.partitions")?,
            offsets_topic_replication_factor: self.num("offsets.topic.replication.factor")?,
            offsets_topic_segment_bytes: self.num("offsets.topic.segment.bytes")?,
            // At most i32::MAX minutes, so this cannot overflow a u64.
            offsets_retention_ms: offsets_retention_minutes * 60_000,
            offsets_retention_check_interval_ms: self.num("offsets.retention.check.interval.ms")?,
            offset_metadata_max_bytes: self.num("offset.metadata.max.bytes")?,
            offsets_commit_timeout_ms: self.num("offsets.commit.timeout.ms")?,
            group_initial_rebalance_delay_ms: self.num("group.initial.rebalance.delay.ms")?,
            group_min_session_timeout_ms,
            group_max_session_timeout_ms,
            group_max_size: self.num("group.max.size")?,
            replica_lag_time_max_ms: self.num("replica.lag.time.max.ms")?,
            replica_fetch_max_bytes: self.num("replica.fetch.max.bytes")?,
            replica_fetch_min_bytes: self.num("replica.fetch.min.bytes")?,
            replica_fetch_wait_max_ms: self.num("replica.fetch.wait.max.ms")?,
            replica_fetch_response_max_bytes: self.num("replica.fetch.response.max.bytes")?,
            replica_fetch_backoff_ms: self.num("replica.fetch.backoff.ms")?,
            replica_high_watermark_checkpoint_interval_ms: self
                .num("replica.high.watermark.checkpoint.interval.ms")?,
            rack_aware_replica_selector: match self.text("replica.selector.class")?.as_deref() {
                None | Some("") | Some("org.apache.kafka.common.replica.LeaderSelector") => false,
                Some(RACK_AWARE_SELECTOR) => true,
                Some(_) => {
                    return Err(self.invalid(
                        "replica.selector.class",
                        format!("Troupe has Kafka's {RACK_AWARE_SELECTOR} (or none: the leader)"),
                    ))
                }
            },
            producer_id_expiration_ms: self.num("producer.id.expiration.ms")?,
            transactional_id_expiration_ms: self.num("transactional.id.expiration.ms")?,
            transaction_max_timeout_ms: self.num("transaction.max.timeout.ms")?,
            transaction_state_log_num_partitions: self
                .num("transaction.state.log.num.partitions")?,
            transaction_state_log_replication_factor: self
                .num("transaction.state.log.replication.factor")?,
            transaction_state_log_min_isr: self.num("transaction.state.log.min.isr")?,
            metrics_sample_window_ms: self.num("metrics.sample.window.ms")?,
            metrics_num_samples: self.num("metrics.num.samples")?,
            metrics_recording_level: self.text("metrics.recording.level")?.unwrap_or_default(),
            metrics_http_listener: self.metrics_http_listener()?,
            topic_defaults,
            raw: self
                .set
                .iter()
                .map(|(k, s)| (k.to_string(), s.value.clone()))
                .collect(),
        })
    }

    /// `metrics.http.listener`: an IP address and port (`localhost` is taken as
    /// 127.0.0.1), or empty for no listener.
    fn metrics_http_listener(&self) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let key = "metrics.http.listener";
        let Some(text) = self.text(key)? else {
            return Ok(None);
        };
        let text = match text.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => text,
        };
        text.parse().map(Some).map_err(|_| {
            self.invalid(
                key,
                "expected IP:PORT (e.g. 127.0.0.1:9644, [::1]:9644), or empty to turn the listener off",
            )
        })
    }

    /// Every listener must map to PLAINTEXT, the only protocol implemented: starting
    /// with an SSL listener that silently speaks plaintext would be worse than refusing.
    fn check_security_protocols(
        &self,
        listeners: &[Listener],
        controller_names: &[String],
    ) -> Result<(), ConfigError> {
        let map_key = "listener.security.protocol.map";
        let mut map = BTreeMap::new();
        for item in self.list(map_key)? {
            let (name, proto) = item
                .split_once(':')
                .ok_or_else(|| self.invalid(map_key, format!("{item:?} is not NAME:PROTOCOL")))?;
            map.insert(
                name.trim().to_ascii_uppercase(),
                proto.trim().to_ascii_uppercase(),
            );
        }
        for l in listeners {
            let proto = match map.get(&l.name) {
                Some(p) => p.as_str(),
                // Kafka treats controller listeners missing from the map as PLAINTEXT.
                None if controller_names.contains(&l.name) => "PLAINTEXT",
                None => {
                    let reason = format!("listener name {} is not in {map_key}", l.name);
                    return Err(self.invalid("listeners", reason));
                }
            };
            if proto != "PLAINTEXT" {
                let reason = format!("{} uses {proto}; only PLAINTEXT is supported", l.name);
                return Err(self.invalid("listeners", reason));
            }
        }
        Ok(())
    }
}
