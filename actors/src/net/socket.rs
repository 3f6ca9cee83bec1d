//! Listening sockets, and options of accepted client sockets.

use std::os::fd::AsRawFd;

/// Applies `socket.send.buffer.bytes` / `socket.receive.buffer.bytes` (SO_SNDBUF /
/// SO_RCVBUF); -1 leaves the OS default, which on Linux is autotuned, as Kafka's -1
/// does. Failures are returned for the caller to log: the socket still works.
pub fn set_buffer_sizes(socket: &impl AsRawFd, send: i32, receive: i32) -> std::io::Result<()> {
    for (option, bytes) in [(libc::SO_SNDBUF, send), (libc::SO_RCVBUF, receive)] {
        if bytes < 0 {
            continue;
        }
        // SAFETY: setsockopt reads `bytes` (an int, as the option expects) for the
        // length given; the descriptor belongs to a live socket the caller holds.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A listener on `addr` with `backlog` as its accept queue (`socket.listen.backlog.size`;
/// tokio's `TcpListener::bind` always asks for 128). SO_REUSEADDR as tokio sets it, so a
/// restarted broker binds at once over connections still in TIME_WAIT.
pub async fn listen(addr: &str, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(backlog)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr}: no address"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(socket: &impl AsRawFd, option: i32) -> i32 {
        let mut value = 0i32;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value
    }

    #[test]
    fn sizes_are_applied_and_minus_one_keeps_the_default() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let default_rcv = get(&a, libc::SO_RCVBUF);
        set_buffer_sizes(&a, 65536, -1).unwrap();
        // Linux doubles the value for its bookkeeping.
        assert_eq!(get(&a, libc::SO_SNDBUF), 2 * 65536);
        assert_eq!(get(&a, libc::SO_RCVBUF), default_rcv);
        set_buffer_sizes(&a, -1, 32768).unwrap();
        assert_eq!(get(&a, libc::SO_RCVBUF), 2 * 32768);
    }
}
