//! The broker under test: a `troupe serve` child process on a free port with a fresh
//! data dir, what /proc says about it, and a raw Metadata probe that times start-up
//! without a client library's reconnect back-off in the way.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `key=value` settings (`--set`) every broker the bench starts gets, after its own.
static EVERY_BROKER: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds a `--set key=value` for every broker started from now on.
pub fn set_for_every_broker(kv: String) {
    EVERY_BROKER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(kv);
}

/// The `--set` settings, as given.
pub fn every_broker_sets() -> Vec<String> {
    EVERY_BROKER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// A running `troupe serve`.
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    log_file: PathBuf,
}

/// Cumulative CPU time and memory of a process, read from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    /// utime + stime in seconds.
    pub cpu_secs: f64,
    /// VmHWM: peak resident set since start or the last [`reset_peak_rss`].
    pub peak_rss_kb: u64,
    /// VmRSS right now.
    pub rss_kb: u64,
}

/// The broker binary: `TROUPE_BIN`, else `troupe` next to this bench's profile dir
/// (`<target>/release/deps/e2e-*` → `<target>/release/troupe`), built first with
/// `cargo build --release -p troupe-actors` when running under cargo.
pub fn find_binary(explicit: Option<&str>) -> Result<PathBuf, String> {
    if let Some(p) = explicit
        .map(str::to_string)
        .or_else(|| std::env::var("TROUPE_BIN").ok())
    {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("broker binary {} not found", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target dir from the bench executable")?;
    let bin = profile_dir.join("troupe");
    if let Ok(cargo) = std::env::var("CARGO") {
        eprintln!("[setup] cargo build --release -p troupe-actors --bin troupe");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "troupe-actors",
                "--bin",
                "troupe",
            ])
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("building the broker failed: {status}"));
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release -p troupe-actors` or set TROUPE_BIN",
            bin.display()
        ))
    }
}

/// Raises this process's open-files limit (inherited by the brokers it starts) as
/// far as allowed: each segment holds its `.log` open (the indexes are mapped without
/// a descriptor), so 10,000 partitions need more than the usual 1,024. Kafka's
/// operations guide asks for the same. Returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        let want = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: lim.rlim_max.max(1 << 20),
        };
        // Raising the hard limit needs root (CAP_SYS_RESOURCE); else up to the hard one.
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    /// Starts a broker on `port` (0: a free one) with `data_dir` and waits until it
    /// answers Metadata.
    pub fn start(bin: &Path, data_dir: &Path, port: u16) -> Result<(Broker, Duration), String> {
        let b = Broker::spawn(bin, data_dir, port, None, &[])?;
        let (mut broker, started) = b;
        broker.wait_ready(0, Duration::from_secs(120))?;
        Ok((broker, started.elapsed()))
    }

    /// Starts a broker process without waiting: `config` is its server.properties (none:
    /// the single-node defaults) and `overrides` go on top (`key=value`).
    pub fn spawn(
        bin: &Path,
        data_dir: &Path,
        port: u16,
        config: Option<&Path>,
        overrides: &[String],
    ) -> Result<(Broker, Instant), String> {
        let port = if port == 0 {
            free_port().map_err(|e| e.to_string())?
        } else {
            port
        };
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let log_file = data_dir.with_extension("broker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        if let Some(c) = config {
            cmd.arg(c);
        }
        if !overrides.iter().any(|o| o.starts_with("listeners=")) {
            cmd.arg("--override")
                .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"));
        }
        // The operations listener on a port of its own: brokers of a cluster run, or
        // of runs side by side, must not all ask for the default 9644.
        if !overrides
            .iter()
            .any(|o| o.starts_with("metrics.http.listener="))
        {
            cmd.arg("--override")
                .arg("metrics.http.listener=127.0.0.1:0");
        }
        let every = every_broker_sets();
        for o in overrides.iter().chain(&every) {
            cmd.arg("--override").arg(o);
        }
        let child = cmd
            .arg("--override")
            .arg(format!("log.dirs={}", data_dir.display()))
            .env(
                "RUST_LOG",
                std::env::var("TROUPE_BENCH_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let broker = Broker {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log_file,
        };
        Ok((broker, started))
    }

    /// Polls Metadata until the broker lists at least `partitions` partitions with a
    /// leader, or fails after `timeout` (or if the process died).
    pub fn wait_ready(&mut self, partitions: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "broker exited with {status}; see {}",
                    self.log_file.display()
                ));
            }
            let probe = Instant::now();
            if let Ok(n) = led_partitions(self.addr) {
                if n >= partitions {
                    return Ok(());
                }
            }
            // A Metadata answer for 10,000 partitions is work for the broker: poll
            // no more often than every 10 probe durations, so probing stays under ~10%.
            std::thread::sleep(probe.elapsed() * 10);
            if Instant::now() >= deadline {
                return Err(format!(
                    "broker not ready with {partitions} partitions after {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn sample(&self) -> ProcSample {
        sample(self.pid()).unwrap_or_default()
    }

    pub fn reset_peak_rss(&self) {
        // "5" resets VmHWM to the current RSS (Linux >= 4.0); we own the process.
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// Entries in /proc/<pid>/fd: files, sockets, mmaps are not counted.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// SIGKILL (`kill -9`): no shutdown work at all, as after a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the graceful shutdown (logs flushed, checkpoints written).
    pub fn stop(mut self) -> Result<Duration, String> {
        let started = Instant::now();
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(started.elapsed()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err("broker did not stop within 60 s after SIGTERM; killed".into());
                }
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_secs: (utime + stime) / ticks,
        peak_rss_kb: kb("VmHWM:"),
        rss_kb: kb("VmRSS:"),
    })
}

const METADATA_VERSION: i16 = 1;

/// One Metadata request for all topics; returns how many partitions have a leader.
pub fn led_partitions(addr: SocketAddr) -> Result<usize, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(METADATA_VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("e2e-probe")));
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::Metadata.request_header_version(METADATA_VERSION),
        )
        .map_err(|e| e.to_string())?;
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, METADATA_VERSION)
        .map_err(|e| e.to_string())?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    s.write_all(&frame).map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).map_err(|e| e.to_string())?;
    let len = usize::try_from(i32::from_be_bytes(size)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let mut b = bytes::Bytes::from(buf);
    ResponseHeader::decode(
        &mut b,
        ApiKey::Metadata.response_header_version(METADATA_VERSION),
    )
    .map_err(|e| e.to_string())?;
    let resp = MetadataResponse::decode(&mut b, METADATA_VERSION).map_err(|e| e.to_string())?;
    let _ = b.remaining();
    Ok(resp
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .count())
}
