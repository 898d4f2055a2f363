"""A TCP proxy on loopback that can be told to fail: the way to make a real server "go away".

Clients are pointed at the proxy instead of the server. While it passes, bytes flow both ways
unchanged; while it fails, every connection (new and open) is closed at once, which is what a
client sees when the server process dies or the network drops. It never touches the server, so the
server's state (an S3 bucket's objects) survives the outage.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_BUFFER = 65536


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._failing_until = 0.0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self.refused_connections = 0
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def failing(self) -> bool:
        return time.monotonic() < self._failing_until

    def fail_for(self, seconds: float) -> None:
        """Drop every connection, open or new, for the next `seconds`."""
        with self._lock:
            self._failing_until = time.monotonic() + seconds
            open_sockets = list(self._open)
        for sock in open_sockets:
            _close(sock)

    def heal(self) -> None:
        self._failing_until = 0.0

    def close(self) -> None:
        self._stopped.set()
        _close(self._listener)
        with self._lock:
            open_sockets = list(self._open)
        for sock in open_sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.failing:
                self.refused_connections += 1
                _close(client)
                continue
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open.update((client, upstream))
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopped.is_set() and not self.failing:
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(_BUFFER)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def fault_proxy(target: str) -> Iterator[FaultProxy]:
    """A proxy in front of "host:port", closed afterwards."""
    host, port = target.rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    try:
        yield proxy
    finally:
        proxy.close()
