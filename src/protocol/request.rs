//! Decoding a request frame: header first, then the body at the announced version.
//!
//! The header's fixed prefix (api key, api version, correlation id) is read by hand
//! before anything else, so that every refusal can name the request it refuses and,
//! for ApiVersions, answer it: Kafka clients open with ApiVersions at the newest
//! version *they* know, and expect a broker that knows fewer to say so (error 35,
//! UNSUPPORTED_VERSION) with a v0 body listing the ApiVersions range, then retry lower.

use super::error::RequestError;
use super::response::encode_frame;
use super::versions::supported_versions;
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

/// api key (i16) + api version (i16) + correlation id (i32).
const FIXED_HEADER_LEN: usize = 8;

pub use super::codes::UNSUPPORTED_VERSION;

/// A request ready for its handler.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// `header.request_api_key`, already checked to be a known API.
    pub api_key: ApiKey,
    /// Api key, version, correlation id and client id, as the client sent them.
    pub header: RequestHeader,
    /// The body, decoded at `header.request_api_version`. Produce record batches in it
    /// are slices of the frame, not copies.
    pub body: RequestKind,
}

/// Decodes one frame body (as returned by `split_frame`). Never panics: every
/// malformed input becomes a [`RequestError`].
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, RequestError> {
    if frame.len() < FIXED_HEADER_LEN {
        return Err(RequestError::TooShort { len: frame.len() });
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Err(RequestError::UnknownApiKey {
            api_key: api_key_raw,
            api_version,
            correlation_id,
        });
    };
    let header_version = api_key.request_header_version(api_version);
    let Some((min, max)) = supported_versions(api_key) else {
        return Err(RequestError::UnsupportedApi {
            api_key,
            api_version,
            correlation_id,
            client_id: peek_client_id(&frame, header_version),
        });
    };
    if api_version < min || api_version > max {
        return Err(RequestError::UnsupportedVersion {
            api_key,
            api_version,
            correlation_id,
            client_id: peek_client_id(&frame, header_version),
            min,
            max,
        });
    }
    let malformed = |e: &dyn std::fmt::Display| RequestError::Malformed {
        api_key,
        api_version,
        correlation_id,
        reason: e.to_string(),
    };
    let mut rest = frame;
    let header = RequestHeader::decode(&mut rest, header_version)
        .map_err(|e| malformed(&format_args!("header: {e:#}")))?;
    let body = RequestKind::decode(api_key, &mut rest, api_version)
        .map_err(|e| malformed(&format_args!("{e:#}")))?;
    Ok(DecodedRequest {
        api_key,
        header,
        body,
    })
}

/// The client id of a header we will not fully decode, for logs only: header v1 and
/// v2 both start with it as a nullable `i16`-length string after the fixed prefix.
fn peek_client_id(frame: &Bytes, header_version: i16) -> Option<String> {
    if header_version < 1 {
        return None;
    }
    let len = frame.get(FIXED_HEADER_LEN..FIXED_HEADER_LEN + 2)?;
    let len = usize::try_from(i16::from_be_bytes([len[0], len[1]])).ok()?;
    let bytes = frame.get(FIXED_HEADER_LEN + 2..FIXED_HEADER_LEN + 2 + len)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The frame to send for a refused request, if Kafka answers rather than closes:
/// an ApiVersions request at a version we do not support gets UNSUPPORTED_VERSION
/// with the ApiVersions range (KIP-511), encoded as v0 so any client can read it.
pub fn unsupported_api_versions_answer(err: &RequestError) -> Option<Bytes> {
    match *err {
        RequestError::UnsupportedVersion {
            api_key: ApiKey::ApiVersions,
            correlation_id,
            min,
            max,
            ..
        } => Some(api_versions_error_frame(correlation_id, min, max)),
        _ => None,
    }
}

/// ApiVersions v0 error answer listing only the ApiVersions range, as Kafka does.
pub fn api_versions_error_frame(correlation_id: i32, min: i16, max: i16) -> Bytes {
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(min)
            .with_max_version(max)]);
    // A v0 ApiVersions body of one entry always encodes: no field is version-gated.
    encode_frame(correlation_id, ApiKey::ApiVersions, 0, &body)
        .expect("ApiVersions v0 error body encodes")
}
