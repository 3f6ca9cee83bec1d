//! Encoding a response body into a complete frame: size prefix, response header, body.
//!
//! The frame is built in one allocation sized by the body's `compute_size`, and the
//! written length is checked against it, so a size prefix can never disagree with the
//! bytes that follow it (a client would misparse every later response).

use super::error::EncodeError;
use super::frame::SIZE_PREFIX_LEN;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::Encodable;

/// Bytes of a response header: the correlation id, plus (header v1, flexible
/// versions) an empty tagged-field section, which is one zero byte.
pub(crate) fn response_header_len(header_version: i16) -> usize {
    if header_version >= 1 {
        5
    } else {
        4
    }
}

/// Writes a response header with no tagged fields.
pub(crate) fn put_response_header(buf: &mut BytesMut, correlation_id: i32, header_version: i16) {
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0);
    }
}

/// The complete response frame for `body`, answering request `correlation_id`.
///
/// The header version comes from `api_key.response_header_version(version)`, which
/// already encodes Kafka's exception that ApiVersions responses always use header v0
/// (a client must be able to read it before it knows which versions we speak).
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    // `ResponseKind` has no `compute_size`; dispatch to each message type so the frame
    // is sized exactly, and check on the way that the body belongs to `api_key`.
    macro_rules! dispatch {
        ($($api:ident)*) => {
            match body {
                $(ResponseKind::$api(msg) => {
                    if api_key != ApiKey::$api {
                        return Err(EncodeError::WrongApi { api_key, body: stringify!($api) });
                    }
                    encode_frame(correlation_id, api_key, version, msg)
                })*
                _ => Err(EncodeError::Body {
                    api_key,
                    version,
                    reason: "response type unknown to this build".to_string(),
                }),
            }
        };
    }
    dispatch!(
        Produce Fetch ListOffsets Metadata OffsetCommit OffsetFetch FindCoordinator JoinGroup
        Heartbeat LeaveGroup SyncGroup DescribeGroups ListGroups SaslHandshake ApiVersions
        CreateTopics DeleteTopics DeleteRecords InitProducerId OffsetForLeaderEpoch
        AddPartitionsToTxn AddOffsetsToTxn EndTxn WriteTxnMarkers TxnOffsetCommit DescribeAcls
        CreateAcls DeleteAcls DescribeConfigs AlterConfigs AlterReplicaLogDirs DescribeLogDirs
        SaslAuthenticate CreatePartitions CreateDelegationToken RenewDelegationToken
        ExpireDelegationToken DescribeDelegationToken DeleteGroups ElectLeaders
        IncrementalAlterConfigs AlterPartitionReassignments ListPartitionReassignments
        OffsetDelete DescribeClientQuotas AlterClientQuotas DescribeUserScramCredentials
        AlterUserScramCredentials Vote BeginQuorumEpoch EndQuorumEpoch DescribeQuorum
        AlterPartition UpdateFeatures Envelope FetchSnapshot DescribeCluster DescribeProducers
        BrokerRegistration BrokerHeartbeat UnregisterBroker DescribeTransactions
        ListTransactions AllocateProducerIds ConsumerGroupHeartbeat ConsumerGroupDescribe
        ControllerRegistration GetTelemetrySubscriptions PushTelemetry AssignReplicasToDirs
        ListConfigResources DescribeTopicPartitions ShareGroupHeartbeat ShareGroupDescribe
        ShareFetch ShareAcknowledge AddRaftVoter RemoveRaftVoter UpdateRaftVoter
        InitializeShareGroupState ReadShareGroupState WriteShareGroupState
        DeleteShareGroupState ReadShareGroupStateSummary DescribeShareGroupOffsets
        AlterShareGroupOffsets DeleteShareGroupOffsets
    )
}

/// Frames one message of a known type. Public to the crate so handlers with a typed
/// body (the ApiVersions error answer) skip the `ResponseKind` wrapping.
pub(crate) fn encode_frame<M: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &M,
) -> Result<Bytes, EncodeError> {
    let body_err = |e: &dyn std::fmt::Display| EncodeError::Body {
        api_key,
        version,
        reason: e.to_string(),
    };
    let header_version = api_key.response_header_version(version);
    let body_len = body.compute_size(version).map_err(|e| body_err(&e))?;
    let size = response_header_len(header_version) + body_len;
    if size > i32::MAX as usize {
        return Err(EncodeError::TooLarge { size });
    }
    let mut buf = BytesMut::with_capacity(SIZE_PREFIX_LEN + size);
    buf.put_i32(size as i32);
    put_response_header(&mut buf, correlation_id, header_version);
    body.encode(&mut buf, version).map_err(|e| body_err(&e))?;
    if buf.len() != SIZE_PREFIX_LEN + size {
        return Err(EncodeError::SizeMismatch {
            expected: SIZE_PREFIX_LEN + size,
            written: buf.len(),
        });
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    fn split(frame: &Bytes) -> (i32, Bytes) {
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(
            size as usize,
            frame.len() - 4,
            "size prefix covers the rest"
        );
        (size, frame.slice(4..))
    }

    #[test]
    fn non_flexible_header_is_the_correlation_id() {
        let body = ResponseKind::Metadata(MetadataResponse::default());
        let frame = encode_response(42, ApiKey::Metadata, 5, &body).unwrap();
        let (_, mut rest) = split(&frame);
        assert_eq!(&rest[..4], &42i32.to_be_bytes());
        let header = ResponseHeader::decode(&mut rest, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        let decoded = MetadataResponse::decode(&mut rest, 5).unwrap();
        assert_eq!(decoded, MetadataResponse::default());
        assert!(rest.is_empty());
    }

    #[test]
    fn flexible_header_has_empty_tagged_fields() {
        let body = ResponseKind::Metadata(MetadataResponse::default());
        let frame = encode_response(7, ApiKey::Metadata, 12, &body).unwrap();
        let (_, mut rest) = split(&frame);
        assert_eq!(&rest[..5], &[0, 0, 0, 7, 0]);
        let _ = ResponseHeader::decode(&mut rest, 1).unwrap();
        assert_eq!(
            MetadataResponse::decode(&mut rest, 12).unwrap(),
            MetadataResponse::default()
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn api_versions_always_uses_header_v0() {
        let resp = crate::protocol::api_versions_response();
        let frame = encode_response(
            9,
            ApiKey::ApiVersions,
            3,
            &ResponseKind::ApiVersions(resp.clone()),
        )
        .unwrap();
        let (_, mut rest) = split(&frame);
        let _ = ResponseHeader::decode(&mut rest, 0).unwrap();
        assert_eq!(ApiVersionsResponse::decode(&mut rest, 3).unwrap(), resp);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_body_for_another_api_is_refused() {
        let body = ResponseKind::Metadata(MetadataResponse::default());
        let err = encode_response(1, ApiKey::Fetch, 12, &body).unwrap_err();
        assert!(matches!(err, EncodeError::WrongApi { .. }), "{err}");
    }

    #[test]
    fn a_version_the_crate_cannot_encode_is_an_error() {
        let body = ResponseKind::Metadata(MetadataResponse::default());
        let err = encode_response(1, ApiKey::Metadata, 99, &body).unwrap_err();
        assert!(matches!(err, EncodeError::Body { .. }), "{err}");
    }
}
