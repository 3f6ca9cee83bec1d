"""Durability across restarts: graceful stop (SIGTERM) and kill -9 in the middle of
a produce loop."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer
from confluent_kafka.admin import AdminClient

from harness import consume, create_topic, produce, topic_partitions, wait_for, watermarks

pytestmark = [pytest.mark.restart, pytest.mark.confluent]


def admin_for(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def test_graceful_restart_keeps_data_and_offsets_continue(make_broker, topic):
    b = make_broker({"log.segment.bytes": "16384"})  # several segments, not just one
    create_topic(admin_for(b), topic, partitions=2, config={"retention.ms": "86400000"})
    first = [(None, b"before-%04d" % i) for i in range(500)]
    produce(b.bootstrap, topic, first, partition=0, acks="all")
    produce(b.bootstrap, topic, [(None, b"p1")], partition=1, acks="all")

    b.restart()  # SIGTERM (asserts exit 0), then start on the same port and dir

    a = admin_for(b)
    assert topic_partitions(a, topic) == 2
    assert watermarks(b.bootstrap, topic, 0) == (0, 500)
    assert watermarks(b.bootstrap, topic, 1) == (0, 1)
    got = consume(b.bootstrap, topic, 0, OFFSET_BEGINNING, 500)
    assert [m.value() for m in got] == [v for _, v in first]
    assert [m.offset() for m in got] == list(range(500))

    # Topic configs survive too.
    from confluent_kafka.admin import ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    assert a.describe_configs([res])[res].result(15)["retention.ms"].value == "86400000"

    reports = produce(b.bootstrap, topic, [(None, b"after-%d" % i) for i in range(10)], partition=0, acks="all")
    assert [r[2] for r in reports] == list(range(500, 510))
    got = consume(b.bootstrap, topic, 0, 495, 15)
    assert [m.value() for m in got][4:7] == [b"before-0499", b"after-0", b"after-1"]


def test_restart_twice_and_empty_topic_survives(make_broker, topic):
    b = make_broker()
    create_topic(admin_for(b), topic, partitions=3)
    b.restart()
    b.restart()
    assert topic_partitions(admin_for(b), topic) == 3
    assert watermarks(b.bootstrap, topic, 2) == (0, 0)


def test_a_second_process_on_a_log_dir_in_use_refuses_to_start(make_broker, topic):
    """Each log dir is locked (`.lock`, flock) by the broker using it: a second process
    pointed at it stops at start-up saying so, touches nothing, and the first serves on."""
    b = make_broker()
    create_topic(admin_for(b), topic, partitions=1)
    produce(b.bootstrap, topic, [(None, b"kept")], partition=0, acks="all")
    second = make_broker({"log.dirs": str(b.log_dir)}, start=False)
    second.start_process()
    code = second.proc.wait(30)
    second.proc = None
    text = second.log_text()
    assert code != 0, text
    assert "is in use" in text and ".lock" in text and str(b.log_dir) in text, text
    assert [m.value() for m in consume(b.bootstrap, topic, 0, OFFSET_BEGINNING, 1)] == [b"kept"]
    # Once the first is gone (kill -9: the kernel drops its lock), the dir is free.
    b.kill9()
    second.start()
    got = wait_for(lambda: consume(second.bootstrap, topic, 0, OFFSET_BEGINNING, 1), 15, "the record served by the second")
    assert [m.value() for m in got] == [b"kept"]


def test_offsets_asked_while_a_log_is_recovered_are_answered_once_it_is_loaded(make_broker, topic):
    """After kill -9 a restarted broker scans its active segment again before the
    partition serves (nothing was flushed). A client that asks for offsets in that time
    gets them once the log is loaded, as from Kafka (which serves only once its logs are
    loaded), not NOT_LEADER_OR_FOLLOWER, which librdkafka's watermark query does not
    retry. The previous binary failed here (the error came back at once)."""
    b = make_broker({"log.segment.bytes": str(1 << 30)})
    create_topic(admin_for(b), topic)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 1 << 20, "acks": "all"})
    value = b"v" * 10240
    n = 20000  # ~200 MB in the one active segment: its scan takes a while
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0
    b.kill9()
    b.start()  # returns on the first ApiVersions answer: it listens before loading logs
    assert watermarks(b.bootstrap, topic, 0, timeout=20) == (0, n)


@pytest.mark.slow
def test_kill9_during_produce_loses_no_acked_record(make_broker, topic):
    b = make_broker({"log.segment.bytes": "65536"})
    create_topic(admin_for(b), topic)

    acked: dict[int, int] = {}  # sequence number -> offset, from successful delivery reports
    failed: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    sent = [0]
    p = Producer(
        {
            "bootstrap.servers": b.bootstrap,
            "acks": "all",
            "linger.ms": 2,
            "batch.num.messages": 200,
            "message.timeout.ms": 60000,
            "retries": 0,  # a retry after the kill must not write anything we count
            "reconnect.backoff.ms": 50,
            "log_level": 2,
        }
    )

    def on_delivery(err, msg):
        seq = int(msg.value()[4:12])
        with lock:
            if err is None:
                acked[seq] = msg.offset()
            else:
                failed.append(seq)

    def loop():
        seq = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b"seq-%08d" % seq + b"." * 100, partition=0, on_delivery=on_delivery)
                seq += 1
            except BufferError:
                p.poll(0.005)
            p.poll(0)
        sent[0] = seq

    t = threading.Thread(target=loop)
    t.start()
    try:
        wait_for(lambda: len(acked) >= 5000, 60, "5000 acknowledged records before the kill")
        b.kill9()
    finally:
        stop.set()
        t.join(10)
    # With the broker dead nothing more can be acknowledged: drop what is still queued
    # or in flight; reports for requests answered before the kill still come in here.
    p.purge(in_queue=True, in_flight=True)
    p.flush(10)
    acked_before_kill = dict(acked)
    assert len(acked_before_kill) >= 5000

    b.start()  # same port, same log dir
    low, high = watermarks(b.bootstrap, topic)
    assert low == 0
    max_acked = max(acked_before_kill.values())
    assert high > max_acked, f"high watermark {high} <= highest acknowledged offset {max_acked}"

    got = consume(b.bootstrap, topic, 0, OFFSET_BEGINNING, high, timeout=60)
    offsets = [m.offset() for m in got]
    assert offsets == list(range(high)), "offsets are not contiguous from 0"
    seqs = [int(m.value()[4:12]) for m in got]
    at = dict(zip(offsets, seqs))
    missing = [s for s, off in acked_before_kill.items() if at.get(off) != s]
    assert not missing, f"{len(missing)} acknowledged records lost or moved, e.g. seq {missing[:5]}"
    counts: dict[int, int] = {}
    for s in seqs:
        counts[s] = counts.get(s, 0) + 1
    dups = [s for s in acked_before_kill if counts.get(s, 0) > 1]
    assert not dups, f"acknowledged records duplicated: {dups[:5]}"

    # The log takes new writes right after the recovered end.
    reports = produce(b.bootstrap, topic, [(None, b"seq-99999999-after")], partition=0, acks="all")
    assert reports[0][2] == high


def test_committed_offsets_survive_restart_with_a_broker_wide_codec(make_broker, topic):
    """compression.type=lz4 broker-wide: __consumer_offsets is created with
    compression.type=producer (as Kafka does), user topics get lz4, and committed
    offsets are there after a restart."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import ConfigResource

    b = make_broker({"compression.type": "lz4"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(admin, topic, partitions=2)
    produce(b.bootstrap, topic, [(b"k", b"v%d" % i) for i in range(10)], partition=0)
    group = f"{topic}-g"
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "log_level": 3})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 7), TopicPartition(topic, 1, 3)], asynchronous=False)
    finally:
        c.close()
    configs = {}
    for name in (topic, "__consumer_offsets"):
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs[name] = admin.describe_configs([res])[res].result(10)["compression.type"].value
    assert configs == {topic: "lz4", "__consumer_offsets": "producer"}

    b.restart()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "log_level": 3})
    try:
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=15)
        assert [tp.offset for tp in got] == [7, 3]
    finally:
        c.close()
    assert [m.value() for m in consume(b.bootstrap, topic, 0, OFFSET_BEGINNING, 10)] == [b"v%d" % i for i in range(10)]


def test_a_leftover_directory_of_a_deleted_topic_is_never_served(make_broker, topic):
    """A partition directory records its topic id (partition.metadata). If the
    directory named for a partition holds another topic id (the leftover of a deleted
    topic of the same name, after a crash between the delete and the removal), it is
    removed at start, not served; deleted directories renamed `*-delete` are swept."""
    b = make_broker()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    create_topic(admin, topic)
    produce(b.bootstrap, topic, [(None, b"current-%d" % i) for i in range(3)], partition=0)
    b.stop()
    pdir = b.log_dir / f"{topic}-0"
    meta = (pdir / "partition.metadata").read_text()
    assert meta.startswith("version: 0\ntopic_id: "), meta
    # Pretend the directory belongs to an older topic of the same name.
    (pdir / "partition.metadata").write_text("version: 0\ntopic_id: 00000000-0000-0000-0000-000000000001\n")
    leftover = b.log_dir / f"{topic}-7.0123abcd-delete"
    leftover.mkdir()
    (leftover / "00000000000000000000.log").write_bytes(b"junk")
    b.start()
    assert not leftover.exists(), "renamed-for-delete directories are swept at start"
    assert watermarks(b.bootstrap, topic) == (0, 0), "the other topic's records are not served"
    assert (pdir / "partition.metadata").read_text() == meta, "the directory is this topic's again"
    produce(b.bootstrap, topic, [(None, b"fresh")], partition=0)
    assert [m.value() for m in consume(b.bootstrap, topic, 0, 0, 1)] == [b"fresh"]
    assert "leftover partition directory" in b.log_text()
