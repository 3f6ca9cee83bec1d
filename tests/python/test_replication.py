"""Replication across three broker processes (issue 11), through real clients.

Followers copy their leader with Kafka's Fetch API; the leader keeps the ISR and the
high watermark; acks=all waits for the ISR and refuses with fewer than
min.insync.replicas; a new leader's followers truncate what it lacks. Each test checks
what a user sees (client answers, records read back) and what is on disk (replica
logs byte-identical). Times are printed (run with -s)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from cluster import Cluster
import kafka_wire as wire
from harness import wait_for

pytestmark = [pytest.mark.confluent]

SEG = "00000000000000000000.log"


@pytest.fixture
def cluster(request):
    c = Cluster(3, name=request.node.name[:30], overrides={"replica.lag.time.max.ms": "2000"})
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    yield c
    c.close()


def create(c: Cluster, name: str, partitions: int = 1, rf: int = 3, config: dict | None = None):
    admin = c.admin()
    fs = admin.create_topics([NewTopic(name, partitions, rf, config=config or {})], operation_timeout=10)
    for f in fs.values():
        f.result(timeout=20)
    wait_for(lambda: leader_of(c, name, 0) in c.nodes, 10, f"{name} has a leader")


def part(c: Cluster, name: str, p: int = 0, via: int | None = None):
    via = via if via is not None else c.live()[0].node_id
    return c.metadata(via).topics[name].partitions[p]


def leader_of(c: Cluster, name: str, p: int = 0) -> int:
    try:
        return part(c, name, p).leader
    except Exception:  # noqa: BLE001 - not in metadata yet
        return -1


def isr(c: Cluster, name: str, p: int = 0) -> list[int]:
    return sorted(part(c, name, p).isrs)


def produce(bootstrap: str, topic: str, values: list[bytes], **conf) -> list:
    """Produce and return each record's delivery error (None when acknowledged)."""
    results: list = [None] * len(values)
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **conf})
    for i, v in enumerate(values):
        def cb(err, _msg, i=i):
            results[i] = err if err is not None else "ok"

        prod.produce(topic, value=v, partition=0, on_delivery=cb)
    assert prod.flush(60) == 0
    return [None if isinstance(r, str) else r for r in results]


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[bytes]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[bytes] = []
    deadline = time.time() + timeout
    while len(out) < expect and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append(m.value())
    c.close()
    return out


def logs_identical(c: Cluster, topic: str, nodes: list[int]) -> bool:
    blobs = [(c.nodes[i].log_dir / f"{topic}-0" / SEG).read_bytes() for i in nodes]
    return all(b == blobs[0] for b in blobs) and len(blobs[0]) > 0


def test_followers_copy_the_leader_byte_for_byte_and_acks_all_is_acknowledged(cluster):
    create(cluster, "copy", config={"min.insync.replicas": "2"})
    leader = leader_of(cluster, "copy")
    values = [f"v{i}".encode() * 20 for i in range(2000)]
    t0 = time.time()
    errors = produce(cluster.nodes[leader].bootstrap, "copy", values, acks="all", **{"enable.idempotence": True})
    print(f"\n2000 acks=all records in {time.time() - t0:.2f}s")
    assert errors == [None] * len(values), [e for e in errors if e][:3]
    assert isr(cluster, "copy") == [1, 2, 3]
    wait_for(lambda: logs_identical(cluster, "copy", [1, 2, 3]), 10, "replica logs byte-identical")
    assert consume_all(cluster.bootstrap(), "copy", len(values)) == values
    # Each follower checkpoints the high watermark it learned from the leader.
    for i in cluster.nodes:
        ckpt = cluster.nodes[i].log_dir / "copy-0" / "replication-offset-checkpoint"
        wait_for(ckpt.exists, 10, f"node {i} checkpoints its high watermark")


def test_every_acks_all_produce_of_a_pipelined_burst_is_answered_at_once(cluster):
    """librdkafka pipelines single-record acks=all produce requests and the leader
    appends them concurrently; their completions reach the partition in no fixed order
    (actix polls an actor's ready futures out of order). The last request of each burst
    must be answered as soon as the followers have it: an earlier completion reported
    after a later one once moved the leader's log end back, the high watermark could not
    pass it, and that request waited for its whole timeout (30 s)."""
    create(cluster, "burst", config={"min.insync.replicas": "2"})
    leader = leader_of(cluster, "burst")
    prod = Producer(
        {
            "bootstrap.servers": cluster.nodes[leader].bootstrap,
            "acks": "all",
            "linger.ms": 0,
            "batch.num.messages": 1,
        }
    )
    slowest = 0.0
    for burst in range(10):
        t0 = time.monotonic()
        for i in range(500):
            prod.produce("burst", value=f"{burst}-{i}".encode(), partition=0)
            prod.poll(0)
        left = prod.flush(10)
        slowest = max(slowest, time.monotonic() - t0)
        assert left == 0, f"burst {burst}: {left} acks=all records unanswered after 10 s"
    print(f"\nslowest burst of 500 pipelined acks=all records: {slowest:.2f}s")
    assert consume_all(cluster.bootstrap(), "burst", 5000)[-1] == b"9-499"


def test_follower_down_isr_shrinks_min_isr_holds_and_it_rejoins(cluster):
    create(cluster, "min2", config={"min.insync.replicas": "2"})
    create(cluster, "min3", config={"min.insync.replicas": "3"})
    leader = leader_of(cluster, "min2")
    boot = cluster.nodes[leader].bootstrap
    assert produce(boot, "min2", [b"before"], acks="all") == [None]
    follower = next(i for i in part(cluster, "min2").replicas if i != leader and i != leader_of(cluster, "min3"))
    cluster.kill9(follower)
    t0 = time.time()
    wait_for(lambda: follower not in isr(cluster, "min2"), 15, "the dead follower leaves the ISR")
    print(f"\nISR shrank {time.time() - t0:.2f}s after kill -9")
    # min.insync.replicas=2 with two in sync: acks=all goes on.
    assert produce(boot, "min2", [b"during-1", b"during-2"], acks="all") == [None, None]
    # min.insync.replicas=3 with two in sync: acks=all is refused, acks=1 taken.
    wait_for(lambda: follower not in isr(cluster, "min3"), 15, "min3's ISR shrinks too")
    l3 = cluster.nodes[leader_of(cluster, "min3")].bootstrap
    errs = produce(l3, "min3", [b"refused"], acks="all", **{"message.timeout.ms": 3000, "retries": 0})
    assert errs[0] is not None and errs[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errs
    assert produce(l3, "min3", [b"taken"], acks="1") == [None]
    # The follower returns, catches up and rejoins; every replica holds the same log.
    cluster.restart(follower)
    t0 = time.time()
    wait_for(lambda: isr(cluster, "min2") == [1, 2, 3], 20, "the follower rejoins the ISR")
    print(f"rejoined {time.time() - t0:.2f}s after restart")
    wait_for(lambda: logs_identical(cluster, "min2", [1, 2, 3]), 10, "min2 logs identical")
    wait_for(lambda: isr(cluster, "min3") == [1, 2, 3], 20, "min3 ISR back to 3")
    assert produce(l3, "min3", [b"after"], acks="all") == [None]
    assert consume_all(cluster.bootstrap(), "min2", 3) == [b"before", b"during-1", b"during-2"]


def test_leader_kill9_under_an_idempotent_acks_all_producer_loses_and_duplicates_nothing(cluster):
    create(cluster, "failover", config={"min.insync.replicas": "2"})
    old = leader_of(cluster, "failover")
    acked: list[bytes] = []
    failed: list = []
    stop = threading.Event()

    def run():
        prod = Producer(
            {
                "bootstrap.servers": cluster.bootstrap(),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": 30000,
            }
        )
        i = 0
        while not stop.is_set():
            v = f"m{i:06d}".encode()

            def cb(err, msg, v=v):
                (failed if err else acked).append(err or v)

            try:
                prod.produce("failover", value=v, partition=0, on_delivery=cb)
                i += 1
            except BufferError:
                pass
            prod.poll(0.001)
        prod.flush(40)

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: len(acked) > 500, 20, "records acknowledged before the kill")
    cluster.kill9(old)
    t0 = time.time()
    wait_for(lambda: leader_of(cluster, "failover") not in (-1, old), 20, "a new leader")
    n = len(acked)
    wait_for(lambda: len(acked) > n + 500, 30, "acknowledgements resume under the new leader")
    print(f"\nnew leader after {time.time() - t0:.2f}s; {len(acked)} acked")
    stop.set()
    t.join(60)
    assert not failed, failed[:3]
    got = consume_all(cluster.bootstrap(), "failover", len(acked), timeout=60)
    assert len(got) == len(set(got)), "duplicates after the failover"
    assert got == sorted(got), "records out of order"
    assert set(acked) <= set(got), f"{len(set(acked) - set(got))} acknowledged records lost"
    # The old leader returns as a follower and its log agrees with the others'.
    cluster.restart(old)
    wait_for(lambda: isr(cluster, "failover") == [1, 2, 3], 30, "old leader rejoins")
    wait_for(lambda: logs_identical(cluster, "failover", [1, 2, 3]), 15, "logs identical after truncation")


def test_committed_offsets_survive_a_coordinator_move(cluster):
    create(cluster, "grp", config={"min.insync.replicas": "2"})
    assert produce(cluster.bootstrap(), "grp", [f"r{i}".encode() for i in range(10)], acks="all") == [None] * 10
    group = f"g-{uuid.uuid4()}"
    conf = {
        "bootstrap.servers": cluster.bootstrap(),
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    c = Consumer(conf)
    c.subscribe(["grp"])
    seen = []
    deadline = time.time() + 30
    while len(seen) < 6 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.append(m.value())
            if len(seen) == 6:
                c.commit(message=m, asynchronous=False)
    c.close()
    assert len(seen) == 6
    # Kill the coordinator (the leader of the group's __consumer_offsets partition).
    admin = cluster.admin()
    desc = admin.describe_consumer_groups([group])[group].result(timeout=20)
    coordinator = desc.coordinator.id
    cluster.kill9(coordinator)
    c = Consumer({**conf, "bootstrap.servers": ",".join(b.bootstrap for b in cluster.live())})
    committed = None
    deadline = time.time() + 40
    while time.time() < deadline:
        try:
            committed = c.committed([TopicPartition("grp", 0)], timeout=5)[0].offset
            break
        except KafkaException:
            time.sleep(0.5)
    assert committed == 6, committed
    c.subscribe(["grp"])
    rest = []
    deadline = time.time() + 30
    while len(rest) < 4 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            rest.append(m.value())
    c.close()
    assert rest == [f"r{i}".encode() for i in range(6, 10)]


def test_consumers_read_from_a_replica_in_their_rack(request):
    """KIP-392: with broker.rack set and replica.selector.class Kafka's rack-aware
    selector, the leader points a consumer (Fetch v11+ with its client.rack) at an
    in-sync replica in its rack, and that follower serves it up to its own high
    watermark; an older fetch (no rack) is still told to go to the leader."""
    c = Cluster(
        3,
        name="rack-aware",
        overrides={"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"},
    )
    for i, b in c.nodes.items():
        b.overrides["broker.rack"] = f"rack-{i}"
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        create(c, "racks", config={"min.insync.replicas": "2"})
        values = [f"r{i}".encode() for i in range(10)]
        leader = leader_of(c, "racks")
        assert produce(c.nodes[leader].bootstrap, "racks", values, acks="all") == [None] * 10
        follower = next(i for i in c.nodes if i != leader)
        with wire.connect("127.0.0.1", c.nodes[leader].port) as s:
            (r,) = wire.fetch_v11(s, "racks", 0, 0, rack_id=f"rack-{follower}")
            assert (r.error, r.preferred_read_replica) == (0, follower), r
            assert not r.records, "the leader sends the consumer elsewhere without records"
            (r,) = wire.fetch_v11(s, "racks", 0, 0, rack_id=f"rack-{leader}")
            assert (r.error, r.preferred_read_replica) == (0, -1) and r.records, r
        with wire.connect("127.0.0.1", c.nodes[follower].port) as s:
            def served():
                (r,) = wire.fetch_v11(s, "racks", 0, 0, rack_id=f"rack-{follower}")
                return r.error == 0 and r.high_watermark == 10 and r.records and r
            r = wait_for(served, 10, "the follower serves the consumer")
            assert [v for _, _, v in wire.parse_record_batches(r.records)] == values
            (old,) = wire.fetch_v4(s, "racks", 0, 0)
            assert old.error == 6, "a fetch without client metadata goes to the leader"
        # A real client with client.rack reads everything through the follower.
        cons = Consumer(
            {
                "bootstrap.servers": c.bootstrap(),
                "group.id": f"rack-{uuid.uuid4()}",
                "client.rack": f"rack-{follower}",
                "auto.offset.reset": "earliest",
            }
        )
        cons.assign([TopicPartition("racks", 0, 0)])
        got = []
        deadline = time.time() + 30
        while len(got) < 10 and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        cons.close()
        assert got == values
    finally:
        c.close()
