"""The `troupe` client commands (topic, group, cluster, produce, consume, perf) against
a real broker, checked with a real client (confluent-kafka): what the CLI creates,
writes and commits is what librdkafka sees, and what librdkafka writes and commits is
what the CLI shows. Every command's failure path (unknown topic, no broker) gives
Kafka's error name or a clear connection message, and a non-zero exit code."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

from harness import broker_binary, create_topic, free_port, produce, wait_for, watermarks

pytestmark = [pytest.mark.confluent]

BROKER_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "200",
    "group.min.session.timeout.ms": "1000",
}


def cli(*args, bootstrap=None, input=None, timeout=60, check=True):
    """Run `troupe ARGS...`; with check, a non-zero exit fails the test."""
    cmd = [str(broker_binary()), *args]
    if bootstrap is not None:
        cmd += ["-b", bootstrap]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def cli_json(*args, bootstrap, **kw):
    r = cli(*args, "--format", "json", bootstrap=bootstrap, **kw)
    return json.loads(r.stdout)


def group_consumer(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 3,
    }
    conf.update(extra)
    return Consumer(conf)


def committed(broker, group, topic, partitions):
    c = group_consumer(broker, group)
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def read_in_group(broker, group, topic, count, commit=True):
    """A confluent consumer in `group` reads exactly `count` records, commits, leaves."""
    c = group_consumer(broker, group)
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=count - len(got), timeout=1.0):
                assert m.error() is None, m.error()
                got.append(m)
        assert len(got) == count, f"read {len(got)} of {count}"
        if commit:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


# ---------------------------------------------------------------------- topics
def test_topic_create_describe_list_alter_delete(broker, admin, topic):
    r = cli("topic", "create", topic, "-p", "3", "-r", "1", "-c", "retention.ms=123456", bootstrap=broker.bootstrap)
    assert f"Created topic {topic}" in r.stdout
    md = wait_for(lambda: admin.list_topics(topic, timeout=10).topics.get(topic), 10, "topic in metadata")
    assert len(md.partitions) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = admin.describe_configs([res])[res].result(10)
    assert cfg["retention.ms"].value == "123456"

    listed = cli_json("topic", "list", bootstrap=broker.bootstrap)
    mine = [t for t in listed if t["topic"] == topic]
    assert mine and mine[0]["partitions"] == 3 and mine[0]["replication_factor"] == 1
    assert topic in cli("topic", "list", bootstrap=broker.bootstrap).stdout

    produce(broker.bootstrap, topic, [(None, f"v{i}".encode()) for i in range(5)], partition=1)
    d = cli_json("topic", "describe", topic, bootstrap=broker.bootstrap)
    assert d["topic"] == topic and len(d["partitions"]) == 3
    by_p = {p["partition"]: p for p in d["partitions"]}
    for p in range(3):
        assert by_p[p]["leader"] == 1 and by_p[p]["replicas"] == [1] and by_p[p]["isr"] == [1]
        assert by_p[p]["earliest_offset"] == 0
    assert [by_p[p]["latest_offset"] for p in range(3)] == [0, 5, 0]
    assert {"name": "retention.ms", "value": "123456", "set_on_topic": True} in d["configs"]
    table = cli("topic", "describe", topic, bootstrap=broker.bootstrap).stdout
    assert re.search(r"^1\s+1\s+1\s+1\s+0\s+5$", table, re.M), table

    cli("topic", "alter-config", topic, "--set", "segment.ms=3600000", "--delete", "retention.ms", bootstrap=broker.bootstrap)
    cfg = admin.describe_configs([res])[res].result(10)
    assert cfg["segment.ms"].value == "3600000"
    assert cfg["retention.ms"].value != "123456"

    cli("topic", "delete", topic, bootstrap=broker.bootstrap)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 15, "topic gone")
    assert topic not in [t["topic"] for t in cli_json("topic", "list", bootstrap=broker.bootstrap)]


def test_create_existing_topic_names_the_kafka_error(broker, admin, topic):
    create_topic(admin, topic)
    r = cli("topic", "create", topic, bootstrap=broker.bootstrap, check=False)
    assert r.returncode == 1
    assert "TOPIC_ALREADY_EXISTS" in r.stderr
    r = cli("topic", "create", topic + "-bad", "-p", "0", bootstrap=broker.bootstrap, check=False)
    assert r.returncode == 1 and "INVALID_PARTITIONS" in r.stderr, r.stderr


# ---------------------------------------------------------------------- produce / consume
def test_cli_produce_is_read_by_confluent_with_kafkas_partitioner(broker, admin, topic):
    create_topic(admin, topic, partitions=4)
    lines = [f"key{i}:value {i}" for i in range(40)]
    r = cli("produce", topic, "-K:", bootstrap=broker.bootstrap, input="\n".join(lines) + "\n")
    assert "Produced 40 record(s)" in r.stdout

    c = group_consumer(broker, f"g-{topic}", **{"enable.partition.eof": False})
    got = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(4)])
        deadline = time.monotonic() + 20
        while len(got) < 40 and time.monotonic() < deadline:
            got += [m for m in c.consume(num_messages=100, timeout=1.0) if m.error() is None]
    finally:
        c.close()
    assert sorted((m.key().decode(), m.value().decode()) for m in got) == sorted(
        (f"key{i}", f"value {i}") for i in range(40)
    )
    # Keys land where Kafka's default partitioner (murmur2) puts them: librdkafka's
    # murmur2 partitioner places the same keys in the same partitions.
    reports = produce(
        broker.bootstrap, topic, [(f"key{i}".encode(), b"x") for i in range(40)], partitioner="murmur2"
    )
    expected = {r[3].decode(): r[1] for r in reports}
    assert {m.key().decode(): m.partition() for m in got} == expected


def test_confluent_produce_is_printed_by_cli_consume(broker, admin, topic):
    create_topic(admin, topic, partitions=1)
    produce(broker.bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)])
    r = cli("consume", topic, "-o", "beginning", "-e", "-K", ":", bootstrap=broker.bootstrap)
    assert r.stdout.splitlines() == [f"k{i}:v{i}" for i in range(10)]
    r = cli("consume", topic, "-o", "beginning", "-n", "3", bootstrap=broker.bootstrap)
    assert r.stdout.splitlines() == ["v0", "v1", "v2"]
    r = cli("consume", topic, "-o", "7", "-e", "--format", "json", bootstrap=broker.bootstrap)
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["offset"], x["key"], x["value"]) for x in recs] == [(i, f"k{i}", f"v{i}") for i in range(7, 10)]
    assert all(x["topic"] == topic and x["partition"] == 0 for x in recs)
    r = cli("consume", topic, "-o", "-2", "-e", bootstrap=broker.bootstrap)
    assert r.stdout.splitlines() == ["v8", "v9"]


def test_cli_consume_in_a_group_commits_what_it_printed(broker, admin, topic):
    create_topic(admin, topic, partitions=2)
    produce(broker.bootstrap, topic, [(None, f"a{i}".encode()) for i in range(6)], partition=0)
    produce(broker.bootstrap, topic, [(None, f"b{i}".encode()) for i in range(4)], partition=1)
    group = f"cli-{topic}"
    r = cli("consume", topic, "-g", group, "-o", "beginning", "-e", bootstrap=broker.bootstrap)
    assert sorted(r.stdout.splitlines()) == sorted([f"a{i}" for i in range(6)] + [f"b{i}" for i in range(4)])
    assert committed(broker, group, topic, 2) == {0: 6, 1: 4}
    # The group resumes where it left off: only new records come next.
    produce(broker.bootstrap, topic, [(None, b"a6")], partition=0)
    r = cli("consume", topic, "-g", group, "-o", "beginning", "-n", "1", bootstrap=broker.bootstrap)
    assert r.stdout.splitlines() == ["a6"]
    assert committed(broker, group, topic, 2) == {0: 7, 1: 4}
    d = cli_json("group", "describe", group, bootstrap=broker.bootstrap)
    assert d["state"] == "Empty" and d["protocol_type"] == "consumer"


def test_cli_consume_shares_a_group_with_librdkafka(broker, admin, topic):
    """While the CLI is a member, a librdkafka consumer joining the same group gets
    the other partitions (range assignment by the group leader)."""
    create_topic(admin, topic, partitions=2)
    group = f"shared-{topic}"
    proc = subprocess.Popen(
        [str(broker_binary()), "consume", topic, "-g", group, "-o", "beginning", "-b", broker.bootstrap],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    c = group_consumer(broker, group)
    try:
        c.subscribe([topic])

        def both_members():
            c.poll(0.2)
            d = cli_json("group", "describe", group, bootstrap=broker.bootstrap)
            mine = [tp.partition for tp in c.assignment()]
            return d["state"] == "Stable" and len(d["members"]) == 2 and len(mine) == 1 and d

        d = wait_for(both_members, 40, "the CLI and librdkafka sharing the group", interval=0.2)
        assigned = sorted(p for m in d["members"] for a in m["assignment"] for p in a["partitions"])
        assert assigned == [0, 1]
        r = cli("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute",
                bootstrap=broker.bootstrap, check=False)
        assert r.returncode == 1 and "NON_EMPTY_GROUP" in r.stderr, r.stderr
    finally:
        c.close()
        proc.terminate()
        proc.wait(20)


# ---------------------------------------------------------------------- groups
def test_group_describe_lag_is_what_a_consumer_has_not_read(broker, admin, topic):
    create_topic(admin, topic, partitions=2)
    produce(broker.bootstrap, topic, [(None, b"x")] * 8, partition=0)
    produce(broker.bootstrap, topic, [(None, b"y")] * 5, partition=1)
    group = f"lag-{topic}"
    read_in_group(broker, group, topic, 9)
    d = cli_json("group", "describe", group, bootstrap=broker.bootstrap)
    rows = {p["partition"]: p for p in d["partitions"] if p["topic"] == topic}
    assert {p: rows[p]["log_end_offset"] for p in rows} == {0: 8, 1: 5}
    c = committed(broker, group, topic, 2)
    for p in (0, 1):
        assert rows[p]["committed_offset"] == c[p]
        assert rows[p]["lag"] == rows[p]["log_end_offset"] - c[p]
    total_lag = sum(r["lag"] for r in rows.values())
    assert total_lag == 4
    # The broker's own lag metric says the same as the CLI.
    from ops_http import scrape, value

    def metric_lag():
        s = scrape(broker)
        return {p: value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=p) for p in (0, 1)}

    want = {p: float(rows[p]["lag"]) for p in (0, 1)}
    assert wait_for(lambda: metric_lag() == want, 10, f"kafka_consumergroup_lag {want}")
    table = cli("group", "describe", group, bootstrap=broker.bootstrap).stdout
    assert "LAG" in table and "Empty" in table
    # The lag is exactly what the group still has to read.
    rest = read_in_group(broker, group, topic, total_lag)
    assert len(rest) == 4
    d = cli_json("group", "describe", group, bootstrap=broker.bootstrap)
    assert all(p["lag"] == 0 for p in d["partitions"])
    assert group in [g["group"] for g in cli_json("group", "list", bootstrap=broker.bootstrap)]


def test_group_reset_offsets_moves_the_group(broker, admin, topic):
    create_topic(admin, topic, partitions=1)
    produce(broker.bootstrap, topic, [(None, f"v{i}".encode(), 1_000_000 + i * 1000) for i in range(10)])
    group = f"reset-{topic}"
    read_in_group(broker, group, topic, 10)
    assert committed(broker, group, topic, 1) == {0: 10}

    # Dry run: the plan, nothing committed.
    plan = cli_json("group", "reset-offsets", group, "--to-earliest", bootstrap=broker.bootstrap)
    assert plan["executed"] is False
    assert plan["partitions"] == [{"topic": topic, "partition": 0, "current_offset": 10, "new_offset": 0}]
    assert committed(broker, group, topic, 1) == {0: 10}

    cli("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", bootstrap=broker.bootstrap)
    assert committed(broker, group, topic, 1) == {0: 0}
    got = read_in_group(broker, group, topic, 10)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(10)]

    cli("group", "reset-offsets", group, "--to-offset", "4", "--execute", bootstrap=broker.bootstrap)
    assert committed(broker, group, topic, 1) == {0: 4}
    # Beyond the log end: clamped to it, as Kafka's tool does.
    cli("group", "reset-offsets", group, "--to-offset", "99", "--execute", bootstrap=broker.bootstrap)
    assert committed(broker, group, topic, 1) == {0: 10}
    # 1970-01-01T00:16:43Z = 1_003_000 ms: the first record at or after it is offset 3.
    cli("group", "reset-offsets", group, "--to-datetime", "1970-01-01T00:16:43Z", "--execute", bootstrap=broker.bootstrap)
    assert committed(broker, group, topic, 1) == {0: 3}
    cli("group", "reset-offsets", group, "--to-latest", "--execute", bootstrap=broker.bootstrap)
    assert committed(broker, group, topic, 1) == {0: 10}


def test_group_reset_offsets_refused_while_the_group_is_active(broker, admin, topic):
    create_topic(admin, topic, partitions=1)
    produce(broker.bootstrap, topic, [(None, b"v")] * 5)
    group = f"active-{topic}"
    read_in_group(broker, group, topic, 5)
    c = group_consumer(broker, group)
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            c.poll(0.2)

    try:
        c.subscribe([topic])
        t = threading.Thread(target=poll, daemon=True)
        t.start()
        wait_for(lambda: cli_json("group", "describe", group, bootstrap=broker.bootstrap)["members"], 30, "an active member")
        r = cli("group", "reset-offsets", group, "--to-earliest", "--execute", bootstrap=broker.bootstrap, check=False)
        assert r.returncode == 1
        assert "NON_EMPTY_GROUP" in r.stderr and "inactive" in r.stderr, r.stderr
        stop.set()
        t.join(5)
        assert committed(broker, group, topic, 1) == {0: 5}
    finally:
        stop.set()
        c.close()


def test_group_delete(broker, admin, topic):
    create_topic(admin, topic, partitions=1)
    produce(broker.bootstrap, topic, [(None, b"v")] * 2)
    group = f"del-{topic}"
    read_in_group(broker, group, topic, 2)
    cli("group", "delete", group, bootstrap=broker.bootstrap)
    assert group not in [g["group"] for g in cli_json("group", "list", bootstrap=broker.bootstrap)]
    r = cli("group", "describe", group, bootstrap=broker.bootstrap, check=False)
    assert r.returncode == 1 and "GROUP_ID_NOT_FOUND" in r.stderr
    r = cli("group", "delete", group, bootstrap=broker.bootstrap, check=False)
    assert r.returncode == 1 and re.search(r"error: [A-Z_]+: group", r.stderr), r.stderr


# ---------------------------------------------------------------------- cluster, perf
def test_cluster_info(broker):
    info = cli_json("cluster", "info", bootstrap=broker.bootstrap)
    assert info["controller_id"] == 1
    assert info["cluster_id"]
    assert info["brokers"] == [{"node_id": 1, "host": "127.0.0.1", "port": broker.port, "rack": None}]
    table = cli("cluster", "info", bootstrap=broker.bootstrap).stdout
    assert info["cluster_id"] in table and "Controller: 1" in table


def test_perf_produce_then_consume(broker, admin, topic):
    create_topic(admin, topic, partitions=2)
    s = cli_json("perf", "produce", topic, "--records", "3000", "--record-size", "64", "--batch-size", "50",
                 bootstrap=broker.bootstrap)
    assert s["records"] == 3000 and s["bytes"] == 3000 * 64 and s["requests"] == 60
    assert s["latency_ms"]["p50"] > 0 and s["latency_ms"]["p99"] >= s["latency_ms"]["p50"]
    assert sum(watermarks(broker.bootstrap, topic, p)[1] for p in range(2)) == 3000

    s = cli_json("perf", "consume", topic, bootstrap=broker.bootstrap)
    assert s["records"] == 3000
    # Asking for more than there is: it waits for the idle timeout, printing a progress
    # line each second meanwhile, then summarises what it read.
    r = cli("perf", "consume", topic, "--records", "5000", "--idle-timeout-ms", "2500", bootstrap=broker.bootstrap)
    progress = [line for line in r.stderr.splitlines() if re.search(r"records/s .*MiB/s .*p50 [\d.]+ ms .*p99 [\d.]+ ms", line)]
    assert len(progress) >= 2, r.stderr
    assert re.search(r"^consume: 3000 records .* records/s.*p50 .* p99 ", r.stdout), r.stdout


# ---------------------------------------------------------------------- error paths
UNKNOWN_TOPIC_COMMANDS = [
    ["topic", "describe", "{t}"],
    ["topic", "delete", "{t}"],
    ["topic", "alter-config", "{t}", "--set", "retention.ms=1"],
    ["produce", "{t}"],
    ["consume", "{t}", "-n", "1"],
    ["consume", "{t}", "-g", "g-{t}", "-n", "1"],
    ["group", "reset-offsets", "g-{t}", "--topic", "{t}", "--to-earliest"],
    ["perf", "produce", "{t}", "--records", "10"],
    ["perf", "consume", "{t}"],
]


@pytest.mark.parametrize("args", UNKNOWN_TOPIC_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_unknown_topic_is_named(broker, args, topic):
    argv = [a.format(t=topic) for a in args]
    r = cli(*argv, bootstrap=broker.bootstrap, input="x\n", check=False, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "error: UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr
    assert r.stdout == ""


NO_BROKER_COMMANDS = [
    ["topic", "create", "t"],
    ["topic", "list"],
    ["topic", "describe", "t"],
    ["topic", "alter-config", "t", "--set", "a=b"],
    ["topic", "delete", "t"],
    ["group", "list"],
    ["group", "describe", "g"],
    ["group", "reset-offsets", "g", "--to-earliest"],
    ["group", "delete", "g"],
    ["cluster", "info"],
    ["produce", "t"],
    ["consume", "t"],
    ["perf", "produce", "t"],
    ["perf", "consume", "t"],
]


@pytest.mark.parametrize("args", NO_BROKER_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_no_broker_is_a_clear_error(args):
    port = free_port()
    for fmt in ("table", "json"):
        r = cli(*args, "--format", fmt, bootstrap=f"127.0.0.1:{port}", input="x\n", check=False, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert f"error: cannot connect to 127.0.0.1:{port}: " in r.stderr, r.stderr
        assert "panicked" not in r.stderr
        assert r.stdout == ""


def test_bad_arguments_exit_2_without_panic(broker):
    for args in (["topic", "create", "x", "-c", "novalue"], ["consume", "t", "-o", "soon"],
                 ["group", "reset-offsets", "g", "--to-datetime", "yesterday"]):
        r = cli(*args, bootstrap=broker.bootstrap, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert r.stderr.startswith("error: ") and "panicked" not in r.stderr
    # clap refuses a reset without a target, also with exit code 2.
    r = cli("group", "reset-offsets", "g", bootstrap=broker.bootstrap, check=False)
    assert r.returncode == 2
