//! Writing response chunks to a client socket, file regions with `sendfile(2)`.
//!
//! A Fetch response arrives as [`Chunk`]s: in-memory parts (size, header, envelope)
//! and file regions holding record batches. Regions go from the page cache to the
//! socket with `sendfile`, never through our memory; everything runs on the socket's
//! write readiness, so a slow consumer parks this task instead of blocking the loop.
//!
//! A frame is either sent whole or the caller must close the connection: any error,
//! including a segment file found shorter than its region (truncated or replaced
//! under us), is returned after a partial write, and a partial frame cannot be
//! resumed on a Kafka connection.
//!
//! Known limit: `sendfile` reading cold pages blocks the calling thread on disk. The
//! storage layer's readahead keeps that rare for consumers near the tail; lagging
//! consumers on cold segments would want this moved off the connection's thread.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::Interest;
use tokio::net::TcpStream;
use troupe::protocol::Chunk;
use troupe::storage::FileRegion;

/// Counters exported as metrics.
#[derive(Debug, Default)]
pub struct SendStats {
    /// Record bytes sent by `sendfile`, from the page cache.
    pub sendfile_bytes: AtomicU64,
    /// Record bytes sent by the copying fallback (read into memory, then written):
    /// non-zero means `sendfile` is refused for some files, which costs CPU.
    pub copied_bytes: AtomicU64,
    /// `sendfile` system calls, including those that found the socket full; a high
    /// ratio of calls to bytes points at small socket buffers.
    pub sendfile_calls: AtomicU64,
}

/// Linux sends at most this much per `sendfile` call anyway; asking for more only
/// risks overflowing `count` on 32-bit targets.
const MAX_SENDFILE: u64 = 0x7fff_f000;

/// Buffer of the copying fallback: bounded, so a large region never becomes a large
/// allocation.
const COPY_BUFFER: usize = 64 * 1024;

/// Writes every chunk, in order, completely.
pub async fn write_chunks(
    stream: &TcpStream,
    chunks: &[Chunk],
    stats: &SendStats,
) -> io::Result<()> {
    for (i, chunk) in chunks.iter().enumerate() {
        let more = i + 1 < chunks.len();
        match chunk {
            Chunk::Bytes(bytes) => write_bytes(stream, bytes, more).await?,
            Chunk::File(region) => send_region(stream, region, stats).await?,
        }
    }
    Ok(())
}

/// Writes several complete frames with as few `sendmsg(2)` calls as the socket
/// allows (one, unless it fills): responses answered together leave together.
pub async fn write_frames(stream: &TcpStream, frames: &[bytes::Bytes]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    // Where the unsent rest starts: a frame, and a position inside it.
    let (mut frame, mut at) = (0usize, 0usize);
    while frame < frames.len() {
        let result = stream
            .async_io(Interest::WRITABLE, || {
                let mut iov: Vec<libc::iovec> = frames[frame..]
                    .iter()
                    .map(|b| libc::iovec {
                        iov_base: b.as_ptr() as *mut libc::c_void,
                        iov_len: b.len(),
                    })
                    .collect();
                // SAFETY (pointer arithmetic): `at` is within the first frame left.
                iov[0].iov_base = unsafe { iov[0].iov_base.cast::<u8>().add(at) }.cast();
                iov[0].iov_len -= at;
                // SAFETY: a zeroed msghdr is valid; it points at `iov`, whose entries
                // point into `frames`, all alive for the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = iov.len() as _;
                // SAFETY: `fd` is the stream's socket, open while `stream` is borrowed.
                let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .await;
        let mut n = match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 && frame < frames.len() {
            let left = frames[frame].len() - at;
            if n >= left {
                n -= left;
                frame += 1;
                at = 0;
            } else {
                at += n;
                n = 0;
            }
        }
        // Skip empty frames so the next call never starts with nothing to send.
        while frame < frames.len() && frames[frame].len() == at {
            frame += 1;
            at = 0;
        }
    }
    Ok(())
}

/// `send(2)` until all of `bytes` is written. With `more`, MSG_MORE holds a short
/// header back so it leaves in the same TCP segment as the records that follow,
/// instead of its own packet (the socket has TCP_NODELAY).
async fn write_bytes(stream: &TcpStream, bytes: &[u8], more: bool) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        let result = stream
            .async_io(Interest::WRITABLE, || {
                // SAFETY: `rest` is a live slice for the duration of the call; `fd` is
                // the stream's socket, open while `stream` is borrowed.
                let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), flags) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .await;
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `region` with `sendfile`, or by copying where the kernel refuses it.
async fn send_region(stream: &TcpStream, region: &FileRegion, stats: &SendStats) -> io::Result<()> {
    let socket = stream.as_raw_fd();
    let file = region.file.as_raw_fd();
    let end = region
        .position
        .checked_add(region.len)
        .filter(|&end| i64::try_from(end).is_ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file region beyond off_t"))?;
    let mut offset = region.position as libc::off_t;
    while (offset as u64) < end {
        let count = (end - offset as u64).min(MAX_SENDFILE) as usize;
        let result = stream
            .async_io(Interest::WRITABLE, || {
                stats.sendfile_calls.fetch_add(1, Ordering::Relaxed);
                // SAFETY: both descriptors are open for the call (the socket borrowed
                // from `stream`, the file kept alive by the region's Arc); `offset` is
                // a valid off_t the kernel advances by the bytes sent.
                let n = unsafe { libc::sendfile(socket, file, &mut offset, count) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            })
            .await;
        match result {
            Ok(0) => return Err(shrunk(region)),
            Ok(n) => {
                stats.sendfile_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // The file (or socket) does not support sendfile: copy the rest.
                return copy_region(stream, region, offset as u64, end, stats).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The copying fallback: `pread` into a bounded buffer, then write.
async fn copy_region(
    stream: &TcpStream,
    region: &FileRegion,
    from: u64,
    end: u64,
    stats: &SendStats,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; COPY_BUFFER.min((end - from) as usize)];
    let mut offset = from;
    while offset < end {
        let want = buf.len().min((end - offset) as usize);
        let n = match region.file.read_at(&mut buf[..want], offset) {
            Ok(0) => return Err(shrunk(region)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        write_bytes(stream, &buf[..n], offset + (n as u64) < end).await?;
        stats.copied_bytes.fetch_add(n as u64, Ordering::Relaxed);
        offset += n as u64;
    }
    Ok(())
}

fn shrunk(region: &FileRegion) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "segment file ended inside the fetched region {}+{}: response cut short",
            region.position, region.len
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::io::Write;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A file of `len` patterned bytes (not constant, so an offset error shows).
    fn patterned_file(len: usize) -> (Arc<std::fs::File>, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        (Arc::new(file), data)
    }

    /// A connected pair: the writing side, and a task reading everything the peer
    /// sends until it closes.
    async fn pair() -> (TcpStream, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut out = Vec::new();
            let _ = sock.read_to_end(&mut out).await;
            out
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (stream, reader)
    }

    #[tokio::test]
    async fn bytes_and_regions_arrive_in_order() {
        let (file, data) = patterned_file(6 * 1024 * 1024 + 17);
        let region = FileRegion {
            file,
            position: 12_345,
            len: 5 * 1024 * 1024 + 3,
        };
        let head = Bytes::from_static(b"header bytes");
        let tail = Bytes::from_static(b"trailing tagged fields");
        let chunks = [
            Chunk::Bytes(head.clone()),
            Chunk::File(region.clone()),
            Chunk::Bytes(tail.clone()),
        ];
        let stats = SendStats::default();

        let (stream, reader) = pair().await;
        write_chunks(&stream, &chunks, &stats).await.unwrap();
        drop(stream);
        let got = reader.await.unwrap();

        let mut expected = head.to_vec();
        expected.extend_from_slice(&data[12_345..12_345 + region.len as usize]);
        expected.extend_from_slice(&tail);
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
        assert_eq!(stats.sendfile_bytes.load(Ordering::Relaxed), region.len);
        assert_eq!(stats.copied_bytes.load(Ordering::Relaxed), 0);
        assert!(stats.sendfile_calls.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn frames_written_together_arrive_whole_and_in_order() {
        let frames: Vec<Bytes> = (0..40u8)
            .map(|i| Bytes::from(vec![i; 1 + 9_000 * (i as usize % 3)]))
            .chain(std::iter::once(Bytes::new()))
            .collect();
        let (stream, reader) = pair().await;
        write_frames(&stream, &frames).await.unwrap();
        drop(stream);
        let expected: Vec<u8> = frames.iter().flat_map(|b| b.to_vec()).collect();
        assert!(reader.await.unwrap() == expected);
    }

    #[tokio::test]
    async fn a_region_past_the_end_of_the_file_is_an_error() {
        let (file, _) = patterned_file(1000);
        let region = FileRegion {
            file,
            position: 900,
            len: 200,
        };
        let (stream, reader) = pair().await;
        let err = write_chunks(&stream, &[Chunk::File(region)], &SendStats::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        drop(stream);
        assert_eq!(
            reader.await.unwrap().len(),
            100,
            "only the bytes that existed were sent"
        );
    }

    #[tokio::test]
    async fn the_copying_fallback_sends_the_same_bytes() {
        let (file, data) = patterned_file(300 * 1024);
        let region = FileRegion {
            file,
            position: 1,
            len: 250 * 1024,
        };
        let stats = SendStats::default();
        let (stream, reader) = pair().await;
        copy_region(&stream, &region, 1, 1 + region.len, &stats)
            .await
            .unwrap();
        drop(stream);
        assert!(reader.await.unwrap() == data[1..1 + region.len as usize]);
        assert_eq!(stats.copied_bytes.load(Ordering::Relaxed), region.len);
        assert_eq!(stats.sendfile_bytes.load(Ordering::Relaxed), 0);
    }
}
