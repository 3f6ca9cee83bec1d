//! [`KafkaClient`]: bootstrap, the metadata cache and routing to the right broker.

use super::connection::BrokerConnection;
use super::error::{check, ClientError};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Metadata v1..=12: v1 brings the controller id and null-means-all-topics, v2 the
/// cluster id; v13 adds nothing we read.
const METADATA_VERSIONS: (i16, i16) = (1, 12);
/// FindCoordinator: v0..=3 ask for one key, v4+ for a list (KIP-699).
const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 5);

#[derive(Debug, Clone, Serialize)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionMeta {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    /// LEADER_NOT_AVAILABLE and the like, 0 when fine.
    pub error_code: i16,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopicMeta {
    pub name: String,
    pub topic_id: String,
    pub internal: bool,
    pub error_code: i16,
    pub partitions: BTreeMap<i32, PartitionMeta>,
}

/// What the last Metadata answer said.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicMeta>,
}

pub struct KafkaClient {
    bootstrap: Vec<String>,
    client_id: String,
    pub timeout: Duration,
    /// The connection made to a bootstrap server; used for requests any broker can
    /// answer until metadata names the brokers.
    bootstrap_conn: Option<BrokerConnection>,
    conns: HashMap<i32, BrokerConnection>,
    coordinators: HashMap<String, i32>,
    pub metadata: ClusterMetadata,
}

impl KafkaClient {
    /// Connect to the first answering server of `bootstrap` (comma separated
    /// `host:port` list) and load the cluster's brokers (no topics yet).
    pub async fn connect(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let servers: Vec<String> = bootstrap
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(ClientError::Invalid("no bootstrap server given".into()));
        }
        let mut last = None;
        let mut conn = None;
        for s in &servers {
            match BrokerConnection::connect(s, client_id, timeout).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(conn) = conn else {
            return Err(last.unwrap_or_else(|| ClientError::Invalid("no bootstrap server".into())));
        };
        let mut client = KafkaClient {
            bootstrap: servers,
            client_id: client_id.to_string(),
            timeout,
            bootstrap_conn: Some(conn),
            conns: HashMap::new(),
            coordinators: HashMap::new(),
            metadata: ClusterMetadata::default(),
        };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    /// Ask for metadata: `None` every topic, `Some(list)` only those (the brokers and
    /// controller always come along). Topics asked for replace their cached entry;
    /// when every topic was asked for, the cache is replaced whole.
    pub async fn refresh_metadata(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<&ClusterMetadata, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        let resp: MetadataResponse = {
            let conn = self.any().await?;
            match conn.call(&req, METADATA_VERSIONS).await {
                Ok((_, r)) => r,
                Err(e) => {
                    self.drop_any();
                    return Err(e);
                }
            }
        };
        self.metadata.cluster_id = resp.cluster_id.map(|s| s.to_string());
        self.metadata.controller_id = resp.controller_id.0;
        self.metadata.brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if topics.is_none() {
            self.metadata.topics.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    (
                        p.partition_index,
                        PartitionMeta {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                            error_code: p.error_code,
                        },
                    )
                })
                .collect();
            self.metadata.topics.insert(
                name.clone(),
                TopicMeta {
                    name,
                    topic_id: t.topic_id.to_string(),
                    internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                },
            );
        }
        Ok(&self.metadata)
    }

    /// Metadata of one topic, refreshed; UNKNOWN_TOPIC_OR_PARTITION if the cluster
    /// does not have it.
    pub async fn topic(&mut self, name: &str) -> Result<TopicMeta, ClientError> {
        self.refresh_metadata(Some(&[name.to_string()])).await?;
        let t = self
            .metadata
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::Kafka {
                code: kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                context: format!("topic '{name}'"),
            })?;
        check(t.error_code, || format!("topic '{name}'"))?;
        Ok(t)
    }

    /// A connection to any broker (the bootstrap one first).
    pub async fn any(&mut self) -> Result<&mut BrokerConnection, ClientError> {
        if self.bootstrap_conn.is_none() {
            if let Some(&id) = self.conns.keys().next() {
                return self.broker(id).await;
            }
            let mut last = None;
            for s in self.bootstrap.clone() {
                match BrokerConnection::connect(&s, &self.client_id, self.timeout).await {
                    Ok(c) => {
                        self.bootstrap_conn = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if self.bootstrap_conn.is_none() {
                return Err(
                    last.unwrap_or_else(|| ClientError::Invalid("no bootstrap server".into()))
                );
            }
        }
        Ok(self.bootstrap_conn.as_mut().expect("set above"))
    }

    fn drop_any(&mut self) {
        self.bootstrap_conn = None;
    }

    /// A connection to broker `id` (as metadata names it), made on first use.
    pub async fn broker(&mut self, id: i32) -> Result<&mut BrokerConnection, ClientError> {
        if !self.conns.contains_key(&id) {
            let info = self.metadata.brokers.get(&id).ok_or_else(|| {
                ClientError::Invalid(format!("broker {id} is not in the cluster metadata"))
            })?;
            let c = BrokerConnection::connect(&info.addr(), &self.client_id, self.timeout).await?;
            self.conns.insert(id, c);
        }
        Ok(self.conns.get_mut(&id).expect("inserted above"))
    }

    /// Forget a connection after a failed exchange (it may be out of step) and, since
    /// the failure often means leadership moved, the coordinators learnt through it.
    pub fn forget(&mut self, id: i32) {
        self.conns.remove(&id);
        self.coordinators.retain(|_, n| *n != id);
    }

    /// Drop every connection (after a request was abandoned half-way, e.g. on Ctrl-C).
    pub fn reset_connections(&mut self) {
        self.conns.clear();
        self.bootstrap_conn = None;
    }

    /// The leader of `topic`/`partition`, from the cached metadata (refreshed when the
    /// topic is not cached or has no leader).
    pub async fn leader_id(&mut self, topic: &str, partition: i32) -> Result<i32, ClientError> {
        let cached = self
            .metadata
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(&partition))
            .map(|p| p.leader)
            .filter(|&l| l >= 0);
        if let Some(l) = cached {
            return Ok(l);
        }
        let t = self.topic(topic).await?;
        let p = t
            .partitions
            .get(&partition)
            .ok_or_else(|| ClientError::Kafka {
                code: kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                context: format!("partition {topic}-{partition}"),
            })?;
        if p.leader < 0 {
            return Err(ClientError::Kafka {
                code: kafka_protocol::ResponseError::LeaderNotAvailable.code(),
                context: format!("partition {topic}-{partition}"),
            });
        }
        Ok(p.leader)
    }

    /// A connection to the leader of `topic`/`partition`.
    pub async fn leader(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<&mut BrokerConnection, ClientError> {
        let id = self.leader_id(topic, partition).await?;
        self.broker(id).await
    }

    /// The controller as metadata names it (admin requests go there; brokers forward
    /// them anyway, this saves the hop). Any broker when none is named.
    pub async fn controller(&mut self) -> Result<&mut BrokerConnection, ClientError> {
        let id = self.metadata.controller_id;
        if id >= 0 && self.metadata.brokers.contains_key(&id) {
            self.broker(id).await
        } else {
            self.any().await
        }
    }

    /// The node id of `group`'s coordinator (FindCoordinator, cached).
    pub async fn coordinator_id(&mut self, group: &str) -> Result<i32, ClientError> {
        if let Some(&id) = self.coordinators.get(group) {
            return Ok(id);
        }
        let conn = self.any().await?;
        let v = conn.version_for::<FindCoordinatorRequest>(FIND_COORDINATOR_VERSIONS)?;
        let key = StrBytes::from_string(group.to_string());
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default()
                .with_key(key)
                .with_key_type(0)
        };
        let resp: FindCoordinatorResponse = match conn.send(&req, v).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_any();
                return Err(e);
            }
        };
        let (code, node, host, port) = if v >= 4 {
            let c = resp
                .coordinators
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Protocol {
                    addr: "FindCoordinator".into(),
                    reason: "no coordinator in the answer".into(),
                })?;
            (c.error_code, c.node_id.0, c.host, c.port)
        } else {
            (resp.error_code, resp.node_id.0, resp.host, resp.port)
        };
        check(code, || format!("coordinator of group '{group}'"))?;
        self.metadata
            .brokers
            .entry(node)
            .or_insert_with(|| BrokerInfo {
                node_id: node,
                host: host.to_string(),
                port,
                rack: None,
            });
        self.coordinators.insert(group.to_string(), node);
        Ok(node)
    }

    /// A connection to `group`'s coordinator.
    pub async fn coordinator(&mut self, group: &str) -> Result<&mut BrokerConnection, ClientError> {
        let id = self.coordinator_id(group).await?;
        self.broker(id).await
    }
}
