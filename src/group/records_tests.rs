//! Byte layouts of the `__consumer_offsets` records, and decoding of bad input.

use super::records::*;
use bytes::Bytes;

#[test]
fn offset_commit_key_is_kafkas_v1_layout() {
    let key = OffsetsKey::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 7,
    };
    let bytes = encode_key(&key);
    assert_eq!(bytes, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
    assert_eq!(decode_key(&bytes).unwrap(), key);
}

#[test]
fn group_key_is_version_2() {
    let key = OffsetsKey::Group {
        group: "grp".into(),
    };
    let bytes = encode_key(&key);
    assert_eq!(bytes, [0, 2, 0, 3, b'g', b'r', b'p']);
    assert_eq!(decode_key(&bytes).unwrap(), key);
}

#[test]
fn offset_value_roundtrip_and_layout() {
    let v = OffsetValue {
        offset: 42,
        leader_epoch: 3,
        metadata: "m".into(),
        commit_timestamp: 1000,
        expire_timestamp: None,
    };
    let bytes = encode_offset_value(&v);
    let mut want = vec![0, 3];
    want.extend(42i64.to_be_bytes());
    want.extend(3i32.to_be_bytes());
    want.extend([0, 1, b'm']);
    want.extend(1000i64.to_be_bytes());
    assert_eq!(bytes, want);
    assert_eq!(decode_offset_value(&bytes).unwrap(), v);
}

#[test]
fn older_offset_values_decode() {
    // v1: offset, metadata, commit ts, expire ts
    let mut v1 = vec![0, 1];
    v1.extend(5i64.to_be_bytes());
    v1.extend([0, 0]);
    v1.extend(10i64.to_be_bytes());
    v1.extend(20i64.to_be_bytes());
    let d = decode_offset_value(&v1).unwrap();
    assert_eq!(
        (
            d.offset,
            d.leader_epoch,
            d.commit_timestamp,
            d.expire_timestamp
        ),
        (5, -1, 10, Some(20))
    );
    // v4: flexible, compact metadata string + empty tagged fields
    let mut v4 = vec![0, 4];
    v4.extend(9i64.to_be_bytes());
    v4.extend(2i32.to_be_bytes());
    v4.extend([3, b'a', b'b']);
    v4.extend(77i64.to_be_bytes());
    v4.push(0);
    let d = decode_offset_value(&v4).unwrap();
    assert_eq!(
        (d.offset, d.leader_epoch, d.metadata.as_str()),
        (9, 2, "ab")
    );
}

#[test]
fn group_value_roundtrip() {
    let v = GroupValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp: 123,
        members: vec![MemberValue {
            member_id: "m1".into(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300000,
            session_timeout_ms: 10000,
            subscription: Bytes::from_static(b"sub"),
            assignment: Bytes::from_static(b"asg"),
        }],
    };
    let bytes = encode_group_value(&v);
    assert_eq!(decode_group_value(&bytes).unwrap(), v);
    // Empty group: no protocol, no leader.
    let empty = GroupValue {
        protocol: None,
        leader: None,
        members: vec![],
        ..v
    };
    assert_eq!(
        decode_group_value(&encode_group_value(&empty)).unwrap(),
        empty
    );
}

#[test]
fn truncated_inputs_fail_cleanly() {
    let key = encode_key(&OffsetsKey::Offset {
        group: "group".into(),
        topic: "topic".into(),
        partition: 1,
    });
    for cut in 0..key.len() {
        assert!(decode_key(&key[..cut]).is_err(), "key cut at {cut}");
    }
    let value = encode_group_value(&GroupValue {
        protocol_type: "consumer".into(),
        generation: 1,
        protocol: Some("range".into()),
        leader: Some("a".into()),
        current_state_timestamp: 0,
        members: vec![MemberValue {
            member_id: "a".into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 1,
            session_timeout_ms: 1,
            subscription: Bytes::from_static(b"xy"),
            assignment: Bytes::new(),
        }],
    });
    for cut in 0..value.len() {
        assert!(
            decode_group_value(&value[..cut]).is_err(),
            "value cut at {cut}"
        );
    }
    assert!(matches!(
        decode_key(&[0, 9, 0, 0]),
        Err(RecordError::UnknownVersion { version: 9, .. })
    ));
}

#[test]
fn consumer_subscription_topics() {
    let mut m = vec![0, 1, 0, 0, 0, 2];
    m.extend([0, 1, b'a', 0, 2, b'b', b'c']);
    m.extend([0, 0, 0, 0]); // user data (ignored)
    assert_eq!(subscribed_topics(&m), Some(vec!["a".into(), "bc".into()]));
    assert_eq!(subscribed_topics(b"garbage"), None);
}
