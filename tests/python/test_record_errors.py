"""Per-record errors in Produce responses (KIP-467, issue #13 item 2): when some
records make a batch invalid, the broker names them (record_errors: batch index and
message) beside the partition's error_message, from Produce v8. librdkafka then fails
those records with INVALID_RECORD and the rest of the batch with
_INVALID_DIFFERENT_RECORD, so the application knows which records to resend.

librdkafka (2.12 to 2.16 at least) does so only when a response names two or more
records: with exactly one, its delivery reports give every record of the batch the
partition's error code (rd_kafka_dr_msgq0 forces it over the per-record ones). So each
test makes two records invalid, and one test reads the record errors off the wire."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer

from harness import consume, create_topic

pytestmark = pytest.mark.confluent


def produce_batch(bootstrap: str, topic: str, records) -> list:
    """Produce (key, value[, timestamp]) to partition 0 in one batch (a long linger
    gathers them; the topic needs a partition 1 to warm up on); returns (error code or None, value) per record, in produce order."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500, "message.timeout.ms": 20000,
                  "enable.idempotence": False, "retries": 0})
    results = {}

    def report(err, msg):
        results[msg.value()] = err.code() if err else None

    # Warm up on partition 1 first: records produced before the producer knows the
    # leader may leave in a first, smaller batch.
    p.produce(topic, key=b"warm", value=b"warm", partition=1)
    assert p.flush(30) == 0

    for r in records:
        kw = {"key": r[0], "value": r[1], "partition": 0, "on_delivery": report}
        if len(r) > 2:
            kw["timestamp"] = r[2]
        p.produce(topic, **kw)
    assert p.flush(30) == 0
    return [(results[r[1]], r[1]) for r in records]


def test_keyless_record_on_a_compacted_topic_fails_alone(broker, admin, topic):
    create_topic(admin, topic, partitions=2, config={"cleanup.policy": "compact"})
    records = [(b"k0", b"v0"), (None, b"v1"), (b"k2", b"v2"), (None, b"v3"), (b"k4", b"v4")]
    got = produce_batch(broker.bootstrap, topic, records)
    assert got == [
        (KafkaError._INVALID_DIFFERENT_RECORD, b"v0"),
        (KafkaError.INVALID_RECORD, b"v1"),
        (KafkaError._INVALID_DIFFERENT_RECORD, b"v2"),
        (KafkaError.INVALID_RECORD, b"v3"),
        (KafkaError._INVALID_DIFFERENT_RECORD, b"v4"),
    ], got
    # The others resent on their own are accepted; nothing of the refused batch was written.
    again = produce_batch(broker.bootstrap, topic, [r for r in records if r[0] is not None])
    assert all(e is None for e, _ in again), again
    assert [m.value() for m in consume(broker.bootstrap, topic, 0, 0, 3)] == [b"v0", b"v2", b"v4"]


def test_timestamps_outside_the_kip_937_bounds_fail_alone(broker, admin, topic):
    create_topic(admin, topic, partitions=2, config={"message.timestamp.before.max.ms": "60000"})
    now = int(time.time() * 1000)
    records = [(b"k", b"old0", now - 3_600_000), (b"k", b"fresh", now), (b"k", b"old2", now - 7_200_000)]
    got = produce_batch(broker.bootstrap, topic, records)
    # Several record errors: librdkafka reports each offender as INVALID_RECORD.
    assert got == [
        (KafkaError.INVALID_RECORD, b"old0"),
        (KafkaError._INVALID_DIFFERENT_RECORD, b"fresh"),
        (KafkaError.INVALID_RECORD, b"old2"),
    ], got


def produce_v8(sock, topic: str, records: bytes, correlation_id: int = 8):
    """Produce v8 (the first with record_errors; not yet flexible): one partition, 0.
    Returns (error_code, [(batch_index, message)], error_message)."""
    import struct

    import kafka_wire as w

    body = w.produce_v3_body(topic, 0, records)  # v8's request body is v3's
    r = w.roundtrip(sock, w.request_header_v1(w.PRODUCE, 8, correlation_id), body, correlation_id)
    assert r.take(">i") == 1 and r.string() == topic and r.take(">i") == 1
    _index, error, _base, _append_time, _log_start = r.take(">ihqqq")
    record_errors = [(r.take(">i"), r.string()) for _ in range(r.take(">i"))]
    return error, record_errors, r.string()


def test_produce_v8_names_the_one_bad_record_on_the_wire(broker, admin, topic):
    import kafka_wire as w

    create_topic(admin, topic, config={"cleanup.policy": "compact"})
    batch = w.record_batch([(b"a", b"1"), (b"b", b"2"), (None, b"3"), (b"d", b"4")])
    with w.connect(broker.host, broker.port) as s:
        error, record_errors, message = produce_v8(s, topic, batch)
    assert error == KafkaError.INVALID_RECORD
    assert [i for i, _ in record_errors] == [2], record_errors
    assert "without a key" in record_errors[0][1]
    assert message and "record 2" in message, message
