"""Fault injection for cluster tests: a TCP proxy per directed link between nodes,
owned by the test, that forwards, or blackholes (drops every connection and refuses
new ones: a network partition). Traffic stays on loopback. Proxies run on daemon
threads and stop with `close()`."""

from __future__ import annotations

import socket
import threading


class LinkProxy:
    """Listens on a free loopback port and forwards to `target` (host, port)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.blocked = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(64)
        self.port = self._srv.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def block(self):
        with self._lock:
            self.blocked = True
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def unblock(self):
        with self._lock:
            self.blocked = False

    def close(self):
        self._closed = True
        self.block()
        self._srv.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            with self._lock:
                blocked = self.blocked
            if blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=1)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket):
        try:
            while True:
                data = src.recv(65536)
                if not data or self.blocked:
                    break
                dst.sendall(data)
        except OSError:
            pass
        # Shut down before closing: close() alone neither wakes the other pump blocked
        # in recv() on the same socket nor sends the peer a FIN, so a client would keep
        # a half-dead connection to a killed node and wait out its own timeouts.
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
