"""Bad input over raw sockets: oversized frames, garbage, unknown APIs and versions,
corrupt record batches, unknown partitions, out-of-range fetches. The broker must
answer with the right Kafka error or close the connection, and keep serving others.

The requests are built by hand in kafka_wire.py (layouts documented there)."""

from __future__ import annotations

import socket
import struct

import pytest

import kafka_wire as kw
from harness import create_topic, produce, watermarks

pytestmark = pytest.mark.wire

# A small request limit so the "too large" frame is cheap to describe.
INVALID_RECORD = 87

BROKER_OVERRIDES = {"socket.request.max.bytes": "1048576"}


def still_serves(broker):
    """A new client still gets a full ApiVersions answer."""
    versions = kw.api_versions(broker.host, broker.port)
    assert kw.API_VERSIONS in versions and kw.PRODUCE in versions and kw.FETCH in versions


def assert_supports(broker, api_key: int, version: int):
    lo, hi = kw.api_versions(broker.host, broker.port)[api_key]
    assert lo <= version <= hi, f"broker advertises api {api_key} v{lo}..v{hi}; this test speaks v{version}"


def test_frame_larger_than_socket_request_max_bytes_closes_connection(broker):
    with kw.connect(broker.host, broker.port) as s:
        # Only the size prefix: the broker must refuse before reading (or allocating) 2 MB.
        s.sendall(struct.pack(">i", 2 * 1024 * 1024) + kw.request_header_v1(kw.API_VERSIONS, 0, 1))
        assert kw.wait_closed(s) == b""
    still_serves(broker)


def test_negative_frame_size_closes_connection(broker):
    with kw.connect(broker.host, broker.port) as s:
        s.sendall(struct.pack(">i", -7) + b"\x00" * 16)
        assert kw.wait_closed(s) == b""
    still_serves(broker)


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",  # size prefix reads as ~1.2 GB
        b"\x00\x00\x00\x03\xff\xff\xff",  # a frame too short for a request header
        b"\x00\x00\x00\x0c" + b"\xde\xad\xbe\xef" * 3,  # api key 0xdead, nonsense after it
        b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\x7f\xff",  # client_id longer than the frame
    ],
    ids=["http", "short-frame", "random", "truncated-client-id"],
)
def test_garbage_closes_connection_and_broker_keeps_serving(broker, garbage):
    with kw.connect(broker.host, broker.port) as s:
        s.sendall(garbage)
        kw.wait_closed(s)
    still_serves(broker)


def test_unknown_api_key_closes_connection(broker):
    with kw.connect(broker.host, broker.port) as s:
        s.sendall(kw.frame(kw.request_header_v1(9999, 0, 42)))
        assert kw.wait_closed(s) == b""
    still_serves(broker)


def test_api_versions_unsupported_version_answers_35_with_version_list(broker):
    # A client newer than the broker sends ApiVersions v99 (flexible: header v2, and a
    # v3-style body: compact client_software_name, compact version, tagged fields).
    body = kw.compact_string("troupe-test") + kw.compact_string("9.9") + kw.uvarint(0)
    with kw.connect(broker.host, broker.port) as s:
        s.sendall(kw.frame(kw.request_header_v2(kw.API_VERSIONS, 99, 4242) + body))
        r = kw.Reader(kw.recv_frame(s))
        assert r.take(">i") == 4242
        # The answer is an ApiVersions v0 body so that any client can read it.
        error, versions = kw.parse_api_versions_v0(r)
        assert error == kw.UNSUPPORTED_VERSION
        assert kw.API_VERSIONS in versions, versions
        lo, hi = versions[kw.API_VERSIONS]
        assert lo == 0 and hi >= 3
        # The connection stays usable: a supported version is answered on it.
        s.sendall(kw.api_versions_v0_request(4243))
        r = kw.Reader(kw.recv_frame(s))
        assert r.take(">i") == 4243
        assert kw.parse_api_versions_v0(r)[0] == kw.NONE


def test_produce_with_bad_crc_is_corrupt_message_and_log_unchanged(broker, admin, topic):
    assert_supports(broker, kw.PRODUCE, 3)
    create_topic(admin, topic)
    with kw.connect(broker.host, broker.port) as s:
        bad = kw.record_batch([(b"k", b"corrupted"), (None, b"second")], corrupt_crc=True)
        (res,) = kw.produce_v3(s, topic, 0, bad, acks=1)
        assert (res.topic, res.partition, res.error) == (topic, 0, kw.CORRUPT_MESSAGE)

        (f,) = kw.fetch_v4(s, topic, 0, 0)
        assert f.error == kw.NONE and f.high_watermark == 0 and not f.records
        assert watermarks(broker.bootstrap, topic) == (0, 0)

        # The same batch with a good CRC goes in at offset 0 on the same connection.
        good = kw.record_batch([(b"k", b"fine"), (None, b"second")])
        (res,) = kw.produce_v3(s, topic, 0, good, acks=1, correlation_id=8)
        assert (res.error, res.base_offset) == (kw.NONE, 0)
        (f,) = kw.fetch_v4(s, topic, 0, 0, correlation_id=10)
        assert kw.parse_record_batches(f.records) == [(0, b"k", b"fine"), (1, None, b"second")]


def test_produce_truncated_batch_is_rejected_and_log_unchanged(broker, admin, topic):
    assert_supports(broker, kw.PRODUCE, 3)
    create_topic(admin, topic)
    batch = kw.record_batch([(None, b"x" * 100)])
    with kw.connect(broker.host, broker.port) as s:
        (res,) = kw.produce_v3(s, topic, 0, batch[:-10], acks=1)
        assert res.error in (kw.CORRUPT_MESSAGE, INVALID_RECORD), res
    assert watermarks(broker.bootstrap, topic) == (0, 0)


def test_produce_to_unknown_partition_is_unknown_topic_or_partition(broker, admin, topic):
    assert_supports(broker, kw.PRODUCE, 3)
    create_topic(admin, topic, partitions=2)
    with kw.connect(broker.host, broker.port) as s:
        (res,) = kw.produce_v3(s, topic, 7, kw.record_batch([(None, b"nowhere")]), acks=1)
        assert (res.partition, res.error) == (7, kw.UNKNOWN_TOPIC_OR_PARTITION)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    assert watermarks(broker.bootstrap, topic, 1) == (0, 0)


def test_fetch_out_of_range_offsets(broker, admin, topic):
    assert_supports(broker, kw.FETCH, 4)
    create_topic(admin, topic)
    produce(broker.bootstrap, topic, [(None, b"r%d" % i) for i in range(5)])
    with kw.connect(broker.host, broker.port) as s:
        (f,) = kw.fetch_v4(s, topic, 0, -5)
        assert f.error == kw.OFFSET_OUT_OF_RANGE, f
        (f,) = kw.fetch_v4(s, topic, 0, 1000, correlation_id=12)
        assert f.error == kw.OFFSET_OUT_OF_RANGE, f
        assert not f.records
        # At the log end offset it is not an error: just nothing yet.
        (f,) = kw.fetch_v4(s, topic, 0, 5, correlation_id=13)
        assert (f.error, f.high_watermark) == (kw.NONE, 5) and not f.records
        (f,) = kw.fetch_v4(s, topic, 0, 3, correlation_id=14)
        assert f.error == kw.NONE
        assert [v for _o, _k, v in kw.parse_record_batches(f.records)][-2:] == [b"r3", b"r4"]


def test_fetch_unknown_partition(broker, admin, topic):
    assert_supports(broker, kw.FETCH, 4)
    create_topic(admin, topic)
    with kw.connect(broker.host, broker.port) as s:
        (f,) = kw.fetch_v4(s, topic, 9, 0)
        assert f.error == kw.UNKNOWN_TOPIC_OR_PARTITION


def test_half_sent_request_then_disconnect_does_not_hurt(broker):
    for _ in range(20):
        s = socket.create_connection((broker.host, broker.port))
        s.sendall(struct.pack(">i", 100) + b"\x00\x12")
        s.close()
    still_serves(broker)
