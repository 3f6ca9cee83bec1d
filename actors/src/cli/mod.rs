//! The admin and perf commands of the `troupe` binary: `topic`, `group`, `cluster`,
//! `produce`, `consume`, `perf`. They speak the Kafka protocol through
//! [`troupe_actors::client`], so they work against any Kafka-compatible broker.
//!
//! Every command prints a table (or plain lines) for people and `--format json` for
//! scripts; a failure goes to stderr as `error: <KAFKA_ERROR_NAME>: <what>` (or the
//! connection problem) with exit code 1; bad arguments exit with 2.

mod consume;
mod group;
mod membership;
mod offsets;
mod output;
mod perf;
mod produce;
mod topic;

use clap::{Args, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;
use troupe_actors::client::{ClientError, KafkaClient};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Options every client command takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Bootstrap server(s), host:port, comma separated.
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Output for people (table) or scripts (json).
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
    /// How long one request (or a connection attempt) may take.
    #[arg(long = "request-timeout-ms", default_value_t = 10_000, global = true)]
    pub request_timeout_ms: u64,
}

impl Common {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    pub async fn connect(&self) -> Result<KafkaClient, CliError> {
        Ok(KafkaClient::connect(&self.bootstrap, "troupe-cli", self.timeout()).await?)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, describe, configure and delete topics.
    Topic(topic::TopicArgs),
    /// List, describe (with lag), reset offsets of and delete consumer groups.
    Group(group::GroupArgs),
    /// Cluster-wide information.
    Cluster(ClusterArgs),
    /// Produce lines from stdin as records (`key<SEP>value` with -K).
    Produce(produce::ProduceArgs),
    /// Print records of a topic, optionally as a member of a consumer group.
    Consume(consume::ConsumeArgs),
    /// Load generators with live throughput and latency.
    Perf(perf::PerfArgs),
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Brokers, controller and cluster id.
    Info,
}

/// What makes a command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Arguments that cannot be carried out as given.
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn run(command: ClientCommand) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match command {
            ClientCommand::Topic(a) => topic::run(a).await,
            ClientCommand::Group(a) => group::run(a).await,
            ClientCommand::Cluster(a) => cluster_info(a).await,
            ClientCommand::Produce(a) => produce::run(a).await,
            ClientCommand::Consume(a) => consume::run(a).await,
            ClientCommand::Perf(a) => perf::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn cluster_info(args: ClusterArgs) -> Result<(), CliError> {
    let ClusterCommand::Info = args.command;
    let mut client = args.common.connect().await?;
    let md = client.refresh_metadata(Some(&[])).await?.clone();
    if args.common.json() {
        output::print_json(&serde_json::json!({
            "cluster_id": md.cluster_id,
            "controller_id": md.controller_id,
            "brokers": md.brokers.values().collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!(
        "Cluster id: {}",
        md.cluster_id.as_deref().unwrap_or("(none)")
    );
    println!(
        "Controller: {}",
        if md.controller_id >= 0 {
            md.controller_id.to_string()
        } else {
            "(unknown)".into()
        }
    );
    let rows = md
        .brokers
        .values()
        .map(|b| {
            vec![
                b.node_id.to_string(),
                b.host.clone(),
                b.port.to_string(),
                b.rack.clone().unwrap_or_else(|| "-".into()),
                if b.node_id == md.controller_id {
                    "yes".into()
                } else {
                    "".into()
                },
            ]
        })
        .collect();
    output::print_table(&["BROKER", "HOST", "PORT", "RACK", "CONTROLLER"], rows);
    Ok(())
}

/// Parse `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), CliError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::Usage(format!("expected KEY=VALUE, got '{s}'"))),
    }
}
