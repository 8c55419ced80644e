"""A local fake Messages API server: the real `anthropic` SDK talks to it over loopback HTTP.

Tests and benchmarks point the SDK at it with ANTHROPIC_BASE_URL (and a dummy ANTHROPIC_API_KEY),
which also works for other processes such as a Celery worker. It answers POST /v1/messages like the
API: JSON, or Server-Sent Events (message_start, content_block_start / _delta / _stop,
message_delta, message_stop) over chunked HTTP/1.1 with keep-alive.

Scripting (concurrent tests do not interfere: each script is keyed by a marker string that only
that test's messages contain)::

    api = FakeMessagesApi(latency_s=0.0)
    base_url = api.start()
    api.script("task-7f3a", [
        {"status": 529},                                     # one request answered 529 (overloaded)
        {"content": [{"type": "tool_use", "name": "get_client_info", "input": {"client_id": 1}}],
         "stop_reason": "tool_use", "delay_s": 0.5},
        {"content": [{"type": "text", "text": "Done."}]},   # stop_reason defaults to end_turn
    ])
    ...
    api.requests("task-7f3a")   # every request body that carried the marker, in order
    api.stop()

Each request whose messages contain a marker consumes that marker's next turn, retries included
(the SDK's retries and the fallback model's request are requests too). A turn may carry
"usage" (else estimated), "delay_s" (else the server's latency), "status" (an error response; with
"retry_after_s", default 0.001, so the SDK's retries do not sleep), "error_message", "model"
(the model reported; default: the model asked for), "mid_stream_error" (an SSE `error` event of
that type after the first delta), "mid_stream_disconnect" (the connection drops after the first
delta), "silent_s" (the server says nothing at all, not even headers, for that long first: a
model that is slow to start answering). Requests without a scripted turn left get the offline model's
answer (`agents.offline_model.respond`), or a 500 with `default="error"`.

Latency is real waiting in the server thread, spread over the stream's events.

It also answers POST /v1/embeddings, in Voyage's and OpenAI's shape, for knowledge search's semantic
ranking: deterministic vectors of 1,024 numbers in which words of one `CONCEPTS` group share a
dimension ("shades" is near "palette"), other words hash to their own, so a query finds the
passage that means the same without a word in common. `embeddings_status` (e.g. 503) makes it
refuse; `embedding_requests` keeps each request's (input_type, number of texts).

As a process, for benchmarks::

    python -m tests.fakes.messages_api --port 8799 --latency 2.0
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import socket
import threading
import time
import zlib
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agents import offline_model

EMBEDDING_DIMENSIONS = 1024
CONCEPTS = (
    {"palette", "colour", "colours", "color", "colors", "shade", "shades", "hue", "hues"},
    {"voice", "tone", "personality", "sound", "sounds"},
    {"logo", "logotype", "emblem", "mark"},
    {"typeface", "typefaces", "font", "fonts", "typography", "lettering"},
    {"price", "prices", "pricing", "cost", "costs", "quote"},
)
_STOP = {"the", "a", "an", "and", "or", "of", "to", "in", "on", "is", "are", "we", "our", "may", "which", "what",
         "how", "use", "it", "its", "for", "with", "be", "do", "does", "can", "should", "us", "you", "your"}


def fake_embedding(text: str) -> list[float]:
    """A unit vector: one dimension per concept (weight 3) and per other word (1, by its CRC)."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _STOP:
            continue
        concept = next((n for n, group in enumerate(CONCEPTS) if word in group), None)
        if concept is not None:
            vector[concept] += 3.0
        else:
            vector[len(CONCEPTS) + zlib.crc32(word.encode()) % (EMBEDDING_DIMENSIONS - len(CONCEPTS))] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if not norm:
        vector[-1], norm = 1.0, 1.0
    return [x / norm for x in vector]


def _complete_content(content: list[dict], marker: str, index: int) -> list[dict]:
    blocks = []
    for position, block in enumerate(content):
        block = dict(block)
        if block.get("type") == "tool_use":
            block.setdefault("id", offline_model._stable_id("toolu", marker, index, position))
            block.setdefault("input", {})
        elif block.get("type", "text") == "text":
            block = {"type": "text", "text": block.get("text", "")}
        blocks.append(block)
    return blocks


class FakeMessagesApi:
    """A scriptable Messages API on 127.0.0.1 (see the module docstring)."""

    def __init__(self, latency_s: float = 0.0, default: str = "offline", host: str = "127.0.0.1",
                 port: int = 0, record: bool = True) -> None:
        if default not in ("offline", "error"):
            raise ValueError("default is 'offline' or 'error'")
        self.latency_s = latency_s
        self.record = record  # keep request bodies for requests(); off for long soaks
        self.default = default
        self._address = (host, port)
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[dict]] = defaultdict(deque)
        self._positional: dict[str, list[dict]] = {}
        self._positional_system: dict[tuple[str, str], list[dict]] = {}
        self._served: dict[str, int] = defaultdict(int)
        self._requests: list[dict] = []
        self._raw: list[bytes] = []
        self._headers: list[dict] = []
        self._answer_ms: dict[str, list[float]] = defaultdict(list)
        self._in_flight = 0
        self.most_in_flight = 0  # the most requests answered at once (parallelism, not timing)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.embeddings_status = 200  # another status: every embeddings request is refused with it
        self.embedding_requests: list[tuple[str, int]] = []  # (input_type, how many texts), oldest first

    # --- scripting and inspection ---------------------------------------------------------

    def script(self, marker: str, turns: list[dict], *, by_position: bool = False,
               system_contains: str | None = None) -> FakeMessagesApi:
        """Queue `turns` for requests whose messages contain `marker` (appended to any queued).

        With `by_position`, nothing is consumed: a request gets the turn at its conversation's
        position (how many assistant turns it already holds), as a model answers the same
        conversation the same way. A run interrupted mid-turn and resumed is asked that turn again.
        With `system_contains` (positional only) the turns answer only requests whose system prompt
        also contains that text, before any other script: a model that behaves differently under
        another version's prompt."""
        if not marker:
            raise ValueError("a marker must be a non-empty string")
        if system_contains is not None and not by_position:
            raise ValueError("system_contains scripts are positional")
        with self._lock:
            if system_contains is not None:
                self._positional_system[(marker, system_contains)] = [dict(turn) for turn in turns]
            elif by_position:
                self._positional[marker] = [dict(turn) for turn in turns]
            else:
                self._scripts[marker].extend(dict(turn) for turn in turns)
        return self

    def pending(self, marker: str) -> int:
        """Scripted turns not yet served for `marker`."""
        with self._lock:
            return len(self._scripts.get(marker, ()))

    def requests(self, marker: str | None = None) -> list[dict]:
        """The request bodies received (decoded JSON), oldest first; only those whose messages
        contain `marker` when given."""
        with self._lock:
            bodies = list(self._requests)
        if marker is None:
            return bodies
        return [b for b in bodies if marker in json.dumps(b.get("messages", []), ensure_ascii=False)]

    def raw_requests(self, marker: str | None = None) -> list[bytes]:
        """The request bodies exactly as received (for byte-identical prefix checks), oldest first."""
        with self._lock:
            pairs = list(zip(self._requests, self._raw, strict=True))
        return [raw for body, raw in pairs
                if marker is None or marker in json.dumps(body.get("messages", []), ensure_ascii=False)]

    def answer_ms(self, marker: str) -> list[float]:
        """How long the server took to answer each scripted request of `marker` (from the request
        read to the last byte written, scripted delays included), in order: the model's own time,
        which benchmarks subtract to get the platform's."""
        with self._lock:
            return list(self._answer_ms.get(marker, ()))

    def request_headers(self) -> list[dict]:
        """The headers of every request received, lower-cased names, oldest first."""
        with self._lock:
            return list(self._headers)

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._positional_system.clear()
            self._requests.clear()
            self._raw.clear()
            self._headers.clear()
            self._answer_ms.clear()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Serve in a background thread; returns the base URL (for ANTHROPIC_BASE_URL)."""
        handler = type("Handler", (_Handler,), {"api": self})
        server = _Server(self._address, handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-messages-api", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> FakeMessagesApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- answering ------------------------------------------------------------------------

    def _next_turn(self, body: dict, raw: bytes) -> tuple[str, dict | None, int]:
        text = json.dumps(body.get("messages", []), ensure_ascii=False)
        with self._lock:
            if self.record:
                self._requests.append(body)
                self._raw.append(raw)
            if self._positional_system:
                system = json.dumps(body.get("system", ""), ensure_ascii=False)
                for (marker, needle), turns in self._positional_system.items():
                    if marker in text and needle in system:
                        position = sum(m.get("role") == "assistant" for m in body.get("messages", []))
                        self._served[marker] += 1
                        return marker, turns[min(position, len(turns) - 1)], position
            for marker, turns in self._positional.items():
                if marker in text:
                    position = sum(m.get("role") == "assistant" for m in body.get("messages", []))
                    self._served[marker] += 1
                    return marker, turns[min(position, len(turns) - 1)], position
            for marker, queue in self._scripts.items():
                if marker in text and queue:
                    index = self._served[marker]
                    self._served[marker] += 1
                    return marker, queue.popleft(), index
        return "", None, 0

    def _reply(self, body: dict, marker: str, turn: dict, index: int) -> offline_model.Reply:
        content = _complete_content(turn.get("content") or [{"type": "text", "text": ""}], marker, index)
        stop_reason = turn.get("stop_reason") or (
            "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn")
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        usage.update(turn.get("usage") or offline_model.estimate_usage(body, content))
        return offline_model.Reply(model=turn.get("model") or str(body.get("model", "")), content=content,
                                   stop_reason=stop_reason, usage=usage,
                                   id=offline_model._stable_id("msg", marker, index, body.get("model")))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a benchmark opens hundreds of streams at once


class _Handler(BaseHTTPRequestHandler):
    api: FakeMessagesApi
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # small SSE writes must not wait for the client's delayed ACK (Nagle): ~40 ms per turn otherwise
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def _send_json(self, status: int, data: dict, headers: dict | None = None) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", f"req_fake_{time.monotonic_ns()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._send_json(404, offline_model.error_body(404, "The fake Messages API serves POST /v1/messages."))

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        started = time.perf_counter()
        with self.api._lock:
            self.api._in_flight += 1
            self.api.most_in_flight = max(self.api.most_in_flight, self.api._in_flight)
        try:
            marker = self._answer(raw)
        finally:
            with self.api._lock:
                self.api._in_flight -= 1
        if marker:
            with self.api._lock:
                self.api._answer_ms[marker].append((time.perf_counter() - started) * 1000)

    def _embeddings(self, raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        texts = body.get("input") or []
        texts = [texts] if isinstance(texts, str) else texts
        with self.api._lock:
            self.api.embedding_requests.append((body.get("input_type", ""), len(texts)))
            status = self.api.embeddings_status
        if status != 200:
            self._send_json(status, {"detail": f"the fake embeddings API answers {status}"})
            return
        self._send_json(200, {"object": "list", "model": body.get("model", ""),
                              "data": [{"object": "embedding", "index": n, "embedding": fake_embedding(text)}
                                       for n, text in enumerate(texts)]})

    def _answer(self, raw: bytes) -> str:
        """Answer one POST; returns the marker of the scripted turn it served ('' for none)."""
        if self.path.split("?")[0].rstrip("/") == "/v1/embeddings":
            self._embeddings(raw)
            return ""
        if self.path.split("?")[0].rstrip("/") != "/v1/messages":
            self._send_json(404, offline_model.error_body(404, f"No route {self.path}"))
            return ""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, offline_model.error_body(400, "The request body is not JSON."))
            return ""
        api = self.api
        with api._lock:
            api._headers.append({k.lower(): v for k, v in self.headers.items()})
        marker, turn, index = api._next_turn(body, raw)
        if turn is None:
            if api.default == "error":
                self._send_json(500, offline_model.error_body(500, "No scripted turn for this request."))
                return ""
            reply = offline_model.respond(body)
            delay = api.latency_s
            mid_stream_error = None
        else:
            delay = float(turn.get("delay_s", api.latency_s))
            if turn.get("status"):
                time.sleep(delay)
                status = int(turn["status"])
                self._send_json(status, offline_model.error_body(status, turn.get("error_message")),
                                {"retry-after-ms": str(int(1000 * float(turn.get("retry_after_s", 0.001))) or 1)})
                return marker
            reply = api._reply(body, marker, turn, index)
            time.sleep(float(turn.get("silent_s", 0)))
            mid_stream_error = turn.get("mid_stream_error")
            if turn.get("mid_stream_disconnect"):
                mid_stream_error = "disconnect"
        if not body.get("stream"):
            time.sleep(delay)
            self._send_json(200, reply.message())
            return marker
        self._stream(reply, delay, mid_stream_error)
        return marker

    def _stream(self, reply: offline_model.Reply, delay: float, mid_stream_error: str | None) -> None:
        events = offline_model.sse_events(reply)
        disconnect = mid_stream_error == "disconnect"
        if mid_stream_error:
            first_delta = next(i for i, (name, _) in enumerate(events) if name == "content_block_delta")
            events = events[: first_delta + 1]
            if not disconnect:
                events.append(("error", {"type": "error", "error": {
                    "type": mid_stream_error, "message": mid_stream_error.replace("_", " ").capitalize()}}))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_fake_{time.monotonic_ns()}")
        self.end_headers()
        pause = delay / len(events) if delay > 0 else 0.0
        chunks = []
        for name, data in events:
            chunk = offline_model.encode_event(name, data)
            chunks.append(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        try:
            if pause:
                # against a schedule, so the turn takes `delay` however long the writes take
                started = time.monotonic()
                for number, chunk in enumerate(chunks, start=1):
                    wait = started + number * pause - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    self.wfile.write(chunk)
                if not disconnect:
                    self.wfile.write(b"0\r\n\r\n")
            else:  # no latency: one write, the events still arrive as separate SSE events
                self.wfile.write(b"".join(chunks) + (b"" if disconnect else b"0\r\n\r\n"))
            if disconnect:  # the connection drops in the middle of the body
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client closed the stream (a cancelled run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Anthropic Messages API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per model turn, spread over the stream")
    parser.add_argument("--default", choices=("offline", "error"), default="offline")
    args = parser.parse_args(argv)
    api = FakeMessagesApi(latency_s=args.latency, default=args.default, host=args.host, port=args.port)
    base_url = api.start()
    print(f"fake Messages API at {base_url} (latency {args.latency} s per turn)", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    api.stop()


if __name__ == "__main__":
    main()
