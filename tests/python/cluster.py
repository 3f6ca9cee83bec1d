"""A multi-process Troupe cluster for black-box tests: N nodes, each broker and
controller voter, started from KRaft-style settings (the shipped config/cluster files
with ports and directories overridden), on loopback ports chosen free.

`Cluster` starts, kill -9s, SIGSTOPs/SIGCONTs, SIGTERMs and restarts nodes by their own
pids; `metadata()` asks a node over the Kafka protocol (confluent-kafka) who the brokers
and the controller are. Every wait polls with a deadline.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from harness import REPO_ROOT, Broker, free_port, wait_for

SHIPPED = REPO_ROOT / "config" / "cluster"

# Short timeouts so fault tests stay fast; the shipped files keep Kafka's defaults.
FAST = {
    "broker.heartbeat.interval.ms": "300",
    "broker.session.timeout.ms": "3000",
    "controller.quorum.election.timeout.ms": "1000",
    "group.initial.rebalance.delay.ms": "200",
}


class Cluster:
    def __init__(
        self,
        n: int = 3,
        overrides: dict[str, str] | None = None,
        name: str = "cluster",
        partitionable: bool = False,
        front_proxies: bool = True,
    ):
        """`partitionable`: every node reaches the other voters through a LinkProxy per
        directed link (`self.links[(from, to)]`), and everyone reaches a node's Kafka
        listener (clients, and other brokers' replica fetchers) through its advertised
        front proxy (`self.links[("front", i)]`), so tests can cut the network. A
        node's own port (`nodes[i].port`) stays reachable directly: a client on the
        isolated side. `front_proxies=False` leaves the Kafka listeners direct (only the
        controller links can be cut): a client of the isolated node then reaches only
        what that node itself tells it."""
        self.ports = {i: (free_port(), free_port()) for i in range(1, n + 1)}
        self.links = {}
        if partitionable:
            from faults import LinkProxy

            for a in self.ports:
                for b, (_, c) in self.ports.items():
                    if a != b:
                        self.links[(a, b)] = LinkProxy(("127.0.0.1", c))
            if front_proxies:
                for a, (p, _) in self.ports.items():
                    self.links[("front", a)] = LinkProxy(("127.0.0.1", p))
        self.nodes: dict[int, Broker] = {}
        for i, (p, c) in self.ports.items():
            def addr(j):
                return self.ports[j][1] if j == i or not partitionable else self.links[(i, j)].port

            voters = ",".join(f"{j}@127.0.0.1:{addr(j)}" for j in self.ports)
            front = self.links[("front", i)].port if ("front", i) in self.links else p
            o = {
                "listeners": f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{front}",
                "controller.quorum.voters": voters,
            }
            if partitionable:
                # Voter lists differ per node (proxies): name the cluster explicitly.
                o["cluster.id"] = "partitionable-test-cluster"
            o.update(FAST)
            o.update(overrides or {})
            b = Broker(o, name=f"{name}-n{i}", config_file=SHIPPED / f"node-{i}.properties", port=p)
            b.overrides["log.dirs"] = str(b.log_dir)
            b.node_id = i
            self.nodes[i] = b

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Cluster":
        # Start them all before waiting: a voter alone cannot elect a controller.
        for b in self.nodes.values():
            b.start_process()
        for b in self.nodes.values():
            b.wait_ready()
        self.wait_brokers(set(self.nodes), 30)
        return self

    def close(self):
        """SIGTERM every node at once (one after another, the last would wait out its
        controlled shutdown without a quorum), then each must exit 0."""
        errors = []
        for b in self.nodes.values():
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGCONT)
                b.proc.send_signal(signal.SIGTERM)
        for b in self.nodes.values():
            try:
                if b.proc is not None:
                    code = b.proc.wait(30)
                    b.proc = None
                    if code != 0:
                        errors.append(f"node {b.node_id} exited with {code}\n{b.log_tail()}")
            except Exception as e:  # noqa: BLE001 - teardown must clean up every node
                errors.append(f"node {b.node_id}: {e!r}")
            finally:
                if b.proc is not None:
                    b.kill9()
                b.close()
        for link in self.links.values():
            link.close()
        if errors:
            raise AssertionError("\n".join(errors))

    def isolate(self, i: int):
        """Cut node `i` off from every other node (both directions)."""
        for (a, b), link in self.links.items():
            if i in (a, b):
                link.block()

    def heal(self):
        for link in self.links.values():
            link.unblock()

    def live(self) -> list[Broker]:
        return [b for b in self.nodes.values() if b.is_running()]

    def kill9(self, i: int):
        self.nodes[i].kill9()

    def sigstop(self, i: int):
        os.kill(self.nodes[i].proc.pid, signal.SIGSTOP)

    def sigcont(self, i: int):
        os.kill(self.nodes[i].proc.pid, signal.SIGCONT)

    def restart(self, i: int):
        b = self.nodes[i]
        b.proc = None
        b.start()

    # ------------------------------------------------------------------ views
    def admin(self, i: int | None = None) -> AdminClient:
        nodes = [self.nodes[i]] if i is not None else self.live()
        return AdminClient({"bootstrap.servers": ",".join(b.bootstrap for b in nodes), "socket.timeout.ms": 5000})

    def metadata(self, i: int):
        return self.admin(i).list_topics(timeout=5)

    def controller(self, via: int | None = None) -> int:
        via = via or self.live()[0].node_id
        return self.metadata(via).controller_id

    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.live())

    def wait_brokers(self, ids: set[int], timeout: float, via: int | None = None):
        """Until Metadata (from every live node, or `via`) lists exactly `ids` and a controller."""

        def ok():
            vias = [via] if via else [b.node_id for b in self.live()]
            for v in vias:
                md = self.metadata(v)
                if set(md.brokers) != ids or md.controller_id not in self.nodes:
                    return False
            return True

        return wait_for(ok, timeout, f"brokers {sorted(ids)} listed with a controller")


SPLIT = REPO_ROOT / "config" / "cluster-split"


class ControllerNode(Broker):
    """A controller-only node (`process.roles=controller`): it has no Kafka listener,
    so it is ready once its CONTROLLER listener accepts connections."""

    def wait_ready(self, timeout: float = 30.0):
        import socket

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"controller exited with {self.proc.returncode}\n{self.log_tail()}")
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True

        wait_for(ready, timeout, f"controller {self.node_id} listening on {self.port}")


class SplitCluster(Cluster):
    """Dedicated roles, started from the shipped config/cluster-split files: controller-
    only voters 1..c and broker-only nodes c+1..c+b, on free loopback ports. `nodes`
    holds them all (close() stops them all); `live()` and the client views are brokers
    only, as clients can reach nothing else."""

    def __init__(self, controllers: int = 3, brokers: int = 3, overrides: dict[str, str] | None = None, name: str = "split"):
        self.links = {}
        self.controller_ids = list(range(1, controllers + 1))
        self.broker_ids = list(range(controllers + 1, controllers + brokers + 1))
        ports = {i: free_port() for i in self.controller_ids + self.broker_ids}
        voters = ",".join(f"{i}@127.0.0.1:{ports[i]}" for i in self.controller_ids)
        self.nodes: dict[int, Broker] = {}
        for i in self.controller_ids + self.broker_ids:
            p = ports[i]
            if i in self.controller_ids:
                o = {"listeners": f"CONTROLLER://127.0.0.1:{p}"}
                cls, cfg = ControllerNode, SPLIT / f"controller-{i}.properties"
            else:
                o = {"listeners": f"PLAINTEXT://127.0.0.1:{p}", "advertised.listeners": f"PLAINTEXT://127.0.0.1:{p}"}
                cls, cfg = Broker, SPLIT / f"broker-{i}.properties"
            o["controller.quorum.voters"] = voters
            o.update(FAST)
            o.update(overrides or {})
            b = cls(o, name=f"{name}-n{i}", config_file=cfg, port=p)
            b.overrides["log.dirs"] = str(b.log_dir)
            b.node_id = i
            self.nodes[i] = b

    def start(self) -> "SplitCluster":
        for b in self.nodes.values():
            b.start_process()
        for b in self.nodes.values():
            b.wait_ready()
        self.wait_brokers(set(self.broker_ids), 30)
        return self

    def live(self) -> list[Broker]:
        return [self.nodes[i] for i in self.broker_ids if self.nodes[i].is_running()]

    def wait_brokers(self, ids: set[int], timeout: float, via: int | None = None):
        """Until Metadata from every live broker lists exactly `ids`, naming one of them
        as the controller (KRaft brokers name a live broker, never a controller-only node)."""

        def ok():
            vias = [via] if via else [b.node_id for b in self.live()]
            for v in vias:
                md = self.metadata(v)
                if set(md.brokers) != ids or md.controller_id not in ids:
                    return False
            return True

        return wait_for(ok, timeout, f"brokers {sorted(ids)} listed with a broker as controller")

    def active_controller(self, via: int | None = None) -> int:
        """The Raft leader, from DescribeQuorum sent to a broker (which forwards it)."""
        import kafka_wire as wire

        via = via or self.live()[0].node_id
        with wire.connect("127.0.0.1", self.nodes[via].port) as s:
            err, parts = wire.describe_quorum_v0(s)
        assert err == 0 and parts and parts[0][2] == 0, (err, parts)
        return parts[0][3]
