"""A full disk (issue #13 item 9): `log.dirs` on a small tmpfs filled by a producer.

While the disk is full a partition answers KAFKA_STORAGE_ERROR (not
NOT_LEADER_OR_FOLLOWER) to Produce, keeps serving everything it acknowledged to
consumers, logs the condition once, and takes writes again by itself, without a restart,
as soon as space is freed. Every acknowledged record reads back exactly once, also after
a kill -9 and recovery (a batch torn by ENOSPC must not survive in the log).

Needs root to mount the tmpfs (CI runs as root); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import Broker, consume, create_topic, wait_for, watermarks

DISK_MB = 16
FILLER_MB = 4
VALUE_BYTES = 1000


def mount_tmpfs(size_mb: int) -> Path:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="troupe-full-disk-"))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
    return where


def unmount(where: Path):
    subprocess.run(["umount", "-l", str(where)], capture_output=True)
    try:
        where.rmdir()
    except OSError:
        pass


def value(i: int) -> bytes:
    return f"{i:08d}".encode() + b"x" * (VALUE_BYTES - 8)


class Writer:
    """A producer that keeps every delivery report: acknowledged ids (with offsets) and
    the error codes of the rest. `retries=0` so the broker's own error reaches us."""

    def __init__(self, bootstrap: str, topic: str, acks: str):
        from confluent_kafka import Producer

        self.topic = topic
        self.p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": acks,
                "retries": 0,
                "enable.idempotence": False,
                "linger.ms": 5,
                "message.timeout.ms": 15000,
                "log_level": 3,
            }
        )
        self.next_id = 0
        self.acked: dict[int, int] = {}  # id -> offset
        self.failed: dict[int, object] = {}  # id -> KafkaError

    def send(self, n: int, timeout: float = 30) -> tuple[int, int]:
        """Produce n new records and wait for all reports; (acked, failed) of this call."""
        before = (len(self.acked), len(self.failed))

        def report(err, msg):
            i = int(msg.value()[:8])
            if err is None:
                self.acked[i] = msg.offset()
            else:
                self.failed[i] = err

        for _ in range(n):
            i = self.next_id
            self.next_id += 1
            while True:
                try:
                    self.p.produce(self.topic, value=value(i), partition=0, on_delivery=report)
                    break
                except BufferError:
                    self.p.poll(0.1)
            self.p.poll(0)
        left = self.p.flush(timeout)
        assert left == 0, f"{left} records without a delivery report after {timeout}s"
        return len(self.acked) - before[0], len(self.failed) - before[1]


def partition_log(broker: Broker, topic: str) -> str:
    """The broker's log lines about the test partition's log directory."""
    return "\n".join(line for line in broker.log_text().splitlines() if f"/{topic}-0" in line)


def read_ids(bootstrap: str, topic: str, count: int) -> list[int]:
    from confluent_kafka import OFFSET_BEGINNING

    msgs = consume(bootstrap, topic, 0, OFFSET_BEGINNING, count, timeout=60)
    return [int(m.value()[:8]) for m in msgs]


@pytest.mark.parametrize("acks", ["all", "1"])
def test_full_disk_refuses_writes_serves_reads_and_recovers_without_restart(acks):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient

    disk = mount_tmpfs(DISK_MB)
    broker = None
    try:
        # Room the test gives back later: taken before the broker writes anything.
        filler = disk / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * (FILLER_MB << 20))
        data = disk / "data"
        # Small segments, so rolls (new files, index trims) happen around the full disk too.
        broker = Broker(
            {"log.dirs": str(data), "log.segment.bytes": str(2 << 20)}, name=f"disk-full-{acks}"
        ).start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = create_topic(admin, f"full-{acks}")
        w = Writer(broker.bootstrap, topic, acks)

        # Fill the disk: produce until appends fail (at most twice the disk).
        limit = 2 * (DISK_MB << 20) // VALUE_BYTES
        while not w.failed and w.next_id < limit:
            w.send(500)
        assert w.failed, f"the disk never filled: {len(w.acked)} records acknowledged"
        assert len(w.acked) > 1000, f"only {len(w.acked)} records acknowledged before the disk filled"
        # More attempts while full: each refused with the storage error, the broker alive.
        for _ in range(3):
            w.send(200)
        assert broker.is_running(), f"broker died on a full disk\n{broker.log_tail()}"
        codes = {e.code() for e in w.failed.values()}
        assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, (
            f"a full disk must answer KAFKA_STORAGE_ERROR, got {sorted(w.failed.values(), key=str)[:3]}"
        )
        refused_while_full = len(w.failed)

        # Reads go on: everything acknowledged so far, in offset order, nothing else.
        acked_ids = sorted(w.acked, key=w.acked.get)
        low, high = watermarks(broker.bootstrap, topic)
        assert (low, high) == (0, len(acked_ids)), (low, high, len(acked_ids))
        assert read_ids(broker.bootstrap, topic, len(acked_ids)) == acked_ids

        # Once per run of refusals, not per request. A small batch may still fit in the
        # slack of the last page after a larger one was refused, ending a run early.
        log = partition_log(broker, topic)
        runs = log.count("disk full")
        assert 1 <= runs <= 3 and runs == log.count("disk space available again") + 1, (
            f"the full disk must be logged once per run, not per request ({refused_while_full} refused)\n{log}"
        )
        assert "restarting log" not in broker.log_text(), broker.log_tail()

        # Free space: writes resume by themselves, within seconds, no restart.
        filler.unlink()
        started = time.monotonic()
        wait_for(lambda: w.send(1)[0] == 1, 10, "a produce to succeed after space was freed", interval=0.2)
        resumed_after = time.monotonic() - started
        acked, failed = w.send(2000)
        assert (acked, failed) == (2000, 0), f"after freeing space: {failed} of 2000 refused"
        assert broker.starts == 1
        log = partition_log(broker, topic)
        assert log.count("disk full") == runs, log
        assert log.count("disk space available again") == runs, log

        # Every acknowledged record exactly once, none of the refused ones.
        acked_ids = sorted(w.acked, key=w.acked.get)
        assert read_ids(broker.bootstrap, topic, len(acked_ids)) == acked_ids
        # And the log on disk holds exactly that: a kill -9 and recovery change nothing.
        broker.restart(graceful=False)
        # The partition may answer NOT_LEADER_OR_FOLLOWER until its log is loaded.
        wait_for(lambda: watermarks(broker.bootstrap, topic) == (0, len(acked_ids)), 20, "the log recovered")
        assert read_ids(broker.bootstrap, topic, len(acked_ids)) == acked_ids
        print(
            f"acks={acks}: {len(acked_ids)} acknowledged, {refused_while_full} refused while full, "
            f"writes resumed {resumed_after:.2f}s after space was freed"
        )
    finally:
        try:
            if broker is not None:
                broker.close()
        finally:
            unmount(disk)
