"""kafka-python (a pure-Python client, independent of librdkafka): producer,
consumer with manual assignment, admin client."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from harness import create_topic, wait_for

pytestmark = pytest.mark.kafka_python


def kp_producer(broker, **kw):
    conf = dict(bootstrap_servers=broker.bootstrap, acks="all", request_timeout_ms=15000)
    # kafka-python 3 turns idempotence on by default; the broker has no InitProducerId yet.
    if "enable_idempotence" in KafkaProducer.DEFAULT_CONFIG:
        conf["enable_idempotence"] = False
    conf.update(kw)
    return KafkaProducer(**conf)


def kp_consume(broker, topic, partition, count, timeout=20.0):
    c = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=15000
    )
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend(records)
        # Nothing extra behind them.
        assert not c.poll(timeout_ms=300), "more records than produced"
        return got
    finally:
        c.close()


@pytest.mark.parametrize("compression", ["gzip", None])
def test_kafka_python_round_trip(broker, admin, topic, compression):
    create_topic(admin, topic)
    p = kp_producer(broker, compression_type=compression, linger_ms=20)
    futures = [p.send(topic, key=b"k%d" % (i % 3), value=b"kafka-python %d" % i, partition=0) for i in range(100)]
    p.flush(20)
    meta = [f.get(timeout=20) for f in futures]
    p.close(10)
    assert [m.offset for m in meta] == list(range(100))
    assert {m.partition for m in meta} == {0}

    got = kp_consume(broker, topic, 0, 100)
    assert [(r.offset, r.key, r.value) for r in got] == [(i, b"k%d" % (i % 3), b"kafka-python %d" % i) for i in range(100)]


def test_kafka_python_admin_create_list_delete(broker, topic):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
        wait_for(lambda: topic in a.list_topics(), 10, f"{topic} listed")
        desc = a.describe_topics([topic])
        assert len(desc) == 1 and sorted(p.get("partition", p.get("partition_index")) for p in desc[0]["partitions"]) == [0, 1]

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})

        a.delete_topics([topic])
        wait_for(lambda: topic not in a.list_topics(), 10, f"{topic} gone")
    finally:
        a.close()
