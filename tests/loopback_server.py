"""A tiny HTTP(S) server on 127.0.0.1 for egress, ERP and webhook tests.

Routes map a path to a handler `handler(request) -> Reply`; every request and every
accepted connection is recorded, so a test can prove that a refused call never connected.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line

    @classmethod
    def json(cls, data: Any, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **kwargs.pop("headers", {})},
                   **kwargs)


Handler = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def get_request(self):
        sock, address = super().get_request()
        self.owner.connections += 1
        if self.owner.ssl_context is not None:
            sock = self.owner.ssl_context.wrap_socket(sock, server_side=True)
        return sock, address


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def handle_one_request(self) -> None:
        started = time.perf_counter()
        super().handle_one_request()
        if self.command:  # a request was read (not an idle close)
            self.server.owner.server_seconds.append(time.perf_counter() - started)

    def _handle(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                          self.rfile.read(length) if length else b"")
        owner.requests.append(request)
        handler = owner.routes.get(self.path.split("?")[0])
        reply = handler(request) if handler else Reply(404, b'{"error": "no such route"}',
                                                       {"Content-Type": "application/json"})
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        try:
            if isinstance(reply.body, bytes):
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            else:
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for chunk in reply.body:
                    self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts, size cap)
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class LoopbackServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self.server_seconds: list[float] = []  # per request: read, handle and write (for benchmarks)
        self.ssl_context = ssl_context
        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def route(self, path: str, reply: Reply | Handler) -> None:
        self.routes[path] = reply if callable(reply) else (lambda _request, r=reply: r)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
