"""`preallocate` / `log.preallocate` (Kafka's setting): a topic that asks for it gets each
new segment's `segment.bytes` reserved on disk when the segment is created, while the
file's size stays that of its data (recovery reads it as any other); a rolled segment
gives back what it did not use. Checked on the real files of a running broker, through
a real client (the topic config is set at CreateTopics)."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from harness import consume, create_topic, produce, wait_for

SEGMENT = 8 << 20


def allocated(path) -> int:
    return path.stat().st_blocks * 512


def test_a_preallocated_topic_reserves_segment_bytes_and_gives_back_the_rest_at_roll(make_broker, topic):
    b = make_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(admin, topic, config={"preallocate": "true", "segment.bytes": str(SEGMENT)})
    plain = topic + "-plain"
    create_topic(admin, plain, config={"segment.bytes": str(SEGMENT)})
    produce(b.bootstrap, topic, [(None, b"x" * 1000)] * 10, partition=0, acks="all")
    produce(b.bootstrap, plain, [(None, b"x" * 1000)] * 10, partition=0, acks="all")

    first = b.log_dir / f"{topic}-0" / "00000000000000000000.log"
    size = first.stat().st_size
    assert 10_000 < size < 20_000, size
    assert allocated(first) >= SEGMENT, f"reserved {allocated(first)}"
    other = b.log_dir / f"{plain}-0" / "00000000000000000000.log"
    assert allocated(other) < 1 << 20, f"the plain topic reserved {allocated(other)}"

    # Past segment.bytes the segment rolls: it keeps only its data's blocks, and the
    # new active segment reserves its own.
    value = b"y" * 100_000
    produce(b.bootstrap, topic, [(None, value)] * 90, partition=0, acks="all")
    logs = lambda: sorted((b.log_dir / f"{topic}-0").glob("*.log"))  # noqa: E731
    wait_for(lambda: len(logs()) >= 2, 10, "a second segment")
    closed, active = logs()[0], logs()[-1]
    assert allocated(closed) <= closed.stat().st_size + (1 << 20), (allocated(closed), closed.stat().st_size)
    assert allocated(active) >= SEGMENT, f"the new active segment reserved {allocated(active)}"
    got = consume(b.bootstrap, topic, 0, 0, 100)
    assert [m.offset() for m in got] == list(range(100))


def test_a_preallocate_value_that_is_not_a_boolean_is_refused(make_broker, topic):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    b = make_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    f = admin.create_topics([NewTopic(topic, 1, 1, config={"preallocate": "maybe"})])[topic]
    try:
        f.result(15)
        raise AssertionError("a topic with preallocate=maybe was created")
    except KafkaException as e:
        assert e.args[0].code() == 40, e  # INVALID_CONFIG
