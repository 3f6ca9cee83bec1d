"""The operations HTTP listener (`metrics.http.listener`): Prometheus metrics, health
checks and the status page, checked from outside with real clients.

* records produced by confluent-kafka show in the per-topic counters, exactly;
* consumer lag exported by the broker matches what a real consumer group has not
  read (committed offset against the partition's end, as the client sees them);
* /health/live and /health/ready, including a node that is not ready (no quorum);
* an empty `metrics.http.listener` turns the listener off; a bad one stops start-up;
* the status page, loaded in headless Chromium, shows the topic, its leader and ISR,
  and the lagging group; a screenshot is kept in the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from harness import HOST, Broker, broker_binary, create_topic, free_port, produce, wait_for
from ops_http import Rows, http_get, scrape, value

def test_produced_records_show_in_the_metrics(broker, admin, topic):
    create_topic(admin, topic, partitions=2)
    n, payload = 250, b"x" * 100
    before = scrape(broker)
    assert value(before, "kafka_server_brokertopicmetrics_messages_in_total", topic=topic) in (None, 0)
    produce(broker.bootstrap, topic, [(str(i).encode(), payload) for i in range(n)])
    after = scrape(broker)
    assert value(after, "kafka_server_brokertopicmetrics_messages_in_total", topic=topic) == n
    bytes_in = value(after, "kafka_server_brokertopicmetrics_bytes_in_total", topic=topic)
    assert n * len(payload) <= bytes_in < n * (len(payload) + 100), bytes_in
    # Both partitions' logs hold what was produced, in one segment each.
    sizes = [value(after, "kafka_log_log_size", topic=topic, partition=p) for p in (0, 1)]
    assert all(s and s > 0 for s in sizes), sizes
    assert sum(sizes) >= n * len(payload)
    assert [value(after, "kafka_log_log_num_log_segments", topic=topic, partition=p) for p in (0, 1)] == [1, 1]
    # Produce requests were counted and timed; a single node leads all it hosts.
    produces = value(after, "kafka_network_requestmetrics_requests_total", request="Produce")
    assert produces >= 1
    assert value(after, "kafka_network_requestmetrics_total_time_seconds_count", request="Produce") == produces
    assert value(after, "kafka_server_replicamanager_under_replicated_partitions") == 0
    assert value(after, "kafka_server_replicamanager_leader_count") >= 2
    assert value(after, "kafka_controller_kafkacontroller_active_controller_count") == 1
    assert value(after, "kafka_server_socket_server_metrics_connection_count") >= 1
    # A fetch beyond the log end is a failed fetch of the topic, counted by error name.
    from confluent_kafka import TopicPartition
    from harness import consumer

    c = consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 10_000)])
        err = wait_for(lambda: (m := c.poll(0.5)) is not None and m.error() is not None and m.error(), 15,
                       "an out-of-range error")
        assert "out of range" in str(err).lower() or "OUT_OF_RANGE" in err.name(), err
    finally:
        c.close()
    final = scrape(broker)
    assert value(final, "kafka_network_requestmetrics_errors_total", request="Fetch", error="OFFSET_OUT_OF_RANGE") >= 1
    assert value(final, "kafka_server_brokertopicmetrics_failed_fetch_requests_total", topic=topic) >= 1


def test_log_flushes_are_timed(broker, admin, topic):
    """A topic with flush.messages=1 fsyncs after every append: each flush is counted in
    the flush-time histogram (Kafka's LogFlushRateAndTimeMs)."""
    create_topic(admin, topic, partitions=1, config={"flush.messages": "1"})
    before = value(scrape(broker), "kafka_log_logflushstats_log_flush_time_seconds_count") or 0
    n = 20
    for i in range(n):  # one produce request (one append, one flush) each
        produce(broker.bootstrap, topic, [(str(i).encode(), b"v")])
    after = scrape(broker)
    flushes = value(after, "kafka_log_logflushstats_log_flush_time_seconds_count") - before
    assert flushes >= n, flushes
    took = value(after, "kafka_log_logflushstats_log_flush_time_seconds_sum")
    assert took > 0, took


def make_lagging_group(broker, admin, topic, produced: int, read: int):
    """A group whose member read and committed `read` of `produced` records; returns
    the open consumer (the group stays Stable) and what the client says it lags."""
    from confluent_kafka import Consumer, TopicPartition

    create_topic(admin, topic, partitions=1)
    produce(broker.bootstrap, topic, [(None, f"m{i}".encode()) for i in range(produced)], partition=0)
    group = f"lagging-{topic}"
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "log_level": 3,
    })
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < read and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    assert len(got) >= read, f"read {len(got)} of {read}"
    last = got[read - 1]
    c.commit(offsets=[TopicPartition(topic, 0, last.offset() + 1)], asynchronous=False)
    tp = TopicPartition(topic, 0)
    committed = c.committed([tp], timeout=10)[0].offset
    _, high = c.get_watermark_offsets(tp, timeout=10)
    return c, group, committed, high - committed


def test_consumer_lag_in_the_metrics_matches_what_the_group_has_not_read(broker, admin, topic):
    c, group, committed, client_lag = make_lagging_group(broker, admin, topic, produced=100, read=30)
    try:
        assert (committed, client_lag) == (30, 70)
        samples = wait_for(
            lambda: (s := scrape(broker))
            and value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=0) is not None
            and s,
            10, "the group's lag in /metrics")
        assert value(samples, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=0) == client_lag
        assert value(samples, "kafka_consumergroup_current_offset", consumergroup=group, topic=topic, partition=0) == 30
        assert value(samples, "kafka_coordinator_group_groupmetadatamanager_num_groups", state="Stable") >= 1
        assert value(samples, "kafka_coordinator_group_rebalances_total") >= 1
        # The consumer fetched the records: bytes out of the topic.
        assert value(samples, "kafka_server_brokertopicmetrics_bytes_out_total", topic=topic) > 0
    finally:
        c.close()
    # Closed: the group is empty, its committed offsets (and lag) stay.
    samples = wait_for(
        lambda: (s := scrape(broker))
        and value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=0) == 70
        and value(s, "kafka_coordinator_group_groupmetadatamanager_num_groups", state="Empty") >= 1
        and s,
        15, "the group Empty with its lag")
    assert samples


def test_health_endpoints(broker):
    status, _, body = http_get(f"{broker.metrics_url}/health/live")
    assert (status, body) == (200, "live\n")
    status, _, body = http_get(f"{broker.metrics_url}/health/ready")
    assert status == 200 and body.startswith("ready"), body
    assert http_get(f"{broker.metrics_url}/nope")[0] == 404
    status, headers, _ = http_get(f"{broker.metrics_url}/metrics", method="POST")
    assert status == 405 and headers.get("Allow") == "GET, HEAD"


def test_a_node_without_a_quorum_is_live_but_not_ready(tmp_path):
    """One voter of three alone elects no controller: up, but not ready."""
    port, cport = free_port(), free_port()
    b = Broker({
        "node.id": "1",
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.voters": f"1@{HOST}:{cport},2@{HOST}:{free_port()},3@{HOST}:{free_port()}",
    }, name="no-quorum", port=port)
    b.start_process()
    try:
        wait_for(lambda: http_get(f"{b.metrics_url}/health/live")[0] == 200, 30, "/health/live")
        status, _, body = http_get(f"{b.metrics_url}/health/ready")
        assert status == 503, body
        assert "no active controller known" in body, body
        assert value(scrape(b), "kafka_controller_kafkacontroller_active_controller_count") == 0
    finally:
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        b.proc = None
        b.close()


def test_an_empty_listener_turns_it_off(make_broker):
    b = make_broker({"metrics.http.listener": ""})
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((HOST, b.metrics_port)) != 0, "something answers on the metrics port"
    assert "metrics listener turned off" in b.log_tail()


@pytest.mark.parametrize("bad", ["9644", "metrics.example:80", "127.0.0.1:70000"])
def test_a_bad_listener_stops_start_up_naming_the_key(tmp_path, bad):
    args = [str(broker_binary()), "serve", "--override", f"log.dirs={tmp_path}",
            "--override", f"listeners=PLAINTEXT://{HOST}:{free_port()}",
            "--override", f"metrics.http.listener={bad}"]
    out = subprocess.run(args, capture_output=True, timeout=30)
    text = out.stderr.decode()
    assert out.returncode == 2, text
    assert "metrics.http.listener" in text and "IP:PORT" in text, text


def test_a_taken_port_stops_start_up_naming_the_key(tmp_path):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [str(broker_binary()), "serve", "--override", f"log.dirs={tmp_path}",
                "--override", f"listeners=PLAINTEXT://{HOST}:{free_port()}",
                "--override", f"metrics.http.listener={HOST}:{port}"]
        out = subprocess.run(args, capture_output=True, timeout=30)
    text = out.stderr.decode()
    assert out.returncode != 0, text
    assert f"metrics.http.listener={HOST}:{port}" in text, text


def keep(shot) -> None:
    """Screenshots live in the test's tmp dir (pytest keeps the last three runs); with
    TROUPE_TEST_OUTPUT set they are copied there too, for CI artifacts."""
    out = os.environ.get("TROUPE_TEST_OUTPUT")
    if out:
        os.makedirs(out, exist_ok=True)
        shutil.copy(shot, out)
    print(f"status page screenshot: {shot}")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (tests/run.sh installs it)")
    return path


def test_status_page_in_a_real_browser(broker, admin, topic, tmp_path):
    browser = chromium()
    c, group, committed, client_lag = make_lagging_group(broker, admin, topic, produced=50, read=20)
    try:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"]
        url = f"{broker.metrics_url}/"
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, timeout=120)
        assert dom.returncode == 0, dom.stderr.decode()[-2000:]
        shot = tmp_path / "status-page.png"
        run = subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,1400", url],
                             capture_output=True, timeout=120)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
    finally:
        c.close()
    html = dom.stdout.decode()
    page = Rows()
    page.feed(html)
    assert '<meta http-equiv="refresh"' in html
    assert page.ids.get("controller") == "broker 1", page.ids
    partition_rows = [(a, cells) for a, cells in page.rows if a.get("data-topic") == topic and "data-partition" in a
                      and len(cells) == 8]
    assert len(partition_rows) == 1, partition_rows
    attrs, cells = partition_rows[0]
    # Topic, partition, leader, replicas, ISR, log start, high watermark, log end.
    assert cells == [topic, "0", "1", "1", "1", "0", "50", "50"], cells
    assert attrs["class"] == "in-sync"
    group_rows = [(a, cells) for a, cells in page.rows if a.get("data-topic") == topic and len(cells) == 5]
    assert len(group_rows) == 1, group_rows
    attrs, cells = group_rows[0]
    assert cells == [topic, "0", str(committed), "50", str(client_lag)], cells
    assert client_lag == 30 and attrs["class"] == "lagging"
    assert f"<h3>{group}</h3>" in html
    # The screenshot is a real PNG of the rendered page, kept with the test's files.
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, len(data)
    keep(shot)


def test_cluster_under_replication_elections_and_the_status_page(request, tmp_path):
    """Three nodes, RF 3 with min.insync.replicas 3: a follower killed -9 leaves the
    ISR (an ISR shrink, an under-replicated and under-min-ISR partition, highlighted
    on the status page); the leader killed -9 makes the controller elect a new one."""
    from confluent_kafka.admin import NewTopic

    from cluster import Cluster

    c = Cluster(3, name=request.node.name[:30], overrides={"replica.lag.time.max.ms": "2000"})
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        admin = c.admin()  # kept: the futures fail once their client is destroyed
        fs = admin.create_topics([NewTopic("watched", 1, 3, config={"min.insync.replicas": "3"})],
                                 operation_timeout=10)
        fs["watched"].result(timeout=20)

        def part(via=None):
            via = via if via is not None else c.live()[0].node_id
            return c.metadata(via).topics["watched"].partitions[0]

        wait_for(lambda: part().leader in c.nodes and sorted(part().isrs) == [1, 2, 3], 20, "ISR of 3")
        leader = part().leader
        samples = {i: scrape(b) for i, b in c.nodes.items()}
        assert sum(value(s, "kafka_controller_kafkacontroller_active_controller_count") for s in samples.values()) == 1
        assert value(samples[leader], "kafka_server_replicamanager_under_replicated_partitions") == 0
        for b in c.nodes.values():
            wait_for(lambda b=b: http_get(f"{b.metrics_url}/health/ready")[0] == 200, 20, f"{b.bootstrap} ready")

        follower = next(i for i in part().replicas if i != leader)
        c.kill9(follower)
        wait_for(lambda: follower not in part(leader).isrs, 20, "the dead follower leaves the ISR")
        s = wait_for(lambda: (s := scrape(c.nodes[leader]))
                     and value(s, "kafka_server_replicamanager_under_replicated_partitions") == 1 and s,
                     10, "one under-replicated partition on the leader")
        assert value(s, "kafka_server_replicamanager_under_min_isr_partition_count") == 1
        assert value(s, "kafka_server_replicamanager_isr_shrinks_total") >= 1

        browser = chromium()
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"]
        url = f"{c.nodes[leader].metrics_url}/"
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, timeout=120)
        assert dom.returncode == 0, dom.stderr.decode()[-2000:]
        shot = tmp_path / "status-page-under-replicated.png"
        subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1280,900", url], capture_output=True,
                       timeout=120, check=True)
        page = Rows()
        page.feed(dom.stdout.decode())
        rows = [(a, cells) for a, cells in page.rows if a.get("data-topic") == "watched"]
        assert len(rows) == 1, rows
        attrs, cells = rows[0]
        assert attrs["class"] == "under-replicated", attrs
        assert cells[2] == str(leader) and sorted(cells[3].split(", ")) == ["1", "2", "3"], cells
        assert str(follower) not in cells[4].split(", "), cells
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep(shot)

        # The follower returns and rejoins: an ISR expansion.
        c.restart(follower)
        wait_for(lambda: sorted(part(leader).isrs) == [1, 2, 3], 30, "the follower rejoins the ISR")
        s = wait_for(lambda: (s := scrape(c.nodes[leader]))
                     and value(s, "kafka_server_replicamanager_under_replicated_partitions") == 0 and s,
                     10, "no under-replicated partition")
        assert value(s, "kafka_server_replicamanager_isr_expands_total") >= 1
        # The leader is killed: the active controller (one of the two left, a quorum)
        # elects another replica of the ISR, and counts it.
        others = [i for i in c.nodes if i != leader]
        before = sum(value(scrape(c.nodes[i]), "kafka_controller_controllerstats_leader_elections_total")
                     for i in others)
        c.kill9(leader)
        wait_for(lambda: part(others[0]).leader in others, 30, "another replica leads")
        after = sum(value(scrape(c.nodes[i]), "kafka_controller_controllerstats_leader_elections_total")
                    for i in others)
        assert after > before, (before, after)
        assert sum(value(scrape(c.nodes[i]), "kafka_controller_controllerstats_unclean_leader_elections_total")
                   for i in others) == 0
    finally:
        c.close()


def test_lag_of_partitions_led_by_other_brokers(request):
    """Three nodes, a topic with one replica per partition spread over the brokers: the
    group's coordinator hosts at most one of its partitions, yet exports the lag of
    every committed partition (the others' high watermarks come from their leaders)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import NewTopic

    from cluster import Cluster

    c = Cluster(3, name=request.node.name[:30])
    request.node._troupe_brokers = list(c.nodes.values())
    c.start()
    try:
        admin = c.admin()
        admin.create_topics([NewTopic("spread", 3, 1, config={"min.insync.replicas": "1"})], operation_timeout=10)["spread"].result(timeout=20)
        meta = wait_for(lambda: (m := c.metadata(c.live()[0].node_id).topics.get("spread"))
                        and len(m.partitions) == 3 and all(p.leader in c.nodes for p in m.partitions.values())
                        and m, 20, "3 partitions with leaders")
        assert len({p.leader for p in meta.partitions.values()}) >= 2, "partitions spread over brokers"
        bootstrap = ",".join(b.bootstrap for b in c.nodes.values())
        produced = {0: 40, 1: 50, 2: 60}
        for p, n in produced.items():
            produce(bootstrap, "spread", [(None, b"v")] * n, partition=p)
        committed = {0: 10, 1: 25, 2: 0}
        group = "lag-spread"
        cons = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "log_level": 3})
        cons.commit(offsets=[TopicPartition("spread", p, o) for p, o in committed.items()], asynchronous=False)
        cons.close()

        def lags():
            for s in (scrape(b) for b in c.nodes.values()):
                got = {p: value(s, "kafka_consumergroup_lag", consumergroup=group, topic="spread", partition=p)
                       for p in produced}
                if any(v is not None for v in got.values()):
                    return got
            return None

        want = {p: float(produced[p] - committed[p]) for p in produced}
        got = wait_for(lambda: (g := lags()) == want and g, 20, f"lag {want} exported by the coordinator")
        assert got == want
    finally:
        c.close()


def test_a_consumer_reading_along_is_served_from_the_log_tail(broker, admin, topic):
    """A consumer at the log end is answered from the log's tail index (the last 32
    batches, read without the log actor); one starting far behind is read by the log
    actor. Both get every record, in order, with its own offset and value."""
    from confluent_kafka import TopicPartition
    from harness import consumer, drain, producer

    create_topic(admin, topic)

    def reads(samples):
        return {s: value(samples, "troupe_fetch_partition_reads_total", source=s) or 0 for s in ("tail", "log")}

    before = reads(scrape(broker))
    c = consumer(broker.bootstrap, **{"fetch.wait.max.ms": 200})
    p = producer(broker.bootstrap, linger_ms=0)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # One batch per record, each read as it arrives.
        for i in range(40):
            p.produce(topic, value=f"along-{i}".encode(), partition=0)
            assert p.flush(10) == 0
            m = drain(c, 1, timeout=10, expect_eof=False)[0]
            assert (m.offset(), m.value()) == (i, f"along-{i}".encode())
    finally:
        c.close()
    along = reads(scrape(broker))
    assert along["tail"] - before["tail"] >= 30, (before, along)

    # 40 batches: a reader from offset 0 starts below the tail's 32 batches.
    got = drain_from(broker.bootstrap, topic, 0, 40)
    assert [(m.offset(), m.value()) for m in got] == [(i, f"along-{i}".encode()) for i in range(40)]
    behind = reads(scrape(broker))
    assert behind["log"] > along["log"], (along, behind)


def drain_from(bootstrap, topic, offset, count):
    from harness import consume

    return consume(bootstrap, topic, 0, offset, count)


def test_appends_that_only_write_are_made_on_the_request_thread_and_rolls_on_the_storage_thread(broker, admin, topic):
    """A leader append that only writes is made on the request's thread; one that rolls
    a segment (segment.bytes 4096 here, so every few batches) goes to the log actor on
    the storage thread. The metric tells the two apart, and the records read back whole
    and in order whichever thread wrote them."""
    from harness import consume, producer

    create_topic(admin, topic, config={"segment.bytes": "4096"})

    def appends(samples):
        return {t: value(samples, "troupe_log_leader_appends_total", thread=t) or 0 for t in ("request", "storage")}

    def pauses(samples):
        return value(samples, "troupe_log_inline_append_pauses_total") or 0

    first = scrape(broker)
    before, paused = appends(first), pauses(first)
    p = producer(broker.bootstrap, linger_ms=0)
    values = [f"{i:04d}".encode() * 200 for i in range(60)]  # 800 bytes: ~4 batches a segment
    for v in values:
        p.produce(topic, value=v, partition=0)
        assert p.flush(10) == 0
    last = scrape(broker)
    after = appends(last)
    made = {t: after[t] - before[t] for t in after}
    assert made["request"] + made["storage"] == 60, made
    if pauses(last) == paused:
        # (An append that blocked in the kernel sends the next 10 s to the storage thread.)
        assert made["request"] >= 30, made
    assert made["storage"] >= 10, made
    got = consume(broker.bootstrap, topic, 0, 0, 60)
    assert [(m.offset(), m.value()) for m in got] == list(enumerate(values))


def test_network_threads_share_the_connections_and_serve_them_whole(make_broker, tmp_path):
    """With num.network.threads=3 connections are served by three threads of their own,
    each new one by the thread serving the fewest: the per-thread gauge adds up to the
    open connections and stays balanced, records produced and consumed over them come
    back whole and in order, and closed connections leave the threads."""
    from confluent_kafka.admin import AdminClient

    from harness import consume, producer, unique_topic

    b = make_broker({"num.network.threads": "3"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    topic = unique_topic("network-threads")
    create_topic(admin, topic, partitions=4)

    def loads():
        samples = scrape(b)
        per = [value(samples, "troupe_network_thread_connections", thread=str(t)) for t in range(4)]
        return per, value(samples, "kafka_server_socket_server_metrics_connection_count")

    # Raw sockets, so the count is exactly ours: 7 connections over 3 threads.
    socks = [socket.create_connection((HOST, b.port)) for _ in range(7)]
    try:
        per, total = wait_for(lambda: (lambda r: r if r[1] >= 7 else None)(loads()), 10, "7 connections")
        assert per[3] is None, per  # three threads, no fourth
        assert sum(per[:3]) == total, (per, total)
        # Least-loaded first: a closed connection (the admin client's bootstrap) may
        # leave one thread a connection behind until the next arrives.
        assert min(per[:3]) > 0 and max(per[:3]) - min(per[:3]) <= 2, per
    finally:
        for s in socks:
            s.close()

    p = producer(b.bootstrap, linger_ms=0)
    values = [f"record-{i}".encode() for i in range(400)]
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % 4)
    assert p.flush(30) == 0
    for part in range(4):
        got = consume(b.bootstrap, topic, part, 0, 100)
        assert [m.value() for m in got] == values[part::4]
    del p
    # Every connection closed (ours, the producer's, the consumers'): the threads are empty
    # again, except the admin client's and the scrape's own.
    per, total = wait_for(lambda: (lambda r: r if r[1] <= 2 else None)(loads()), 20, "connections to close")
    assert sum(per[:3]) == total, (per, total)


def test_one_network_thread_serves_connections_on_the_main_thread(broker):
    """The default (num.network.threads=1) keeps connections on the main thread: no
    per-thread gauge is set."""
    samples = scrape(broker)
    assert value(samples, "troupe_network_thread_connections", thread="0") is None
