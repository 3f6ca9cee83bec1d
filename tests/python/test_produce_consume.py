"""Produce and Fetch through confluent-kafka (librdkafka): acks, compression codecs,
key partitioning, offsets by position and time, size limits, delayed fetch, volume."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

import kafka_wire
from harness import consume, consumer, create_topic, drain, produce, producer, wait_for, watermarks

pytestmark = pytest.mark.confluent


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_round_trip(broker, admin, topic, acks):
    create_topic(admin, topic)
    values = [f"acks-{acks}-{i}".encode() for i in range(50)]
    reports = produce(broker.bootstrap, topic, [(None, v) for v in values], acks=acks)
    if acks != "0":
        assert [r[2] for r in reports] == list(range(50)), "offsets in delivery reports"
    else:
        # acks=0: the broker sends no answer, so the client cannot know offsets; the
        # log must still hold everything once it has processed the requests.
        wait_for(lambda: watermarks(broker.bootstrap, topic)[1] == 50, 10, "50 records after acks=0")
    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 50)
    assert [m.value() for m in got] == values
    assert [m.offset() for m in got] == list(range(50))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(broker, admin, topic, codec):
    create_topic(admin, topic)
    # Compressible and incompressible content, keys, and an empty value.
    values = [(f"value {i} " * (i % 20 + 1)).encode() for i in range(200)]
    values += [bytes((i * 37 + j) % 256 for j in range(300)) for i in range(20)]
    values.append(b"")
    msgs = [(f"key-{i}".encode(), v) for i, v in enumerate(values)]
    reports = produce(broker.bootstrap, topic, msgs, compression_type=codec, linger_ms=50, acks="all")
    assert sorted(r[2] for r in reports) == list(range(len(msgs)))
    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, len(msgs))
    assert [(m.key(), m.value()) for m in got] == msgs
    assert [m.offset() for m in got] == list(range(len(msgs)))


def test_keyed_messages_land_on_partitioner_choice_in_order(broker, admin, topic):
    create_topic(admin, topic, partitions=4)
    msgs = [(f"user-{i % 12}".encode(), f"event-{i}".encode()) for i in range(240)]
    reports = produce(broker.bootstrap, topic, msgs, acks="all")

    partition_of_key: dict[bytes, int] = {}
    for _err, part, _off, key, _val in reports:
        assert partition_of_key.setdefault(key, part) == part, f"key {key} went to two partitions"
    assert len(set(partition_of_key.values())) >= 2, "12 keys all hashed to one partition"

    for part in range(4):
        expected = sorted((off, key, val) for _e, p, off, key, val in reports if p == part)
        assert [e[0] for e in expected] == list(range(len(expected))), f"offsets of partition {part}"
        if not expected:
            continue
        got = consume(broker.bootstrap, topic, part, OFFSET_BEGINNING, len(expected))
        assert [(m.offset(), m.key(), m.value()) for m in got] == expected
        # Per key, the order of production is kept.
        for key in {e[1] for e in expected}:
            sent = [v for k, v in msgs if k == key]
            assert [m.value() for m in got if m.key() == key] == sent


def test_consume_from_earliest_and_latest(broker, admin, topic):
    create_topic(admin, topic)
    produce(broker.bootstrap, topic, [(None, b"old-%d" % i) for i in range(5)])

    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 5)
    assert [m.value() for m in got] == [b"old-%d" % i for i in range(5)]

    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])

        # position() only moves when records are consumed; the partition-EOF event
        # tells that OFFSET_END was resolved (ListOffsets) and where it points.
        def eof_offset():
            m = c.poll(0.2)
            if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                return m.offset() + 1  # EOF events carry the offset, +1 so 0 is truthy
            assert m is None or m.error(), f"unexpected record at OFFSET_END: {m.value()!r}"
            return None

        assert wait_for(eof_offset, 15, "OFFSET_END to resolve (partition EOF)") - 1 == 5
        produce(broker.bootstrap, topic, [(None, b"new-%d" % i) for i in range(3)])
        got = drain(c, 3, timeout=15)
        assert [(m.offset(), m.value()) for m in got] == [(5 + i, b"new-%d" % i) for i in range(3)]
    finally:
        c.close()


def test_consume_by_timestamp(broker, admin, topic):
    create_topic(admin, topic)
    base = int(time.time() * 1000) - 1_000_000
    msgs = [(None, b"ts-%d" % i, base + i * 1000) for i in range(20)]
    produce(broker.bootstrap, topic, msgs, linger_ms=100)

    c = consumer(broker.bootstrap)
    try:
        # First offset whose timestamp >= the asked one.
        asks = [base - 5000, base, base + 7000, base + 7500, base + 19000, base + 10**7]
        answers = []
        for ts in asks:
            (tp,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
            assert tp.error is None, tp.error
            answers.append(tp.offset)
        assert answers == [0, 0, 7, 8, 19, -1]  # -1: no such record (latest)

        c.assign([TopicPartition(topic, 0, 7)])
        got = drain(c, 13, timeout=15)
        assert [m.timestamp()[1] for m in got] == [base + i * 1000 for i in range(7, 20)]
        assert [m.value() for m in got] == [b"ts-%d" % i for i in range(7, 20)]
    finally:
        c.close()


def test_large_message_round_trips(broker, admin, topic):
    create_topic(admin, topic)
    big = bytes(range(256)) * (900 * 1024 // 256)
    produce(broker.bootstrap, topic, [(b"big", big)], acks="all")
    (m,) = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 1)
    assert m.value() == big


def test_message_over_max_message_bytes_is_rejected(broker, admin, topic):
    create_topic(admin, topic)
    p = producer(broker.bootstrap, acks="all", message_max_bytes=3_000_000, batch_size=3_000_000, compression_type="none")
    reports = []
    p.produce(topic, value=b"x" * (2 * 1024 * 1024), on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(30) == 0
    assert len(reports) == 1 and reports[0] is not None, "a 2 MB record was accepted"
    assert reports[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, reports[0]
    # Nothing was written, and the topic still takes normal records at offset 0.
    assert watermarks(broker.bootstrap, topic) == (0, 0)
    assert produce(broker.bootstrap, topic, [(None, b"small")])[0][2] == 0


def test_fetch_waits_for_data_then_answers_early(broker, admin, topic):
    create_topic(admin, topic)
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 5000, "fetch.min.bytes": 1, "enable.partition.eof": False})
    p = producer(broker.bootstrap, acks="all", linger_ms=0)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # Let the consumer connect and park a fetch on the empty partition.
        warmup = c.poll(1.0)
        assert warmup is None or warmup.error(), f"unexpected record {warmup.value()!r} in an empty topic"

        sent_at = []

        def later():
            time.sleep(0.5)
            sent_at.append(time.monotonic())
            p.produce(topic, value=b"late")
            p.flush(10)

        t = threading.Thread(target=later)
        start = time.monotonic()
        t.start()
        msg = None
        while msg is None and time.monotonic() - start < 10:
            msg = c.poll(0.2)
            if msg is not None and msg.error():
                raise AssertionError(msg.error())
        arrived = time.monotonic()
        t.join()
        assert msg is not None and msg.value() == b"late"
        assert arrived - start < 3.0, f"record arrived {arrived - start:.2f}s after start; fetch did not wake on the produce"
    finally:
        c.close()


@pytest.mark.wire
def test_delayed_fetch_on_the_wire(broker, admin, topic):
    """Fetch v4 with max_wait 4000 ms / min_bytes 1 on an empty partition: answered
    early when a produce arrives; with no produce it is held about max_wait."""
    create_topic(admin, topic)
    host, port = broker.host, broker.port

    with kafka_wire.connect(host, port) as s:
        t0 = time.monotonic()
        (res,) = kafka_wire.fetch_v4(s, topic, 0, 0, max_wait_ms=800, min_bytes=1)
        held = time.monotonic() - t0
        assert res.error == 0 and not res.records
        assert 0.6 <= held < 3.0, f"empty fetch with max_wait 800 ms answered after {held:.2f}s"

    result = {}

    def fetcher():
        with kafka_wire.connect(host, port) as s:
            t0 = time.monotonic()
            result["res"] = kafka_wire.fetch_v4(s, topic, 0, 0, max_wait_ms=4000, min_bytes=1)
            result["held"] = time.monotonic() - t0

    t = threading.Thread(target=fetcher)
    t.start()
    time.sleep(0.5)  # deliberately: the fetch must be parked before the produce
    with kafka_wire.connect(host, port) as s:
        (pr,) = kafka_wire.produce_v3(s, topic, 0, kafka_wire.record_batch([(b"k", b"wake-up")]))
        assert pr.error == 0
    t.join(10)
    (res,) = result["res"]
    assert res.error == 0
    assert kafka_wire.parse_record_batches(res.records or b"") == [(0, b"k", b"wake-up")]
    assert result["held"] < 2.5, f"parked fetch answered after {result['held']:.2f}s, not woken by the produce"


@pytest.mark.slow
def test_ten_thousand_messages_in_order(broker, admin, topic):
    create_topic(admin, topic)
    n = 10_000
    values = [b"%08d" % i for i in range(n)]
    reports = produce(broker.bootstrap, topic, [(None, v) for v in values], acks="all", linger_ms=10)
    assert sorted(r[2] for r in reports) == list(range(n))
    assert all(r[2] == int(r[4]) for r in reports), "a record got another record's offset"
    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, n, timeout=60)
    assert [m.offset() for m in got] == list(range(n))
    assert [m.value() for m in got] == values
    assert watermarks(broker.bootstrap, topic) == (0, n)


def test_log_append_time_topic_stamps_broker_time(broker, admin, topic):
    from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME

    create_topic(admin, topic, config={"message.timestamp.type": "LogAppendTime"})
    other = topic + "-create"
    create_topic(admin, other)
    before = int(time.time() * 1000)
    p = producer(broker.bootstrap)
    for t in (topic, other):
        p.produce(t, value=b"old", timestamp=1_000)  # the producer says 1970
    assert p.flush(15) == 0
    after = int(time.time() * 1000)
    (m,) = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 1)
    kind, ts = m.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before - 1000 <= ts <= after + 1000, (before, ts, after)
    (m,) = consume(broker.bootstrap, other, 0, OFFSET_BEGINNING, 1)
    assert m.timestamp() == (TIMESTAMP_CREATE_TIME, 1_000)


def test_timestamps_outside_the_topic_bounds_are_refused(broker, admin, topic):
    """KIP-937: message.timestamp.before.max.ms / after.max.ms on a CreateTime topic."""
    create_topic(admin, topic, config={
        "message.timestamp.before.max.ms": str(3600_000),
        "message.timestamp.after.max.ms": str(60_000),
    })
    now = int(time.time() * 1000)
    p = producer(broker.bootstrap, linger_ms=0, retries=0)
    results = {}

    def report(name):
        return lambda err, msg: results.__setitem__(name, err)

    for name, ts in [("now", now), ("future", now + 3600_000), ("past", now - 2 * 3600_000)]:
        p.produce(topic, key=name.encode(), value=b"v", timestamp=ts, partition=0, on_delivery=report(name))
        p.flush(15)
    assert results["now"] is None
    for name in ("future", "past"):
        assert results[name] is not None and results[name].code() == KafkaError.INVALID_TIMESTAMP, results
    got = consume(broker.bootstrap, topic, 0, 0, 1)
    assert got[0].key() == b"now" and got[0].timestamp()[1] == now


def test_record_headers_round_trip(broker, admin, topic):
    """Record headers (including a null value and an empty key) pass the broker's record
    checks and come back byte for byte, plain and compressed."""
    create_topic(admin, topic)
    headers = [("trace-id", b"abc123"), ("null-value", None), ("", b"empty key"), ("dup", b"1"), ("dup", b"2")]
    for codec in ("none", "gzip"):
        p = producer(broker.bootstrap, compression_type=codec)
        for i in range(3):
            p.produce(topic, key=b"k%d" % i, value=b"v", headers=headers, partition=0)
        assert p.flush(15) == 0
    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 6)
    for m in got:
        assert m.headers() == headers, m.headers()
