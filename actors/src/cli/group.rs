//! `troupe group list | describe | reset-offsets | delete`.

use super::membership::{commit_offsets, decode_assignment};
use super::offsets::{list_offsets, parse_datetime, EARLIEST, LATEST};
use super::output::{offset, print_json, print_table};
use super::{CliError, Common};
use clap::{ArgGroup, Args, Subcommand};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use troupe_actors::client::{check, ClientError, KafkaClient};

const LIST_GROUPS_VERSIONS: (i16, i16) = (0, 4);
const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);
/// v2+ take a null topic list (every committed offset); v8 switches to a list of groups.
const OFFSET_FETCH_VERSIONS: (i16, i16) = (2, 7);
const DELETE_GROUPS_VERSIONS: (i16, i16) = (0, 2);

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List groups (asks every broker).
    List,
    /// Members, assignment, committed offsets, end offsets and lag.
    Describe { name: String },
    /// Move a group's committed offsets (only while it has no active members).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
    ResetOffsets {
        name: String,
        /// Topic(s) to reset (default: every topic the group has offsets for).
        #[arg(long = "topic")]
        topics: Vec<String>,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// ISO-8601 (2024-05-01T12:00:00Z; no zone = UTC) or epoch milliseconds.
        #[arg(long, value_name = "DATETIME")]
        to_datetime: Option<String>,
        /// Commit the new offsets (without it: print the plan only).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group (only when it has no members).
    Delete { name: String },
}

pub async fn run(args: GroupArgs) -> Result<(), CliError> {
    let common = args.common;
    let mut client = common.connect().await?;
    match args.command {
        GroupCommand::List => list(&mut client, &common).await,
        GroupCommand::Describe { name } => describe(&mut client, &common, &name).await,
        GroupCommand::ResetOffsets {
            name,
            topics,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            execute,
        } => {
            let target = if to_earliest {
                Target::Earliest
            } else if to_latest {
                Target::Latest
            } else if let Some(o) = to_offset {
                Target::Offset(o)
            } else if let Some(t) = to_datetime {
                Target::Time(parse_datetime(&t)?)
            } else {
                return Err(CliError::Usage(
                    "give one of --to-earliest, --to-latest, --to-offset, --to-datetime".into(),
                ));
            };
            reset(&mut client, &common, &name, &topics, target, execute).await
        }
        GroupCommand::Delete { name } => delete(&mut client, &common, &name).await,
    }
}

async fn list(client: &mut KafkaClient, common: &Common) -> Result<(), CliError> {
    let brokers: Vec<i32> = client.metadata.brokers.keys().copied().collect();
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for b in brokers {
        let conn = client.broker(b).await?;
        let (_, resp) = conn
            .call(&ListGroupsRequest::default(), LIST_GROUPS_VERSIONS)
            .await?;
        check(resp.error_code, || format!("listing groups on broker {b}"))?;
        for g in resp.groups {
            groups.insert(
                g.group_id.0.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    if common.json() {
        print_json(&json!(groups
            .iter()
            .map(|(g, (state, pt))| json!({"group": g, "state": state, "protocol_type": pt}))
            .collect::<Vec<_>>()));
        return Ok(());
    }
    let rows = groups
        .into_iter()
        .map(|(g, (state, pt))| vec![g, if state.is_empty() { "-".into() } else { state }, pt])
        .collect();
    print_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], rows);
    Ok(())
}

struct GroupInfo {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberInfo>,
}

struct MemberInfo {
    member_id: String,
    client_id: String,
    host: String,
    assignment: Vec<(String, Vec<i32>)>,
}

async fn describe_group(client: &mut KafkaClient, name: &str) -> Result<GroupInfo, ClientError> {
    let req = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(name.to_string()))]);
    let (_, resp) = client
        .coordinator(name)
        .await?
        .call(&req, DESCRIBE_GROUPS_VERSIONS)
        .await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Protocol {
            addr: "DescribeGroups".into(),
            reason: "no group in the answer".into(),
        })?;
    check(g.error_code, || format!("group '{name}'"))?;
    Ok(GroupInfo {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members: g
            .members
            .into_iter()
            .map(|m| MemberInfo {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment: decode_assignment(&m.member_assignment),
            })
            .collect(),
    })
}

/// The group's committed offsets, (topic, partition) → offset (-1: none).
async fn committed(
    client: &mut KafkaClient,
    name: &str,
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(name.to_string())))
        .with_topics(None);
    let (_, resp) = client
        .coordinator(name)
        .await?
        .call(&req, OFFSET_FETCH_VERSIONS)
        .await?;
    check(resp.error_code, || format!("offsets of group '{name}'"))?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            check(p.error_code, || {
                format!(
                    "offset of {}-{} for group '{name}'",
                    t.name.0, p.partition_index
                )
            })?;
            out.insert(
                (t.name.0.to_string(), p.partition_index),
                p.committed_offset,
            );
        }
    }
    Ok(out)
}

/// End offsets of every topic in `keys`.
async fn end_offsets(
    client: &mut KafkaClient,
    keys: &BTreeSet<(String, i32)>,
) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in keys {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (t, ps) in by_topic {
        match list_offsets(client, t, &ps, LATEST).await {
            Ok(m) => out.extend(m.into_iter().map(|(p, o)| ((t.to_string(), p), o))),
            // A deleted topic that still has committed offsets: no end offset.
            Err(e)
                if e.code()
                    == Some(kafka_protocol::ResponseError::UnknownTopicOrPartition.code()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One partition of `group describe`: topic, partition, committed offset (-1: none),
/// log end offset, lag, and the member it is assigned to.
type Row<'a> = (
    String,
    i32,
    i64,
    Option<i64>,
    Option<i64>,
    Option<&'a MemberInfo>,
);

fn group_not_found(name: &str) -> ClientError {
    ClientError::Kafka {
        code: kafka_protocol::ResponseError::GroupIdNotFound.code(),
        context: format!("group '{name}' does not exist"),
    }
}

async fn describe(client: &mut KafkaClient, common: &Common, name: &str) -> Result<(), CliError> {
    let info = describe_group(client, name).await?;
    let offsets = committed(client, name).await?;
    if info.state == "Dead" && offsets.is_empty() {
        return Err(group_not_found(name).into());
    }
    let mut owner: BTreeMap<(String, i32), &MemberInfo> = BTreeMap::new();
    for m in &info.members {
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.insert((t.clone(), *p), m);
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let ends = end_offsets(client, &keys).await?;
    let rows: Vec<Row> = keys
        .iter()
        .map(|k| {
            let c = offsets.get(k).copied().unwrap_or(-1);
            let end = ends.get(k).copied();
            let lag = match (c, end) {
                (c, Some(e)) if c >= 0 => Some((e - c).max(0)),
                _ => None,
            };
            (k.0.clone(), k.1, c, end, lag, owner.get(k).copied())
        })
        .collect();
    if common.json() {
        print_json(&json!({
            "group": name,
            "state": info.state,
            "protocol_type": info.protocol_type,
            "protocol": info.protocol,
            "members": info.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "partitions": rows.iter().map(|(t, p, c, e, lag, m)| json!({
                "topic": t,
                "partition": p,
                "committed_offset": (*c >= 0).then_some(*c),
                "log_end_offset": e,
                "lag": lag,
                "member_id": m.map(|m| m.member_id.clone()),
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!(
        "Group: {name}  State: {}  Protocol: {}  Members: {}",
        info.state,
        if info.protocol.is_empty() {
            "-"
        } else {
            &info.protocol
        },
        info.members.len()
    );
    println!();
    print_table(
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        rows.iter()
            .map(|(t, p, c, e, lag, m)| {
                vec![
                    t.clone(),
                    p.to_string(),
                    offset(*c),
                    e.map(offset).unwrap_or_else(|| "-".into()),
                    lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                    m.map(|m| m.member_id.clone()).unwrap_or_else(|| "-".into()),
                    m.map(|m| m.host.clone()).unwrap_or_else(|| "-".into()),
                    m.map(|m| m.client_id.clone()).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    );
    if !info.members.is_empty() {
        println!();
        print_table(
            &["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
            info.members
                .iter()
                .map(|m| {
                    vec![
                        m.member_id.clone(),
                        m.client_id.clone(),
                        m.host.clone(),
                        m.assignment
                            .iter()
                            .map(|(t, ps)| format!("{t}:{}", super::output::ids(ps)))
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect(),
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
}

async fn reset(
    client: &mut KafkaClient,
    common: &Common,
    name: &str,
    topics: &[String],
    target: Target,
    execute: bool,
) -> Result<(), CliError> {
    let info = describe_group(client, name).await?;
    // As Kafka's kafka-consumer-groups: only an inactive group can be moved, or its
    // members would overwrite the new offsets with their next commit.
    if !info.members.is_empty() || !(info.state == "Empty" || info.state == "Dead") {
        return Err(ClientError::Kafka {
            code: kafka_protocol::ResponseError::NonEmptyGroup.code(),
            context: format!(
                "offsets of group '{name}' can only be reset while it is inactive, but it is {} with {} member(s): stop its consumers first",
                info.state,
                info.members.len()
            ),
        }
        .into());
    }
    let current = committed(client, name).await?;
    let topics: Vec<String> = if topics.is_empty() {
        let set: BTreeSet<String> = current.keys().map(|(t, _)| t.clone()).collect();
        if set.is_empty() {
            return Err(CliError::Usage(format!(
                "group '{name}' has no committed offsets: say which topic with --topic"
            )));
        }
        set.into_iter().collect()
    } else {
        topics.to_vec()
    };
    let mut plan: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for t in &topics {
        let meta = client.topic(t).await?;
        let ps: Vec<i32> = meta.partitions.keys().copied().collect();
        let earliest = list_offsets(client, t, &ps, EARLIEST).await?;
        let latest = list_offsets(client, t, &ps, LATEST).await?;
        let by_time = match target {
            Target::Time(ms) => Some(list_offsets(client, t, &ps, ms).await?),
            _ => None,
        };
        for p in ps {
            let (lo, hi) = (earliest[&p], latest[&p]);
            let new = match target {
                Target::Earliest => lo,
                Target::Latest => hi,
                // Out of range offsets are clamped to the log, as Kafka's tool does.
                Target::Offset(o) => o.clamp(lo, hi),
                // No record that late: the end of the log.
                Target::Time(_) => by_time
                    .as_ref()
                    .and_then(|m| m.get(&p))
                    .copied()
                    .filter(|&o| o >= 0)
                    .unwrap_or(hi),
            };
            let cur = current.get(&(t.clone(), p)).copied().unwrap_or(-1);
            plan.insert((t.clone(), p), (cur, new));
        }
    }
    if execute {
        let offsets: BTreeMap<(String, i32), i64> =
            plan.iter().map(|(k, (_, n))| (k.clone(), *n)).collect();
        commit_offsets(client, name, -1, "", &offsets).await?;
    }
    if common.json() {
        print_json(&json!({
            "group": name,
            "executed": execute,
            "partitions": plan.iter().map(|((t, p), (c, n))| json!({
                "topic": t, "partition": p,
                "current_offset": (*c >= 0).then_some(*c),
                "new_offset": n,
            })).collect::<Vec<_>>(),
        }));
    } else {
        print_table(
            &[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET",
            ],
            plan.iter()
                .map(|((t, p), (c, n))| {
                    vec![
                        name.to_string(),
                        t.clone(),
                        p.to_string(),
                        offset(*c),
                        n.to_string(),
                    ]
                })
                .collect(),
        );
    }
    if !execute {
        eprintln!("Dry run: nothing was committed. Add --execute to reset the offsets.");
    }
    Ok(())
}

async fn delete(client: &mut KafkaClient, common: &Common, name: &str) -> Result<(), CliError> {
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_string(name.to_string()))]);
    let (_, resp) = client
        .coordinator(name)
        .await?
        .call(&req, DELETE_GROUPS_VERSIONS)
        .await?;
    for r in resp.results {
        check(r.error_code, || format!("group '{name}'"))?;
    }
    if common.json() {
        print_json(&json!({"group": name, "deleted": true}));
    } else {
        println!("Deleted group {name}.");
    }
    Ok(())
}
