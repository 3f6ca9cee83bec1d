"""Harness for the black-box client tests (fixtures live in conftest.py): a real `troupe` broker as a child
process, talked to by real Kafka clients over real sockets.

* `Broker` starts the binary on a free loopback port with its own log dir, waits until
  it answers ApiVersions, and stops it with SIGTERM (asserting exit code 0), kill -9,
  or restarts it on the same port and directory.
* Fixtures: `broker` (one per module; a module may set BROKER_OVERRIDES), `fresh_broker`
  (one per test), `make_broker` (factory with overrides), `admin`, `topic` (a unique
  name), plus helpers to create topics, produce and consume.

The binary is target/release/troupe (env TROUPE_BIN overrides); tests/run.sh builds it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


import kafka_wire

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def broker_binary() -> Path:
    return Path(os.environ.get("TROUPE_BIN", REPO_ROOT / "target" / "release" / "troupe"))


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before in this test run: a port is only
    bound once its broker starts, so two calls in a row could otherwise return the
    same one (a cluster's node 2 then failed to start on node 1's port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polled condition may raise until ready
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


class Broker:
    """One `troupe serve` child process with its own port and log directory."""

    def __init__(
        self,
        overrides: dict[str, str] | None = None,
        name: str = "broker",
        config_file: Path | None = None,
        port: int | None = None,
    ):
        self.binary = broker_binary()
        self.config_file = config_file
        self.port = port or free_port()
        # The operations HTTP listener (/metrics, /health/*, status page): a port of its
        # own, since tests run brokers side by side (the default is 9644 for all).
        self.metrics_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"troupe-{name}-"))
        self.log_dir = self.workdir / "data"
        self.log_file = self.workdir / "broker.log"
        self.overrides = {
            "listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "log.dirs": str(self.log_dir),
            "metrics.http.listener": f"{HOST}:{self.metrics_port}",
        }
        self.overrides.update(overrides or {})
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    # ------------------------------------------------------------------ properties
    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}"

    @property
    def host(self) -> str:
        return HOST

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Broker":
        self.start_process()
        self.wait_ready()
        return self

    def start_process(self):
        """Spawn the broker without waiting for it to answer."""
        if not self.binary.exists():
            raise RuntimeError(
                f"broker binary {self.binary} not found: run `cargo build --release` (or set TROUPE_BIN)"
            )
        args = [str(self.binary), "serve"]
        if self.config_file is not None:
            args.append(str(self.config_file))
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        self.starts += 1
        with open(self.log_file, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir, env=env
            )

    def wait_ready(self, timeout: float = START_TIMEOUT):
        """Poll a real ApiVersions round trip until it succeeds (or the process dies)."""

        def ready():
            if self.proc.poll() is not None:
                raise BrokerDied(f"broker exited with {self.proc.returncode} during start-up\n{self.log_tail()}")
            kafka_wire.api_versions(HOST, self.port, timeout=1.0)
            return True

        deadline = time.monotonic() + timeout
        while True:
            try:
                ready()
                return
            except BrokerDied:
                raise
            except Exception as e:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"broker not ready after {timeout}s on {self.bootstrap}: {e!r}\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = STOP_TIMEOUT):
        """Graceful stop via SIGTERM; asserts the broker exits with code 0."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.proc = None
            raise AssertionError(f"broker had already exited with code {code}\n{self.log_tail()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"broker did not exit within {timeout}s of SIGTERM\n{self.log_tail()}") from None
        self.proc = None
        assert code == 0, f"broker exited with code {code} after SIGTERM\n{self.log_tail()}"

    def kill9(self):
        """SIGKILL: no chance to flush or close anything."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def restart(self, graceful: bool = True):
        """Stop (SIGTERM, or nothing if already killed) and start again on the same port and dir."""
        if self.is_running():
            if graceful:
                self.stop()
            else:
                self.kill9()
        self.proc = None
        self.start()

    def close(self):
        """Teardown: stop if running (asserting a clean exit), then remove the work dir."""
        try:
            if self.proc is not None:
                self.stop()
        finally:
            if self.proc is not None:
                self.kill9()
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ logs
    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_file} ---\n" + "\n".join(tail)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self):
        return f"Broker({self.bootstrap}, dir={self.workdir})"


class BrokerDied(AssertionError):
    pass


def unique_topic(hint: str = "t") -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", hint).strip("-.")[:60] or "t"
    return f"{base}-{uuid.uuid4().hex[:8]}"



# ---------------------------------------------------------------------- client helpers
def create_topic(admin, name: str, partitions: int = 1, config: dict[str, str] | None = None, timeout: float = 15):
    from confluent_kafka.admin import NewTopic

    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    futures[name].result(timeout)
    wait_for(lambda: topic_partitions(admin, name) == partitions, 10, f"metadata of {name} with {partitions} partitions")
    return name


def topic_partitions(admin, name: str) -> int | None:
    md = admin.list_topics(timeout=10)
    t = md.topics.get(name)
    if t is None or t.error is not None:
        return None
    return len(t.partitions)


def producer(bootstrap: str, **conf):
    from confluent_kafka import Producer

    base = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 20000}
    base.update({k.replace("_", "."): v for k, v in conf.items()})
    return Producer(base)


def produce(bootstrap: str, topic: str, messages, partition: int | None = None, timeout: float = 30, **conf):
    """Produce (key, value[, timestamp_ms]) tuples; returns delivery reports as
    (error, partition, offset, key, value) in delivery-callback order. Fails on any error."""
    p = producer(bootstrap, **conf)
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.key(), msg.value()))

    count = 0
    for m in messages:
        kwargs = {"key": m[0], "value": m[1], "on_delivery": on_delivery}
        if len(m) > 2 and m[2] is not None:
            kwargs["timestamp"] = m[2]
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        count += 1
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after {timeout}s"
    assert len(reports) == count
    errors = [r for r in reports if r[0] is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    return reports


def consumer(bootstrap: str, **conf):
    """A confluent-kafka consumer for manual assignment without any commits (group
    behaviour is tested on its own in test_groups.py)."""
    from confluent_kafka import Consumer

    base = {
        "bootstrap.servers": bootstrap,
        "group.id": "troupe-tests",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "log_level": 3,
    }
    base.update(conf)
    return Consumer(base)


def consume(bootstrap: str, topic: str, partition: int, offset: int, count: int, timeout: float = 30, **conf):
    """Read exactly `count` messages from one partition starting at `offset` (an
    offset or OFFSET_BEGINNING / OFFSET_END); fails on errors or on a short read.
    After `count` messages it waits briefly for an EOF to catch extra messages."""
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        return drain(c, count, timeout)
    finally:
        c.close()


def drain(c, count: int, timeout: float = 30, expect_eof: bool = True):
    from confluent_kafka import KafkaError

    got = []
    deadline = time.monotonic() + timeout
    eof = False
    while len(got) < count or (expect_eof and not eof):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for m in c.consume(num_messages=1000, timeout=min(left, 1.0)):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof = len(got) >= count
                    continue
                raise AssertionError(f"consumer error: {m.error()}")
            got.append(m)
            eof = False
    assert len(got) >= count, f"consumed {len(got)} of {count} messages within {timeout}s"
    assert len(got) == count, f"consumed {len(got)} messages, expected exactly {count}"
    return got


def watermarks(bootstrap: str, topic: str, partition: int = 0, timeout: float = 10) -> tuple[int, int]:
    from confluent_kafka import TopicPartition

    c = consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()
