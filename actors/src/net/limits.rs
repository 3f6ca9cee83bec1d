//! The process's open-files limit and what it leaves for partitions.
//!
//! Every open partition holds descriptors (its active segment's log file and its two
//! index files, plus those of closed segments), and so does every connection. A broker
//! that accepts more partitions than its limit can hold fails later and badly: `Too
//! many open files` while opening logs, then no descriptor left to accept a
//! connection. So the limit is raised once at start-up, and partition creation is
//! refused past what it can hold (see `troupe::controller::topics`).

/// Descriptors allowed per partition. Measured (`/proc/<pid>/fd` before and after
/// creating 500 partitions and producing to each): 1.0 per partition, the active
/// segment's `.log` file; the indexes are mmapped and their files closed. Every closed
/// segment keeps its `.log` open too, so a partition that has rolled once holds 2.
pub const DESCRIPTORS_PER_PARTITION: u64 = 2;

/// Memory maps per partition: the offset and time index of its active segment (closed
/// segments add two each). `vm.max_map_count` bounds them like the open-files limit
/// bounds descriptors: past it mmap fails with ENOMEM.
const MAPS_PER_PARTITION: u64 = 2;

/// Descriptors kept back for everything else the broker opens: listeners, the metadata
/// log, the runtime's own, checkpoints being written.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The soft and hard `RLIMIT_NOFILE`, if the OS answers.
pub fn open_files_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0)
        .then_some((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (Kafka's packaging asks operators
/// to raise it; we do it ourselves). Returns (soft before, soft after, hard).
pub fn raise_open_files_limit() -> Option<(u64, u64, u64)> {
    let (soft, hard) = open_files_limit()?;
    if soft >= hard {
        return Some((soft, soft, hard));
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0;
    Some((soft, if raised { hard } else { soft }, hard))
}

/// How many partitions the current soft limit can hold once connections (up to
/// `max_connections`, at most half the limit) and the broker's own descriptors are
/// set aside.
/// `vm.max_map_count` (Linux) lowers it further where it is the tighter bound.
pub fn descriptor_partitions(max_connections: usize) -> Option<i32> {
    let (soft, _) = open_files_limit()?;
    let by_files = partitions_within(soft, max_connections);
    let by_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|maps| {
            let left = maps.saturating_sub(RESERVED_MAPS);
            i32::try_from(left / MAPS_PER_PARTITION).unwrap_or(i32::MAX)
        })
        .unwrap_or(i32::MAX);
    Some(by_files.min(by_maps))
}

/// Maps kept back for the broker's own (libraries, thread stacks, allocator arenas).
const RESERVED_MAPS: u64 = 1024;

fn partitions_within(soft: u64, max_connections: usize) -> i32 {
    let connections = (max_connections as u64).min(soft / 2);
    let left = soft.saturating_sub(RESERVED_DESCRIPTORS + connections);
    i32::try_from(left / DESCRIPTORS_PER_PARTITION).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_the_broker_are_set_aside() {
        // 1024 (a common default): half for connections, 256 kept back.
        assert_eq!(partitions_within(1024, usize::MAX), (1024 - 512 - 256) / 2);
        assert_eq!(partitions_within(20_000, 1000), (20_000 - 1256) / 2);
        assert_eq!(partitions_within(100, usize::MAX), 0);
        assert!(partitions_within(u64::MAX, 10) == i32::MAX);
    }
}
