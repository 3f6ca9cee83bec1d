//! The Kafka wire protocol, without sockets.
//!
//! The life of a request in this layer:
//!
//! 1. The connection appends what it reads to a buffer and calls [`split_frame`],
//!    which cuts off complete frames (size prefix checked against
//!    `socket.request.max.bytes`) without copying.
//! 2. [`decode_request`] reads the fixed header prefix, refuses unknown APIs and
//!    versions outside [`supported_versions`] (the table in [`versions`]), then decodes
//!    the header and body with kafka-protocol. An ApiVersions request at a version we
//!    do not know is answered rather than refused ([`unsupported_api_versions_answer`]),
//!    so clients can fall back; every other refusal closes the connection.
//! 3. A handler (in the actors crate) turns the [`DecodedRequest`] into a response
//!    body, and [`encode_response`] frames it: size, header, body, one allocation.
//! 4. Fetch is the exception: [`encode_fetch_response`] writes the envelope around
//!    record bytes that stay in segment files, yielding [`Chunk`]s that the connection
//!    sends with `sendfile(2)` (file regions) and plain writes (everything else).

pub mod acl;
pub mod codes;
pub mod error;
pub mod fetch;
pub mod frame;
pub mod request;
pub mod response;
pub mod versions;

#[cfg(test)]
mod fetch_tests;
#[cfg(test)]
mod request_tests;

pub use codes::name as error_name;
pub use error::{EncodeError, FrameError, RequestError};
pub use fetch::{encode_fetch_response, Chunk, EncodedFetch};
pub use frame::{split_frame, SIZE_PREFIX_LEN};
pub use request::{
    api_versions_error_frame, decode_request, unsupported_api_versions_answer, DecodedRequest,
    UNSUPPORTED_VERSION,
};
pub use response::encode_response;
pub use versions::{api_versions_response, supported_versions, SUPPORTED_APIS};
