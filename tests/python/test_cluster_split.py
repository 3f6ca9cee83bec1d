"""Dedicated roles, as Kafka's KRaft isolated mode: three controller-only voters and
three broker-only nodes started from the shipped config/cluster-split files.

Clients see only the brokers (Metadata lists 4, 5, 6 and names one of them as the
controller, as Kafka's KRaft brokers do); the controller quorum decides, the brokers
follow the committed metadata log as Raft learners, host every replica, and forward
admin requests to the active controller. kill -9 of the active controller: the other
voters elect a new one and CreateTopics goes on working. Times are printed (-s)."""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import NewTopic

from cluster import SPLIT, SplitCluster
from harness import broker_binary, consume, produce, wait_for

pytestmark = [pytest.mark.confluent]


@pytest.fixture
def split(request):
    c = SplitCluster(3, 3, name=request.node.name[:30])
    request.node._troupe_brokers = list(c.nodes.values())
    t0 = time.monotonic()
    c.start()
    print(f"\nsplit cluster formed in {time.monotonic() - t0:.2f}s")
    yield c
    c.close()


def create(c: SplitCluster, via: int, name: str, partitions: int, rf: int):
    admin = c.admin(via)  # kept alive until the answer: its futures die with it
    fs = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=10)
    for f in fs.values():
        f.result(timeout=20)


def leaders(c: SplitCluster, via: int, name: str):
    t = c.metadata(via).topics.get(name)
    if t is None or t.error is not None or not t.partitions:
        return None
    return {p.id: (p.leader, sorted(p.replicas)) for p in t.partitions.values()}


def test_dedicated_controllers_and_brokers_from_the_shipped_configs(split):
    brokers, controllers = set(split.broker_ids), set(split.controller_ids)
    # Clients see the brokers only; the controller they are told of is a broker.
    cluster_ids = set()
    for i in split.broker_ids:
        md = split.metadata(i)
        assert set(md.brokers) == brokers, f"broker {i} lists {sorted(md.brokers)}"
        assert md.controller_id in brokers, f"broker {i} names {md.controller_id} as controller"
        cluster_ids.add(md.cluster_id)
    assert len(cluster_ids) == 1, cluster_ids
    (cid,) = cluster_ids
    for b in split.nodes.values():
        meta = (b.log_dir / "meta.properties").read_text()
        assert f"cluster.id={cid}\n" in meta, f"node {b.node_id}: {meta}"
    # The Raft leader is one of the controller-only voters, and every broker forwards
    # DescribeQuorum to it.
    active = split.active_controller()
    assert active in controllers, active
    assert {split.active_controller(via=i) for i in split.broker_ids} == {active}

    # An RF 3 topic through a broker: replicas on the brokers only, produce acks=all
    # and consume through the brokers.
    t0 = time.monotonic()
    create(split, 5, "split", partitions=3, rf=3)
    ps = wait_for(lambda: leaders(split, 4, "split"), 10, "split's partitions on broker 4")
    print(f"RF 3 topic created through broker 5 in {time.monotonic() - t0:.2f}s")
    for pid, (leader, replicas) in ps.items():
        assert replicas == sorted(brokers), f"split-{pid} replicas {replicas}"
        assert leader in brokers, f"split-{pid} leader {leader}"
    msgs = [(f"k{n}".encode(), f"v{n}".encode()) for n in range(200)]
    reports = produce(split.bootstrap(), "split", msgs, partition=1, acks="all")
    assert [r[2] for r in reports] == list(range(200))
    got = consume(split.bootstrap(), "split", 1, 0, 200)
    assert [(m.key(), m.value()) for m in got] == msgs
    for i in split.controller_ids:
        hosted = [p.name for p in split.nodes[i].log_dir.iterdir() if p.name.startswith("split-")]
        assert hosted == [], f"controller-only node {i} hosts {hosted}"

    # kill -9 of the active controller: a new one among the surviving voters, and
    # CreateTopics through a broker works again.
    t0 = time.monotonic()
    split.kill9(active)
    new = wait_for(
        lambda: (lambda a: a if a in controllers - {active} else None)(split.active_controller()),
        15,
        "a new active controller",
    )
    elected = time.monotonic() - t0
    create(split, 6, "after", partitions=2, rf=3)
    created = time.monotonic() - t0
    ps = wait_for(lambda: leaders(split, 4, "after"), 10, "after's partitions on broker 4")
    assert all(leader in brokers for leader, _ in ps.values()), ps
    produce(split.bootstrap(), "after", msgs[:10], partition=0, acks="all")
    assert len(consume(split.bootstrap(), "after", 0, 0, 10)) == 10
    split.wait_brokers(brokers, 10)
    print(f"controller {active} killed: {new} active after {elected:.2f}s, CreateTopics answered after {created:.2f}s")

    # The old controller comes back as a follower voter and catches up.
    split.nodes[active].start()
    import kafka_wire as wire

    def caught_up():
        with wire.connect("127.0.0.1", split.nodes[4].port) as s:
            err, parts = wire.describe_quorum_v0(s)
        (_, _, _, leader, _, hw, voters) = parts[0]
        return leader in controllers and dict(voters).get(active, -1) >= hw

    wait_for(caught_up, 15, f"controller {active} back in the quorum")


def quorum(c: SplitCluster, via: int = 4):
    """DescribeQuorum v1 through broker `via`: (leader, epoch, hw, voters, observers)."""
    import kafka_wire as wire

    with wire.connect("127.0.0.1", c.nodes[via].port) as s:
        err, q = wire.describe_quorum_v1(s)
    assert err == 0 and q is not None, err
    return q


def observers_caught_up(c: SplitCluster, ids: set[int]):
    """The observers DescribeQuorum lists, when they are exactly `ids`, each at the high
    watermark and heard from within the last 5 s (else None)."""
    leader, _, hw, voters, observers = quorum(c)
    now = time.time() * 1000
    if {o[0] for o in observers} != ids:
        return None
    if not all(leo >= hw and now - fetch < 5000 and caught_up > 0 for _, leo, fetch, caught_up in observers):
        return None
    return leader, voters, observers


def test_a_killed_broker_is_fenced_and_rejoins(split):
    """A broker-only node killed with kill -9 is fenced by the controller quorum after
    broker.session.timeout.ms (unlisted, leads nothing) and, silent as long on its Raft
    link, leaves the quorum's observers (the Raft learners): the leader stops retrying
    it, quietly. Restarted, it attaches again, follows the metadata log from where it
    was, is an observer again and is listed once caught up."""
    create(split, 4, "fence", partitions=3, rf=3)
    wait_for(lambda: leaders(split, 4, "fence"), 10, "fence's partitions")
    # DescribeQuorum lists the broker-only nodes as observers, with Kafka's v1 times;
    # the leader's own times are now.
    leader, voters, _ = wait_for(lambda: observers_caught_up(split, {4, 5, 6}), 10, "observers 4, 5, 6")
    now = time.time() * 1000
    assert {v[0] for v in voters} == set(split.controller_ids), voters
    (me,) = [v for v in voters if v[0] == leader]
    assert abs(me[2] - now) < 5000 and abs(me[3] - now) < 5000, me
    active = split.nodes[leader]
    log_start = len(active.log_file.read_text(errors="replace"))
    t0 = time.monotonic()
    split.kill9(6)
    split.wait_brokers({4, 5}, 15)
    fenced = time.monotonic() - t0
    ps = leaders(split, 4, "fence")
    assert all(leader in (4, 5) for leader, _ in ps.values()), ps
    wait_for(lambda: observers_caught_up(split, {4, 5}), 15, "broker 6 gone from the observers")
    removed = time.monotonic() - t0
    window = active.log_file.read_text(errors="replace")[log_start:].splitlines()
    assert not [l for l in window if "openraft::replication" in l], "openraft's per-retry lines are quiet"
    t1 = time.monotonic()
    split.nodes[6].start()
    split.wait_brokers({4, 5, 6}, 20)
    wait_for(lambda: observers_caught_up(split, {4, 5, 6}), 15, "broker 6 an observer again")
    print(f"\nbroker 6 fenced after {fenced:.2f}s, left the learners after {removed:.2f}s "
          f"({len(window)} log lines on the leader meanwhile), listed again {time.monotonic() - t1:.2f}s after restart")
    # It serves what the quorum decided while it was away.
    create(split, 4, "while-back", partitions=1, rf=3)
    wait_for(lambda: leaders(split, 6, "while-back"), 10, "broker 6 sees the new topic")


@pytest.mark.parametrize(
    "file,overrides,key,value",
    [
        # A controller-only node must not have a client listener.
        ("controller-1.properties", {"listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"}, "listeners", '"PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"'),
        # ... and must be one of the voters.
        ("controller-1.properties", {"node.id": "7"}, "node.id", '"7"'),
        # A broker-only node must not be a voter.
        ("broker-4.properties", {"node.id": "2"}, "node.id", '"2"'),
        # Both need to know how controllers are reached.
        ("broker-4.properties", {"controller.listener.names": ""}, "controller.listener.names", '""'),
    ],
    ids=["controller-with-client-listener", "controller-not-a-voter", "broker-in-voters", "no-controller-listener-names"],
)
def test_bad_role_settings_refuse_to_start(tmp_path, file, overrides, key, value):
    args = [str(broker_binary()), "serve", str(SPLIT / file), "--override", f"log.dirs={tmp_path / 'data'}"]
    for k, v in overrides.items():
        args += ["--override", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, timeout=30)
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode == 2, text
    assert key in text and value in text, text
    assert not (tmp_path / "data").exists(), "nothing written for a refused config"
