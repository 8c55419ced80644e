"""Dependency outages for fault tests: a TCP proxy that a test can cut and restore.

A process under test (a Celery worker, daphne) reaches PostgreSQL or Redis through a `TcpProxy`
instead of the real port. `cut()` is what an outage looks like from that process: every open
connection is reset and new connections are refused (the listening socket is closed), as when
the server dies. `restore()` listens again on the same port, as when it comes back. The real
server keeps running, so the rest of the test session (which talks to it directly) is not
affected.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target` until cut. Start it with `start()`."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._accepted_at: dict[tuple[socket.socket, socket.socket], int] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.accepted = 0

    # --- control ------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._listen()
        return self

    def cut(self) -> None:
        """The dependency goes away: refuse new connections, reset every open one, newest first.

        The order is fixed because it matters to what is tested: which of a Celery worker's
        broker sockets reports the reset first decided whether kombu 5.7.0 crashed (its newest,
        the remote-control pub/sub connection, while a BRPOP is pending: it crashed every time;
        see spokestack/celery_resilience.py)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: it wakes the accept() blocked on the socket and stops listening at
            # once; close() alone leaves the socket listening until that accept() returns, so the
            # next connection would be accepted (not refused) and restore() could not bind.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            pairs = sorted(self._pairs, key=lambda pair: self._accepted_at.get(pair, -1), reverse=True)
            self._pairs, self._accepted_at = set(), {}
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    # RST rather than FIN: what a client sees when the server process dies.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()

    def restore(self) -> None:
        """The dependency is back on the same address."""
        if self._listener is None:
            self._listen()

    @contextlib.contextmanager
    def outage(self, seconds: float):
        """Cut now, restore after `seconds` (in a thread), yielding at once."""
        self.cut()
        timer = threading.Timer(seconds, self.restore)
        timer.start()
        try:
            yield
        finally:
            timer.join()

    def stop(self) -> None:
        self._stopped.set()
        self.cut()

    @property
    def url_port(self) -> int:
        return self.port

    # --- forwarding ---------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 10
        while True:
            try:
                listener.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        listener.listen(256)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-proxy-accept", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = (client, upstream)
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    client.close()
                    upstream.close()
                    return
                self._pairs.add(pair)
                self._accepted_at[pair] = self.accepted
                self.accepted += 1
            threading.Thread(target=self._pump, args=(pair,), name="tcp-proxy-pump", daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        selector = selectors.DefaultSelector()
        try:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                with self._lock:
                    if pair not in self._pairs:
                        return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                self._pairs.discard(pair)
                self._accepted_at.pop(pair, None)
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()
