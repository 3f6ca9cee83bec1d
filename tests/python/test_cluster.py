"""Troupe as a cluster (control plane): three processes started from the shipped
config/cluster files form one cluster with no other step, elect a controller through
the Raft quorum, register and heartbeat; a killed controller is replaced within
seconds, a silent broker is fenced (unlisted, leads nothing) and comes back when
restarted, SIGTERM moves leadership away first, and bad cluster settings refuse to
start. Times are printed (run with -s).

Data replication (followers, ISR changes, acks=all) is issue 11: these tests look at
metadata and leadership, and produce with acks=1."""

from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka.admin import NewTopic

from cluster import Cluster
from harness import Broker, broker_binary, free_port, produce, wait_for

pytestmark = [pytest.mark.confluent]


@pytest.fixture
def cluster(request):
    c = Cluster(3, name=request.node.name[:30])
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    yield c
    c.close()


def create(c: Cluster, via: int, name: str, partitions: int = 3, rf: int = 3):
    admin = c.admin(via)  # kept alive until the answer: its futures die with it
    fs = admin.create_topics([NewTopic(name, partitions, rf)], operation_timeout=10)
    for f in fs.values():
        f.result(timeout=20)


def partitions(c: Cluster, via: int, name: str):
    t = c.metadata(via).topics[name]
    assert t.error is None, t.error
    return {p.id: p for p in t.partitions.values()}


def test_three_nodes_form_one_cluster_from_the_shipped_configs(cluster):
    ids = {1, 2, 3}
    controllers = set()
    cluster_ids = set()
    for i in ids:
        md = cluster.metadata(i)
        assert set(md.brokers) == ids, f"node {i} lists {sorted(md.brokers)}"
        controllers.add(md.controller_id)
        cluster_ids.add(md.cluster_id)
    assert len(controllers) == 1 and controllers <= ids, controllers
    assert len(cluster_ids) == 1, f"every node must report one cluster id: {cluster_ids}"
    (cid,) = cluster_ids
    for b in cluster.nodes.values():
        meta = (b.log_dir / "meta.properties").read_text()
        assert f"node.id={b.node_id}\n" in meta and f"cluster.id={cid}\n" in meta, meta


def test_rf3_topic_through_a_non_controller_spreads_leaders(cluster):
    ctl = cluster.controller()
    other = next(i for i in cluster.nodes if i != ctl)
    create(cluster, other, "spread", partitions=6, rf=3)
    for i in cluster.nodes:
        ps = wait_for(lambda: partitions(cluster, i, "spread"), 10, f"spread on node {i}")
        assert len(ps) == 6
        for p in ps.values():
            assert sorted(p.replicas) == [1, 2, 3], p.replicas
            assert p.leader == p.replicas[0]
        leaders = sorted(p.leader for p in ps.values())
        assert leaders == [1, 1, 2, 2, 3, 3], f"leaders not spread: {leaders}"
    # More replicas than brokers: INVALID_REPLICATION_FACTOR, from any node.
    admin = cluster.admin(other)
    fs = admin.create_topics([NewTopic("too-many", 1, 4)], operation_timeout=10)
    with pytest.raises(Exception, match="INVALID_REPLICATION_FACTOR|replication factor"):
        fs["too-many"].result(timeout=20)


def test_a_killed_controller_is_replaced_and_its_broker_fenced_then_back(cluster):
    create(cluster, 1, "before", partitions=3)
    old = cluster.controller()
    t0 = time.monotonic()
    cluster.kill9(old)
    survivor = next(i for i in cluster.nodes if i != old)
    new = wait_for(
        lambda: (lambda c: c if c not in (old, -1) else None)(cluster.controller(survivor)),
        15,
        "a new controller",
    )
    elected = time.monotonic() - t0
    # CreateTopics works through the new controller, from a node that is not it.
    create(cluster, next(i for i in cluster.nodes if i not in (old,)), "after", partitions=3, rf=2)
    # After broker.session.timeout.ms the dead broker is fenced: unlisted, leads nothing.
    cluster.wait_brokers(set(cluster.nodes) - {old}, 15)
    fenced = time.monotonic() - t0
    for name in ("before", "after"):
        for p in partitions(cluster, survivor, name).values():
            assert p.leader != old, f"{name}-{p.id} still led by the dead broker"
            assert p.leader in cluster.nodes, f"{name}-{p.id} has no leader: {p.leader}"
    print(f"\nnew controller {new} after {elected:.2f}s, broker {old} fenced after {fenced:.2f}s")
    # Restarted: registers again, is unfenced once caught up and listed again.
    t1 = time.monotonic()
    cluster.restart(old)
    cluster.wait_brokers(set(cluster.nodes), 15)
    print(f"broker {old} back after {time.monotonic() - t1:.2f}s")
    assert cluster.controller(old) in cluster.nodes


def test_a_restart_after_kill9_replaces_its_registration_at_once(request):
    """A broker killed with -9 and restarted at once does not wait out its session: the
    new process holds the log dir's lock, so the broker epoch its predecessor recorded
    there proves that predecessor dead. The controller replaces the registration and
    moves its leaderships in the same commit (Kafka refuses the restart with
    DUPLICATE_BROKER_REGISTRATION until `broker.session.timeout.ms` has passed)."""
    session = 10.0
    c = Cluster(3, name=request.node.name[:30], overrides={"broker.session.timeout.ms": str(int(session * 1000))})
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        create(c, 1, "quick", partitions=3)
        ctl = c.controller()
        victim = next(i for i in c.nodes if i != ctl)
        led = [p.id for p in partitions(c, ctl, "quick").values() if p.leader == victim]
        assert led, "the victim leads a partition (leaders are spread)"
        t0 = time.monotonic()
        c.kill9(victim)
        c.restart(victim)

        def new_process_log():
            return c.nodes[victim].log_text().split("===== start #2")[1]

        # Serving again: registered (a new broker epoch) and unfenced once caught up.
        wait_for(lambda: "unfenced and serving" in new_process_log(), session + 10, "the restarted broker serving")
        back = time.monotonic() - t0
        log = new_process_log()
        assert "broker registration refused" not in log, log
        assert "previous_broker_epoch" in log, log
        for p in partitions(c, ctl, "quick").values():
            assert p.leader in c.nodes, f"quick-{p.id}: leader {p.leader}"
        print(f"\nbroker {victim} killed, restarted and serving again after {back:.2f}s (session {session:.0f}s)")
        assert back < session - 2, f"took {back:.2f}s: waited out the session"
        assert "replacing it now" in c.nodes[ctl].log_text()
    finally:
        c.close()


def test_a_copy_of_a_running_brokers_log_dir_cannot_take_its_registration(request):
    """A copy of a live node's log dir (`cp -a`), started as a second process with the
    same node id on ports of its own, carries the broker epoch its original recorded but
    not the original's lock file: it must not name that epoch, so the controller
    refuses it (DUPLICATE_BROKER_REGISTRATION) while the original heartbeats, and the
    original keeps its registration, its leaderships and its produce traffic."""
    c = Cluster(3, name=request.node.name[:30], overrides={"broker.session.timeout.ms": "10000"})
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    copy = None
    try:
        create(c, 1, "copied", partitions=3)
        ctl = c.controller()
        victim = next(i for i in c.nodes if i != ctl)
        original = c.nodes[victim]
        led = sorted(p.id for p in partitions(c, ctl, "copied").values() if p.leader == victim)
        assert led, "the victim leads a partition (leaders are spread)"
        copy = Broker(dict(original.overrides), name=request.node.name[:20] + "-copy", config_file=original.config_file)
        copy.overrides.update(
            {
                "listeners": f"PLAINTEXT://127.0.0.1:{copy.port},CONTROLLER://127.0.0.1:{free_port()}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{copy.port}",
                "log.dirs": str(copy.log_dir),
                "metrics.http.listener": f"127.0.0.1:{copy.metrics_port}",
            }
        )
        subprocess.run(["cp", "-a", str(original.log_dir), str(copy.log_dir)], check=True)
        copy.start()

        # The copy's first registration is answered within a heartbeat or so: refused
        # (fixed), or accepted, evicting the original (the hole this test guards).
        def answered():
            log = copy.log_text()
            return ("broker registration refused" in log) or ("registered with the controller" in log)

        wait_for(answered, 20, "the copy's registration answered")
        copy_log = copy.log_text()
        assert "registered with the controller" not in copy_log, "the copy took the original's registration"
        assert "DUPLICATE_BROKER_REGISTRATION" in copy_log or "code=101" in copy_log, copy_log[-3000:]
        assert "not naming it as the previous broker epoch" in copy_log
        assert "replacing it now" not in c.nodes[ctl].log_text()

        # The original is still the registered broker and leads what it led.
        md = c.metadata(ctl)
        assert md.brokers[victim].port == original.port, f"broker {victim} is now {md.brokers[victim]}"
        now = partitions(c, ctl, "copied")
        assert [p for p in led if now[p].leader != victim] == [], {p: now[p].leader for p in led}
        reports = produce(original.bootstrap, "copied", [(b"k", b"after the copy started")], partition=led[0], acks=1)
        assert reports[0][2] >= 0
        assert "heartbeat refused" not in original.log_text()
        assert copy.is_running(), "the copy keeps retrying (it is not registered)"
    finally:
        if copy is not None:
            copy.kill9()
            copy.close()
        c.close()


def test_sigterm_moves_leadership_away_first(cluster):
    create(cluster, 1, "moving", partitions=3)
    leaders = {p.id: p.leader for p in partitions(cluster, 1, "moving").values()}
    victim = leaders[0]
    t0 = time.monotonic()
    cluster.nodes[victim].stop()  # SIGTERM, asserts exit code 0
    stopped = time.monotonic() - t0
    remaining = next(i for i in cluster.nodes if i != victim)
    # Already moved when the process is gone: no session timeout to wait for.
    ps = partitions(cluster, remaining, "moving")
    md = cluster.metadata(remaining)
    assert victim not in md.brokers
    for p in ps.values():
        assert p.leader not in (victim, -1), f"moving-{p.id}: leader {p.leader}"
    print(f"\ncontrolled shutdown of {victim} took {stopped:.2f}s")


def test_produce_to_a_follower_is_not_leader(cluster):
    """A broker that does not lead a partition answers NOT_LEADER_OR_FOLLOWER, and the
    client finds the leader from Metadata."""
    create(cluster, 1, "routed", partitions=1)
    leader = partitions(cluster, 1, "routed")[0].leader
    other = next(i for i in cluster.nodes if i != leader)
    out = subprocess.run(
        ["kcat", "-b", cluster.nodes[other].bootstrap, "-P", "-t", "routed", "-p", "0", "-X", "acks=1",
         "-X", "topic.metadata.refresh.interval.ms=100"],
        input=b"v1\n", capture_output=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr.decode()


@pytest.mark.parametrize(
    "case",
    ["node-not-a-voter", "duplicate-voter-ids", "other-node-id-on-disk"],
)
def test_bad_cluster_settings_refuse_to_start(tmp_path, case):
    data = tmp_path / "data"
    data.mkdir()
    base = {
        "node.id": "1",
        "process.roles": "broker,controller",
        "listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.voters": "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
        "log.dirs": str(data),
    }
    if case == "node-not-a-voter":
        base["node.id"] = "4"
        expect = "node.id"
    elif case == "duplicate-voter-ids":
        base["controller.quorum.voters"] = "1@127.0.0.1:1,1@127.0.0.1:2,3@127.0.0.1:3"
        expect = "controller.quorum.voters"
    else:
        (data / "meta.properties").write_text("version=1\ncluster.id=abc\nnode.id=7\n")
        expect = "node.id=7"
    args = [str(broker_binary()), "serve"]
    for k, v in base.items():
        args += ["--override", f"{k}={v}"]
    out = subprocess.run(args, capture_output=True, timeout=30)
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode != 0, text
    assert expect in text, text
    if case == "other-node-id-on-disk":
        assert (data / "meta.properties").read_text() == "version=1\ncluster.id=abc\nnode.id=7\n", "not overwritten"


def test_a_paused_controller_is_replaced_and_cannot_decide_when_it_wakes(cluster):
    """SIGSTOP the active controller past broker.session.timeout.ms: the others elect
    a new one (higher Raft term) and fence the paused broker. On SIGCONT the old
    controller is a zombie: whatever it still believes, nothing it decides is
    committed; it follows the new term, is unfenced again and every node agrees on
    one controller."""
    create(cluster, 1, "zombie", partitions=3)
    old = cluster.controller()
    others = [i for i in cluster.nodes if i != old]
    cluster.sigstop(old)
    try:
        t0 = time.monotonic()
        new = wait_for(
            lambda: (lambda c: c if c in others else None)(cluster.controller(others[0])),
            15,
            "a new controller while the old one is paused",
        )
        cluster.wait_brokers(set(others), 15, via=others[0])
        for p in partitions(cluster, others[0], "zombie").values():
            assert p.leader in others, f"zombie-{p.id} still led by the paused broker"
        paused_for = time.monotonic() - t0
        # A topic created meanwhile exists only in the new term's history.
        create(cluster, others[0], "while-paused", partitions=1, rf=1)
    finally:
        cluster.sigcont(old)
    # Woken: it learns the new term, registers/heartbeats again and is listed.
    cluster.wait_brokers(set(cluster.nodes), 20)
    for i in cluster.nodes:
        md = cluster.metadata(i)
        assert md.controller_id == new, f"node {i} names controller {md.controller_id}, not {new}"
        assert "while-paused" in md.topics, f"node {i} lacks the topic created while {old} slept"
    # Requests sent to the former controller are decided by the new one.
    create(cluster, old, "after-wake", partitions=1, rf=1)
    print(f"\ncontroller {old} paused {paused_for:.2f}s; new controller {new}")


def test_network_partition_isolating_the_controller(request):
    """Cut the active controller off from the other two (a proxy on every link between
    nodes). The majority elects a new controller and fences the isolated broker; the
    isolated node can commit nothing (a CreateTopics sent to it fails and never
    appears); after healing there is one history: the isolated node follows the new
    term, is listed again and sees what the majority committed."""
    c = Cluster(3, name="partition", partitionable=True, front_proxies=False)
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        old = c.controller()
        others = [i for i in c.nodes if i != old]
        t0 = time.monotonic()
        c.isolate(old)
        new = wait_for(
            lambda: (lambda x: x if x in others else None)(c.controller(others[0])),
            15,
            "a controller on the majority side",
        )
        elected = time.monotonic() - t0
        c.wait_brokers(set(others), 15, via=others[0])
        create(c, others[0], "majority", partitions=1, rf=1)
        # The minority side commits nothing.
        admin = c.admin(old)
        fs = admin.create_topics([NewTopic("minority", 1, 1)], operation_timeout=5, request_timeout=20)
        with pytest.raises(Exception):
            fs["minority"].result(timeout=30)
        assert "minority" not in c.metadata(others[0]).topics
        c.heal()
        t1 = time.monotonic()
        c.wait_brokers(set(c.nodes), 30)
        healed = time.monotonic() - t1
        for i in c.nodes:
            md = c.metadata(i)
            assert "majority" in md.topics and "minority" not in md.topics, (i, sorted(md.topics))
            assert md.controller_id == c.controller(others[0])
        print(f"\nisolated controller {old}: new controller {new} after {elected:.2f}s; "
              f"back and listed {healed:.2f}s after healing")
    finally:
        c.close()


def test_elect_leaders_preferred_and_unclean(cluster):
    """ElectLeaders, sent to a broker that is not the controller. PREFERRED: a
    partition led by its preferred replica needs no election, and one whose preferred
    replica is down is not moved (PREFERRED_LEADER_NOT_AVAILABLE). UNCLEAN: a partition
    whose only in-sync replica is down stays offline (unclean election is off) until
    ElectLeaders UNCLEAN makes the live out-of-sync replica its leader; the old leader
    comes back as its follower and the two logs agree again."""
    from confluent_kafka import ElectionType, Producer, TopicPartition

    admin_via = lambda: cluster.admin(next(i for i in cluster.nodes if i != cluster.controller()))  # noqa: E731
    # Replicas [a, b] on two of the three brokers, led by a.
    create(cluster, 1, "unc", partitions=1, rf=2)
    p = partitions(cluster, 1, "unc")[0]
    a, b = p.replicas
    third = next(i for i in cluster.nodes if i not in (a, b))
    admin = admin_via()
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("unc", 0)]).result(timeout=20)
    assert "ELECTION_NOT_NEEDED" in str(list(result.values())[0]), result
    # b leaves the ISR (controlled shutdown); a takes writes b never sees.
    cluster.nodes[b].stop()
    wait_for(lambda: partitions(cluster, third, "unc")[0].isrs == [a], 10, "ISR shrinks to [a]")
    prod = Producer({"bootstrap.servers": cluster.nodes[a].bootstrap, "acks": "1"})
    for i in range(5):
        prod.produce("unc", value=f"only-on-{a}-{i}".encode(), partition=0)
    assert prod.flush(20) == 0
    # a goes down: the only in-sync replica; b comes back: the partition is offline,
    # not unclean.
    cluster.nodes[a].stop()
    cluster.restart(b)
    cluster.wait_brokers({b, third}, 20, via=third)
    p = partitions(cluster, third, "unc")[0]
    assert (p.leader, p.isrs) == (-1, [a]), (p.leader, p.isrs)
    admin = cluster.admin(third)
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("unc", 0)]).result(timeout=20)
    assert "PREFERRED_LEADER_NOT_AVAILABLE" in str(list(result.values())[0]), result
    result = admin.elect_leaders(ElectionType.UNCLEAN, [TopicPartition("unc", 0)]).result(timeout=20)
    assert all(err is None for err in result.values()), result
    p = partitions(cluster, third, "unc")[0]
    assert (p.leader, p.isrs) == (b, [b]), (p.leader, p.isrs)
    # The old leader returns as a follower: it cuts the records only it had and
    # rejoins the ISR.
    cluster.restart(a)
    cluster.wait_brokers(set(cluster.nodes), 20)
    wait_for(lambda: sorted(partitions(cluster, third, "unc")[0].isrs) == sorted([a, b]), 20, "a rejoins the ISR")
    seg = "unc-0/00000000000000000000.log"
    wait_for(
        lambda: (cluster.nodes[a].log_dir / seg).read_bytes() == (cluster.nodes[b].log_dir / seg).read_bytes(),
        10,
        "the two replicas' logs agree",
    )
    assert (cluster.nodes[a].log_dir / seg).stat().st_size == 0, "a kept records the new leader lacks"


def test_describe_quorum_from_any_node(cluster):
    """DescribeQuorum (kafka-metadata-quorum.sh describe --status): any node answers
    with the active controller as leader, the Raft term as leader epoch, and every
    voter's log end offset, caught up with the high watermark."""
    import kafka_wire as wire

    ctl = cluster.controller()
    for i in cluster.nodes:
        with wire.connect("127.0.0.1", cluster.nodes[i].port) as s:
            def answer():
                err, parts = wire.describe_quorum_v0(s)
                (name, idx, perr, leader, epoch, hw, voters) = parts[0]
                return err == 0 and perr == 0 and all(leo >= hw for _, leo in voters) and parts[0]
            (name, idx, _, leader, epoch, hw, voters) = wait_for(answer, 10, f"quorum from node {i}")
            assert (name, idx, leader) == ("__cluster_metadata", 0, ctl)
            assert epoch >= 1 and hw > 0
            assert sorted(v for v, _ in voters) == [1, 2, 3]
            err, _ = wire.describe_quorum_v0(s, topic="other")
            assert err == 3, "only __cluster_metadata-0 has a quorum"
            # v2 (KIP-853) names each voter's controller endpoint.
            err, leader, voters, nodes = wire.describe_quorum_v2(s)
            assert (err, leader) == (0, ctl)
            assert sorted((v, d) for v, d, _ in voters) == [(v, bytes(16)) for v in (1, 2, 3)]
            assert nodes == {
                j: [("CONTROLLER", "127.0.0.1", cluster.ports[j][1])] for j in (1, 2, 3)
            }
