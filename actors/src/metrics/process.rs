//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), read from `/proc/self` at each scrape, on
//! every node. Elsewhere than Linux they stay at zero.

use prometheus::{Counter, Gauge, IntGauge, Registry};

pub struct ProcessMetrics {
    cpu_seconds: Counter,
    resident_memory: IntGauge,
    virtual_memory: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
}

/// What `/proc/self/stat` says, in its own units.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat {
    /// User and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: i64,
    /// Ticks after boot the process started at.
    pub start_ticks: u64,
    pub virtual_bytes: i64,
    /// Resident set size, in pages.
    pub rss_pages: i64,
}

/// Parses `/proc/self/stat` (proc(5)): fields after the command name, which is in
/// parentheses and may itself hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: num(14)? + num(15)?,
        threads: num(20)? as i64,
        start_ticks: num(22)?,
        virtual_bytes: num(23)? as i64,
        rss_pages: num(24)? as i64,
    })
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
pub fn parse_max_fds(text: &str) -> Option<i64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

impl ProcessMetrics {
    pub fn register(r: &Registry) -> Self {
        fn reg<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
            r.register(Box::new(m.clone()))
                .expect("each metric is registered once");
            m
        }
        // Constant names and help: valid by construction.
        let g = |name: &str, help: &str| reg(r, IntGauge::new(name, help).expect("valid metric"));
        ProcessMetrics {
            cpu_seconds: reg(
                r,
                Counter::new(
                    "process_cpu_seconds_total",
                    "User and system CPU time spent, in seconds.",
                )
                .expect("valid metric"),
            ),
            resident_memory: g(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            virtual_memory: g(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            open_fds: g("process_open_fds", "Open file descriptors."),
            max_fds: g("process_max_fds", "Limit of open file descriptors."),
            threads: g("process_threads", "OS threads of the process."),
            start_time: reg(
                r,
                Gauge::new(
                    "process_start_time_seconds",
                    "Start time of the process since the epoch, in seconds.",
                )
                .expect("valid metric"),
            ),
        }
    }

    /// Reads `/proc/self` into the metrics; whatever cannot be read keeps its value.
    pub fn refresh(&self) {
        // SAFETY: sysconf only reads a system constant.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let read = |path: &str| std::fs::read_to_string(path).ok();
        if let (Some(stat), true) = (
            read("/proc/self/stat").as_deref().and_then(parse_stat),
            ticks > 0,
        ) {
            let ticks = ticks as f64;
            let cpu = stat.cpu_ticks as f64 / ticks;
            let delta = cpu - self.cpu_seconds.get();
            if delta > 0.0 {
                self.cpu_seconds.inc_by(delta);
            }
            self.resident_memory.set(stat.rss_pages * page.max(0));
            self.virtual_memory.set(stat.virtual_bytes);
            self.threads.set(stat.threads);
            if let Some(boot) = read("/proc/stat").as_deref().and_then(parse_boot_time) {
                self.start_time
                    .set(boot as f64 + stat.start_ticks as f64 / ticks);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Some(max) = read("/proc/self/limits").as_deref().and_then(parse_max_fds) {
            self.max_fds.set(max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_command_holding_spaces_and_parentheses() {
        let text = "4242 (troupe (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 50 0 0 20 0 9 0 123456 104857600 2560 18446744073709551615 \
                    1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                cpu_ticks: 200,
                threads: 9,
                start_ticks: 123456,
                virtual_bytes: 104857600,
                rss_pages: 2560,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_boot_time_and_the_fd_limit() {
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
    }

    #[test]
    fn this_process_is_read() {
        let r = Registry::new();
        let m = ProcessMetrics::register(&r);
        m.refresh();
        if cfg!(target_os = "linux") {
            assert!(m.resident_memory.get() > 0);
            assert!(m.open_fds.get() > 0 && m.max_fds.get() >= m.open_fds.get());
            assert!(m.threads.get() >= 1);
            assert!(m.start_time.get() > 1.6e9);
        }
    }
}
