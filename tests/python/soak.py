"""Soak: random fault schedules against a 3-node cluster under the checker's load.

    .venv/bin/python tests/python/soak.py --duration 600 --seed 7

Starts three brokers (RF 3, min.insync.replicas 2, a network proxy on every link),
runs an idempotent acks=all load, and until `--duration` seconds have passed injects
one fault at a time, chosen by the seeded random schedule: kill -9 of a partition
leader or of the active controller (then restart), SIGSTOP of a leader past the session
timeout (then SIGCONT), a network partition isolating a leader (then heal), a SIGTERM
restart. After each fault it waits for the cluster to heal (every ISR full) and for
the load to make progress. At the end the checker reads everything back. It prints
each fault, the time to a new leader, and the checker's figures; a failure prints the
seed and the fault that preceded it, so the schedule can be replayed."""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka.admin import NewTopic  # noqa: E402

import kafka_wire as wire  # noqa: E402
from checker import Load, verify  # noqa: E402
from cluster import Cluster  # noqa: E402
from harness import wait_for  # noqa: E402

TOPIC = "soak"
FAULTS = ["kill9-leader", "kill9-controller", "sigstop-leader", "isolate-leader", "sigterm-restart"]


def leader(c: Cluster, p: int, via: int) -> int:
    try:
        return c.metadata(via).topics[TOPIC].partitions[p].leader
    except Exception:  # noqa: BLE001 - a node going away mid-call
        return -1


def healed(c: Cluster, partitions: int) -> bool:
    """Every partition led, every ISR full, as every live node sees it: one node's view
    may be stale (a node just back from SIGSTOP or isolation), and the next fault must
    start from a cluster that is healed in fact."""
    for b in c.live():
        parts = c.metadata(b.node_id).topics[TOPIC].partitions
        for p in range(partitions):
            if parts[p].leader not in c.nodes or sorted(parts[p].isrs) != sorted(c.nodes):
                return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=120, help="seconds of faults")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--client-debug", default="", help="librdkafka debug contexts for the load's producer (stderr), e.g. eos,metadata,broker")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    print(f"soak: seed {args.seed}, {args.duration:.0f}s, faults {FAULTS}", flush=True)
    c = Cluster(3, name=f"soak-{args.seed}", partitionable=True, overrides={"replica.lag.time.max.ms": "2000"})
    c.start()
    load = None
    last = "start"
    try:
        admin = c.admin()
        for f in admin.create_topics(
            [NewTopic(TOPIC, args.partitions, 3, config={"min.insync.replicas": "2"})], operation_timeout=10
        ).values():
            f.result(timeout=20)
        wait_for(lambda: all(leader(c, p, 1) in c.nodes for p in range(args.partitions)), 15, "leaders")
        extra = {"debug": args.client_debug} if args.client_debug else {}
        load = Load(c.bootstrap(), TOPIC, args.partitions, extra=extra).start()
        load.wait_progress(200, 20, "before faults")
        wait_for(lambda: healed(c, args.partitions), 40, "every ISR full before faults")
        end = time.monotonic() + args.duration
        n = 0
        took_by_fault: dict[str, list[float]] = {}
        # Partitions left offline by a fault because their ISR had shrunk to the target
        # alone (a lagging follower is dropped after replica.lag.time.max.ms): with
        # unclean election off, Kafka's answer is to wait for that replica.
        offline = 0
        while time.monotonic() < end:
            n += 1
            fault = rng.choice(FAULTS)
            p = rng.randrange(args.partitions)
            via = c.live()[0].node_id
            target = c.controller(via) if fault == "kill9-controller" else leader(c, p, via)
            if target not in c.nodes:
                time.sleep(1)
                continue
            last = f"#{n} {fault} node {target} (partition {p})"
            others = [i for i in c.nodes if i != target]
            t0 = time.monotonic()
            at = time.strftime("%H:%M:%S", time.gmtime())  # UTC, as the broker logs
            if fault.startswith("kill9"):
                c.kill9(target)
            elif fault == "sigstop-leader":
                c.sigstop(target)
            elif fault == "isolate-leader":
                c.isolate(target)
            else:
                # SIGTERM without waiting for the exit: the time to a new leader is the
                # controlled shutdown's, not the process's whole stop (logs closed,
                # Raft stopped), which is timed on its own below.
                c.nodes[target].proc.send_signal(signal.SIGTERM)
            def moved():
                part = c.metadata(others[0]).topics[TOPIC].partitions[p]
                if part.leader in others:
                    return "moved"
                if part.leader == -1 and list(part.isrs) == [target]:
                    return "offline"
                return None

            if fault == "kill9-controller":
                wait_for(lambda: c.controller(others[0]) in others, 20, "a new controller")
                outcome = "moved"
            else:
                outcome = wait_for(moved, 20, "a new leader")
            took = time.monotonic() - t0
            stopped = ""
            if fault == "sigterm-restart":
                b = c.nodes[target]
                code = b.proc.wait(30)
                b.proc = None
                assert code == 0, f"node {target} exited with {code} after SIGTERM"
                own = re.findall(r"controlled shutdown.*?elapsed_ms=(\d+)", b.log_text().split("===== start #")[-1])
                stopped = f" (process exited after {time.monotonic() - t0:.2f}s; its controlled shutdown took {own[-1] if own else '?'} ms)"
            if outcome == "moved":
                took_by_fault.setdefault(fault, []).append(took)
            else:
                offline += 1
                print(f"{last} at {at}: partition {p} offline, its ISR was node {target} alone; waiting for it", flush=True)
            load.wait_progress(100, 30, f"during {last}")
            if fault == "sigstop-leader":
                c.sigcont(target)
            elif fault == "isolate-leader":
                c.heal()
            else:
                c.restart(target)
            wait_for(lambda: healed(c, args.partitions), 40, f"healing after {last}")
            print(f"{last} at {at}: new leader/controller after {took:.2f}s{stopped}; {load.acked_count()} acked", flush=True)
        load.stop()
        figures = verify(load, c.bootstrap(), min_acked=1)
        for fault, times in sorted(took_by_fault.items()):
            print(
                f"time to a new {'controller' if fault == 'kill9-controller' else 'leader'} after {fault}: "
                f"median {statistics.median(times):.2f}s, max {max(times):.2f}s ({len(times)} faults)"
            )
        injected = sum(len(t) for t in took_by_fault.values()) + offline
        # Each kill -9 of the active controller costs an election or two; a voter that
        # stood while cut off or paused used to cost more (no pre-vote).
        ctl = c.controller()
        s = wire.connect("127.0.0.1", c.nodes[ctl].port, timeout=10)
        try:
            _, quorum = wire.describe_quorum_v1(s)
        finally:
            s.close()
        kills = len(took_by_fault.get("kill9-controller", []))
        print(f"controller epoch (Raft term) at the end: {quorum[1] if quorum else '?'}, after "
              f"{kills} kill -9s of the active controller and {injected} faults in all")
        print(f"soak passed: seed {args.seed}, {injected} faults ({offline} left a partition offline until its last ISR member returned), {figures}")
        return 0
    except Exception as e:  # noqa: BLE001 - report the seed whatever broke
        keep = Path(f"/tmp/troupe-soak-{args.seed}-logs")
        keep.mkdir(exist_ok=True)
        for i, b in c.nodes.items():
            try:
                shutil.copy(b.workdir / "broker.log", keep / f"node-{i}.log")
            except OSError:
                pass
        print(f"soak FAILED: seed {args.seed}, after {last}: {e!r}; broker logs in {keep}", flush=True)
        return 1
    finally:
        if load is not None:
            load.stop()
        c.close()


if __name__ == "__main__":
    sys.exit(main())
