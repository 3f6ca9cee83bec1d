"""Jepsen-style fault scenarios (issue 12) against three broker processes, RF 3 and
min.insync.replicas 2, each under an idempotent acks=all load checked by `checker`:
no acknowledged value lost, none twice, each at its acknowledged offset, offsets
contiguous, progress during the faults. Each scenario prints the faults injected and
the checker's figures (run with -s). Every fault loop is bounded in time; processes
are the cluster's own and are cleaned up by their pids."""

from __future__ import annotations

import time

import pytest
from confluent_kafka.admin import NewTopic

import kafka_wire as wire
from checker import Load, verify
from cluster import Cluster
from harness import wait_for

pytestmark = [pytest.mark.confluent]

TOPIC = "checked"
PARTITIONS = 3


def start(request, **kw) -> Cluster:
    c = Cluster(3, name=request.node.name[:30], overrides={"replica.lag.time.max.ms": "2000"}, **kw)
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    admin = c.admin()
    fs = admin.create_topics(
        [NewTopic(TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})], operation_timeout=10
    )
    for f in fs.values():
        f.result(timeout=20)
    wait_for(lambda: all(leader(c, p) in c.nodes for p in range(PARTITIONS)), 15, "leaders")
    return c


def leader(c: Cluster, p: int, via: int | None = None) -> int:
    try:
        via = via if via is not None else c.live()[0].node_id
        return c.metadata(via).topics[TOPIC].partitions[p].leader
    except Exception:  # noqa: BLE001 - a node going away mid-call
        return -1


def new_leader(c: Cluster, p: int, old: int, timeout: float) -> float:
    """Seconds until a node other than `old` names a leader other than `old`."""
    via = next(i for i in c.nodes if i != old)
    t0 = time.monotonic()
    wait_for(lambda: leader(c, p, via) not in (-1, old), timeout, f"a new leader for partition {p}")
    return time.monotonic() - t0


def test_leader_kill9_and_restart_repeatedly_under_load(request):
    c = start(request)
    load = Load(c.bootstrap(), TOPIC, PARTITIONS).start()
    try:
        load.wait_progress(300, 20, "before faults")
        times = []
        for round_ in range(2):
            old = leader(c, 0)
            c.kill9(old)
            times.append(new_leader(c, 0, old, 15))
            load.wait_progress(300, 30, f"after kill -9 #{round_ + 1}")
            c.restart(old)
            wait_for(lambda: sorted(c.metadata(c.live()[0].node_id).topics[TOPIC].partitions[0].isrs) == [1, 2, 3],
                     30, "the restarted node rejoins the ISR")
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=600)
        print(f"\nleader kill -9 x2: new leader after {[round(t, 2) for t in times]} s; {figures}")
        session = 3.0
        assert max(times) <= session + 2 + 3, times  # session timeout + 2 s, + slack for 2 shared cores
    finally:
        load.stop()
        c.close()


def test_paused_leader_is_fenced_acknowledges_nothing_and_truncates_on_return(request):
    c = start(request)
    load = Load(c.bootstrap(), TOPIC, PARTITIONS).start()
    try:
        load.wait_progress(300, 20, "before faults")
        old = leader(c, 0)
        # A client that talks to the old leader only, on its own port.
        zombie = wire.connect("127.0.0.1", c.nodes[old].port, timeout=30)
        c.sigstop(old)
        t = new_leader(c, 0, old, 15)
        load.wait_progress(300, 30, "while the old leader is paused")
        c.sigcont(old)
        # The woken leader must not acknowledge an acks=all write now.
        batch = wire.record_batch([(None, b"zombie-write")])
        results = wire.produce_v3(zombie, TOPIC, 0, batch, acks=-1)
        codes = [r.error for r in results]
        assert codes and all(code != 0 for code in codes), f"the old leader acknowledged acks=all: {codes}"
        zombie.close()
        wait_for(lambda: sorted(c.metadata(old).topics[TOPIC].partitions[0].isrs) == [1, 2, 3], 30,
                 "the old leader rejoins as a follower")
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=600)
        print(f"\nSIGSTOP leader {old}: new leader after {t:.2f}s; zombie acks=all answered {codes}; {figures}")
    finally:
        load.stop()
        c.close()


def test_network_partition_isolating_a_leader(request):
    c = start(request, partitionable=True)
    load = Load(c.bootstrap(), TOPIC, PARTITIONS).start()
    try:
        load.wait_progress(300, 20, "before faults")
        old = leader(c, 0)
        others = [i for i in c.nodes if i != old]
        minority = wire.connect("127.0.0.1", c.nodes[old].port, timeout=30)
        c.isolate(old)
        # A client on the minority side: the isolated leader must not acknowledge.
        batch = wire.record_batch([(None, b"minority-write")])
        results = wire.produce_v3(minority, TOPIC, 0, batch, acks=-1)
        codes = [r.error for r in results]
        assert codes and all(code != 0 for code in codes), f"the isolated leader acknowledged acks=all: {codes}"
        t = new_leader(c, 0, old, 20)
        load.wait_progress(300, 30, "on the majority side")
        c.heal()
        wait_for(lambda: sorted(c.metadata(others[0]).topics[TOPIC].partitions[0].isrs) == [1, 2, 3], 30,
                 "the isolated node rejoins the ISR")
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=600)
        print(f"\nisolated leader {old}: minority acks=all answered {codes}; majority leader after {t:.2f}s; {figures}")
    finally:
        load.stop()
        c.close()


def test_a_voter_cut_off_and_back_does_not_depose_the_controller(request):
    """Pre-vote: a controller voter cut off from the other two cannot win an election,
    so it must not raise its term while cut off, and when the network heals the active
    controller keeps leading at the same epoch. Before pre-vote, the cut-off voter
    stood on every election timeout (1 s here), and the leader, seeing that higher term
    in the voter's first answer after the heal, stepped down: a new election, a new
    epoch, and about a second without a controller, on every heal."""
    c = start(request, partitionable=True)

    def quorum():
        wait_for(lambda: c.controller(before_cut) in c.nodes, 15, "a controller")
        ctl = c.controller(before_cut)
        s = wire.connect("127.0.0.1", c.nodes[ctl].port, timeout=10)
        try:
            error, state = wire.describe_quorum_v1(s)
        finally:
            s.close()
        assert error == 0, error
        leader_id, epoch, *_ = state
        return leader_id, epoch

    before_cut = None  # ask any node until the cut, then one on the majority side
    try:
        before = quorum()
        cut = next(i for i in c.nodes if i != before[0])
        before_cut = before[0]
        c.isolate(cut)
        time.sleep(6)  # six election timeouts
        during = quorum()
        c.heal()
        wait_for(lambda: sorted(c.metadata(before[0]).topics[TOPIC].partitions[0].isrs) == [1, 2, 3], 30,
                 "the cut-off node rejoins the ISR")
        time.sleep(2)  # time for a higher term to reach the leader, had one been raised
        after = quorum()
        log = c.nodes[cut].log_text()
        print(f"\nvoter {cut} cut off for 6 s: (controller, epoch) before {before}, "
              f"during {during}, after the heal {after}")
        assert during == before, "the majority side changed controller while it could reach it"
        assert after == before, f"the returning voter deposed the controller: {before} -> {after}"
        assert "not standing" in log, "the cut-off voter never tried a pre-vote"
    finally:
        c.heal()
        c.close()


def test_rolling_restart_with_sigterm_fails_no_produce(request):
    c = start(request)
    load = Load(c.bootstrap(), TOPIC, PARTITIONS).start()
    try:
        load.wait_progress(300, 20, "before the restarts")
        pauses = []
        for i in sorted(c.nodes):
            before = load.acked_count()
            t0 = time.monotonic()
            c.nodes[i].stop()
            c.restart(i)
            c.wait_brokers(set(c.nodes), 30)
            wait_for(lambda: all(sorted(p.isrs) == [1, 2, 3] for p in c.metadata(i).topics[TOPIC].partitions.values()),
                     30, f"node {i} back in every ISR")
            pauses.append(round(time.monotonic() - t0, 2))
            assert load.acked_count() > before, f"no progress while node {i} restarted"
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=600)
        print(f"\nrolling restart: per node {pauses} s; {figures}")
        assert figures["failed"] == 0, load.failed[:3]
    finally:
        load.stop()
        c.close()


def test_unclean_election_off_keeps_an_isr_less_partition_offline_on_loses_acknowledged_records(request):
    """The trade-off of `unclean.leader.election.enable` (scenario 6): replicas [1, 2],
    min.insync.replicas 1. Node 2 leaves, node 1 alone acknowledges acks=all writes,
    then node 1 goes down and node 2 returns. `false` (the default): the partition
    stays offline and, once node 1 is back, every acknowledged record is there.
    `true`: node 2 leads at once, out of sync: the records only node 1 had are lost,
    and node 1 cuts them when it returns as its follower."""
    from confluent_kafka import Producer

    c = Cluster(3, name=request.node.name[:30])
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        admin = c.admin()
        topics = {"safe": "false", "lossy": "true"}
        fs = admin.create_topics(
            [
                NewTopic(t, num_partitions=1, replica_assignment=[[1, 2]],
                         config={"unclean.leader.election.enable": u, "min.insync.replicas": "1"})
                for t, u in topics.items()
            ],
            operation_timeout=10,
        )
        for f in fs.values():
            f.result(timeout=20)
        c.nodes[2].stop()
        wait_for(lambda: all(c.metadata(1).topics[t].partitions[0].isrs == [1] for t in topics), 15, "ISR [1]")
        prod = Producer({"bootstrap.servers": c.nodes[1].bootstrap, "acks": "all"})
        acked = {t: 0 for t in topics}
        for t in topics:
            for i in range(5):
                def cb(err, _m, t=t):
                    if err is None:
                        acked[t] += 1
                prod.produce(t, value=f"{t}-{i}".encode(), partition=0, on_delivery=cb)
        assert prod.flush(20) == 0
        assert acked == {"safe": 5, "lossy": 5}, acked
        c.nodes[1].stop()
        c.restart(2)
        c.wait_brokers({2, 3}, 20, via=3)
        wait_for(lambda: c.metadata(3).topics["lossy"].partitions[0].leader == 2, 15, "unclean election of node 2")
        assert c.metadata(3).topics["safe"].partitions[0].leader == -1, "the safe partition must stay offline"
        from checker import read_back

        lossy_after = read_back(c.nodes[2].bootstrap, "lossy", 1, timeout=20)[0]
        c.restart(1)
        c.wait_brokers({1, 2, 3}, 20)
        wait_for(lambda: c.metadata(3).topics["safe"].partitions[0].leader == 1, 15, "clean election of node 1")
        safe_after = read_back(c.bootstrap(), "safe", 1, timeout=20)[0]
        wait_for(lambda: sorted(c.metadata(3).topics["lossy"].partitions[0].isrs) == [1, 2], 20, "node 1 follows")
        seg = "lossy-0/00000000000000000000.log"
        wait_for(lambda: (c.nodes[1].log_dir / seg).read_bytes() == (c.nodes[2].log_dir / seg).read_bytes(),
                 10, "node 1 cut the records node 2 lacks")
        print(f"\nunclean=false: {acked['safe']} acknowledged, {len(safe_after)} read back after the ISR returned; "
              f"unclean=true: {acked['lossy']} acknowledged, {len(lossy_after)} read back (lost "
              f"{acked['lossy'] - len(lossy_after)})")
        assert [v for _, v in safe_after] == [f"safe-{i}".encode() for i in range(5)]
        assert lossy_after == [], "node 2 never had these records"
    finally:
        c.close()


def test_controller_kill9_under_load(request):
    """Scenario 2, and the time to a new leader for the partitions the killed node led:
    its broker is fenced one session (3 s here) after it fell silent, so the target
    is the session + 2 s, whichever node was the controller."""
    c = start(request)
    load = Load(c.bootstrap(), TOPIC, PARTITIONS).start()
    try:
        load.wait_progress(300, 20, "before faults")
        old = c.controller()
        led = [p for p in range(PARTITIONS) if leader(c, p) == old]
        c.kill9(old)
        others = [i for i in c.nodes if i != old]
        t0 = time.monotonic()
        wait_for(lambda: c.controller(others[0]) in others, 15, "a new controller")
        elected = time.monotonic() - t0
        for p in led:
            wait_for(lambda: leader(c, p, others[0]) in others, 20, f"a new leader for partition {p}")
        moved = time.monotonic() - t0
        load.wait_progress(300, 30, "after the controller's kill -9")
        c.restart(old)
        c.wait_brokers(set(c.nodes), 30)
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=600)
        print(f"\ncontroller {old} kill -9: new controller after {elected:.2f}s, new leader for its "
              f"partitions {led} after {moved:.2f}s; {figures}")
        assert led, "the controller led no partition: nothing measured"
        session = 3.0
        assert moved <= session + 2 + 3, moved  # session timeout + 2 s, + slack for 2 shared cores
    finally:
        load.stop()
        c.close()


def test_group_commits_never_go_back_across_coordinator_kills(request):
    """The consumer-group checker: one member of a group reads with manual synchronous
    commits while the group's coordinator (the leader of its __consumer_offsets
    partition) is killed with kill -9 and restarted, twice. Committed offsets never go
    backwards, no record below the last commit is delivered again, every record is
    read, and the committed offsets the coordinator reports at the end are the last
    ones committed."""
    import threading
    import uuid

    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    c = start(request)
    try:
        total = 3000
        prod = Producer({"bootstrap.servers": c.bootstrap(), "acks": "all", "linger.ms": 5})
        for i in range(total):
            prod.produce(TOPIC, value=f"g{i}".encode(), partition=i % PARTITIONS)
        assert prod.flush(30) == 0
        group = f"checked-{uuid.uuid4()}"
        committed: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
        seen: set[tuple[int, int]] = set()
        violations: list[str] = []
        stop = threading.Event()

        def record(tps):
            # A partition without a position yet is listed with OFFSET_INVALID (-1001):
            # nothing was committed for it.
            for tp in tps or []:
                if tp.error is None and tp.offset >= 0:
                    committed[tp.partition].append(tp.offset)

        def consume():
            cons = Consumer(
                {
                    "bootstrap.servers": c.bootstrap(),
                    "group.id": group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 10000,
                }
            )
            cons.subscribe([TOPIC])
            pending = 0
            while not stop.is_set():
                m = cons.poll(0.2)
                if m is None or m.error():
                    continue
                p, o = m.partition(), m.offset()
                if committed[p] and o < committed[p][-1]:
                    violations.append(f"partition {p}: offset {o} delivered after commit {committed[p][-1]}")
                seen.add((p, o))
                pending += 1
                if pending >= 50:
                    try:
                        record(cons.commit(asynchronous=False))
                        pending = 0
                    except KafkaException:
                        pass  # coordinator moving: the next commit carries these offsets
                time.sleep(0.002)  # slow enough that the faults land mid-stream
            try:
                record(cons.commit(asynchronous=False))
            except KafkaException:
                pass
            cons.close()

        t = threading.Thread(target=consume)
        t.start()
        try:
            wait_for(lambda: len(seen) > 300, 30, "the member reading")
            for _ in range(2):
                admin = c.admin()  # kept alive until the answer: its futures die with it
                desc = admin.describe_consumer_groups([group])[group].result(timeout=20)
                coord = desc.coordinator.id
                before = len(seen)
                c.kill9(coord)
                wait_for(lambda: len(seen) > before + 300 or len(seen) == total, 60, "reading after the coordinator's kill -9")
                c.restart(coord)
                c.wait_brokers(set(c.nodes), 30)
            wait_for(lambda: len(seen) == total, 60, "every record read")
        finally:
            stop.set()
            t.join(60)
        back = [f"partition {p}: {a} then {b}" for p, cs in committed.items() for a, b in zip(cs, cs[1:]) if b < a]
        print(f"\ngroup checker: {len(seen)} of {total} read, commits per partition "
              f"{ {p: len(cs) for p, cs in committed.items()} }, backwards {len(back)}, re-delivered below a commit {len(violations)}")
        assert not back, back[:5]
        assert not violations, violations[:3]
        assert len(seen) == total
        cons = Consumer({"bootstrap.servers": c.bootstrap(), "group.id": group})
        final = cons.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=20)
        cons.close()
        for tp in final:
            assert committed[tp.partition] and tp.offset == committed[tp.partition][-1], (tp, committed[tp.partition][-3:])
    finally:
        c.close()


def test_admin_requests_through_a_follower_finish_soon_after_the_controller_pauses(request):
    """The active controller is SIGSTOPped (its sockets stay open, nothing answers) and
    several CreateTopics arrive at once at another node, which forwards them. Each
    must be answered soon after the other two elect a new controller: a forward to
    the paused node gives way as soon as the forwarding node learns of the new
    leader, and forwards do not wait for one another. Forwarding them one at a time,
    each waiting out its forward timeout (5 s) at the paused node, failed this."""
    import threading

    c = start(request)
    old = c.controller()
    via, third = [i for i in c.nodes if i != old]
    names = [f"paused-controller-{i}" for i in range(6)]
    socks = [wire.connect("127.0.0.1", c.nodes[via].port, timeout=30) for _ in names]
    answers: dict[str, tuple[float, dict]] = {}

    def create(sock, name, t0):
        try:
            codes = wire.create_topics_v4(sock, [name], timeout_ms=0)
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            codes = {name: repr(e)}
        answers[name] = (time.monotonic() - t0, codes)

    try:
        c.sigstop(old)
        t0 = time.monotonic()
        threads = [threading.Thread(target=create, args=(s, n, t0)) for s, n in zip(socks, names)]
        for t in threads:
            t.start()
        wait_for(lambda: c.controller(third) in (via, third), 15, "a new controller")
        elected = time.monotonic() - t0
        for t in threads:
            t.join(40)
        took = sorted(round(a[0], 2) for a in answers.values())
        print(f"\ncontroller {old} paused: new controller seen after {elected:.2f}s; "
              f"{len(names)} CreateTopics through node {via} answered after {took} s")
        failed = {n: a for n, a in answers.items() if a[1] != {n: 0}}
        assert not failed and len(answers) == len(names), (failed, sorted(answers))
        assert max(took) < 4.0, f"forwarded requests waited on the paused controller: {took}"
    finally:
        c.sigcont(old)
        for s_ in socks:
            s_.close()
        c.close()
