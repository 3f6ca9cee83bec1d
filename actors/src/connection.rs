//! One task per client connection.
//!
//! The reader decodes frames and starts a task per request, so requests on one
//! connection are pipelined; the writer awaits those tasks *in request order* (the Kafka
//! protocol's rule) and writes each response, fetched records by `sendfile(2)`. The
//! channel between them is bounded by `queued.max.requests`, so a client that pipelines
//! faster than we answer stops being read instead of growing our memory.

use crate::broker::BrokerContext;
use crate::handlers;
use crate::metrics::RequestTiming;
use crate::net::sendfile::{write_chunks, write_frames};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use troupe::protocol::{self, Chunk, EncodedFetch};

/// What a request produced.
pub enum Response {
    /// A complete frame (size prefix included).
    Frame(Bytes),
    /// A fetch response: in-memory parts and file regions.
    Fetch(EncodedFetch),
    /// No answer (Produce with acks=0).
    Nothing,
    /// A protocol violation: close the connection after the responses before it.
    Close(String),
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<BrokerContext>) {
    let _ = stream.set_nodelay(true);
    let (send, receive) = (
        ctx.config.socket_send_buffer_bytes,
        ctx.config.socket_receive_buffer_bytes,
    );
    if let Err(e) = crate::net::socket::set_buffer_sizes(&stream, send, receive) {
        tracing::warn!(%peer, error = %e, "cannot set socket.send/receive.buffer.bytes");
    }
    let (mut reader, writer) = stream.into_split();
    let depth = ctx.config.queued_max_requests.max(1);
    let (tx, mut rx) = mpsc::channel::<RequestTask>(depth);
    let stats = ctx.stats.clone();
    let metrics = ctx.metrics.clone();
    let activity = Arc::new(Activity::new());
    let write_activity = activity.clone();
    let write_loop = actix_rt::spawn(async move {
        // A response taken from the queue while gathering, to be written next.
        let mut carried: Option<(Response, Option<RequestTiming>)> = None;
        // A request taken from the queue while gathering whose answer is not ready.
        let mut queued: Option<RequestTask> = None;
        loop {
            let (response, timing) = match carried.take() {
                Some(r) => r,
                None => {
                    let task = match queued.take() {
                        Some(t) => t,
                        None => match rx.recv().await {
                            Some(t) => t,
                            None => break,
                        },
                    };
                    answer(task).await
                }
            };
            let writing = Instant::now();
            let mut answered = vec![timing];
            let result = match response {
                Response::Frame(b) => {
                    // Answers already done behind this one leave in the same write:
                    // a pipelining producer gets many small answers at once, and a
                    // send per answer was a system call per request.
                    let mut frames = vec![b];
                    while frames.len() < MAX_FRAMES_PER_WRITE {
                        let Ok(task) = rx.try_recv() else { break };
                        if !task.is_finished() {
                            queued = Some(task);
                            break;
                        }
                        match answer(task).await {
                            (Response::Frame(b), t) => {
                                frames.push(b);
                                answered.push(t);
                            }
                            other => {
                                carried = Some(other);
                                break;
                            }
                        }
                    }
                    if let [one] = &frames[..] {
                        write_chunks(writer.as_ref(), &[Chunk::Bytes(one.clone())], &stats).await
                    } else {
                        write_frames(writer.as_ref(), &frames).await
                    }
                }
                Response::Fetch(f) => write_chunks(writer.as_ref(), &f.chunks, &stats).await,
                Response::Nothing => Ok(()),
                Response::Close(why) => {
                    tracing::warn!(%peer, reason = %why, "closing connection");
                    break;
                }
            };
            let done = Instant::now();
            for timing in &answered {
                write_activity.answered();
                if let Some(t) = timing {
                    metrics.request_done(t, writing, done);
                }
            }
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "write failed, closing connection");
                break;
            }
        }
        // Dropping the write half (and rx) ends the reader too.
    });

    let max = ctx.config.socket_request_max_bytes;
    let budget = crate::broker::request_byte_permits(&ctx.config);
    let arriving_budget = crate::broker::arriving_byte_permits(&ctx.config);
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms);
    let mut buf = BytesMut::with_capacity(BASE_BUFFER);
    // Request-bytes budget already taken for the frame at the front of `buf`, which is
    // still arriving: taken *before* its room is reserved, so reading large frames
    // never holds more memory than the budget allows.
    let mut held: Option<OwnedSemaphorePermit> = None;
    // The same bytes, from the share of the budget that frames still arriving may hold,
    // so that stalled senders cannot take the room complete requests need.
    let mut arriving: Option<OwnedSemaphorePermit> = None;
    'read: loop {
        loop {
            match protocol::split_frame(&mut buf, max) {
                Ok(Some(frame)) => {
                    // Backpressure on memory: hold permits for the frame's bytes until
                    // its handler is done with them (a frame bigger than the whole
                    // budget takes all of it, so it still runs, alone).
                    let want = frame.len().clamp(1, budget);
                    let have = held.as_ref().map_or(0, |p| p.num_permits());
                    let mut permit = held.take();
                    arriving = None;
                    if have < want {
                        let more = tokio::select! {
                            p = acquire(&ctx.request_bytes, want - have) => match p {
                                Some(p) => p,
                                None => break 'read,
                            },
                            _ = tx.closed() => break 'read,
                        };
                        match &mut permit {
                            Some(p) => p.merge(more),
                            None => permit = Some(more),
                        }
                    }
                    activity.dispatched();
                    let ctx2 = ctx.clone();
                    let received = Instant::now();
                    let task = actix_rt::spawn(async move {
                        let started = Instant::now();
                        let (r, api) = handle_frame(frame, &ctx2, peer).await;
                        drop(permit);
                        let timing = RequestTiming {
                            api,
                            received,
                            started,
                            handled: Instant::now(),
                        };
                        (r, timing)
                    });
                    if tx.send(task).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "bad frame, closing connection");
                    let now = Instant::now();
                    let timing = RequestTiming {
                        api: None,
                        received: now,
                        started: now,
                        handled: now,
                    };
                    let _ = tx
                        .send(actix_rt::spawn(async move {
                            (Response::Close(e.to_string()), timing)
                        }))
                        .await;
                    break 'read;
                }
            }
        }
        let have = held.as_ref().map_or(0, |p| p.num_permits());
        match plan_read(&buf, max, have, arriving_budget) {
            Room::Ready => {}
            Room::Grow(n) => buf.reserve(n),
            Room::Grant { more, capacity } => {
                let take_both = async {
                    let a = acquire(&ctx.arriving_bytes, more).await?;
                    let b = acquire(&ctx.request_bytes, more).await?;
                    Some((a, b))
                };
                let (a, granted) = tokio::select! {
                    p = take_both => match p {
                        Some(p) => p,
                        None => break 'read,
                    },
                    _ = tx.closed() => break 'read,
                    _ = idle_expiry(&activity, idle) => {
                        tracing::info!(%peer, idle_ms = idle.as_millis() as u64,
                            "closing idle connection (a request stalled mid-frame)");
                        break 'read;
                    }
                };
                match &mut held {
                    Some(p) => p.merge(granted),
                    None => held = Some(granted),
                }
                match &mut arriving {
                    Some(p) => p.merge(a),
                    None => arriving = Some(a),
                }
                buf.reserve(capacity.saturating_sub(buf.len()));
            }
        }
        tokio::select! {
            r = reader.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => activity.touch(),
            },
            _ = tx.closed() => break,
            _ = idle_expiry(&activity, idle) => {
                tracing::info!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                break;
            }
        }
    }
    drop((held, arriving));
    drop(tx);
    let _ = write_loop.await;
    tracing::debug!(%peer, "connection closed");
}

/// A request being handled: its response and timing.
type RequestTask = tokio::task::JoinHandle<(Response, RequestTiming)>;

/// At most this many answers are gathered into one write (well below `IOV_MAX`).
const MAX_FRAMES_PER_WRITE: usize = 64;

/// The answer of a request task (a task that failed closes the connection).
async fn answer(task: RequestTask) -> (Response, Option<RequestTiming>) {
    match task.await {
        Ok((r, t)) => (r, Some(t)),
        Err(e) => (Response::Close(format!("request task failed: {e}")), None),
    }
}

/// Takes `n` permits of a broker-wide byte budget; `None` if it is closed.
async fn acquire(budget: &Arc<Semaphore>, n: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    budget.clone().acquire_many_owned(n).await.ok()
}

/// When a connection was last active, for `connections.max.idle.ms`. A connection is
/// idle when nothing was read or written for that long and no request of it is being
/// handled (a long-polling fetch is not idle).
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read, write or answered request.
    last_ms: AtomicU64,
    /// Requests dispatched and not yet answered.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn dispatched(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// When the connection will have been idle for `idle`, as things stand; `None` if
    /// that is too far away to represent (a huge `connections.max.idle.ms`).
    fn deadline(&self, idle: Duration) -> Option<Instant> {
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        last.checked_add(idle)
    }
}

/// Resolves once the connection has been idle for `idle`. Time spent with a request
/// in flight counts as activity.
async fn idle_expiry(activity: &Activity, idle: Duration) {
    loop {
        let Some(deadline) = activity.deadline(idle) else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(deadline.into()).await;
        if activity.deadline(idle).is_some_and(|d| Instant::now() < d) {
            continue;
        }
        if activity.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        activity.touch();
    }
}

/// Every connection reads into a buffer of this size; frames that fit are read
/// without touching the request-bytes budget (they take it once complete, before
/// their handler runs), so a connection that sends only a size prefix costs this much.
const BASE_BUFFER: usize = 64 * 1024;
/// The first budget step of a large frame: a whole produce request of the usual size
/// (a 1 MiB batch, librdkafka's default message.max.bytes being 1 MB, plus request
/// headers) is reserved, and moved, once.
const FIRST_GRANT: usize = (1 << 20) + (64 << 10);

/// What the reader must do before its next read.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// There is room to read into.
    Ready,
    /// Reserve this many more bytes, within the connection's base buffer or the
    /// budget already held.
    Grow(usize),
    /// Take `more` bytes of budget, then reserve room for `capacity` bytes from the
    /// start of the (large) frame being read.
    Grant { more: usize, capacity: usize },
}

/// Makes room for the next read. Once a frame's size prefix is in, room for the whole
/// frame is reserved at once when it is small. Growing 64 KiB at a time, a 1 MiB
/// produce request moved to a new allocation 5 times (the first because `buf` still
/// shares its allocation with frames split off earlier, then by doubling), copying
/// about 1 MiB more and faulting in fresh pages each time; reserved at once, it moves
/// at most once.
///
/// A frame larger than the base buffer takes budget before its room: the first step is
/// [`FIRST_GRANT`], then each step doubles what is covered. Reserving the whole
/// announced size on the prefix (what this did before) let any client that sends size
/// prefixes only make the broker reserve `socket.request.max.bytes` per connection;
/// taking the whole size from the budget instead would let three such clients starve
/// every other. In steps, what a connection holds stays within twice what it sent
/// (beyond the first step), frames still arriving hold at most half the budget
/// (`budget` here is that half), and a client that stops mid-frame is closed after
/// `connections.max.idle.ms`.
fn plan_read(buf: &BytesMut, max_request_bytes: usize, held: usize, budget: usize) -> Room {
    const MIN_READ: usize = 4096;
    const GROW: usize = 64 * 1024;
    let spare = buf.capacity() - buf.len();
    let frame_end = buf
        .get(..protocol::SIZE_PREFIX_LEN)
        .map(|p| i32::from_be_bytes([p[0], p[1], p[2], p[3]]))
        .and_then(|size| usize::try_from(size).ok())
        // An oversized announcement is refused by split_frame; never reserve for it.
        .filter(|size| *size <= max_request_bytes)
        .map(|size| protocol::SIZE_PREFIX_LEN + size);
    match frame_end {
        Some(end) if end > buf.len() && end <= BASE_BUFFER => {
            let missing = end - buf.len();
            if spare < missing {
                Room::Grow(missing.max(GROW))
            } else {
                Room::Ready
            }
        }
        Some(end) if end > buf.len() => {
            if spare >= (end - buf.len()).min(MIN_READ) {
                return Room::Ready;
            }
            let target = end.min(FIRST_GRANT.max(2 * buf.capacity()));
            // A frame larger than the whole budget takes all of it and then grows alone.
            let more = target.min(budget).saturating_sub(held);
            if more == 0 {
                Room::Grow(target - buf.len())
            } else {
                Room::Grant {
                    more,
                    capacity: target,
                }
            }
        }
        _ if spare < MIN_READ => Room::Grow(GROW),
        _ => Room::Ready,
    }
}

/// The response, and the API key when the request decoded (for its metrics).
async fn handle_frame(
    frame: Bytes,
    ctx: &BrokerContext,
    peer: SocketAddr,
) -> (Response, Option<i16>) {
    match protocol::decode_request(frame) {
        Ok(req) => {
            let api = req.header.request_api_key;
            (handlers::dispatch(req, ctx, peer).await, Some(api))
        }
        Err(e) => match protocol::unsupported_api_versions_answer(&e) {
            // Kafka answers an ApiVersions it cannot parse with UNSUPPORTED_VERSION and
            // its version list, so the client can retry with a version we know.
            Some(frame) => (Response::Frame(frame), None),
            None => (Response::Close(e.to_string()), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 100 << 20;
    const BUDGET: usize = 256 << 20;

    fn with_prefix(size: i32, body_read: usize) -> BytesMut {
        let mut buf = BytesMut::with_capacity(BASE_BUFFER);
        buf.extend_from_slice(&size.to_be_bytes());
        buf.extend_from_slice(&vec![7u8; body_read]);
        buf
    }

    /// Carries out a plan as the reader does (a grant is always given here); returns
    /// the budget held afterwards.
    fn make_room(buf: &mut BytesMut, held: usize, budget: usize) -> usize {
        match plan_read(buf, MAX, held, budget) {
            Room::Ready => held,
            Room::Grow(n) => {
                buf.reserve(n);
                held
            }
            Room::Grant { more, capacity } => {
                buf.reserve(capacity - buf.len());
                held + more
            }
        }
    }

    #[test]
    fn a_size_prefix_alone_reserves_nothing_and_takes_no_budget() {
        for size in [1 << 20, MAX as i32] {
            let buf = with_prefix(size, 0);
            assert_eq!(plan_read(&buf, MAX, 0, BUDGET), Room::Ready);
        }
    }

    #[test]
    fn budget_is_taken_before_room_for_a_large_frame() {
        // The base buffer is full: the next room is granted first.
        let buf = with_prefix(1 << 20, BASE_BUFFER - 4);
        assert_eq!(
            plan_read(&buf, MAX, 0, BUDGET),
            Room::Grant {
                more: 4 + (1 << 20),
                capacity: 4 + (1 << 20)
            }
        );
        // A 100 MiB frame is granted in steps that double what is covered.
        let mut buf = with_prefix(MAX as i32, BASE_BUFFER - 4);
        let held = make_room(&mut buf, 0, BUDGET);
        assert_eq!(held, FIRST_GRANT);
        assert!(buf.capacity() >= FIRST_GRANT);
        buf.resize(buf.capacity(), 7);
        let held2 = make_room(&mut buf, held, BUDGET);
        assert!(held2 <= 2 * buf.len() + 1, "{held2} for {}", buf.len());
        assert!(buf.capacity() >= held2);
        // Never more than the whole budget: past it the frame grows alone.
        let mut buf = with_prefix(MAX as i32, BASE_BUFFER - 4);
        let held = make_room(&mut buf, 0, 1000);
        assert_eq!(held, 1000);
        assert!(buf.capacity() >= FIRST_GRANT);
    }

    #[test]
    fn never_reserves_for_an_oversized_or_negative_announcement() {
        for size in [i32::MAX, -1] {
            let mut buf = with_prefix(size, 64 * 1024 - 4);
            assert_eq!(make_room(&mut buf, 0, BUDGET), 0);
            assert!(buf.capacity() < 1 << 20, "size {size}: {}", buf.capacity());
            assert!(buf.capacity() - buf.len() >= 4096);
        }
    }

    #[test]
    fn small_frames_grow_by_the_usual_step() {
        let mut buf = BytesMut::with_capacity(8);
        buf.extend_from_slice(&[0, 0]);
        make_room(&mut buf, 0, BUDGET);
        assert!(buf.capacity() - buf.len() >= 4096);
        // Enough room already: nothing changes.
        let mut buf = with_prefix(100, 10);
        let before = buf.capacity();
        make_room(&mut buf, 0, BUDGET);
        assert_eq!(buf.capacity(), before);
    }

    /// The regression this guards: a 1 MiB frame read 64 KiB at a time (as a socket
    /// delivers it) behind a frame still alive elsewhere moves to a new allocation
    /// once (growing by 64 KiB at a time it moved 5 times).
    #[test]
    fn a_large_frame_behind_a_live_frame_is_moved_at_most_once() {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&[1u8; 8]);
        let live = protocol::split_frame(&mut buf, MAX).unwrap().unwrap();
        let body = vec![9u8; 1 << 20];
        let mut wire = (1i32 << 20).to_be_bytes().to_vec();
        wire.extend_from_slice(&body);
        let mut at = 0;
        let mut moves = 0;
        let mut ptr = buf.as_ptr();
        let mut held = 0;
        while at < wire.len() {
            held = make_room(&mut buf, held, BUDGET);
            if buf.as_ptr() != ptr {
                moves += 1;
                ptr = buf.as_ptr();
            }
            // A read fills at most the spare capacity, at most 64 KiB at a time.
            let n = (buf.capacity() - buf.len())
                .min(64 * 1024)
                .min(wire.len() - at);
            buf.extend_from_slice(&wire[at..at + n]);
            at += n;
        }
        let frame = protocol::split_frame(&mut buf, MAX).unwrap().unwrap();
        assert_eq!(&frame[..], &body[..]);
        assert!(moves <= 1, "moved {moves} times");
        assert!(held <= 4 + (1 << 20), "held {held}");
        assert_eq!(&live[..], &[1u8; 8]);
    }
}
