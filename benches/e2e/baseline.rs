//! The physical limits the broker's numbers are divided by, measured in the same run on
//! the same machine: one loopback TCP stream and page-cache appends to a file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

const BLOCK: usize = 1 << 20;

/// MB/s (10^6 bytes) of one loopback TCP connection: a sink thread reads into a 1 MiB
/// buffer and discards, the sender writes `total` bytes in 1 MiB `write_all`s.
pub fn loopback_tcp(total: u64) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sink = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; BLOCK];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(got);
            }
            got += n as u64;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    let block = vec![0xa5u8; BLOCK];
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        s.write_all(&block)?;
        sent += BLOCK as u64;
    }
    drop(s);
    let got = sink
        .join()
        .map_err(|_| std::io::Error::other("sink thread panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    Ok(got as f64 / secs / 1e6)
}

/// MB/s of `write_all` of 1 MiB blocks appended to a new file in `dir`, no fsync: what
/// the page cache accepts, the ceiling for an append-only log that does not flush. The
/// file is deleted at once, so the next rep reuses its pages (see
/// [`page_cache_append_kept`] for a file that stays).
pub fn page_cache_append(dir: &Path, total: u64) -> std::io::Result<f64> {
    let (mb, path) = append_file(&dir.join("baseline-append.bin"), total)?;
    std::fs::remove_file(&path)?;
    Ok(mb)
}

/// [`page_cache_append`] into a file that is kept (the caller deletes it at the end of
/// the run), as a log keeps what it appends: every block needs a page the page cache
/// did not just free. On this VM freed guest pages are handed back to the host (free
/// page reporting), so new pages cost a host fault each: ~0.3-0.4 GB/s, against the
/// 2-5 GB/s of [`page_cache_append`], which deletes its file and reuses its pages.
pub fn page_cache_append_kept(
    dir: &Path,
    total: u64,
    n: usize,
) -> std::io::Result<(f64, std::path::PathBuf)> {
    append_file(&dir.join(format!("baseline-append-kept-{n}.bin")), total)
}

/// Writes `total` bytes (rounded up to 1 MiB blocks) to a new file at `path`; MB/s.
fn append_file(path: &Path, total: u64) -> std::io::Result<(f64, std::path::PathBuf)> {
    let mut f = std::fs::File::create(path)?;
    let block = vec![0x5au8; BLOCK];
    let started = Instant::now();
    let mut written = 0u64;
    while written < total {
        f.write_all(&block)?;
        written += BLOCK as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((written as f64 / secs / 1e6, path.to_path_buf()))
}

/// Writes every dirty page back (`sync`) before a measurement, so no run pays for the
/// writeback of data earlier runs left dirty (the page-cache baseline deletes its file,
/// which drops its dirty pages for free). On this VM it did not change run 3: its cost
/// is new pages, see [`page_cache_append_kept`]. Returns the seconds the sync took.
pub fn settle() -> f64 {
    let t0 = Instant::now();
    match std::process::Command::new("sync").status() {
        Ok(s) if s.success() => {}
        other => eprintln!("    [settle] sync failed: {other:?}"),
    }
    t0.elapsed().as_secs_f64()
}
