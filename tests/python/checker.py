"""A safety checker for fault tests, independent of the broker's code.

`Load` runs idempotent acks=all producers with unique values on background threads and
records each acknowledgement with the partition and offset the broker answered.
`verify` reads every partition back from the beginning to its high watermark and
checks: no acknowledged value lost, no value twice, every value at the offset it was
acknowledged at, offsets contiguous per partition, and progress made. It returns the
figures the tests print."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Producer, TopicPartition


@dataclass
class Load:
    bootstrap: str
    topic: str
    partitions: int
    extra: dict = field(default_factory=dict)
    acked: dict = field(default_factory=dict)  # value -> (partition, offset)
    failed: list = field(default_factory=list)  # (value, error)
    errors: list = field(default_factory=list)  # client errors (error_cb, fatal)
    sent: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Load":
        self._thread.start()
        return self

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_progress(self, more: int, timeout: float, what: str):
        start = self.acked_count()
        deadline = time.time() + timeout
        while self.acked_count() < start + more:
            if time.time() > deadline:
                raise AssertionError(
                    f"no progress ({what}): {self.acked_count() - start} of {more} acks in {timeout}s;"
                    f" {len(self.failed)} failed, last {self.failed[-1:]}; client errors {self.errors[-5:]}"
                )
            time.sleep(0.05)

    def stop(self, flush_timeout: float = 60):
        self._stop.set()
        self._thread.join(flush_timeout + 10)

    def _run(self):
        def on_error(err):
            # Fatal errors (idempotence broken) stop the producer: record them.
            with self._lock:
                self.errors.append(err)

        prod = Producer(
            {
                "error_cb": on_error,
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 60000,
                # A paused (SIGSTOP) leader keeps its connections open. librdkafka times
                # out a ProduceRequest in flight after socket.timeout.ms (default 60 s,
                # capped by the messages' remaining message.timeout.ms), not after
                # request.timeout.ms, which only the broker enforces: with the default,
                # an idempotent producer waits a minute on the paused node before it
                # moves its partitions to the new leaders (soak seed 11's stall).
                "request.timeout.ms": 5000,
                "socket.timeout.ms": 10000,
                **self.extra,
            }
        )
        run = uuid.uuid4().hex[:8]
        i = 0
        while not self._stop.is_set():
            v = f"{run}-{i:08d}".encode()

            def cb(err, msg, v=v):
                with self._lock:
                    if err is None:
                        self.acked[v] = (msg.partition(), msg.offset())
                    else:
                        self.failed.append((v, err))

            try:
                prod.produce(self.topic, value=v, partition=i % self.partitions, on_delivery=cb)
                i += 1
                self.sent = i
            except BufferError:
                prod.poll(0.01)
            except Exception as e:  # noqa: BLE001 - a fatal producer error ends the load
                with self._lock:
                    self.errors.append(e)
                return
            prod.poll(0)
            if i % 50 == 0:
                time.sleep(0.005)
        prod.flush(60)


def read_back(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> dict[int, list]:
    """Every record of every partition up to its high watermark, as (offset, value)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"checker-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    out: dict[int, list] = {}
    deadline = time.time() + timeout
    for p in range(partitions):
        tp = TopicPartition(topic, p)
        while True:
            try:
                low, high = c.get_watermark_offsets(tp, timeout=5)
                break
            except Exception:  # noqa: BLE001 - leader moving: ask again
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        c.assign([TopicPartition(topic, p, low)])
        recs = []
        while (not recs or recs[-1][0] < high - 1) and high > low:
            if time.time() > deadline:
                raise AssertionError(f"partition {p}: read {len(recs)} of {high - low} records in time")
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            recs.append((m.offset(), m.value()))
        out[p] = recs
    c.close()
    return out


def verify(load: Load, bootstrap: str, min_acked: int = 1) -> dict:
    """Read everything back and check it against what was acknowledged."""
    got = read_back(bootstrap, load.topic, load.partitions)
    where: dict[bytes, list] = {}
    gaps = 0
    for p, recs in got.items():
        for (o, v) in recs:
            where.setdefault(v, []).append((p, o))
        offsets = [o for o, _ in recs]
        gaps += sum(1 for a, b in zip(offsets, offsets[1:]) if b != a + 1)
    lost = [v for v in load.acked if v not in where]
    dup = [v for v, w in where.items() if len(w) > 1]
    moved = [v for v, po in load.acked.items() if v in where and po not in where[v]]
    figures = {
        "acked": len(load.acked),
        "failed": len(load.failed),
        "read": sum(len(r) for r in got.values()),
        "lost": len(lost),
        "duplicated": len(dup),
        "misplaced": len(moved),
        "gaps": gaps,
    }
    reasons: dict[str, int] = {}
    for _, err in load.failed:
        reasons[str(err.name() if hasattr(err, "name") else err)] = reasons.get(str(err.name() if hasattr(err, "name") else err), 0) + 1
    print(f"checker: {figures}; failed deliveries by error: {reasons}")
    assert not lost, f"{len(lost)} acknowledged values lost, e.g. {lost[:3]}"
    assert not dup, f"{len(dup)} values stored twice, e.g. {dup[:3]}"
    assert not moved, f"{len(moved)} values not at their acknowledged offset, e.g. {moved[:3]}"
    assert gaps == 0, f"{gaps} offset gaps"
    assert len(load.acked) >= min_acked, f"only {len(load.acked)} acknowledged"
    return figures
