"""Idempotent producers with real clients: 100k messages while the broker is killed and
restarted in the middle; the log holds each message exactly once, in send order per
partition."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer
from confluent_kafka.admin import AdminClient

from harness import consume, create_topic, watermarks

pytestmark = [pytest.mark.restart, pytest.mark.slow]

TOTAL = 100_000
PARTITIONS = 3


def check_log(bootstrap: str, topic: str):
    """Every sequence number 0..TOTAL exactly once, increasing within each partition."""
    seen: list[int] = []
    for p in range(PARTITIONS):
        low, high = watermarks(bootstrap, topic, p)
        got = consume(bootstrap, topic, p, OFFSET_BEGINNING, high - low, timeout=60)
        seqs = [int(m.value()[:8]) for m in got]
        assert all(s % PARTITIONS == p for s in seqs), f"partition {p} holds foreign messages"
        assert seqs == sorted(seqs), f"partition {p} is out of send order"
        assert len(seqs) == len(set(seqs)), f"partition {p} has {len(seqs) - len(set(seqs))} duplicates"
        seen.extend(seqs)
    assert sorted(seen) == list(range(TOTAL)), f"{TOTAL - len(set(seen))} messages missing"


def kill_and_restart(b, count, poll):
    """Once a third of the messages are acknowledged, kill -9 the broker and start it
    again on the same port. Batches appended but not yet answered are then retried by
    the client: without idempotence they would be written twice. No snapshot is
    written on kill -9, so the restarted broker rebuilds producer state from the log."""
    deadline = time.monotonic() + 60
    while count() < TOTAL // 3:
        assert time.monotonic() < deadline, "a third of the messages acknowledged within 60 s"
        poll()
    b.kill9()
    b.start()


@pytest.mark.confluent
def test_confluent_idempotent_producer_survives_restart(make_broker, topic):
    b = make_broker()
    create_topic(AdminClient({"bootstrap.servers": b.bootstrap}), topic, partitions=PARTITIONS)
    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "log_level": 2,
        }
    )
    acked = [0]
    errors = []

    def on_delivery(err, msg):
        if err is None:
            acked[0] += 1
        else:
            errors.append(err)

    for i in range(TOTAL):
        if i == TOTAL // 2:
            kill_and_restart(b, lambda: acked[0], lambda: p.poll(0.01))
        while True:
            try:
                p.produce(topic, value=b"%08d" % i + b"." * 50, partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(120) == 0
    assert not errors, f"delivery errors: {errors[:5]}"
    assert acked[0] == TOTAL
    check_log(b.bootstrap, topic)


@pytest.mark.kafka_python
def test_kafka_python_default_producer_is_idempotent_across_restart(make_broker, topic):
    from kafka import KafkaProducer

    b = make_broker()
    create_topic(AdminClient({"bootstrap.servers": b.bootstrap}), topic, partitions=PARTITIONS)
    # kafka-python 3 turns idempotence on by default; nothing is configured here.
    p = KafkaProducer(bootstrap_servers=b.bootstrap, linger_ms=5, reconnect_backoff_max_ms=500)
    assert p.config["enable_idempotence"], "kafka-python's default should be idempotent"
    acked = [0]
    errors = []
    lock = threading.Lock()

    def ok(_md):
        with lock:
            acked[0] += 1

    def failed(e):
        errors.append(e)

    for i in range(TOTAL):
        if i == TOTAL // 2:
            kill_and_restart(b, lambda: acked[0], lambda: time.sleep(0.005))
        p.send(topic, value=b"%08d" % i + b"." * 50, partition=i % PARTITIONS).add_callback(ok).add_errback(failed)
    p.flush(120)
    deadline = time.monotonic() + 30
    while acked[0] + len(errors) < TOTAL and time.monotonic() < deadline:
        time.sleep(0.05)
    p.close(10)
    assert not errors, f"delivery errors: {errors[:5]}"
    assert acked[0] == TOTAL
    check_log(b.bootstrap, topic)
