"""KafkaJS (Node.js, its own protocol implementation: Produce v7, Fetch v11, JoinGroup
v5 and other older versions) against the broker. The scenarios live in
tests/js/kafkajs_scenarios.js; tests/run.sh installs Node.js and `npm ci`s tests/js."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafkajs

BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def run_scenario(name: str, broker, topic: str) -> None:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "kafkajs").is_dir():
        pytest.fail("KafkaJS tests need node and tests/js/node_modules: run tests/run.sh, "
                    "or `npm ci --prefix tests/js`")
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    proc = subprocess.run(
        [node, str(JS_DIR / "kafkajs_scenarios.js"), name, broker.bootstrap, topic, f"{topic}-group"],
        cwd=JS_DIR, env=env, capture_output=True, text=True, timeout=100,
    )
    assert proc.returncode == 0, f"kafkajs scenario {name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert f"scenario {name}: ok" in proc.stdout


def test_kafkajs_idempotent_produce_group_split_commit_and_resume(broker, topic):
    run_scenario("group", broker, topic)


def test_kafkajs_admin_configs_partitions_and_delete_records(broker, topic):
    run_scenario("admin", broker, topic)
