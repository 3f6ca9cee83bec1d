"""Client-driven resource bounds (issue #13 item 3): partition caps (KIP-578's
max.partitions / max.broker.partitions, and the open-files limit), the request-bytes
budget taken before a connection reserves room for a frame, and Kafka's
max.connections, max.connections.per.ip and connections.max.idle.ms."""

from __future__ import annotations

import os
import socket
import stat
import struct
import time

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import kafka_wire
from harness import HOST, Broker, consume, create_topic, produce, unique_topic, wait_for

pytestmark = pytest.mark.confluent

TIMEOUT = 30


def admin_for(b: Broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": b.bootstrap, "socket.timeout.ms": 10000})


def create_error(admin, name: str, partitions: int) -> KafkaError:
    f = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        f[name].result(TIMEOUT)
    return e.value.args[0]


def still_serves(b: Broker, admin):
    """A well-behaved client can still create a topic, produce to it and read it back."""
    name = create_topic(admin, unique_topic("after"), partitions=2)
    produce(b.bootstrap, name, [(b"k", b"v%d" % i) for i in range(10)], partition=1)
    assert [m.value() for m in consume(b.bootstrap, name, 1, 0, 10)] == [b"v%d" % i for i in range(10)]


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_partition_caps_per_request_per_broker_and_on_create_partitions(make_broker):
    b = make_broker({"max.partitions": "1000", "max.broker.partitions": "300"})
    admin = admin_for(b)
    # The most librdkafka's admin client sends: refused before anything is placed.
    err = create_error(admin, unique_topic("huge"), 100_000)
    assert err.code() == KafkaError.INVALID_PARTITIONS, err
    assert "max.partitions" in err.str(), err
    err = create_error(admin, unique_topic("big"), 400)
    assert err.code() == KafkaError.POLICY_VIOLATION, err
    assert "max.broker.partitions" in err.str(), err
    name = create_topic(admin, unique_topic("ok"), partitions=100)
    f = admin.create_partitions([NewPartitions(name, 400)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        f[name].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION, e.value.args[0]
    f = admin.create_partitions([NewPartitions(name, 5000)], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    with pytest.raises(KafkaException) as e:
        f[name].result(TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS, e.value.args[0]
    still_serves(b, admin)


def test_default_caps_refuse_a_hundred_thousand_partitions(make_broker):
    b = make_broker()
    admin = admin_for(b)
    err = create_error(admin, unique_topic("huge"), 100_000)
    assert err.code() == KafkaError.POLICY_VIOLATION, err
    still_serves(b, admin)


def test_partitions_beyond_the_open_files_limit_are_refused(make_broker, tmp_path):
    """Under `ulimit -n 1000`, 2000 partitions would not fit (one descriptor each at
    least): refused with POLICY_VIOLATION naming the open-files limit, and the broker
    keeps its descriptors for connections and other topics. Both limits are logged."""
    wrapper = tmp_path / "troupe-nofile"
    b = make_broker({"max.broker.partitions": "100000"}, start=False)
    wrapper.write_text(f"#!/bin/sh\nulimit -n 1000 || exit 1\nexec {b.binary} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    b.binary = wrapper
    b.start()
    log = b.log_file.read_text()
    assert "soft=1000" in log and "hard=1000" in log, log[-2000:]
    admin = admin_for(b)
    err = create_error(admin, unique_topic("many"), 2000)
    assert err.code() == KafkaError.POLICY_VIOLATION, err
    assert "open-files" in err.str(), err
    still_serves(b, admin)
    assert "Too many open files" not in b.log_file.read_text()


def api_versions_on(sock: socket.socket, correlation_id: int = 1):
    sock.sendall(kafka_wire.api_versions_v0_request(correlation_id))
    r = kafka_wire.Reader(kafka_wire.recv_frame(sock))
    assert r.take(">i") == correlation_id


def send_what_fits(sock: socket.socket, data: bytes) -> int:
    """Send without blocking as much of `data` as the socket takes; returns the count."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 65536])
    except (BlockingIOError, InterruptedError):
        pass
    return sent


def test_size_prefixes_only_keep_memory_bounded_and_others_served(make_broker):
    """300 connections announce 100 MB frames and send nothing more; 20 more announce
    50 MB and send 4 MiB of it. The broker reserves nothing for an announcement alone
    and takes the request-bytes budget (16 MiB here, half of it for frames still
    arriving) before it reserves room for a frame, so its RSS and its address space stay
    bounded, and a well-behaved client is served meanwhile."""
    b = make_broker({"queued.max.request.bytes": str(16 << 20)})
    admin = admin_for(b)
    still_serves(b, admin)
    pid = b.proc.pid
    rss0, vm0 = status_kib(pid, "VmRSS"), status_kib(pid, "VmSize")
    socks = []
    try:
        for _ in range(300):
            s = kafka_wire.connect(HOST, b.port)
            s.sendall(struct.pack(">i", 100_000_000))
            socks.append(s)
        body = struct.pack(">i", 50_000_000) + b"\x07" * (4 << 20)
        sent = 0
        for _ in range(20):
            s = kafka_wire.connect(HOST, b.port)
            sent += send_what_fits(s, body)
            socks.append(s)
        time.sleep(1.0)
        for _ in range(10):
            # Let the broker read what it will, topping the senders up.
            for s in socks[300:]:
                send_what_fits(s, b"\x07" * (1 << 20))
            time.sleep(0.1)
        rss1, vm1 = status_kib(pid, "VmRSS"), status_kib(pid, "VmSize")
        still_serves(b, admin)
        rss2 = status_kib(pid, "VmRSS")
        print(f"RSS {rss0} -> {rss1} -> {rss2} KiB, VmSize {vm0} -> {vm1} KiB, partial bodies sent {sent >> 20} MiB")
        assert rss1 - rss0 < 48 << 10, f"RSS grew by {(rss1 - rss0) >> 10} MiB"
        assert vm1 - vm0 < 4 << 20, f"address space grew by {(vm1 - vm0) >> 10} MiB"
    finally:
        for s in socks:
            s.close()


def test_max_connections_per_ip_closes_the_extra_connection(make_broker):
    b = make_broker({"max.connections.per.ip": "5"})

    def served():
        # The harness's readiness probes may hold a slot until the broker sees them close.
        s = kafka_wire.connect(HOST, b.port)
        try:
            api_versions_on(s)
            return s
        except OSError:
            s.close()
            raise

    socks = []
    try:
        for _ in range(5):
            socks.append(wait_for(served, 10, "a served connection"))
        extra = kafka_wire.connect(HOST, b.port)
        kafka_wire.wait_closed(extra, timeout=5)
        extra.close()
        socks.pop().close()
        # The freed slot serves a new connection.
        wait_for(lambda: kafka_wire.api_versions(HOST, b.port, timeout=2), 10, "a connection after one closed")
        assert "max.connections.per.ip=5" in b.log_file.read_text()
    finally:
        for s in socks:
            s.close()


def test_max_connections_waits_for_a_free_slot(make_broker):
    b = make_broker({"max.connections": "3"})
    socks = [kafka_wire.connect(HOST, b.port) for _ in range(3)]
    try:
        for s in socks:
            api_versions_on(s)
        waiting = kafka_wire.connect(HOST, b.port)
        socks.append(waiting)
        waiting.sendall(kafka_wire.api_versions_v0_request(9))
        waiting.settimeout(1.0)
        with pytest.raises(socket.timeout):
            waiting.recv(4)
        socks.pop(0).close()
        waiting.settimeout(10)
        r = kafka_wire.Reader(kafka_wire.recv_frame(waiting))
        assert r.take(">i") == 9
    finally:
        for s in socks:
            s.close()


def test_idle_connections_are_closed(make_broker):
    b = make_broker({"connections.max.idle.ms": "1000"})
    served = kafka_wire.connect(HOST, b.port)
    prefix_only = kafka_wire.connect(HOST, b.port)
    try:
        api_versions_on(served)
        prefix_only.sendall(struct.pack(">i", 1_000_000) + b"\x01" * 100_000)
        start = time.monotonic()
        kafka_wire.wait_closed(served, timeout=10)
        kafka_wire.wait_closed(prefix_only, timeout=10)
        assert time.monotonic() - start < 8
        # A client that keeps talking is not closed.
        busy = kafka_wire.connect(HOST, b.port)
        for i in range(6):
            api_versions_on(busy, i)
            time.sleep(0.4)
        busy.close()
        assert "closing idle connection" in b.log_file.read_text()
    finally:
        served.close()
        prefix_only.close()


def test_an_unbounded_idle_setting_keeps_connections(make_broker):
    b = make_broker({"connections.max.idle.ms": str(2**63 - 1)})
    with kafka_wire.connect(HOST, b.port) as s:
        api_versions_on(s)
        time.sleep(0.3)
        api_versions_on(s, 2)
