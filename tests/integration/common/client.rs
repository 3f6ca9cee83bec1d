//! A minimal Kafka client over a real socket, built on the kafka-protocol codecs:
//! enough to create topics, produce batches and fetch them back in Rust tests.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            correlation: 0,
        }
    }

    /// Send one request at `version` and decode its response.
    pub async fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("troupe-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        req.encode(&mut body, version).expect("encode body");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await.expect("write");
        let mut resp = self.read_frame().await.expect("response frame");
        let header = ResponseHeader::decode(&mut resp, R::Response::header_version(version))
            .expect("response header");
        assert_eq!(
            header.correlation_id, self.correlation,
            "responses come back in order"
        );
        R::Response::decode(&mut resp, version).expect("decode response")
    }

    /// Read one size-prefixed frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let n = i32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn create_topic(&mut self, name: &str, partitions: i32) -> i16 {
        self.create_topic_rf(name, partitions, 1).await
    }

    pub async fn create_topic_rf(&mut self, name: &str, partitions: i32, rf: i16) -> i16 {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)]);
        self.call(&req, 5).await.topics[0].error_code
    }

    /// Produce one record set (acks=1); returns (error code, base offset).
    pub async fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
        self.produce_acks(topic, partition, records, 1).await
    }

    /// Produce one record set with `acks`; returns (error code, base offset).
    pub async fn produce_acks(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> (i16, i64) {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ])]);
        let resp = self.call(&req, 9).await;
        let p = &resp.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Fetch from an offset; returns (error code, high watermark, record bytes).
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> (i16, i64, Bytes) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_partition_max_bytes(10 << 20)])]);
        let resp = self.call(&req, 11).await;
        let p = &resp.responses[0].partitions[0];
        (
            p.error_code,
            p.high_watermark,
            p.records.clone().unwrap_or_default(),
        )
    }
}

/// Offsets of the batches in a fetched record set (base, last).
pub fn batch_offsets(mut records: Bytes) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    while records.remaining() >= 61 {
        let base = records.get_i64();
        let len = records.get_i32() as usize;
        if records.remaining() < len {
            break;
        }
        let rest = records.split_to(len);
        let last_delta = i32::from_be_bytes(rest[11..15].try_into().expect("4 bytes"));
        out.push((base, base + last_delta as i64));
    }
    out
}
