"""kcat (librdkafka's command-line client): metadata, produce with keys, consume,
offsets for timestamps."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from harness import create_topic, produce

KCAT = shutil.which("kcat") or shutil.which("kafkacat")

pytestmark = [
    pytest.mark.kcat,
    pytest.mark.skipif(KCAT is None, reason="kcat not installed (tests/run.sh installs it)"),
]


def kcat(broker, *args, stdin: bytes | None = None, timeout: float = 30) -> str:
    cmd = [KCAT, "-b", broker.bootstrap, "-m", "10", *args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout[-2000:]!r}\nstderr: {p.stderr[-2000:]!r}"
    return p.stdout.decode()


def test_kcat_metadata(broker, admin, topic):
    create_topic(admin, topic, partitions=2)
    md = json.loads(kcat(broker, "-L", "-J"))
    assert [(b["id"], b["name"]) for b in md["brokers"]] == [(1, broker.bootstrap)]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [(p["partition"], p["leader"]) for p in parts] == [(0, 1), (1, 1)]

    plain = kcat(broker, "-L", "-t", topic)
    assert "1 brokers:" in plain and f"broker 1 at {broker.bootstrap}" in plain
    assert f'topic "{topic}" with 2 partitions' in plain


def test_kcat_produce_keys_and_consume_back(broker, admin, topic):
    create_topic(admin, topic)
    lines = [f"key{i}:value number {i}" for i in range(25)]
    kcat(broker, "-P", "-t", topic, "-p", "0", "-K:", stdin=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%o|%k|%s\n")
    rows = [l.split("|", 2) for l in out.splitlines() if l]
    assert rows == [[str(i), f"key{i}", f"value number {i}"] for i in range(25)]

    # Tail: from offset 20, then a fixed count.
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "20", "-c", "3", "-e", "-f", "%s\n")
    assert out.splitlines() == [f"value number {i}" for i in (20, 21, 22)]


def test_kcat_consume_what_another_client_wrote(broker, admin, topic):
    create_topic(admin, topic)
    produce(broker.bootstrap, topic, [(b"k%d" % i, b"v%d" % i) for i in range(10)], compression_type="zstd")
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p/%o %k=%s\n")
    assert out.splitlines() == [f"0/{i} k{i}=v{i}" for i in range(10)]


def test_kcat_offsets_for_timestamps(broker, admin, topic):
    create_topic(admin, topic)
    base = int(time.time() * 1000) - 600_000
    produce(broker.bootstrap, topic, [(None, b"t%d" % i, base + i * 10_000) for i in range(6)])
    out = kcat(broker, "-Q", "-t", f"{topic}:0:{base + 25_000}")
    # kcat prints e.g.: <topic> [0] offset 3
    m = re.search(rf"{re.escape(topic)} \[0\]\s+offset\s+(-?\d+)", out)
    assert m, out
    assert int(m.group(1)) == 3
