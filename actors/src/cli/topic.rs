//! `troupe topic create | list | describe | alter-config | delete`.

use super::offsets::{list_offsets, EARLIEST, LATEST};
use super::output::{ids, print_json, print_table};
use super::{key_value, CliError, Common};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use troupe_actors::client::{check, ClientError, KafkaClient};

const CREATE_TOPICS_VERSIONS: (i16, i16) = (2, 7);
const DELETE_TOPICS_VERSIONS: (i16, i16) = (1, 6);
const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);
const INCREMENTAL_ALTER_CONFIGS_VERSIONS: (i16, i16) = (0, 1);
/// ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs config source of a value the topic sets itself.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(short = 'p', long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(short = 'r', long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config, e.g. -c retention.ms=60000 (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    List {
        /// Leave out internal topics (__consumer_offsets...).
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Partitions (leader, replicas, ISR, earliest/latest offsets) and configs.
    Describe { name: String },
    /// Set or delete topic configs.
    AlterConfig {
        name: String,
        /// Set KEY=VALUE (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Delete KEY, back to the broker's default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete a topic.
    Delete { name: String },
}

pub async fn run(args: TopicArgs) -> Result<(), CliError> {
    let common = args.common;
    let mut client = common.connect().await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            create(
                &mut client,
                &common,
                &name,
                partitions,
                replication_factor,
                &configs,
            )
            .await
        }
        TopicCommand::List { exclude_internal } => {
            list(&mut client, &common, exclude_internal).await
        }
        TopicCommand::Describe { name } => describe(&mut client, &common, &name).await,
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(&mut client, &common, &name, &set, &delete).await
        }
        TopicCommand::Delete { name } => delete_topic(&mut client, &common, &name).await,
    }
}

async fn create(
    client: &mut KafkaClient,
    common: &Common,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[String],
) -> Result<(), CliError> {
    let configs = configs
        .iter()
        .map(|c| key_value(c))
        .collect::<Result<Vec<_>, _>>()?;
    let conn = client.controller().await?;
    let v = conn.version_for::<CreateTopicsRequest>(CREATE_TOPICS_VERSIONS)?;
    // -1 (broker default) needs v4+ (KIP-464); older brokers get Kafka's old defaults.
    let default = |x: i32| if v >= 4 { -1 } else { x };
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions.unwrap_or(default(1)))
        .with_replication_factor(replication_factor.unwrap_or(default(1) as i16))
        .with_configs(
            configs
                .iter()
                .map(|(k, val)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.clone()))
                        .with_value(Some(StrBytes::from_string(val.clone())))
                })
                .collect(),
        );
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(common.request_timeout_ms.min(i32::MAX as u64) as i32);
    let resp = conn.send(&req, v).await?;
    let r = resp
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Protocol {
            addr: "CreateTopics".into(),
            reason: "empty answer".into(),
        })?;
    check(r.error_code, || {
        format!(
            "topic '{name}'{}",
            r.error_message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    })?;
    if common.json() {
        print_json(&json!({
            "topic": name,
            "topic_id": (v >= 7).then(|| r.topic_id.to_string()),
            "partitions": (v >= 5).then_some(r.num_partitions),
            "replication_factor": (v >= 5).then_some(r.replication_factor),
        }));
    } else {
        println!("Created topic {name}.");
    }
    Ok(())
}

async fn list(
    client: &mut KafkaClient,
    common: &Common,
    exclude_internal: bool,
) -> Result<(), CliError> {
    let md = client.refresh_metadata(None).await?;
    let topics: Vec<_> = md
        .topics
        .values()
        .filter(|t| !(exclude_internal && t.internal))
        .collect();
    if common.json() {
        print_json(&json!(topics
            .iter()
            .map(|t| json!({
                "topic": t.name,
                "topic_id": t.topic_id,
                "partitions": t.partitions.len(),
                "replication_factor": t.partitions.values().map(|p| p.replicas.len()).max().unwrap_or(0),
                "internal": t.internal,
            }))
            .collect::<Vec<_>>()));
        return Ok(());
    }
    let rows = topics
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                t.partitions
                    .values()
                    .map(|p| p.replicas.len())
                    .max()
                    .unwrap_or(0)
                    .to_string(),
                if t.internal {
                    "yes".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print_table(&["TOPIC", "PARTITIONS", "REPLICAS", "INTERNAL"], rows);
    Ok(())
}

async fn describe(client: &mut KafkaClient, common: &Common, name: &str) -> Result<(), CliError> {
    let t = client.topic(name).await?;
    let parts: Vec<i32> = t.partitions.keys().copied().collect();
    let earliest = list_offsets(client, name, &parts, EARLIEST).await?;
    let latest = list_offsets(client, name, &parts, LATEST).await?;
    let configs = topic_configs(client, name).await?;
    if common.json() {
        print_json(&json!({
            "topic": t.name,
            "topic_id": t.topic_id,
            "internal": t.internal,
            "partitions": t.partitions.values().map(|p| json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "offline_replicas": p.offline_replicas,
                "earliest_offset": earliest.get(&p.partition),
                "latest_offset": latest.get(&p.partition),
            })).collect::<Vec<_>>(),
            "configs": configs.iter().map(|(k, v, dynamic)| json!({
                "name": k, "value": v, "set_on_topic": dynamic,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!(
        "Topic: {}  TopicId: {}  Partitions: {}",
        t.name,
        t.topic_id,
        t.partitions.len()
    );
    let set: Vec<String> = configs
        .iter()
        .filter(|(_, _, dynamic)| *dynamic)
        .map(|(k, v, _)| format!("{k}={}", v.as_deref().unwrap_or("")))
        .collect();
    println!(
        "Configs: {}",
        if set.is_empty() {
            "(defaults)".to_string()
        } else {
            set.join(",")
        }
    );
    let rows = t
        .partitions
        .values()
        .map(|p| {
            vec![
                p.partition.to_string(),
                if p.leader >= 0 {
                    p.leader.to_string()
                } else {
                    "none".into()
                },
                ids(&p.replicas),
                ids(&p.isr),
                earliest
                    .get(&p.partition)
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
                latest
                    .get(&p.partition)
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "ISR",
            "EARLIEST",
            "LATEST",
        ],
        rows,
    );
    Ok(())
}

/// Every config of the topic: (name, value, set on the topic rather than defaulted).
async fn topic_configs(
    client: &mut KafkaClient,
    name: &str,
) -> Result<Vec<(String, Option<String>, bool)>, ClientError> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let (_, resp) = client
        .any()
        .await?
        .call(&req, DESCRIBE_CONFIGS_VERSIONS)
        .await?;
    let mut out = Vec::new();
    for r in resp.results {
        check(r.error_code, || format!("configs of topic '{name}'"))?;
        for c in r.configs {
            out.push((
                c.name.to_string(),
                if c.is_sensitive {
                    None
                } else {
                    c.value.map(|v| v.to_string())
                },
                c.config_source == DYNAMIC_TOPIC_CONFIG,
            ));
        }
    }
    Ok(out)
}

async fn alter_config(
    client: &mut KafkaClient,
    common: &Common,
    name: &str,
    set: &[String],
    delete: &[String],
) -> Result<(), CliError> {
    if set.is_empty() && delete.is_empty() {
        return Err(CliError::Usage(
            "nothing to change: give --set KEY=VALUE and/or --delete KEY".into(),
        ));
    }
    // A clear UNKNOWN_TOPIC_OR_PARTITION rather than whatever the config path says.
    client.topic(name).await?;
    let mut ops = Vec::new();
    for s in set {
        let (k, v) = key_value(s)?;
        ops.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    for k in delete {
        ops.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(1)
                .with_value(None),
        );
    }
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(ops),
    ]);
    let (_, resp) = client
        .controller()
        .await?
        .call(&req, INCREMENTAL_ALTER_CONFIGS_VERSIONS)
        .await?;
    for r in resp.responses {
        check(r.error_code, || {
            format!(
                "configs of topic '{name}'{}",
                r.error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        })?;
    }
    if common.json() {
        print_json(&json!({"topic": name, "set": set, "deleted": delete}));
    } else {
        println!("Altered configs of topic {name}.");
    }
    Ok(())
}

async fn delete_topic(
    client: &mut KafkaClient,
    common: &Common,
    name: &str,
) -> Result<(), CliError> {
    let conn = client.controller().await?;
    let v = conn.version_for::<DeleteTopicsRequest>(DELETE_TOPICS_VERSIONS)?;
    let topic_name = TopicName(StrBytes::from_string(name.to_string()));
    let mut req = DeleteTopicsRequest::default()
        .with_timeout_ms(common.request_timeout_ms.min(i32::MAX as u64) as i32);
    if v >= 6 {
        req = req.with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name))]);
    } else {
        req = req.with_topic_names(vec![topic_name]);
    }
    let resp = conn.send(&req, v).await?;
    for r in resp.responses {
        check(r.error_code, || {
            format!(
                "topic '{name}'{}",
                r.error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        })?;
    }
    if common.json() {
        print_json(&json!({"topic": name, "deleted": true}));
    } else {
        println!("Deleted topic {name}.");
    }
    Ok(())
}
