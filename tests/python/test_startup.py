"""Start-up of the broker process: a listener that cannot be bound stops it at once,
naming the address and the OS error, with a non-zero exit (never a broker that runs
without its listener); an empty listener host binds every interface, as in Kafka."""

from __future__ import annotations

import socket
import subprocess

import pytest

import kafka_wire
from harness import HOST, Broker, broker_binary, free_port

pytestmark = [pytest.mark.restart]


def serve(tmp_path, listeners: str) -> subprocess.CompletedProcess:
    args = [str(broker_binary()), "serve", "--override", f"listeners={listeners}",
            "--override", f"log.dirs={tmp_path / 'data'}"]
    return subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


def test_a_port_in_use_stops_start_up(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = serve(tmp_path, f"PLAINTEXT://{HOST}:{port}")
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode != 0, text
    assert f"{HOST}:{port}" in text, text
    assert "Address already in use" in text, text


def test_an_address_not_on_this_host_stops_start_up(tmp_path):
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
    out = serve(tmp_path, "PLAINTEXT://192.0.2.1:9092")
    text = out.stdout.decode() + out.stderr.decode()
    assert out.returncode != 0, text
    assert "192.0.2.1:9092" in text, text
    assert "Cannot assign requested address" in text, text


def test_an_empty_listener_host_binds_every_interface():
    port = free_port()
    b = Broker({"listeners": f"PLAINTEXT://:{port}", "advertised.listeners": f"PLAINTEXT://{HOST}:{port}"}, port=port)
    try:
        b.start()
        kafka_wire.api_versions(HOST, port, timeout=5.0)
    finally:
        b.close()
