//! The `tracing` filter a serving node starts with.

/// openraft logs every failed RPC of a replication stream (five lines each, retried
/// every half second), so one dead replica fills the log. The controller quorum's
/// network logs each link change once instead (lost, answering again: see
/// `controller::raft::network`), so these modules stay quiet unless asked for.
const QUIET: &str = "openraft::replication=off,openraft::engine::handler::replication_handler=off";

/// The filter for `RUST_LOG` (`None`: unset): the default is `info` with openraft at
/// `warn`; openraft's per-retry replication lines are off unless `RUST_LOG` names
/// openraft itself.
pub fn log_filter(rust_log: Option<&str>) -> String {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => format!("info,openraft=warn,{QUIET}"),
        Some(s) if s.contains("openraft") => s.to_string(),
        Some(s) => format!("{s},{QUIET}"),
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn openraft_retry_lines_are_quiet_unless_asked_for() {
        let table: &[(Option<&str>, &str)] = &[
            (None, "info,openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=off"),
            (Some(""), "info,openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=off"),
            (Some("info"), "info,openraft::replication=off,openraft::engine::handler::replication_handler=off"),
            (Some("debug,openraft=info"), "debug,openraft=info"),
            (Some("openraft::replication=warn"), "openraft::replication=warn"),
        ];
        for (env, want) in table {
            assert_eq!(log_filter(*env), *want, "RUST_LOG={env:?}");
            // Every result parses as a filter.
            assert!(tracing_subscriber::EnvFilter::try_new(log_filter(*env)).is_ok());
        }
    }
}
