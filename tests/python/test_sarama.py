"""Sarama (Go, Debian's golang-github-shopify-sarama-dev 1.22: its own protocol code,
requests picked by its configured Kafka version 2.1): admin, idempotent snappy
producer, a two-member consumer group, committed offsets, a partition consumer.
The scenario is tests/go/sarama_scenarios.go; tests/run.sh installs Go and Sarama."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.sarama

BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": "0"}

GO_DIR = Path(__file__).resolve().parent.parent / "go"
GOPATH = "/usr/share/gocode"  # where Debian's golang-*-dev packages put their sources


@pytest.fixture(scope="module")
def scenario_binary(tmp_path_factory):
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/github.com/Shopify/sarama").is_dir():
        pytest.fail("Sarama tests need Go and Debian's golang-github-shopify-sarama-dev: "
                    "run tests/run.sh, or apt-get install golang-go golang-github-shopify-sarama-dev")
    out = tmp_path_factory.mktemp("sarama") / "sarama_scenarios"
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH,
               GOCACHE=str(out.parent / "gocache"), CGO_CFLAGS="-w")
    proc = subprocess.run([go, "build", "-o", str(out), "sarama_scenarios.go"], cwd=GO_DIR,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"go build failed:\n{proc.stderr[-4000:]}"
    return out


def test_sarama_idempotent_produce_group_commit_and_consume(broker, topic, scenario_binary):
    proc = subprocess.run([str(scenario_binary), broker.bootstrap, topic, f"{topic}-group"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"sarama scenario failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "scenario: ok" in proc.stdout
    assert "committed offsets 100/100/100" in proc.stdout
