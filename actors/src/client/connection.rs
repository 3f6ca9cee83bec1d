//! One connection to one broker: framing, correlation ids and version negotiation.
//!
//! Requests go one at a time (write, then read the answer); Kafka answers in request
//! order on a connection anyway, and every caller here waits for its answer before the
//! next request. A connection whose exchange failed is left in an unknown state (half
//! a frame may be in flight) and must be dropped by the caller.

use super::error::ClientError;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer accepted: a corrupt size prefix must not make us allocate gigabytes.
const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// ApiVersions v3: flexible, carries the client's software name; every broker that
/// does not know it answers UNSUPPORTED_VERSION with its own range (KIP-511), and we
/// retry at v0.
const API_VERSIONS_VERSION: i16 = 3;

pub struct BrokerConnection {
    addr: String,
    stream: TcpStream,
    client_id: String,
    correlation: i32,
    /// How long one exchange may take unless the caller says otherwise.
    timeout: Duration,
    /// What the broker serves, `(key, min, max)`, from ApiVersions; empty for a raw
    /// connection (the caller pins its versions).
    versions: Vec<(i16, i16, i16)>,
}

/// Frame `req` as Kafka expects: size prefix, request header, body.
pub fn encode_request<R: Request>(
    req: &R,
    version: i16,
    correlation: i32,
    client_id: &str,
) -> Result<Bytes, String> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| format!("unknown API key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0);
    header
        .encode(&mut out, key.request_header_version(version))
        .map_err(|e| format!("cannot encode {key:?} v{version} header: {e}"))?;
    req.encode(&mut out, version)
        .map_err(|e| format!("cannot encode {key:?} v{version}: {e}"))?;
    let size = i32::try_from(out.len() - 4).map_err(|_| "request too large".to_string())?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("API {key}"))
}

impl BrokerConnection {
    /// Connect and negotiate versions (ApiVersions).
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let mut conn = Self::connect_raw(addr, client_id, timeout).await?;
        conn.negotiate().await?;
        Ok(conn)
    }

    /// Connect without ApiVersions: the caller sends at versions it pins.
    pub async fn connect_raw(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                connect_err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                ))
            })?
            .map_err(connect_err)?;
        stream.set_nodelay(true).map_err(connect_err)?;
        Ok(BrokerConnection {
            addr: addr.to_string(),
            stream,
            client_id: client_id.to_string(),
            correlation: 0,
            timeout,
            versions: Vec::new(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn negotiate(&mut self) -> Result<(), ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("troupe"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let unsupported = kafka_protocol::ResponseError::UnsupportedVersion.code();
        let resp: ApiVersionsResponse = match self.send(&req, API_VERSIONS_VERSION).await {
            Ok(r) if r.error_code != unsupported => r,
            // An older broker answers at v0 (error and its own range), which does not
            // decode as v3; the whole frame was read, so the connection is still in
            // step: ask again at v0.
            Ok(_) | Err(ClientError::Protocol { .. }) => {
                self.send(&ApiVersionsRequest::default(), 0).await?
            }
            Err(e) => return Err(e),
        };
        super::error::check(resp.error_code, || {
            format!("ApiVersions from {}", self.addr)
        })?;
        self.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        Ok(())
    }

    /// The versions of `key` the broker serves, if it serves it (None before
    /// negotiation).
    pub fn broker_versions(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.versions
            .iter()
            .find(|(k, _, _)| *k == key as i16)
            .map(|&(_, lo, hi)| (lo, hi))
    }

    /// The highest version of `R` both sides speak, within `ours` (what the caller can
    /// build and read) and what kafka-protocol can encode.
    pub fn version_for<R: Request>(&self, ours: (i16, i16)) -> Result<i16, ClientError> {
        let (crate_lo, crate_hi) = (R::VERSIONS.min, R::VERSIONS.max);
        let (lo, hi) = (ours.0.max(crate_lo), ours.1.min(crate_hi));
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| ClientError::Invalid(format!("unknown API key {}", R::KEY)))?;
        let unsupported = || ClientError::Unsupported {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            min: lo,
            max: hi,
        };
        let (blo, bhi) = self.broker_versions(key).ok_or_else(unsupported)?;
        let v = hi.min(bhi);
        if v < lo.max(blo) {
            return Err(unsupported());
        }
        Ok(v)
    }

    /// Send `req` at the best common version within `ours`; returns the version used
    /// with the answer (fields differ between versions).
    pub async fn call<R: Request>(
        &mut self,
        req: &R,
        ours: (i16, i16),
    ) -> Result<(i16, R::Response), ClientError> {
        let v = self.version_for::<R>(ours)?;
        let resp = self.send(req, v).await?;
        Ok((v, resp))
    }

    /// Send `req` at `version` and read its answer, within the connection's timeout.
    pub async fn send<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let timeout = self.timeout;
        self.send_timeout(req, version, timeout).await
    }

    /// [`Self::send`] with its own deadline (a Fetch that waits at the broker).
    pub async fn send_timeout<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation = self.write(req, version, timeout).await?;
        let key = ApiKey::try_from(R::KEY)
            .map_err(|_| ClientError::Invalid(format!("unknown API key {}", R::KEY)))?;
        let mut body = self.read_frame(R::KEY, timeout).await?;
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| protocol(format!("bad {key:?} response header: {e}")))?;
        if header.correlation_id != correlation {
            return Err(protocol(format!(
                "correlation id {} answered, {correlation} asked",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| protocol(format!("bad {key:?} v{version} response: {e}")))
    }

    /// Send a request that gets no answer (Produce with acks=0).
    pub async fn send_oneway<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        let timeout = self.timeout;
        self.write(req, version, timeout).await.map(|_| ())
    }

    async fn write<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<i32, ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let frame = encode_request(req, version, correlation, &self.client_id)
            .map_err(ClientError::Invalid)?;
        let addr = &self.addr;
        match tokio::time::timeout(timeout, self.stream.write_all(&frame)).await {
            Ok(Ok(())) => Ok(correlation),
            Ok(Err(source)) => Err(ClientError::Io {
                addr: addr.clone(),
                source,
            }),
            Err(_) => Err(ClientError::Timeout {
                addr: addr.clone(),
                api: api_name(R::KEY),
                timeout,
            }),
        }
    }

    async fn read_frame(&mut self, key: i16, timeout: Duration) -> Result<Bytes, ClientError> {
        let stream = &mut self.stream;
        let read = async {
            let len = stream.read_i32().await?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_RESPONSE_BYTES)
                .ok_or_else(|| std::io::Error::other(format!("bad response size {len}")))?;
            let mut buf = vec![0u8; len];
            stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(Bytes::from(buf))
        };
        match tokio::time::timeout(timeout, read).await {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(source)) => Err(ClientError::Io {
                addr: self.addr.clone(),
                source,
            }),
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                api: api_name(key),
                timeout,
            }),
        }
    }
}
