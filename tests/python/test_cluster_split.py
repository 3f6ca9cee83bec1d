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


def test_controller_only_nodes_serve_metrics_health_and_the_status_page(request):
    """A controller-only node serves `metrics.http.listener` too: live and ready (it
    knows the active controller and applied the committed metadata), the controller's
    metrics (active controller, epoch, Raft state, offline partitions) and no broker
    metric, and the status page from its metadata image. kill -9 of the active
    controller moves `active_controller_count` to another voter and bumps the epoch;
    with one voter of three left, it is live but not ready. The broker forwards its
    heartbeats over connections it keeps: far fewer connections than requests."""
    from ops_http import Rows, http_get, scrape, value

    c = SplitCluster(3, 1, name=request.node.name[:30])
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        ctl = {i: c.nodes[i] for i in c.controller_ids}
        broker = c.nodes[c.broker_ids[0]]
        for i, n in ctl.items():
            status, _, body = http_get(f"{n.metrics_url}/health/live")
            assert (status, body) == (200, "live\n"), (i, status, body)
            wait_for(lambda n=n: http_get(f"{n.metrics_url}/health/ready")[0] == 200, 20, f"controller {i} ready")
        active = c.active_controller()
        assert active in ctl, active

        def views():
            s = {i: scrape(n) for i, n in ctl.items()}
            leaders = {value(s[i], "kafka_server_raft_metrics_current_leader") for i in ctl}
            return s if leaders == {active} else None

        s = wait_for(views, 10, f"every controller following {active}")
        epoch = value(s[active], "kafka_controller_kafkacontroller_controller_epoch")
        assert epoch >= 1
        for i in ctl:
            assert value(s[i], "kafka_controller_kafkacontroller_active_controller_count") == (1 if i == active else 0), i
            assert value(s[i], "kafka_controller_kafkacontroller_controller_epoch") == epoch, i
            state = "leader" if i == active else "follower"
            assert value(s[i], "kafka_server_raft_metrics_current_state", state=state) == 1, (i, state)
            assert value(s[i], "kafka_controller_kafkacontroller_offline_partitions_count") == 0, i
            assert value(s[i], "kafka_server_metadata_last_applied_offset") >= 0, i
            assert value(s[i], "troupe_actor_restarts_total", kind="controller") == 0, i
            assert value(s[i], "process_resident_memory_bytes") > 1 << 20, i
            assert value(s[i], "process_open_fds") > 0 and value(s[i], "process_start_time_seconds") > 1.6e9, i
            # Nothing a broker exports: no partitions, no client connections.
            for broker_only in ("kafka_server_replicamanager_partition_count",
                                "kafka_server_socket_server_metrics_connection_count",
                                "kafka_network_request_bytes_in_flight"):
                assert value(s[i], broker_only) is None, (i, broker_only)
        # The broker is not the active controller (KRaft: only the active one counts 1),
        # whatever Metadata tells clients.
        wait_for(lambda: http_get(f"{broker.metrics_url}/health/ready")[0] == 200, 10, "broker 4 ready")
        sb = scrape(broker)
        assert value(sb, "kafka_controller_kafkacontroller_active_controller_count") == 0
        assert value(sb, "kafka_server_raft_metrics_current_state", state="observer") == 1

        # A topic whose replicas are all on broker 4: on the controllers' status pages
        # with leader and ISR; then broker 4 dies and the partitions go offline.
        create(c, 4, "ctl", partitions=2, rf=1)
        wait_for(lambda: leaders(c, 4, "ctl"), 10, "ctl's partitions")

        def page(i):
            status, headers, html = http_get(f"{ctl[i].metrics_url}/")
            assert status == 200 and headers["Content-Type"].startswith("text/html"), status
            p = Rows()
            p.feed(html)
            return html, p

        def topic_rows(i):
            html, p = page(i)
            rows = [(a, cells) for a, cells in p.rows if a.get("data-topic") == "ctl"]
            return rows if len(rows) == 2 else None

        follower = next(i for i in ctl if i != active)
        rows = wait_for(lambda: topic_rows(follower), 10, "ctl on a controller's status page")
        for a, cells in rows:
            # Topic, partition, leader, replicas, ISR; offsets only where hosted.
            assert cells[2:5] == ["4", "4", "4"] and a["class"] == "in-sync", (a, cells)
            assert cells[5:] == ["", "", ""], cells
        html, p = page(follower)
        assert f"<title>Troupe controller {follower}</title>" in html
        assert p.ids["controller"] == f"controller {active}", p.ids
        assert 'id="not-a-broker"' in html and "Not a broker" in html
        assert f'<td id="raft-state">{follower} follower</td>' in html, html
        assert any(cells[:1] == ["4"] and "live" in cells for _, cells in p.rows), p.rows

        # Forwarded heartbeats (every 300 ms here) reuse the broker's connections.
        time.sleep(3)
        sb = scrape(broker)
        forwarded = value(sb, "troupe_controller_forwarded_requests_total")
        dialled = value(sb, "troupe_controller_forward_connections_created_total")
        print(f"\nbroker 4: {forwarded:.0f} requests forwarded over {dialled:.0f} connections")
        assert forwarded >= 10 and dialled <= 3, (forwarded, dialled)

        c.kill9(4)
        s = wait_for(lambda: (s := scrape(ctl[active]))
                     and value(s, "kafka_controller_kafkacontroller_offline_partitions_count") == 2 and s,
                     15, "ctl's partitions offline once broker 4 is fenced")
        rows = wait_for(lambda: (r := topic_rows(active)) and all(a["class"] == "offline" for a, _ in r) and r,
                        10, "offline rows on the status page")
        assert http_get(f"{ctl[active].metrics_url}/health/ready")[0] == 200, "brokers do not make a controller unready"

        # kill -9 of the active controller: another voter takes over, with a new epoch.
        c.kill9(active)
        rest = [i for i in ctl if i != active]

        def took_over():
            s = {i: scrape(ctl[i]) for i in rest}
            now = [i for i in rest if value(s[i], "kafka_controller_kafkacontroller_active_controller_count") == 1]
            return (now[0], s) if len(now) == 1 else None

        new, s = wait_for(took_over, 15, "a new active controller in the metrics")
        other = next(i for i in rest if i != new)
        assert value(s[new], "kafka_controller_kafkacontroller_controller_epoch") > epoch
        assert value(s[new], "kafka_server_raft_metrics_current_state", state="leader") == 1
        assert value(s[other], "kafka_controller_kafkacontroller_active_controller_count") == 0
        wait_for(lambda: http_get(f"{ctl[other].metrics_url}/health/ready")[0] == 200, 10, f"{other} ready")
        print(f"controller {active} killed: {new} active, epoch {epoch:.0f} -> "
              f"{value(s[new], 'kafka_controller_kafkacontroller_controller_epoch'):.0f}")

        # One voter of three left: no controller can be elected. Live, not ready.
        c.kill9(new)

        def unready():
            status, _, body = http_get(f"{ctl[other].metrics_url}/health/ready")
            return body if status == 503 else None

        body = wait_for(unready, 15, f"controller {other} not ready without a quorum")
        assert "no active controller known" in body, body
        assert http_get(f"{ctl[other].metrics_url}/health/live")[0] == 200
        assert value(scrape(ctl[other]), "kafka_controller_kafkacontroller_active_controller_count") == 0
    finally:
        c.close()
