//! `troupe produce TOPIC`: lines from stdin become records (`key<SEP>value` with -K).

use super::offsets::{ATTEMPTS, RETRY_BACKOFF};
use super::output::print_json;
use super::{CliError, Common};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::BufRead;
use troupe_actors::client::records::{encode_batch, KeyValue};
use troupe_actors::client::{check, BrokerConnection, ClientError, KafkaClient};

/// Produce v3 (record batches v2) .. v11; v12+ add nothing we use, v13 names topics by id.
pub const PRODUCE_VERSIONS: (i16, i16) = (3, 11);

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    common: Common,
    topic: String,
    /// Split each line at the first SEP into key and value (e.g. -K:).
    #[arg(short = 'K', long = "key-separator", value_name = "SEP")]
    key_separator: Option<String>,
    /// all (-1), 1 or 0 (no answer: offsets unknown).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
    /// Produce every record to this partition (default: by key hash, as Kafka's
    /// default partitioner; keyless records spread per batch).
    #[arg(short = 'p', long)]
    partition: Option<i32>,
    /// Most records per Produce request.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
}

pub fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("acks must be all, -1, 1 or 0, not '{s}'")),
    }
}

/// Kafka's murmur2 (the default partitioner's hash of a record key), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `n`.
pub fn partition_for_key(key: &[u8], n: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % n.max(1)
}

/// One Produce request for one partition on `conn`; the base offset (-1 for acks=0).
pub async fn produce_batch(
    conn: &mut BrokerConnection,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> Result<i64, ClientError> {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let v = conn.version_for::<ProduceRequest>(PRODUCE_VERSIONS)?;
    if acks == 0 {
        conn.send_oneway(&req, v).await?;
        return Ok(-1);
    }
    let resp = conn.send(&req, v).await?;
    let p = resp
        .responses
        .into_iter()
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == partition)
        .ok_or_else(|| ClientError::Protocol {
            addr: conn.addr().to_string(),
            reason: format!("no answer for {topic}-{partition}"),
        })?;
    check(p.error_code, || {
        format!(
            "producing to {topic}-{partition}{}",
            p.error_message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )
    })?;
    Ok(p.base_offset)
}

/// Produce `records` to the leader of `topic`/`partition`, retrying (with a metadata
/// refresh) while leadership moves.
pub async fn produce_with_retry(
    client: &mut KafkaClient,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
    timeout_ms: i32,
) -> Result<i64, ClientError> {
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(RETRY_BACKOFF).await;
            client.refresh_metadata(Some(&[topic.to_string()])).await?;
        }
        let leader = match client.leader_id(topic, partition).await {
            Ok(l) => l,
            Err(e) if e.is_retriable() => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let res = match client.broker(leader).await {
            Ok(conn) => {
                produce_batch(conn, topic, partition, records.clone(), acks, timeout_ms).await
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(o) => return Ok(o),
            Err(e) if e.is_retriable() || matches!(e, ClientError::Connect { .. }) => {
                client.forget(leader);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Invalid("produce failed".into())))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub async fn run(args: ProduceArgs) -> Result<(), CliError> {
    if args.key_separator.as_deref() == Some("") {
        return Err(CliError::Usage("-K needs a non-empty separator".into()));
    }
    let mut client = args.common.connect().await?;
    let meta = client.topic(&args.topic).await?;
    let n = meta.partitions.len() as i32;
    if let Some(p) = args.partition {
        if !meta.partitions.contains_key(&p) {
            return Err(ClientError::Kafka {
                code: kafka_protocol::ResponseError::UnknownTopicOrPartition.code(),
                context: format!("partition {}-{p}", args.topic),
            }
            .into());
        }
    }
    // stdin is read on a thread of its own (blocking reads), lines come in batches.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(10_000);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                break;
            }
        }
    });
    let timeout_ms = args.common.request_timeout_ms.min(i32::MAX as u64) as i32;
    let mut total = 0u64;
    let mut per_partition: BTreeMap<i32, (u64, i64)> = BTreeMap::new();
    let mut round_robin = 0i32;
    let batch_size = args.batch_size.max(1);
    while let Some(first) = rx.recv().await {
        let mut lines = vec![first?];
        while lines.len() < batch_size {
            match rx.try_recv() {
                Ok(l) => lines.push(l?),
                Err(_) => break,
            }
        }
        let mut by_partition: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
        round_robin = (round_robin + 1) % n.max(1);
        for line in lines {
            let (key, value) = match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                    None => (None, line),
                },
                None => (None, line),
            };
            let p = match (args.partition, &key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, n),
                (None, None) => round_robin,
            };
            by_partition
                .entry(p)
                .or_default()
                .push((key, Some(Bytes::from(value))));
        }
        for (p, recs) in by_partition {
            let count = recs.len() as u64;
            let batch = encode_batch(&recs, now_ms()).map_err(ClientError::Invalid)?;
            let base =
                produce_with_retry(&mut client, &args.topic, p, batch, args.acks, timeout_ms)
                    .await?;
            let e = per_partition.entry(p).or_insert((0, base));
            e.0 += count;
            total += count;
        }
    }
    if args.common.json() {
        print_json(&json!({
            "topic": args.topic,
            "records": total,
            "partitions": per_partition.iter().map(|(p, (c, first))| json!({
                "partition": p, "records": c, "first_offset": (*first >= 0).then_some(*first),
            })).collect::<Vec<_>>(),
        }));
    } else {
        println!("Produced {total} record(s) to {}.", args.topic);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{murmur2, partition_for_key};

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
        assert!((0..7).contains(&partition_for_key(b"key", 7)));
    }
}
