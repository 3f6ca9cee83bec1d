//! Errors of the protocol layer, one enum per step of a request's life.
//!
//! They are separate enums rather than one because each step can fail in different
//! ways and the caller reacts differently: a [`FrameError`] or most [`RequestError`]s
//! close the connection, while [`EncodeError`] means a handler built a response that
//! the requested version cannot carry (a bug on our side, logged and closed too).

use kafka_protocol::messages::ApiKey;
use thiserror::Error;

/// The 4-byte size prefix of a request cannot be honoured.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The prefix announces more than `socket.request.max.bytes`; Kafka closes the
    /// connection rather than buffering it, and so do we.
    #[error("request of {size} bytes is larger than socket.request.max.bytes ({max})")]
    TooLarge { size: usize, max: usize },
    /// A negative size is never valid; the stream is garbage from here on.
    #[error("negative request size {size}")]
    Negative { size: i32 },
}

/// A complete frame that is not a request we can serve.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Shorter than api key + api version + correlation id (8 bytes): there is not
    /// even a correlation id to answer to.
    #[error("request frame of {len} bytes is too short for a request header")]
    TooShort { len: usize },
    /// An API key Kafka does not define (at least not in the schemas we know).
    #[error("unknown API key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
    },
    /// A known API that this broker does not implement at all.
    #[error(
        "API {api_key:?} is not supported (version {api_version}, correlation id {correlation_id})"
    )]
    UnsupportedApi {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        client_id: Option<String>,
    },
    /// A supported API at a version outside our range. For ApiVersions Kafka answers
    /// with UNSUPPORTED_VERSION (see `unsupported_api_versions_answer`); for every other
    /// API it closes the connection.
    #[error(
        "{api_key:?} version {api_version} is not supported (supported {min}..={max}, correlation id {correlation_id})"
    )]
    UnsupportedVersion {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        /// Best effort: read only to name the client in logs.
        client_id: Option<String>,
        min: i16,
        max: i16,
    },
    /// The header or body does not decode at the announced version.
    #[error(
        "malformed {api_key:?} v{api_version} request (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api_key: ApiKey,
        api_version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// A response that cannot be put on the wire.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The response body does not belong to the API it is sent for.
    #[error("response body for {body} sent as a {api_key:?} response")]
    WrongApi { api_key: ApiKey, body: &'static str },
    /// kafka-protocol refused the body at this version (a field set that the version
    /// cannot carry, a string too long, an unsupported version...).
    #[error("cannot encode {api_key:?} v{version} response: {reason}")]
    Body {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
    /// The frame would not fit the signed 32-bit size prefix.
    #[error("response of {size} bytes does not fit a Kafka frame")]
    TooLarge { size: usize },
    /// The Fetch regions table does not match the response's topics and partitions.
    #[error("fetch regions do not match the response: {0}")]
    RegionShape(String),
    /// Our own size computation disagreed with the bytes written: a bug, never sent.
    #[error("encoded {written} bytes where {expected} were computed")]
    SizeMismatch { expected: usize, written: usize },
}
