//! The address syntaxes of `listeners`, `advertised.listeners` and
//! `controller.quorum.voters`.
//!
//! Kafka writes a listener as `NAME://host:port`: an empty host means "every interface"
//! and an IPv6 host is bracketed (`PLAINTEXT://[::1]:9092`). A voter is `id@host:port`.

use std::fmt;

/// One listener. `name` is upper-cased (Kafka compares listener names that way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Host or IP without brackets; empty means every interface.
    pub host: String,
    /// 0 asks the OS for a free port (tests start brokers this way).
    pub port: u16,
}

impl Listener {
    /// Parses `NAME://host:port`; the error is a reason for `ConfigError::Invalid`.
    pub fn parse(s: &str) -> Result<Listener, String> {
        let (name, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("listener {s:?} is not NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "listener name {name:?} must be letters, digits, _ or -"
            ));
        }
        let (host, port) = host_port(rest).map_err(|r| format!("listener {s:?}: {r}"))?;
        Ok(Listener {
            name: name.to_ascii_uppercase(),
            host,
            port,
        })
    }

    /// The address to bind: an empty host binds every interface.
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        join_host_port(host, self.port)
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.name,
            join_host_port(&self.host, self.port)
        )
    }
}

/// One controller voter from `controller.quorum.voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// Parses `id@host:port`.
    pub fn parse(s: &str) -> Result<QuorumVoter, String> {
        let (id, rest) = s
            .split_once('@')
            .ok_or_else(|| format!("voter {s:?} is not id@host:port"))?;
        let id = id
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("voter {s:?}: id must be a non-negative integer"))?;
        let (host, port) = host_port(rest).map_err(|r| format!("voter {s:?}: {r}"))?;
        if host.is_empty() {
            return Err(format!("voter {s:?}: host is missing"));
        }
        Ok(QuorumVoter { id, host, port })
    }
}

/// Splits `host:port` or `[v6]:port`.
fn host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [ in host")?;
        let port = after.strip_prefix(':').ok_or("missing :port")?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or("missing :port")?;
        if host.contains(':') {
            return Err("IPv6 hosts must be in brackets, [::1]:9092".into());
        }
        (host, port)
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("port {port:?} is not 0..=65535"))?;
    Ok((host.to_string(), port))
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listeners() {
        let l = Listener::parse("plaintext://127.0.0.1:9092").unwrap();
        assert_eq!(
            l,
            Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(l.to_string(), "PLAINTEXT://127.0.0.1:9092");
        let any = Listener::parse("PLAINTEXT://:0").unwrap();
        assert_eq!(any.host, "");
        assert_eq!(any.bind_address(), "0.0.0.0:0");
        let v6 = Listener::parse("INTERNAL://[::1]:9093").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.bind_address(), "[::1]:9093");
        assert_eq!(v6.to_string(), "INTERNAL://[::1]:9093");
    }

    #[test]
    fn rejects_bad_listeners() {
        for bad in [
            "127.0.0.1:9092",
            "PLAINTEXT://host",
            "PLAINTEXT://host:70000",
            "PLAINTEXT://host:x",
            "://host:1",
            "PLAIN TEXT://h:1",
            "PLAINTEXT://::1:9092",
            "PLAINTEXT://[::1:9092",
        ] {
            assert!(Listener::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_voters() {
        assert_eq!(
            QuorumVoter::parse("2@node2:9093").unwrap(),
            QuorumVoter {
                id: 2,
                host: "node2".into(),
                port: 9093
            }
        );
        for bad in ["node2:9093", "x@h:1", "-1@h:1", "1@:9093", "1@h"] {
            assert!(QuorumVoter::parse(bad).is_err(), "{bad}");
        }
    }
}
