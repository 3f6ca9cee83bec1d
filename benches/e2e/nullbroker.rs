//! The client's ceiling: a "null broker" that answers ApiVersions, Metadata and Produce
//! and keeps nothing, and serves ListOffsets and Fetch from memory (`nullfetch.rs`).
//! librdkafka producing into it or consuming from it measures what the client itself
//! can move on this machine, so a target above that figure cannot be met by any broker
//! with this client here.
//!
//! It runs as a child process (this bench binary re-run with `--null-broker`), so its
//! CPU time is counted apart from the client's, like the real broker's. Each connection
//! gets a thread; every request is decoded with `kafka-protocol` (Produce records stay
//! `Bytes` slices of the frame, no copy) and answered in order. Base offsets advance by
//! each batch's record count, so the client sees the offsets a real broker would give.
//!
//! `NullBroker::start_echo` starts it in echo mode (`echo.rs`): produced batches are kept
//! in memory and served by Fetch with long polling, the ceiling of the OMB latency run.
//!
//! `NullBroker::start_append` starts it in append mode: each partition's produced bytes
//! are written, as they came, to a file of their own that is kept (one `write` per
//! partition per request, no checks, no index, by a writer thread per connection that
//! then answers, while the connection's thread reads on). librdkafka producing into it measures
//! the floor for any broker that keeps what it is sent: the client and the page cache's
//! copy of every byte into new pages, on the same cores at once (run 3a).

use crate::broker::{self, ProcSample};
use crate::echo::{self, Logs};
use crate::nullfetch;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Partitions every topic has in the null broker's metadata (`--partitions` to change).
const PARTITIONS: i32 = 8;

/// The versions the null broker speaks (all within what kafka-protocol encodes).
const APIS: [(ApiKey, i16, i16); 6] = [
    (ApiKey::Produce, 3, 9),
    (
        ApiKey::Fetch,
        nullfetch::FETCH_VERSION,
        nullfetch::FETCH_VERSION,
    ),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::FindCoordinator, 0, 2),
];

/// A running null broker child process.
pub struct NullBroker {
    child: Child,
    pub addr: SocketAddr,
}

impl NullBroker {
    /// Starts `<this bench> --null-broker` and reads the port it listens on.
    pub fn start() -> Result<NullBroker, String> {
        NullBroker::spawn(&[])
    }

    /// Starts it in echo mode (`echo.rs`), every topic with `partitions` partitions.
    pub fn start_echo(partitions: i32) -> Result<NullBroker, String> {
        NullBroker::spawn(&["--echo", "--partitions", &partitions.to_string()])
    }

    /// Starts it in append mode: produced bytes are kept in files under `dir` (created).
    pub fn start_append(dir: &Path) -> Result<NullBroker, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dir = dir.to_str().ok_or("the append dir is not UTF-8")?;
        NullBroker::spawn(&["--append", dir])
    }

    fn spawn(args: &[&str]) -> Result<NullBroker, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("--null-broker")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the null broker: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("null broker has no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("null broker said {line:?}"))?;
        Ok(NullBroker { child, addr })
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn sample(&self) -> ProcSample {
        broker::sample(self.child.id()).unwrap_or_default()
    }
}

impl Drop for NullBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's main: listen on a free loopback port, print it, serve until killed.
pub fn serve() -> ! {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the null broker");
    let addr = listener.local_addr().expect("null broker address");
    let args: Vec<String> = std::env::args().collect();
    let echo = args
        .iter()
        .any(|a| a == "--echo")
        .then(|| Arc::new(Logs::default()));
    let partitions = args
        .iter()
        .position(|a| a == "--partitions")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(PARTITIONS);
    let append = args
        .iter()
        .position(|a| a == "--append")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    println!("LISTENING {addr}");
    let _ = std::io::stdout().flush();
    // Base offsets per (topic, partition), shared by all connections.
    let offsets: Arc<Mutex<HashMap<(String, i32), i64>>> = Arc::default();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let offsets = offsets.clone();
        let mode = Mode {
            addr,
            partitions,
            echo: echo.clone(),
            append: append.clone(),
        };
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            if let Err(e) = serve_connection(conn, &mode, &offsets) {
                eprintln!("[null broker] connection closed: {e}");
            }
        });
    }
    std::process::exit(0)
}

/// What a connection serves: the address it advertises, partitions per topic, in echo
/// mode the shared logs, and in append mode the directory of the kept files.
struct Mode {
    addr: SocketAddr,
    partitions: i32,
    echo: Option<Arc<Logs>>,
    append: Option<PathBuf>,
}

/// Append mode: a connection's open files, one per partition, opened for appending
/// (a partition produced to over several connections gets one writer per connection;
/// `O_APPEND` keeps each write whole).
#[derive(Default)]
struct Appender {
    files: HashMap<(String, i32), File>,
}

impl Appender {
    fn write(
        &mut self,
        dir: &Path,
        topic: &str,
        partition: i32,
        records: &[u8],
    ) -> Result<(), String> {
        let key = (topic.to_string(), partition);
        let file = match self.files.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let path = dir.join(format!("{topic}-{partition}.log"));
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|err| format!("{}: {err}", path.display()))?;
                e.insert(f)
            }
        };
        file.write_all(records).map_err(|e| e.to_string())
    }
}

fn serve_connection(
    mut s: TcpStream,
    mode: &Mode,
    offsets: &Mutex<HashMap<(String, i32), i64>>,
) -> Result<(), String> {
    let addr = mode.addr;
    let mut out = BytesMut::new();
    // librdkafka's default max.partition.fetch.bytes.
    // Large enough for the tuned consumer's 10 MiB per partition; each partition gets
    // what its `partition_max_bytes` asks for, as from a broker.
    let mut block = nullfetch::Block::new(10 << 20);
    // Append mode: a writer thread per connection appends and then answers, in request
    // order, while this thread reads and decodes the next requests (a broker's
    // pipelining: network thread and storage thread).
    let writer = match &mode.append {
        Some(dir) => Some(spawn_writer(
            s.try_clone().map_err(|e| e.to_string())?,
            dir.clone(),
        )),
        None => None,
    };
    let mut appends: Vec<(String, i32, Bytes)> = Vec::new();
    loop {
        let mut size = [0u8; 4];
        if s.read_exact(&mut size).is_err() {
            return Ok(()); // the client went away
        }
        let len = usize::try_from(i32::from_be_bytes(size)).map_err(|e| e.to_string())?;
        let mut frame = BytesMut::zeroed(len);
        s.read_exact(&mut frame).map_err(|e| e.to_string())?;
        let mut body: Bytes = frame.freeze();
        if body.len() < 4 {
            return Err("short frame".into());
        }
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]]))
            .map_err(|_| "unknown api key".to_string())?;
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version))
            .map_err(|e| e.to_string())?;
        let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
        out.clear();
        out.put_i32(0);
        let header_version = key.response_header_version(version);
        match key {
            ApiKey::ApiVersions => {
                // Answered in a version the client is sure to read (v0 header always).
                let v = version.min(3);
                let api_keys = APIS
                    .iter()
                    .map(|(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(*k as i16)
                            .with_min_version(*min)
                            .with_max_version(*max)
                    })
                    .collect();
                response_header
                    .encode(&mut out, 0)
                    .map_err(|e| e.to_string())?;
                ApiVersionsResponse::default()
                    .with_api_keys(api_keys)
                    .encode(&mut out, v)
                    .map_err(|e| e.to_string())?;
            }
            ApiKey::Metadata => {
                let req = MetadataRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
                let names: Vec<TopicName> = req
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.name)
                    .collect();
                let topics = names
                    .into_iter()
                    .map(|name| {
                        let partitions = (0..mode.partitions)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_epoch(-1) // no OffsetForLeaderEpoch here
                                    .with_leader_id(BrokerId(1))
                                    .with_replica_nodes(vec![BrokerId(1)])
                                    .with_isr_nodes(vec![BrokerId(1)])
                            })
                            .collect();
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_partitions(partitions)
                    })
                    .collect();
                let broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_string(addr.ip().to_string()))
                    .with_port(i32::from(addr.port()));
                response_header
                    .encode(&mut out, header_version)
                    .map_err(|e| e.to_string())?;
                MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_cluster_id(Some(StrBytes::from_static_str("null-broker")))
                    .with_controller_id(BrokerId(1))
                    .with_topics(topics)
                    .encode(&mut out, version)
                    .map_err(|e| e.to_string())?;
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
                // Echo mode keeps the batches; its base offsets agree with the map
                // below, since both count each batch's records from 0.
                if let Some(logs) = &mode.echo {
                    for t in &req.topic_data {
                        for p in &t.partition_data {
                            if let Some(records) = &p.records {
                                logs.append(&t.name.0, p.index, records);
                            }
                        }
                    }
                }
                if writer.is_some() {
                    for t in &req.topic_data {
                        for p in &t.partition_data {
                            if let Some(records) = &p.records {
                                appends.push((t.name.0.to_string(), p.index, records.clone()));
                            }
                        }
                    }
                }
                if req.acks == 0 {
                    if let Some(w) = &writer {
                        w.send((std::mem::take(&mut appends), Bytes::new()))
                            .map_err(|_| "the writer thread stopped")?;
                    }
                    continue;
                }
                let mut offsets = offsets.lock().map_err(|_| "poisoned")?;
                let responses = req
                    .topic_data
                    .into_iter()
                    .map(|t| {
                        let partition_responses = t
                            .partition_data
                            .iter()
                            .map(|p| {
                                let next =
                                    offsets.entry((t.name.0.to_string(), p.index)).or_insert(0);
                                let base = *next;
                                *next += p.records.as_ref().map_or(0, record_count);
                                PartitionProduceResponse::default()
                                    .with_index(p.index)
                                    .with_base_offset(base)
                                    .with_log_append_time_ms(-1)
                            })
                            .collect();
                        TopicProduceResponse::default()
                            .with_name(t.name)
                            .with_partition_responses(partition_responses)
                    })
                    .collect();
                drop(offsets);
                response_header
                    .encode(&mut out, header_version)
                    .map_err(|e| e.to_string())?;
                ProduceResponse::default()
                    .with_responses(responses)
                    .encode(&mut out, version)
                    .map_err(|e| e.to_string())?;
            }
            ApiKey::ListOffsets => {
                response_header
                    .encode(&mut out, header_version)
                    .map_err(|e| e.to_string())?;
                nullfetch::list_offsets(&mut body, version, &mut out)?;
            }
            ApiKey::FindCoordinator => {
                response_header
                    .encode(&mut out, header_version)
                    .map_err(|e| e.to_string())?;
                FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_string(addr.ip().to_string()))
                    .with_port(i32::from(addr.port()))
                    .encode(&mut out, version)
                    .map_err(|e| e.to_string())?;
            }
            ApiKey::Fetch if mode.echo.is_some() && version == nullfetch::FETCH_VERSION => {
                let logs = mode.echo.as_deref().ok_or("no logs")?;
                echo::fetch(&mut s, header.correlation_id, &mut body, version, logs)?;
                continue;
            }
            ApiKey::Fetch if version == nullfetch::FETCH_VERSION => {
                nullfetch::fetch(&mut s, header.correlation_id, &mut body, &mut block)?;
                continue;
            }
            other => {
                return Err(format!(
                    "{other:?} v{version} is not served by the null broker"
                ))
            }
        }
        let n = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        match &writer {
            Some(w) => w
                .send((std::mem::take(&mut appends), out.split().freeze()))
                .map_err(|_| "the writer thread stopped")?,
            None => s.write_all(&out).map_err(|e| e.to_string())?,
        }
    }
}

/// What the writer thread gets per request: the partitions' bytes to append, then the
/// answer to send (empty for acks=0).
type Job = (Vec<(String, i32, Bytes)>, Bytes);

fn spawn_writer(mut s: TcpStream, dir: PathBuf) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || {
        let mut appender = Appender::default();
        for (appends, answer) in rx {
            for (topic, partition, records) in appends {
                if let Err(e) = appender.write(&dir, &topic, partition, &records) {
                    eprintln!("[null broker] append failed: {e}");
                    return;
                }
            }
            if !answer.is_empty() && s.write_all(&answer).is_err() {
                return;
            }
        }
    });
    tx
}

/// Records in the v2 batches of `records`: each batch's record count (bytes 57..61).
fn record_count(records: &Bytes) -> i64 {
    let mut b = &records[..];
    let mut n = 0i64;
    while b.len() >= 61 {
        let len = i32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        n += i64::from(i32::from_be_bytes([b[57], b[58], b[59], b[60]]));
        if b.len() < 12 + len {
            break;
        }
        b.advance(12 + len);
    }
    n
}
