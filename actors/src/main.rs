//! The `troupe` command: `troupe serve [FILE] [--override key=value]...`.

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    let cli = Cli::parse();
    raise_open_files_limit();
    match cli.command {
        Command::Serve { file, overrides } => serve(file, overrides),
    }
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
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let handle = match troupe_actors::start(config).await {
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

/// Each partition holds three files per segment open (log, offset index, time index):
/// raise the soft `RLIMIT_NOFILE` to the hard limit, as Kafka's packaging asks operators
/// to, so a broker with thousands of partitions does not fail on the default 1,024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            tracing::info!(
                from = before,
                to = lim.rlim_max,
                "raised the open files limit"
            );
        }
    }
}
