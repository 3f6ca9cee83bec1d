//! `troupe consume TOPIC`: print records, alone or as a member of a consumer group.
//!
//! With `-g GROUP` the command joins the group with the classic protocol (see
//! [`super::membership`]), reads the partitions the group gives it from the group's
//! committed offsets (or `-o` where there are none, like `auto.offset.reset`),
//! heartbeats, commits what it printed every second and when it stops, and leaves.

use super::membership::Member;
use super::offsets::{list_offsets, EARLIEST, LATEST};
use super::{CliError, Common};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, GroupId, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};
use troupe_actors::client::records::{decode_fetched, Message};
use troupe_actors::client::{check, BrokerConnection, ClientError, KafkaClient};

/// Fetch v4 (record batches v2) .. v12 (v13 names topics by id only).
pub const FETCH_VERSIONS: (i16, i16) = (4, 12);
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
const OFFSET_FETCH_VERSIONS: (i16, i16) = (2, 7);

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    common: Common,
    topic: String,
    /// Consume as a member of this group (joins it, commits offsets).
    #[arg(short = 'g', long)]
    group: Option<String>,
    /// Where to start: beginning, end, an offset, or -N (N before the end). With -g,
    /// only for partitions without a committed offset.
    #[arg(short = 'o', long, default_value = "end", allow_hyphen_values = true)]
    offset: String,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Print `key<SEP>value` (e.g. -K:).
    #[arg(short = 'K', long = "key-separator", value_name = "SEP")]
    key_separator: Option<String>,
    /// Only this partition (not with -g).
    #[arg(short = 'p', long)]
    partition: Option<i32>,
    /// Stop once every partition is read up to its end (high watermark).
    #[arg(short = 'e', long = "exit-at-end")]
    exit_at_end: bool,
    /// Longest a fetch waits at the broker for records.
    #[arg(long, default_value_t = 500)]
    fetch_max_wait_ms: i32,
}

#[derive(Clone, Copy, Debug)]
enum Start {
    Beginning,
    End,
    Offset(i64),
    FromEnd(i64),
}

fn parse_start(s: &str) -> Result<Start, CliError> {
    match s {
        "beginning" | "earliest" => Ok(Start::Beginning),
        "end" | "latest" => Ok(Start::End),
        _ => match s.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Start::Offset(n)),
            Ok(n) => Ok(Start::FromEnd(-n)),
            Err(_) => Err(CliError::Usage(format!(
                "-o takes beginning, end, an offset or -N, not '{s}'"
            ))),
        },
    }
}

/// Starting offsets of `partitions` of `topic` for `start`.
async fn start_offsets(
    client: &mut KafkaClient,
    topic: &str,
    partitions: &[i32],
    start: Start,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let lo = list_offsets(client, topic, partitions, EARLIEST).await?;
    let hi = list_offsets(client, topic, partitions, LATEST).await?;
    Ok(partitions
        .iter()
        .map(|&p| {
            let (l, h) = (
                lo.get(&p).copied().unwrap_or(0),
                hi.get(&p).copied().unwrap_or(0),
            );
            let o = match start {
                Start::Beginning => l,
                Start::End => h,
                Start::Offset(o) => o.clamp(l, h),
                Start::FromEnd(n) => (h - n).max(l),
            };
            (p, o)
        })
        .collect())
}

/// What one partition's fetch answer said.
pub struct Fetched {
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub records: Option<Bytes>,
}

/// One Fetch to `conn` for `positions` (partition → offset) of `topic`.
pub async fn fetch(
    conn: &mut BrokerConnection,
    topic: &str,
    positions: &[(i32, i64)],
    max_wait_ms: i32,
    timeout: Duration,
) -> Result<Vec<Fetched>, ClientError> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                positions
                    .iter()
                    .map(|&(p, o)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(o)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let v = conn.version_for::<FetchRequest>(FETCH_VERSIONS)?;
    let wait = Duration::from_millis(max_wait_ms.max(0) as u64);
    let resp = conn.send_timeout(&req, v, timeout + wait).await?;
    check(resp.error_code, || format!("fetch from {topic}"))?;
    Ok(resp
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .map(|p| Fetched {
            partition: p.partition_index,
            error_code: p.error_code,
            high_watermark: p.high_watermark,
            records: p.records,
        })
        .collect())
}

/// The consume loop's state.
struct Consumer {
    topic: String,
    start: Start,
    positions: BTreeMap<i32, i64>,
    high_watermarks: BTreeMap<i32, i64>,
    printed: u64,
}

fn print_message(
    out: &mut impl Write,
    json: bool,
    topic: &str,
    partition: i32,
    m: &Message,
    sep: Option<&str>,
) -> std::io::Result<()> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    if json {
        writeln!(
            out,
            "{}",
            json!({
                "topic": topic,
                "partition": partition,
                "offset": m.offset,
                "timestamp": m.timestamp,
                "key": text(&m.key),
                "value": text(&m.value),
            })
        )
    } else if let Some(sep) = sep {
        writeln!(
            out,
            "{}{sep}{}",
            text(&m.key).unwrap_or_default(),
            text(&m.value).unwrap_or_default()
        )
    } else {
        writeln!(out, "{}", text(&m.value).unwrap_or_default())
    }
}

impl Consumer {
    /// One round of fetches over every leader; false when `count` is reached.
    async fn round(
        &mut self,
        client: &mut KafkaClient,
        args: &ConsumeArgs,
        out: &mut impl Write,
    ) -> Result<bool, CliError> {
        let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (&p, &o) in &self.positions {
            match client.leader_id(&self.topic, p).await {
                Ok(l) => by_leader.entry(l).or_default().push((p, o)),
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    client
                        .refresh_metadata(Some(std::slice::from_ref(&self.topic)))
                        .await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let wait = args.fetch_max_wait_ms / (by_leader.len().max(1) as i32);
        let timeout = args.common.timeout();
        for (leader, asked) in by_leader {
            let answer = match client.broker(leader).await {
                Ok(conn) => fetch(conn, &self.topic, &asked, wait, timeout).await,
                Err(e) => Err(e),
            };
            let parts = match answer {
                Ok(p) => p,
                Err(e) if e.is_retriable() || matches!(e, ClientError::Connect { .. }) => {
                    client.forget(leader);
                    client
                        .refresh_metadata(Some(std::slice::from_ref(&self.topic)))
                        .await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for f in parts {
                let Some(&pos) = self.positions.get(&f.partition) else {
                    continue;
                };
                use kafka_protocol::ResponseError as E;
                match f.error_code {
                    0 => {}
                    c if c == E::OffsetOutOfRange.code() => {
                        // As auto.offset.reset: beginning → earliest, else latest.
                        let reset = match self.start {
                            Start::Beginning => EARLIEST,
                            _ => LATEST,
                        };
                        let o = list_offsets(client, &self.topic, &[f.partition], reset).await?;
                        if let Some(&o) = o.get(&f.partition) {
                            self.positions.insert(f.partition, o);
                        }
                        continue;
                    }
                    c => {
                        let e = ClientError::Kafka {
                            code: c,
                            context: format!("fetch from {}-{}", self.topic, f.partition),
                        };
                        if e.is_retriable() {
                            client
                                .refresh_metadata(Some(std::slice::from_ref(&self.topic)))
                                .await?;
                            continue;
                        }
                        return Err(e.into());
                    }
                }
                self.high_watermarks.insert(f.partition, f.high_watermark);
                let Some(records) = f.records else { continue };
                let (msgs, next) =
                    decode_fetched(records, pos).map_err(|reason| ClientError::Protocol {
                        addr: format!("broker {leader}"),
                        reason,
                    })?;
                for m in msgs {
                    if args.count.is_some_and(|n| self.printed >= n) {
                        return Ok(false);
                    }
                    print_message(
                        out,
                        args.common.json(),
                        &self.topic,
                        f.partition,
                        &m,
                        args.key_separator.as_deref(),
                    )?;
                    self.printed += 1;
                    self.positions.insert(f.partition, m.offset + 1);
                }
                if let Some(next) = next {
                    if args.count.is_none_or(|n| self.printed < n) {
                        let cur = self.positions.get(&f.partition).copied().unwrap_or(pos);
                        self.positions.insert(f.partition, cur.max(next));
                    }
                }
            }
        }
        out.flush()?;
        Ok(args.count.is_none_or(|n| self.printed < n))
    }

    fn at_end(&self) -> bool {
        self.positions
            .iter()
            .all(|(p, o)| self.high_watermarks.get(p).is_some_and(|hw| o >= hw))
    }
}

/// The group's committed offsets for `partitions` of `topic` (absent: none).
async fn committed(
    client: &mut KafkaClient,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let (_, resp) = client
        .coordinator(group)
        .await?
        .call(&req, OFFSET_FETCH_VERSIONS)
        .await?;
    check(resp.error_code, || format!("offsets of group '{group}'"))?;
    Ok(resp
        .topics
        .into_iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .filter(|p| p.error_code == 0 && p.committed_offset >= 0)
        .map(|p| (p.partition_index, p.committed_offset))
        .collect())
}

pub async fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let start = parse_start(&args.offset)?;
    if args.group.is_some() && args.partition.is_some() {
        return Err(CliError::Usage(
            "-p and -g do not go together: the group assigns partitions".into(),
        ));
    }
    let mut client = args.common.connect().await?;
    let meta = client.topic(&args.topic).await?;
    let mut consumer = Consumer {
        topic: args.topic.clone(),
        start,
        positions: BTreeMap::new(),
        high_watermarks: BTreeMap::new(),
        printed: 0,
    };
    let mut member = None;
    match (&args.group, args.partition) {
        (Some(g), _) => {
            let m = Member::join(&mut client, g, std::slice::from_ref(&args.topic)).await?;
            assign(&mut client, &mut consumer, &m, g).await?;
            member = Some(m);
        }
        (None, Some(p)) => {
            if !meta.partitions.contains_key(&p) {
                return Err(ClientError::Kafka {
                    code: kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                    context: format!("partition {}-{p}", args.topic),
                }
                .into());
            }
            consumer.positions = start_offsets(&mut client, &args.topic, &[p], start).await?;
        }
        (None, None) => {
            let ps: Vec<i32> = meta.partitions.keys().copied().collect();
            consumer.positions = start_offsets(&mut client, &args.topic, &ps, start).await?;
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut last_commit = Instant::now();
    let mut committed_positions = consumer.positions.clone();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result: Result<(), CliError> = loop {
        if consumer.positions.is_empty() {
            // No partition assigned to us (more members than partitions).
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            let more = tokio::select! {
                r = consumer.round(&mut client, &args, &mut out) => r,
                _ = &mut ctrl_c => {
                    // The fetch in flight was abandoned: its answer would come next on
                    // that connection.
                    client.reset_connections();
                    break Ok(());
                }
            };
            match more {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => break Ok(()),
                Err(e) => break Err(e),
            }
            if args.exit_at_end && consumer.at_end() {
                break Ok(());
            }
        }
        if let (Some(m), Some(g)) = (member.as_mut(), &args.group) {
            if last_commit.elapsed() >= COMMIT_INTERVAL && consumer.positions != committed_positions
            {
                let offsets = consumer
                    .positions
                    .iter()
                    .map(|(p, o)| ((args.topic.clone(), *p), *o))
                    .collect();
                if let Err(e) = m.commit(&mut client, &offsets).await {
                    break Err(e.into());
                }
                committed_positions = consumer.positions.clone();
                last_commit = Instant::now();
            }
            match m.heartbeat(&mut client).await {
                Ok(false) => {}
                Ok(true) => {
                    let offsets = consumer
                        .positions
                        .iter()
                        .map(|(p, o)| ((args.topic.clone(), *p), *o))
                        .collect();
                    // The generation may already be over: a refused commit is retried
                    // by reading from the group's offsets after the rejoin.
                    let _ = m.commit(&mut client, &offsets).await;
                    if let Err(e) = m.rejoin(&mut client).await {
                        break Err(e.into());
                    }
                    if let Err(e) = assign(&mut client, &mut consumer, m, g).await {
                        break Err(e.into());
                    }
                    committed_positions = consumer.positions.clone();
                }
                Err(e) => break Err(e.into()),
            }
        }
    };
    let _ = out.flush();
    if let Some(m) = &member {
        let offsets = consumer
            .positions
            .iter()
            .map(|(p, o)| ((args.topic.clone(), *p), *o))
            .collect();
        let commit = m.commit(&mut client, &offsets).await;
        let _ = m.leave(&mut client).await;
        if result.is_ok() {
            commit?;
        }
    }
    result
}

/// Positions for the partitions the group gave `member`: committed offsets, else `-o`.
async fn assign(
    client: &mut KafkaClient,
    consumer: &mut Consumer,
    member: &Member,
    group: &str,
) -> Result<(), ClientError> {
    let mine: Vec<i32> = member
        .assignment
        .get(&consumer.topic)
        .cloned()
        .unwrap_or_default();
    let committed = committed(client, group, &consumer.topic).await?;
    let missing: Vec<i32> = mine
        .iter()
        .copied()
        .filter(|p| !committed.contains_key(p))
        .collect();
    let fallback = if missing.is_empty() {
        BTreeMap::new()
    } else {
        start_offsets(client, &consumer.topic, &missing, consumer.start).await?
    };
    consumer.positions = mine
        .iter()
        .filter_map(|p| {
            committed
                .get(p)
                .or_else(|| fallback.get(p))
                .map(|o| (*p, *o))
        })
        .collect();
    consumer.high_watermarks.clear();
    Ok(())
}
