//! The client's framing against the broker's own decoder, answers that do not belong
//! to the request, connection failures, and fetched batches cut short.

use super::records::{decode_fetched, encode_batch};
use super::{encode_request, BrokerConnection, ClientError};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestKind, ResponseHeader,
};
use kafka_protocol::protocol::Encodable;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn frames_decode_with_the_brokers_decoder() {
    let req = MetadataRequest::default().with_topics(None);
    let frame = encode_request(&req, 12, 77, "me").unwrap();
    let mut buf = BytesMut::from(&frame[..]);
    let body = troupe::protocol::split_frame(&mut buf, 1 << 20)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    let decoded = troupe::protocol::decode_request(body).unwrap();
    assert_eq!(decoded.api_key, ApiKey::Metadata);
    assert_eq!(decoded.header.request_api_version, 12);
    assert_eq!(decoded.header.correlation_id, 77);
    assert_eq!(decoded.header.client_id.as_deref(), Some("me"));
    assert_eq!(decoded.body, RequestKind::Metadata(req));
}

/// A server that answers the first request with `correlation` as its id.
async fn answering_with(correlation: i32) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let len = s.read_i32().await.unwrap();
        let mut req = vec![0u8; len as usize];
        s.read_exact(&mut req).await.unwrap();
        let mut body = BytesMut::new();
        let v = ApiKey::Metadata.response_header_version(12);
        ResponseHeader::default()
            .with_correlation_id(correlation)
            .encode(&mut body, v)
            .unwrap();
        MetadataResponse::default().encode(&mut body, 12).unwrap();
        let mut out = BytesMut::new();
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        s.write_all(&out).await.unwrap();
        // Keep the socket open until the client is done.
        let _ = s.read_i32().await;
    });
    addr
}

#[tokio::test]
async fn answers_are_matched_by_correlation_id() {
    let addr = answering_with(1).await;
    let mut c = BrokerConnection::connect_raw(&addr, "t", Duration::from_secs(5))
        .await
        .unwrap();
    c.send(&MetadataRequest::default(), 12).await.unwrap();

    let addr = answering_with(42).await;
    let mut c = BrokerConnection::connect_raw(&addr, "t", Duration::from_secs(5))
        .await
        .unwrap();
    let err = c.send(&MetadataRequest::default(), 12).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("correlation id 42 answered, 1 asked"),
        "{err}"
    );
}

#[tokio::test]
async fn a_refused_connection_says_where() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    let err = BrokerConnection::connect(&addr, "t", Duration::from_secs(5))
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to {addr}: ")),
        "{err}"
    );
}

#[test]
fn kafka_errors_are_named() {
    let e = ClientError::Kafka {
        code: 3,
        context: "topic 'x'".into(),
    };
    assert_eq!(e.to_string(), "UNKNOWN_TOPIC_OR_PARTITION: topic 'x'");
    assert!(e.is_retriable());
    assert!(!ClientError::Kafka {
        code: 36,
        context: String::new()
    }
    .is_retriable());
}

fn batch(values: &[&str]) -> Bytes {
    let recs: Vec<_> = values
        .iter()
        .map(|v| (None, Some(Bytes::from(v.to_string()))))
        .collect();
    encode_batch(&recs, 1_000).unwrap()
}

/// `b` with its base offset set to `base` (the broker assigns offsets).
fn at(b: Bytes, base: i64) -> Vec<u8> {
    let mut v = b.to_vec();
    v[..8].copy_from_slice(&base.to_be_bytes());
    v
}

#[test]
fn fetched_batches_decode_and_a_cut_batch_is_left_for_later() {
    let mut data = at(batch(&["a", "b"]), 10);
    data.extend(at(batch(&["c"]), 12));
    let third = at(batch(&["d", "e"]), 13);
    data.extend(&third[..third.len() - 3]);
    let (msgs, next) = decode_fetched(Bytes::from(data.clone()), 11).unwrap();
    let got: Vec<(i64, &[u8])> = msgs
        .iter()
        .map(|m| (m.offset, m.value.as_deref().unwrap()))
        .collect();
    assert_eq!(got, vec![(11, &b"b"[..]), (12, &b"c"[..])]);
    assert_eq!(next, Some(13));
    // Nothing complete: nothing read, no progress.
    let (msgs, next) = decode_fetched(Bytes::from(third[..20].to_vec()), 13).unwrap();
    assert!(msgs.is_empty() && next.is_none());
    // Garbage: an error, not a panic.
    let mut bad = at(batch(&["x"]), 0);
    bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(decode_fetched(Bytes::from(bad), 0).is_err());
}
