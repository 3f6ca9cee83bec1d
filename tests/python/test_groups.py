"""Consumer groups and committed offsets with real clients (confluent-kafka and
kafka-python): partitions split between members and move when one leaves or dies,
commits (auto, sync, async) persist across consumer and broker restarts,
auto.offset.reset behaves as in Kafka, and a static member comes back to its
partitions without a rebalance.

Timeouts are short so the module stays fast: session.timeout.ms 6000, heartbeats
every 500 ms, group.initial.rebalance.delay.ms 200. Rebalance times are printed
(run with -s to see them)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from harness import create_topic, produce, wait_for

pytestmark = [pytest.mark.confluent]

BROKER_OVERRIDES = {
    "group.initial.rebalance.delay.ms": "200",
    "group.min.session.timeout.ms": "1000",
}
SESSION_MS = 6000


def group_conf(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "log_level": 4,
    }
    conf.update(extra)
    return conf


class Member:
    """A subscribed confluent-kafka consumer that remembers its assignment."""

    def __init__(self, broker, group, topic, **extra):
        self.c = Consumer(group_conf(broker, group, **extra))
        self.assigned: set[int] = set()
        self.assigns = 0
        self.revokes = 0
        self.records = []
        self.errors = []
        self.closed = False
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, _c, parts):
        self.assigned = {p.partition for p in parts}
        self.assigns += 1

    def _on_revoke(self, _c, _parts):
        self.assigned = set()
        self.revokes += 1

    def poll(self, timeout=0.05):
        if self.closed:
            return
        m = self.c.poll(timeout)
        if m is None:
            return
        if m.error():
            self.errors.append(m.error())
        else:
            self.records.append(m)

    def close(self):
        if not self.closed:
            self.closed = True
            self.c.close()


def poll_until(members, predicate, timeout, what):
    """Poll every member in turn (librdkafka serves rebalances from poll) until
    `predicate()` holds; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}: "
                + ", ".join(f"{sorted(m.assigned)}" for m in members)
            )
        for m in members:
            m.poll(0.02)
    return time.monotonic() - start


def split(members, n):
    """Every partition assigned to exactly one member, and every member has some."""
    sets = [m.assigned for m in members]
    return all(sets) and sum(len(s) for s in sets) == n and set().union(*sets) == set(range(n))


@pytest.fixture
def group(request):
    return f"group-{request.node.name[:40]}-{time.monotonic_ns() % 10**8}"


@pytest.fixture
def members():
    made: list[Member] = []
    yield made
    for m in made:
        try:
            m.close()
        except Exception:  # noqa: BLE001 - best-effort teardown
            pass


def test_two_then_three_consumers_split_partitions(broker, admin, topic, group, members):
    create_topic(admin, topic, partitions=6)
    a, b = Member(broker, group, topic), Member(broker, group, topic)
    members += [a, b]
    t = poll_until([a, b], lambda: split([a, b], 6), 30, "two members to split 6 partitions")
    print(f"\n[groups] 2 consumers split 6 partitions in {t:.2f}s")
    assert {len(a.assigned), len(b.assigned)} == {3}

    c = Member(broker, group, topic)
    members.append(c)
    t = poll_until([a, b, c], lambda: split([a, b, c], 6), 30, "three members to split 6 partitions")
    print(f"[groups] rebalance to 3 consumers took {t:.2f}s")
    assert [len(m.assigned) for m in (a, b, c)] == [2, 2, 2]

    # Each member consumes what is produced to its partitions.
    produce(broker.bootstrap, topic, [(None, b"m%d" % p) for p in range(6)], partition=None)
    for p in range(6):
        produce(broker.bootstrap, topic, [(None, b"p%d" % p)], partition=p)
    poll_until([a, b, c], lambda: sum(len(m.records) for m in (a, b, c)) >= 12, 30, "all records")
    for m in (a, b, c):
        assert {r.partition() for r in m.records} <= m.assigned


def test_member_leaving_hands_over_its_partitions(broker, admin, topic, group, members):
    create_topic(admin, topic, partitions=4)
    a, b = Member(broker, group, topic), Member(broker, group, topic)
    members += [a, b]
    poll_until([a, b], lambda: split([a, b], 4), 30, "split")
    b.close()  # LeaveGroup
    t = poll_until([a], lambda: a.assigned == {0, 1, 2, 3}, SESSION_MS / 1000, "a to get every partition")
    print(f"\n[groups] after LeaveGroup the survivor had all partitions in {t:.2f}s")


KILLED_CONSUMER = r"""
import sys
from confluent_kafka import Consumer
bootstrap, group, topic = sys.argv[1:4]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
              "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest", "log_level": 3})
def on_assign(c, parts):
    print("assigned " + ",".join(str(p.partition) for p in parts), flush=True)
c.subscribe([topic], on_assign=on_assign)
while True:
    c.poll(0.1)
"""


def test_killed_member_partitions_move_within_session_timeout(broker, admin, topic, group, members):
    create_topic(admin, topic, partitions=4)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_CONSUMER, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        a = Member(broker, group, topic)
        members.append(a)

        def other_has_rest():
            got = [ln for ln in lines if ln.startswith("assigned ")]
            if not got or not a.assigned:
                return False
            theirs = {int(p) for p in got[-1].split()[1].split(",") if p}
            return theirs and theirs.isdisjoint(a.assigned) and theirs | a.assigned == {0, 1, 2, 3}

        poll_until([a], other_has_rest, 30, "the child consumer and a to split the partitions")
        proc.kill()  # no LeaveGroup: only the session timeout can tell
        proc.wait(10)
        t = poll_until([a], lambda: a.assigned == {0, 1, 2, 3}, SESSION_MS / 1000 + 6, "a to take over")
        print(f"\n[groups] after kill -9 the survivor had all partitions in {t:.2f}s (session {SESSION_MS} ms)")
        assert t >= SESSION_MS / 1000 - 2, "partitions moved before the session could have expired"
    finally:
        if proc.poll() is None:
            proc.kill()


def committed(broker, group, topic, partition=0):
    c = Consumer(group_conf(broker, group))
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def fill(broker, topic, n, start=0):
    produce(broker.bootstrap, topic, [(None, b"v%d" % i) for i in range(start, start + n)], partition=0)


def consume_n(m, n, timeout=30):
    poll_until([m], lambda: len(m.records) >= n, timeout, f"{n} records")
    return m.records[:n]


def test_auto_commit_persists(broker, admin, topic, group, members):
    create_topic(admin, topic)
    fill(broker, topic, 10)
    m = Member(broker, group, topic, **{"enable.auto.commit": True, "auto.commit.interval.ms": 200})
    members.append(m)
    consume_n(m, 10)
    # While the consumer is still running: the periodic commit got there.
    poll_until([m], lambda: committed(broker, group, topic) == 10, 15, "auto commit of offset 10")


def test_sync_and_async_commits_persist_and_consumer_resumes(broker, admin, topic, group, members):
    create_topic(admin, topic)
    fill(broker, topic, 20)
    m = Member(broker, group, topic, **{"max.poll.interval.ms": 10000})
    members.append(m)
    got = consume_n(m, 5)
    m.c.commit(message=got[4], asynchronous=False)
    assert committed(broker, group, topic) == 5

    m.c.commit(offsets=[TopicPartition(topic, 0, 12)], asynchronous=True)
    # The consumer keeps polling (which serves the commit's answer) meanwhile.
    poll_until([m], lambda: committed(broker, group, topic) == 12, 15, "async commit of offset 12")
    m.close()

    # A restarted consumer of the group resumes at the committed offset.
    r = Member(broker, group, topic)
    members.append(r)
    first = consume_n(r, 8)
    assert [x.offset() for x in first] == list(range(12, 20))
    assert first[0].value() == b"v12"


def test_auto_offset_reset_earliest_latest_none(broker, admin, topic, members):
    create_topic(admin, topic)
    fill(broker, topic, 5)
    e = Member(broker, f"{topic}-earliest", topic, **{"auto.offset.reset": "earliest"})
    members.append(e)
    assert [x.offset() for x in consume_n(e, 5)] == [0, 1, 2, 3, 4]

    latest = Member(broker, f"{topic}-latest", topic, **{"auto.offset.reset": "latest"})
    members.append(latest)
    poll_until([latest], lambda: latest.assigned == {0}, 30, "assignment")
    # Give the consumer time to resolve its start (the end: ListOffsets) before producing;
    # librdkafka's position() stays unset until a record is consumed.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        latest.poll(0.05)
    assert not latest.records
    fill(broker, topic, 3, start=5)
    assert [x.offset() for x in consume_n(latest, 3)] == [5, 6, 7]

    none = Member(broker, f"{topic}-none", topic, **{"auto.offset.reset": "error"})
    members.append(none)
    poll_until([none], lambda: bool(none.errors), 30, "an offset reset error")
    assert none.errors[0].code() == KafkaError._AUTO_OFFSET_RESET
    assert not none.records

    # With a committed offset, the reset policy does not matter. (A standalone commit
    # into a group with members is refused, as in Kafka: leave first.)
    none.close()
    committer = Consumer(group_conf(broker, f"{topic}-none"))
    committer.commit(offsets=[TopicPartition(topic, 0, 6)], asynchronous=False)
    committer.close()
    again = Member(broker, f"{topic}-none", topic, **{"auto.offset.reset": "error"})
    members.append(again)
    assert [x.offset() for x in consume_n(again, 2)] == [6, 7]


@pytest.mark.restart
def test_broker_restart_keeps_committed_offsets(make_broker, topic):
    from confluent_kafka.admin import AdminClient

    b = make_broker(BROKER_OVERRIDES)
    create_topic(AdminClient({"bootstrap.servers": b.bootstrap}), topic, partitions=2)
    c = Consumer(group_conf(b, "durable"))
    c.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 9)], asynchronous=False)
    c.close()
    b.restart()  # SIGTERM
    assert committed(b, "durable", topic, 0) == 3
    b.restart(graceful=False)  # kill -9
    assert committed(b, "durable", topic, 0) == 3
    assert committed(b, "durable", topic, 1) == 9


def test_static_member_restart_gets_same_partitions_without_rebalance(broker, admin, topic, group, members):
    create_topic(admin, topic, partitions=4)
    a = Member(broker, group, topic, **{"group.instance.id": "static-a"})
    b = Member(broker, group, topic, **{"group.instance.id": "static-b"})
    members += [a, b]
    poll_until([a, b], lambda: split([a, b], 4), 30, "split")
    before_b, before_a = set(b.assigned), set(a.assigned)
    # Let the group settle (no rebalance pending), then restart b.
    for _ in range(20):
        a.poll(0.025)
        b.poll(0.025)
    a_events = (a.assigns, a.revokes)
    b.close()  # a static member does not send LeaveGroup on close
    start = time.monotonic()
    b2 = Member(broker, group, topic, **{"group.instance.id": "static-b"})
    members.append(b2)
    poll_until([a, b2], lambda: bool(b2.assigned), SESSION_MS / 1000, "b to come back")
    print(f"\n[groups] static member back with its partitions in {time.monotonic() - start:.2f}s")
    assert b2.assigned == before_b
    # a saw no rebalance: nothing revoked, nothing reassigned.
    for _ in range(20):
        a.poll(0.05)
    assert (a.assigns, a.revokes) == a_events
    assert a.assigned == before_a


def test_admin_lists_describes_and_deletes_groups(broker, admin, topic, group, members):
    create_topic(admin, topic, partitions=2)
    m = Member(broker, group, topic)
    members.append(m)
    poll_until([m], lambda: m.assigned == {0, 1}, 30, "assignment")
    listed = admin.list_consumer_groups(request_timeout=10).result()
    states = {g.group_id: g.state.name for g in listed.valid}
    assert states.get(group) == "STABLE"
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    assert len(desc.members) == 1
    assert desc.members[0].host == "/127.0.0.1", desc.members[0].host  # Kafka's client_host form
    assert {tp.partition for tp in desc.members[0].assignment.topic_partitions} == {0, 1}
    # Deleting a group with members is refused; once it is empty it works.
    with pytest.raises(Exception, match="NON_EMPTY_GROUP|not empty"):
        admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    m.c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    m.close()
    wait_for(lambda: admin.describe_consumer_groups([group])[group].result().state.name == "EMPTY", 10, "empty")
    admin.delete_consumer_groups([group], request_timeout=10)[group].result()
    assert committed(broker, group, topic) < 0


def test_describe_groups_authorized_operations(broker, admin, topic, group, members):
    """DescribeGroups with include_authorized_operations: every operation Kafka defines
    for a group (no ACLs exist); without it, Kafka's "not asked" sentinel."""
    create_topic(admin, topic, partitions=1)
    m = Member(broker, group, topic)
    members.append(m)
    poll_until([m], lambda: m.assigned == {0}, 30, "assignment")
    asked = admin.describe_consumer_groups([group], include_authorized_operations=True, request_timeout=10)[group].result()
    assert asked.authorized_operations is not None
    assert {op.name for op in asked.authorized_operations} == {"READ", "DESCRIBE", "DELETE"}
    plain = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    assert plain.authorized_operations is None


def test_clients_cannot_produce_to_consumer_offsets(broker, admin, topic, group, members):
    create_topic(admin, topic)
    m = Member(broker, group, topic)  # makes the broker create __consumer_offsets
    members.append(m)
    poll_until([m], lambda: m.assigned == {0}, 30, "assignment")
    with pytest.raises(AssertionError, match="TOPIC_EXCEPTION|internal topic"):
        produce(broker.bootstrap, "__consumer_offsets", [(b"k", b"forged")], partition=0, timeout=10)


@pytest.mark.kafka_python
def test_kafka_python_group_split_commit_and_resume(broker, admin, topic, group):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    from kafka.errors import NoOffsetForPartitionError

    create_topic(admin, topic, partitions=4)
    for p in range(4):
        produce(broker.bootstrap, topic, [(None, b"kp%d-%d" % (p, i)) for i in range(5)], partition=p)

    def kc(**kw):
        conf = dict(bootstrap_servers=broker.bootstrap, group_id=group, session_timeout_ms=SESSION_MS,
                    heartbeat_interval_ms=500, enable_auto_commit=False, auto_offset_reset="earliest",
                    request_timeout_ms=15000)
        conf.update(kw)
        c = KafkaConsumer(**conf)
        c.subscribe([topic])
        return c

    # One thread per consumer, each polling continuously as an application would.
    # (Interleaving two kafka-python consumers' short polls on one thread livelocks in
    # kafka-python 3.0.12 itself: a JoinGroup/SyncGroup round that finishes while its
    # consumer is not inside poll() is discarded and the next poll() starts a new join,
    # which sends the other consumer back to rebalancing, and so on.)
    stop = threading.Event()
    committed_both = threading.Barrier(2, timeout=30)  # nobody leaves before both committed
    state = {name: {"parts": set(), "recs": [], "committed": False, "error": None} for name in "ab"}

    def run(name):
        st = state[name]
        c = kc()
        try:
            while not stop.is_set():
                for recs in c.poll(timeout_ms=200).values():
                    st["recs"].extend(recs)
                st["parts"] = {tp.partition for tp in c.assignment()}
            c.commit()
            st["committed"] = True
            committed_both.wait()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            st["error"] = e
        finally:
            c.close()

    def split_and_consumed():
        for st in state.values():
            if st["error"]:
                raise st["error"]
        pa, pb = state["a"]["parts"], state["b"]["parts"]
        done = sum(len(st["recs"]) for st in state.values()) >= 20
        return pa and pb and pa.isdisjoint(pb) and pa | pb == {0, 1, 2, 3} and done

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in "ab"]
    for t in threads:
        t.start()
    try:
        wait_for(split_and_consumed, 60, "kafka-python consumers to split the partitions and read all 20 records")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    for name, st in state.items():
        assert st["error"] is None and st["committed"], (name, st["error"])
    assert sorted(r.value for st in state.values() for r in st["recs"]) == sorted(
        b"kp%d-%d" % (p, i) for p in range(4) for i in range(5))
    c = kc()
    try:
        for p in range(4):
            assert c.committed(KTP(topic, p)) == 5
    finally:
        c.close()

    # auto_offset_reset='none' without a committed offset: an error, as in Kafka.
    n = kc(group_id=f"{group}-none", auto_offset_reset="none")
    try:
        with pytest.raises(NoOffsetForPartitionError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                n.poll(timeout_ms=200)
    finally:
        n.close()


def test_offset_metadata_max_bytes_is_enforced(make_broker, topic, group):
    """offset.metadata.max.bytes: a commit whose metadata is longer is answered
    OFFSET_METADATA_TOO_LARGE; one at the limit is stored with its metadata."""
    from confluent_kafka.admin import AdminClient

    b = make_broker({"offset.metadata.max.bytes": "10"})
    create_topic(AdminClient({"bootstrap.servers": b.bootstrap}), topic, partitions=2)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "log_level": 3})
    # librdkafka sends the metadata string with its C terminator: n characters are
    # n + 1 bytes on the wire, which is what the broker measures.
    try:
        ok = c.commit(offsets=[TopicPartition(topic, 0, 5, metadata="x" * 9)], asynchronous=False)
        assert ok[0].error is None
        with pytest.raises(Exception, match="OFFSET_METADATA_TOO_LARGE"):
            c.commit(offsets=[TopicPartition(topic, 1, 5, metadata="x" * 10)], asynchronous=False)
        got = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert (got[0].offset, got[0].metadata.rstrip("\0")) == (5, "x" * 9)
        assert got[1].offset < 0
    finally:
        c.close()


def test_pipelined_async_commits_take_effect_in_request_order(broker, admin, topic, group):
    """librdkafka pipelines asynchronous commits on its coordinator connection: 50
    commits in a row (offsets n+1..n+50) are all acknowledged, and the last one is
    what OffsetFetch answers, every round. Before commits were applied in log order,
    a round often ended on an older offset (2, 7, 34, 49 seen instead of 50)."""
    create_topic(admin, topic)
    acked: list[tuple[int, int]] = []

    def on_commit(err, parts):
        assert err is None, err
        acked.extend((p.offset, p.error.code() if p.error else 0) for p in parts)

    c = Consumer(group_conf(broker, group, on_commit=on_commit))
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        wrong = []
        rounds = 30
        for r in range(rounds):
            base = r * 50
            acked.clear()
            for i in range(1, 51):
                c.commit(offsets=[TopicPartition(topic, 0, base + i)], asynchronous=True)
            deadline = time.monotonic() + 20
            while len(acked) < 50 and time.monotonic() < deadline:
                c.poll(0.01)
            assert len(acked) == 50, f"round {r}: {len(acked)} of 50 commits acknowledged"
            assert all(code == 0 for _, code in acked), acked
            got = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
            if got != base + 50:
                wrong.append((r, got, base + 50))
        assert not wrong, f"rounds whose committed offset is not the last commit: {wrong}"
    finally:
        c.close()
