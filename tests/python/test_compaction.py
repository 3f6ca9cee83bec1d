"""Compacted topics with compressed producers: librdkafka writes gzip, snappy, lz4 and
zstd batches, the broker's log cleaner opens them, keeps the latest value per key and
writes the survivors back with the batch's own codec, and librdkafka reads the result."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING

from harness import consume, consumer, create_topic, produce, wait_for, watermarks

pytestmark = pytest.mark.confluent

# The cleaner looks at each log every 100 ms.
BROKER_OVERRIDES = {"log.cleaner.backoff.ms": "100"}

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
KEYS = 40
ROUNDS = 12


def segment_batches(partition_dir: Path):
    """(base offset, attributes, record count) of every batch in the partition's
    segment files, read straight from disk."""
    out = []
    for seg in sorted(partition_dir.glob("*.log")):
        try:
            data = seg.read_bytes()
        except FileNotFoundError:
            # The cleaner swapped this segment out between the listing and the read:
            # read the whole directory again.
            return segment_batches(partition_dir)
        at = 0
        while at + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, at)
            attributes = struct.unpack_from(">h", data, at + 21)[0]
            count = struct.unpack_from(">i", data, at + 57)[0]
            out.append((base, attributes, count))
            at += 12 + length
    return out


def first_batch(partition_dir: Path) -> bytes:
    """The bytes of the first batch in the partition's segment files (a cleaned segment
    may be left empty)."""
    for seg in sorted(partition_dir.glob("*.log")):
        try:
            data = seg.read_bytes()
        except FileNotFoundError:  # swapped out by the cleaner meanwhile: list again
            return first_batch(partition_dir)
        if len(data) >= 61:
            length = struct.unpack_from(">i", data, 8)[0]
            return data[:12 + length]
    raise AssertionError(f"no batch in {partition_dir}")


def read_to_end(bootstrap: str, topic: str, timeout: float = 30):
    """Every message of partition 0 from the beginning up to the end of the log."""
    from confluent_kafka import KafkaError, TopicPartition

    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=1.0):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        return got
                    raise AssertionError(f"consumer error: {m.error()}")
                got.append(m)
        raise AssertionError(f"no end of partition within {timeout}s ({len(got)} read)")
    finally:
        c.close()


@pytest.mark.parametrize("codec", list(CODECS))
def test_compressed_batches_are_compacted_and_stay_compressed(broker, admin, topic, codec):
    create_topic(admin, topic, config={
        "cleanup.policy": "compact",
        "segment.bytes": "1024",  # a few batches per segment: most of the log is closed
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "100",
    })
    latest = {}
    for r in range(ROUNDS):
        msgs = []
        for k in range(KEYS):
            key = b"key-%02d" % k
            # Round 5 deletes every third key; later rounds write some of them again.
            value = None if (r == 5 and k % 3 == 0) else b"round-%02d-of-key-%02d " % (r, k) * 4
            msgs.append((key, value))
            latest[key] = value
        produce(broker.bootstrap, topic, msgs, partition=0, compression_type=codec, linger_ms=20)
    end = ROUNDS * KEYS
    assert watermarks(broker.bootstrap, topic) == (0, end)

    partition_dir = broker.log_dir / f"{topic}-0"
    written = segment_batches(partition_dir)
    assert written and all(a & 0x07 == CODECS[codec] for _, a, _ in written), written[:3]

    def cleaned():
        batches = segment_batches(partition_dir)
        return sum(n for _, _, n in batches) < end // 2 and batches

    batches = wait_for(cleaned, 30, f"the cleaner to compact the {codec} log")
    # Every batch still carries the producer's codec, rewritten ones included.
    assert all(a & 0x07 == CODECS[codec] for _, a, _ in batches), batches

    # librdkafka reads the rewritten batches: the latest value of every key, offsets
    # kept (the end offset does not move). Read to the end rather than a count taken
    # from disk: the cleaner may take another pass meanwhile.
    got = read_to_end(broker.bootstrap, topic)
    assert watermarks(broker.bootstrap, topic)[1] == end
    view = {}
    offsets = []
    for m in got:
        offsets.append(m.offset())
        view[m.key()] = m.value()
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert view == latest
    # Records below the last round's are only those a later round did not overwrite.
    assert len(got) < end // 2


def test_topic_compression_type_recompresses_on_append(broker, admin, topic):
    """compression.type on a topic (not `producer`): batches are stored with that codec
    whatever the producer used, and consumers read the same records."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    create_topic(admin, topic, config={"compression.type": "zstd"})
    first = [(b"k%d" % i, b"value-%d " % i * 10) for i in range(100)]
    produce(broker.bootstrap, topic, first, partition=0, compression_type="none")
    produce(broker.bootstrap, topic, first, partition=0, compression_type="gzip")
    partition_dir = broker.log_dir / f"{topic}-0"
    assert {a & 0x07 for _, a, _ in segment_batches(partition_dir)} == {CODECS["zstd"]}

    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("compression.type", "uncompressed", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(10)
    produce(broker.bootstrap, topic, first, partition=0, compression_type="lz4")
    codecs = [a & 0x07 for _, a, _ in segment_batches(partition_dir)]
    assert set(codecs[:2]) == {CODECS["zstd"]} and codecs[-1] == 0, codecs

    got = consume(broker.bootstrap, topic, 0, OFFSET_BEGINNING, 300)
    assert [(m.key(), m.value()) for m in got] == first * 3
    assert [m.offset() for m in got] == list(range(300))


@pytest.mark.kafka_python
@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd", "gzip"])
def test_kafka_python_compressed_batches_are_compacted(broker, admin, topic, codec):
    """kafka-python writes snappy in the xerial framing (as the Java client does), lz4
    frames and zstd: the cleaner opens them, keeps the framing/codec, and both
    kafka-python and librdkafka read the compacted log."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTP

    create_topic(admin, topic, config={
        "cleanup.policy": "compact",
        "segment.bytes": "1024",
        "min.cleanable.dirty.ratio": "0.01",
    })
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=20,
                      enable_idempotence=False, acks="all")
    latest = {}
    for r in range(ROUNDS):
        for k in range(KEYS):
            key, value = b"key-%02d" % k, b"round-%02d-of-key-%02d " % (r, k) * 4
            p.send(topic, key=key, value=value, partition=0)
            latest[key] = value
        p.flush(15)
    p.close()
    end = ROUNDS * KEYS
    partition_dir = broker.log_dir / f"{topic}-0"
    written = segment_batches(partition_dir)
    assert written and all(a & 0x07 == CODECS[codec] for _, a, _ in written), written[:3]
    if codec == "snappy":
        assert first_batch(partition_dir)[61:69] == b"\x82SNAPPY\x00", "kafka-python writes xerial"

    def cleaned():
        batches = segment_batches(partition_dir)
        return sum(n for _, _, n in batches) < end // 2 and batches

    batches = wait_for(cleaned, 30, f"the cleaner to compact the {codec} log")
    assert all(a & 0x07 == CODECS[codec] for _, a, _ in batches), batches
    if codec == "snappy":
        assert first_batch(partition_dir)[61:69] == b"\x82SNAPPY\x00", "the rewrite keeps xerial"

    got = read_to_end(broker.bootstrap, topic)
    assert {m.key(): m.value() for m in got} == latest
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                      consumer_timeout_ms=5000, auto_offset_reset="earliest")
    try:
        c.assign([KTP(topic, 0)])
        c.seek_to_beginning()
        view = {}
        for msg in c:
            view[msg.key] = msg.value
            if msg.offset >= end - 1:
                break
        assert view == latest
    finally:
        c.close()
