"""No setting is silently ignored (issue #13 item 4): the broker names, in one start-up
line, every setting it accepts but does not apply, exactly the keys the shipped
server.properties marks "Not applied"; socket buffer sizes and the listen backlog take
effect."""

from __future__ import annotations

import re
import subprocess

import kafka_wire
from harness import HOST, REPO_ROOT, Broker

CONFIG = REPO_ROOT / "config" / "server.properties"


def file_keys() -> dict[str, bool]:
    """Key -> whether its comment block says "Not applied" (set or commented-out keys)."""
    keys, comment = {}, []
    for line in CONFIG.read_text().splitlines():
        s = line.strip()
        m = re.match(r"#?([a-z][a-z0-9_.]*\.[a-z0-9_.]+)=", s)
        if m:
            keys[m.group(1)] = any("Not applied" in c for c in comment)
        elif s.startswith("#"):
            comment.append(s)
        elif not s:
            comment = []
    return keys


def test_start_up_names_exactly_the_keys_the_file_marks_not_applied():
    b = Broker({}, name="settings", config_file=CONFIG).start()
    try:
        lines = [l for l in b.log_file.read_text().splitlines() if "accepted but not applied" in l]
        assert len(lines) == 1, lines
        line = lines[0]
        # The shipped file sets them, so it is a warning naming them as set.
        assert " WARN " in line and "set in this configuration" in line, line
        named = set(re.findall(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+", line.split(": ", 1)[1]))
        keys = file_keys()
        assert len(keys) > 80
        marked = {k for k, not_applied in keys.items() if not_applied}
        assert marked, "the file marks no key as not applied"
        assert named == marked, f"logged only: {named - marked}; marked only: {marked - named}"
    finally:
        b.close()


def test_socket_receive_buffer_bytes_takes_effect():
    b = Broker({"socket.receive.buffer.bytes": "32768", "socket.send.buffer.bytes": "131072"}, name="sockbuf").start()
    try:
        with kafka_wire.connect(HOST, b.port) as s:
            kafka_wire.api_versions(HOST, b.port)
            client_port = s.getsockname()[1]
            out = subprocess.run(
                ["ss", "-tmnH", "state", "established", f"( sport = :{b.port} and dport = :{client_port} )"],
                capture_output=True, text=True, check=True,
            ).stdout
            # Linux doubles the value set; the broker's side of this connection:
            assert "rb65536" in out and "tb262144" in out, out
    finally:
        b.close()


def test_socket_listen_backlog_size_takes_effect():
    # A listening socket's Send-Q in `ss -l` is its backlog. tokio alone asks for 128;
    # without the setting applied, this would read 128.
    b = Broker({"socket.listen.backlog.size": "777"}, name="backlog").start()
    try:
        out = subprocess.run(
            ["ss", "-ltnH", f"( sport = :{b.port} )"], capture_output=True, text=True, check=True
        ).stdout
        assert out.split()[2] == "777", out
    finally:
        b.close()
