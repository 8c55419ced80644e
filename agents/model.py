"""Model access, in one module (DESIGN §5).

`call_model` streams one assistant turn through the `anthropic` SDK: text and tool-input deltas go
to the caller's callbacks as they arrive, cancellation is polled between stream events, and the
turn comes back as plain dicts with usage and cost. After the SDK's own retries, an overloaded
(529) or rate-limited (429) model is retried once on the request's fallback model.

`get_client()` is the one place a client is made. With `settings.ANTHROPIC_API_KEY` it is a real
`anthropic.Anthropic` (which honours `ANTHROPIC_BASE_URL` itself: the tests' and benchmarks' fake
Messages API server is reached that way); without one it is the same SDK class over an httpx2
client whose transport is the offline model (`OfflineTransport`), so the same SDK code path — SSE
parsing, accumulation, retries — runs either way.

Settings read: ANTHROPIC_API_KEY, ANTHROPIC_MAX_RETRIES (default 2, the SDK's retries per
model), ANTHROPIC_TIMEOUT_S (default 120, per read). `reset_client()` forgets the cached clients.

Besides `spokestack/egress.py`, this is the only product module that may import an HTTP client
(tests/spokestack/test_egress.py enforces it), which is why the offline model's transport shell
lives here while its behaviour lives in `agents/offline_model.py`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2
from django.conf import settings

from agents import offline_model
from spokestack.hygiene import scrub_unstorable

log = logging.getLogger(__name__)


class ModelCancelled(Exception):
    """The run was cancelled while the model was streaming; the stream was closed."""


class ModelUnavailable(Exception):
    """The model and its fallback both failed; `message` says why, for the run's error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True)
class ModelRequest:
    model: str
    fallback_model: str
    system: list[dict]  # Anthropic system text blocks (cache_control on the last stable one)
    tools: list[dict]  # sorted by name, cache_control on the last
    messages: list[dict]
    max_tokens: int
    effort: str = ""  # output_config.effort (low … max); empty: the API's default
    metadata: dict[str, str] = field(default_factory=dict)  # e.g. {"run_id": …}; never sent as prompt text


@dataclass(frozen=True)
class StreamCallbacks:
    on_text: Callable[[str], None] = lambda text: None  # a text delta
    on_tool_input: Callable[[str, str, str], None] = lambda tool_use_id, name, partial_json: None
    should_cancel: Callable[[], bool] = lambda: False  # polled while streaming


@dataclass(frozen=True)
class ModelTurn:
    content: list[dict[str, Any]]  # assistant content blocks as plain dicts (text / tool_use)
    stop_reason: str  # end_turn | tool_use | max_tokens | stop_sequence | refusal
    usage: Usage
    model: str  # the model that answered (the fallback when it was used)
    used_fallback: bool
    simulated: bool  # answered by the offline model
    cost_usd: float
    fallback_reason: str = ""  # why the primary model was not used (empty when it answered)
    # Characters PostgreSQL cannot store (U+0000, lone surrogates) that the model wrote, removed
    # from `content` (and from the text deltas given to `on_text`) before anything stores them.
    removed: int = 0


# --- prices -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float  # 5-minute cache write (1.25 × input)
    cache_read: float  # 0.1 × input


_OPUS = Price(input=5.0, output=25.0, cache_write=6.25, cache_read=0.50)
_SONNET = Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.30)
_HAIKU = Price(input=1.0, output=5.0, cache_write=1.25, cache_read=0.10)

PRICES: dict[str, Price] = {
    "claude-opus-5-5": _OPUS,
    "claude-opus-5": _OPUS,
    "claude-sonnet-5-5": _SONNET,
    "claude-sonnet-5": _SONNET,
    "claude-haiku-5-5": _HAIKU,
    "claude-opus-4-8": _OPUS,
    "claude-opus-4-7": _OPUS,
    "claude-opus-4-6": _OPUS,
    "claude-opus-4-5": _OPUS,
    "claude-opus-4-5-20251101": _OPUS,
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4-5-20250929": _SONNET,
    "claude-haiku-4-5": _HAIKU,
    "claude-haiku-4-5-20251001": _HAIKU,
}
DEFAULT_PRICE = _SONNET


def price_for(model: str) -> Price:
    """The model's price. A model missing from `PRICES` (a new or preview model, the mythos and fable
    families) is priced as Sonnet, so a run's cost is an estimate rather than zero."""
    return PRICES.get(model, DEFAULT_PRICE)


def cost_usd(model: str, usage: Usage) -> float:
    price = price_for(model)
    total = (usage.input_tokens * price.input + usage.output_tokens * price.output
             + usage.cache_creation_input_tokens * price.cache_write
             + usage.cache_read_input_tokens * price.cache_read)
    return round(total / 1_000_000, 8)


# --- the offline transport ----------------------------------------------------------------


class _EventStream(httpx2.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


class OfflineTransport(httpx2.BaseTransport):
    """Answers POST /v1/messages with the offline model (`agents.offline_model`), streaming or not.

    No network: the SDK's request never leaves the process. Each SSE event is its own chunk, so the
    SDK sees text and tool input arrive in several deltas, as from the API."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return self._answer(request, request.read())

    def _answer(self, request: httpx2.Request, content: bytes) -> httpx2.Response:
        if request.method != "POST" or not request.url.path.rstrip("/").endswith("/v1/messages"):
            return httpx2.Response(404, json=offline_model.error_body(404, f"The offline model serves POST /v1/messages, "
                                                                          f"not {request.method} {request.url.path}"))
        try:
            body = json.loads(content or b"{}")
        except ValueError:
            return httpx2.Response(400, json=offline_model.error_body(400, "The request body is not JSON."))
        reply = offline_model.respond(body)
        headers = {"request-id": f"req_offline_{reply.id[-12:]}"}
        if not body.get("stream"):
            return httpx2.Response(200, json=reply.message(), headers=headers)
        events = offline_model.sse_events(reply)
        chunks = [offline_model.encode_event(name, data) for name, data in events]
        return httpx2.Response(200, headers={**headers, "content-type": "text/event-stream"},
                               stream=_EventStream(chunks))


# --- the client ---------------------------------------------------------------------------

MAX_CONNECTIONS = 1000
DEFAULT_TIMEOUT_S = 120.0  # per read while streaming: a turn may think for a while between events
POOL_SHARDS = 16
"""A worker's runs share POOL_SHARDS SDK clients, each thread always the same one: httpcore's
connection pool walks all its connections on every request and every response close, so one pool
behind 200 concurrent streams made that walk about a quarter of the SDK's CPU (measured: 200 bare
SDK streams of 3 turns, 11–12 ms of CPU per stream with one pool, 8–10 ms with 16)."""
_clients: dict[tuple, anthropic.Anthropic] = {}
_clients_lock = threading.Lock()
_shard = threading.local()
_next_shard = itertools.count()


def _client_config() -> tuple:
    return (settings.ANTHROPIC_API_KEY or "", os.environ.get("ANTHROPIC_BASE_URL", ""),
            int(getattr(settings, "ANTHROPIC_MAX_RETRIES", 2)),
            float(getattr(settings, "ANTHROPIC_TIMEOUT_S", DEFAULT_TIMEOUT_S)))


def _is_offline(client: anthropic.Anthropic) -> bool:
    return getattr(client, "_spokestack_offline", False)


def _thread_shard() -> int:
    shard = getattr(_shard, "index", None)
    if shard is None:
        shard = _shard.index = next(_next_shard) % POOL_SHARDS
    return shard


def get_client() -> anthropic.Anthropic:
    """The SDK client for the current configuration and this thread (made once, shared with the
    other threads of its shard, see POOL_SHARDS).

    Settings read: ANTHROPIC_API_KEY (unset → offline model), ANTHROPIC_MAX_RETRIES (default 2),
    ANTHROPIC_TIMEOUT_S (default 120); the SDK itself reads ANTHROPIC_BASE_URL."""
    config = _client_config()
    key = (*config, _thread_shard() if config[0] else 0)  # the offline model has no pool
    client = _clients.get(key)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            api_key, _, max_retries, timeout_s = config
            timeout = httpx2.Timeout(timeout_s, connect=10.0)
            if api_key:
                # keep every connection of a worker's many concurrent runs alive between turns
                http_client = anthropic.DefaultHttpxClient(timeout=timeout, limits=httpx2.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS))
                client = anthropic.Anthropic(api_key=api_key, max_retries=max_retries, timeout=timeout,
                                             http_client=http_client)
                client._spokestack_offline = False
            else:
                http_client = httpx2.Client(transport=OfflineTransport(), timeout=timeout)
                client = anthropic.Anthropic(api_key="offline-model-no-key", base_url="https://api.anthropic.com",
                                             max_retries=max_retries, timeout=timeout, http_client=http_client)
                client._spokestack_offline = True
            _clients[key] = client
    return client


def reset_client() -> None:
    """Forget the cached clients (tests change settings and ANTHROPIC_BASE_URL between cases)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a stale client must not fail a reset
            log.debug("closing a cached Anthropic client failed", exc_info=True)


# --- the call -----------------------------------------------------------------------------

_FALLBACK_STATUSES = (429, 529)
_FALLBACK_TYPES = ("overloaded_error", "rate_limit_error")


def _should_fall_back(error: Exception) -> bool:
    return isinstance(error, anthropic.APIStatusError) and (
        error.status_code in _FALLBACK_STATUSES or getattr(error, "type", None) in _FALLBACK_TYPES)


def _redact(text: str) -> str:
    key = settings.ANTHROPIC_API_KEY or ""
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    return text


def _describe(error: Exception, model: str) -> str:
    """A readable, key-free sentence about an SDK error."""
    if isinstance(error, anthropic.APIStatusError):
        detail = error.api_message or error.type or ""
        what = {400: "rejected the request", 401: "refused the API key", 403: "refused access",
                404: "does not know this model or endpoint", 413: "found the request too large",
                429: "is rate-limited", 529: "is overloaded"}.get(error.status_code, "failed")
        if error.status_code < 400:  # an `error` event in the middle of a 200 stream
            what = {"overloaded_error": "is overloaded", "rate_limit_error": "is rate-limited"}.get(
                error.type or "", "failed while streaming")
        text = f"{model} {what} (HTTP {error.status_code}{', ' + error.type if error.type else ''})"
        if detail and detail != error.type:
            text += f": {detail}"
    elif isinstance(error, anthropic.APITimeoutError):
        text = f"{model} did not answer in time"
    elif isinstance(error, anthropic.APIConnectionError):
        text = f"{model} could not be reached (connection error)"
    else:
        text = f"{model} failed: {type(error).__name__}: {error}"
    return _redact(text)


def _stream_kwargs(request: ModelRequest, model: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "messages": request.messages}
    if request.system:
        kwargs["system"] = request.system
    if request.tools:
        kwargs["tools"] = request.tools
    if request.effort:
        kwargs["output_config"] = {"effort": request.effort}
    return kwargs


class _Turn:
    """Builds the assistant turn from the stream's raw events, as the SDK's MessageStream does,
    without its per-event snapshot copies and its re-parse of the partial tool input on every
    delta (measured: about 1 ms per turn here; the re-parse grows with the square of the input)."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_json: dict[int, list[str]] = {}
        self.stop_reason = ""
        self.usage: dict[str, int] = {}

    def add(self, event: Any, callbacks: StreamCallbacks) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta, block = event.delta, self.blocks[event.index]
            if delta.type == "text_delta":
                block["text"] = block.get("text", "") + delta.text
                callbacks.on_text(scrub_unstorable(delta.text)[0])
            elif delta.type == "input_json_delta":
                self.tool_json.setdefault(event.index, []).append(delta.partial_json)
                callbacks.on_tool_input(block.get("id", ""), block.get("name", ""), delta.partial_json)
            elif delta.type == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.thinking
            elif delta.type == "signature_delta":
                block["signature"] = delta.signature
            elif delta.type == "citations_delta":
                block.setdefault("citations", []).append(delta.citation.to_dict())
        elif kind == "content_block_start":
            self.blocks[event.index] = event.content_block.to_dict()
        elif kind == "content_block_stop":
            parts = self.tool_json.pop(event.index, None)
            if parts is not None and "".join(parts).strip():
                self.blocks[event.index]["input"] = json.loads("".join(parts))  # ValueError: unreadable input
        elif kind == "message_start":
            self.usage = {k: v for k, v in event.message.usage.to_dict().items() if isinstance(v, int)}
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # message_delta usage counts are cumulative totals: they replace message_start's.
            self.usage.update({k: v for k, v in event.usage.to_dict().items() if isinstance(v, int)})

    def parts(self) -> tuple[list[dict], str, Usage]:
        content = []
        for _, block in sorted(self.blocks.items()):
            if block.get("type") == "tool_use":
                block = {"type": "tool_use", "id": block["id"], "name": block["name"],
                         "input": block.get("input") if isinstance(block.get("input"), dict) else {}}
            elif block.get("type") == "text":
                block = {"type": "text", "text": block.get("text", "")}
            content.append(block)
        usage = Usage(**{field: self.usage.get(field, 0) for field in Usage.__dataclass_fields__})
        return content, self.stop_reason or "end_turn", usage


def _stream_turn(client: anthropic.Anthropic, request: ModelRequest, model: str,
                 callbacks: StreamCallbacks) -> tuple[list[dict], str, Usage]:
    if callbacks.should_cancel():
        raise ModelCancelled("cancelled before the model was called")
    turn = _Turn()
    with client.messages.create(stream=True, **_stream_kwargs(request, model)) as stream:
        for event in stream:
            if callbacks.should_cancel():
                stream.close()
                raise ModelCancelled("cancelled while the model was streaming")
            turn.add(event, callbacks)
    return turn.parts()


def _models(request: ModelRequest) -> list[str]:
    if request.fallback_model and request.fallback_model != request.model:
        return [request.model, request.fallback_model]
    return [request.model]


def _failure(error: Exception, model: str, attempt: int, models: list[str], reason: str) -> tuple[str, Exception | None]:
    """After a failed attempt: (the reason to fall back, None) or (reason, the exception to raise)."""
    if isinstance(error, anthropic.AnthropicError):
        description = _describe(error, model)
        if attempt == 0 and len(models) > 1 and _should_fall_back(error):
            log.warning("model %s unavailable after retries, falling back to %s: %s", model, models[1], description)
            return description, None
        if attempt > 0:
            return reason, ModelUnavailable(f"{reason}; the fallback {description}")
        return reason, ModelUnavailable(description)
    if isinstance(error, httpx2.HTTPError):  # the connection broke or stalled in the middle of the stream
        return reason, ModelUnavailable(_redact(f"{model}'s stream broke off ({type(error).__name__}); "
                                                "the turn was not completed"))
    # ValueError: the SDK could not parse the model's tool input JSON (RecursionError: nested too deeply)
    return reason, ModelUnavailable(_redact(f"{model} returned a response that could not be read: {error}"))


_CALL_ERRORS = (anthropic.AnthropicError, httpx2.HTTPError, ValueError, RecursionError)


def _turn(parts: tuple[list[dict], str, Usage], model: str, attempt: int, simulated: bool, reason: str) -> ModelTurn:
    content, stop_reason, usage = parts
    content, removed = scrub_unstorable(content)
    return ModelTurn(content=content, stop_reason=stop_reason, usage=usage, model=model, used_fallback=attempt > 0,
                     simulated=simulated, cost_usd=cost_usd(model, usage), fallback_reason=reason, removed=removed)


def call_model(request: ModelRequest, *, callbacks: StreamCallbacks = StreamCallbacks()) -> ModelTurn:  # noqa: B008
    """One assistant turn for `request`, streamed to `callbacks`.

    Raises ModelCancelled when `callbacks.should_cancel()` turns true (polled before the call and
    between stream events; the stream is closed), ModelUnavailable when the model fails (after the
    SDK's retries) and, for overload or rate limits, the fallback model fails too. Deltas already
    forwarded from a primary model that failed mid-stream are followed by the fallback's own."""
    client = get_client()
    models, reason = _models(request), ""
    for attempt, model in enumerate(models):
        try:
            parts = _stream_turn(client, request, model, callbacks)
        except _CALL_ERRORS as error:
            reason, raised = _failure(error, model, attempt, models, reason)
            if raised is not None:
                raise raised from None
            continue
        return _turn(parts, model, attempt, _is_offline(client), reason)
    raise ModelUnavailable(reason or "no model to call")  # unreachable: the loop returns or raises
