//! The `troupe` command: `troupe serve [FILE] [--override key=value]...`, and the
//! client commands (`topic`, `group`, `cluster`, `produce`, `consume`, `perf`) in [`cli`].

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use troupe::config::BrokerConfig;

#[derive(Parser)]
#[command(
    name = "troupe",
    version,
    about = "A Kafka-compatible broker built on actors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker. Without FILE: single node, data in ./data, listening on 127.0.0.1:9092.
    Serve {
        /// A server.properties file (Kafka's format and key names).
        file: Option<PathBuf>,
        /// Override one setting, as Kafka's start script does: --override log.dirs=/tmp/x
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Serve { file, overrides } => (file, overrides),
        Command::Client(c) => {
            // Client commands keep stdout for their output: logs (warnings only
            // unless RUST_LOG says otherwise) go to stderr.
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .init();
            return cli::run(c);
        }
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            troupe_actors::logging::log_filter(std::env::var("RUST_LOG").ok().as_deref()),
        ))
        .init();
    serve(command.0, command.1)
}

fn serve(file: Option<PathBuf>, overrides: Vec<String>) -> ExitCode {
    let mut pairs = Vec::new();
    for o in &overrides {
        match o.split_once('=') {
            Some((k, v)) => pairs.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("error: --override expects KEY=VALUE, got '{o}'");
                return ExitCode::from(2);
            }
        }
    }
    let (config, warnings) = match BrokerConfig::load(file.as_deref(), &pairs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    for w in warnings {
        tracing::warn!("{w}");
    }
    raise_open_files_limit(config.max_connections);
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let handle = match troupe_actors::start_node(config).await {
            Ok(h) => h,
            Err(e) => {
                // On stderr too, as configuration errors are: the log may go elsewhere
                // (or be filtered out) and the reason must reach whoever started it.
                tracing::error!(error = %e, "broker failed to start");
                eprintln!("error: broker failed to start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install SIGTERM handler");
                    return ExitCode::FAILURE;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
        handle.shutdown().await;
        ExitCode::SUCCESS
    });
    result
}

/// Each partition holds a file per segment open (its indexes are mmapped): raise the soft `RLIMIT_NOFILE` to the hard limit, as Kafka's packaging asks operators
/// to, so a broker with thousands of partitions does not fail on the default 1,024.
/// Both limits are logged; partition creation is bounded by what the soft one holds.
fn raise_open_files_limit(max_connections: usize) {
    match troupe_actors::net::limits::raise_open_files_limit() {
        Some((before, soft, hard)) => tracing::info!(
            soft_before = before,
            soft,
            hard,
            partitions = troupe_actors::net::limits::descriptor_partitions(max_connections),
            "open files limit (RLIMIT_NOFILE); partitions beyond what it holds are refused"
        ),
        None => tracing::warn!("cannot read the open files limit (RLIMIT_NOFILE)"),
    }
}
