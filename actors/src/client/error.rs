//! Errors of the Kafka client, one enum; a Kafka error code keeps its number and is
//! shown with Kafka's name for it.

use std::time::Duration;
use troupe::protocol::error_name;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection could be made (refused, unreachable, bad address, timeout).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The connection broke while a request was in flight.
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// The broker did not answer in time.
    #[error("{addr} did not answer {api} within {timeout:?}")]
    Timeout {
        addr: String,
        api: String,
        timeout: Duration,
    },
    /// The broker answered with a Kafka error code.
    #[error("{}{}", error_name(*code), if context.is_empty() { String::new() } else { format!(": {context}") })]
    Kafka { code: i16, context: String },
    /// An answer that does not decode or does not belong to the request.
    #[error("protocol error talking to {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    /// The broker does not serve any version of an API that this client can speak.
    #[error("{addr} does not support {api} in versions {min}..={max}")]
    Unsupported {
        addr: String,
        api: String,
        min: i16,
        max: i16,
    },
    /// The request cannot be made as asked (bad argument, no such broker...).
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The Kafka error code, if the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth a metadata refresh and a retry: leadership or coordinator moved, or the
    /// connection broke.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => {
                kafka_protocol::ResponseError::try_from_code(*code)
                    .is_some_and(|e| e.is_retriable())
                    || *code == kafka_protocol::ResponseError::NotController.code()
            }
            ClientError::Io { .. } | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// `Ok(())` for error code 0, otherwise a [`ClientError::Kafka`] saying what was asked.
pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::Kafka {
            code,
            context: context(),
        })
    }
}
