"""The MCP client of the platform: the SDK's streamable HTTP client over the egress policy.

Every HTTP request the `mcp` SDK makes (the POSTs of the session, the GET event stream it
opens, the DELETE that ends the session, and each hop of a redirect it follows on its own
origin) passes `spokestack.egress_async.EgressTransport`, which does for each one what
`spokestack.egress` does for a webhook: the URL is vetted (scheme, credentials, every resolved
address against the refused ranges and metadata addresses, the development loopback allowance),
the connection dials only the vetted address (no second lookup), a redirect to a refused address
is refused with the egress message (the SDK itself follows redirects only within the endpoint's
origin, and those hops come back to the transport to be vetted again), a response body is capped
and compressed bodies are refused (so the cap counts what is read).

The Celery worker and the admin are synchronous: `list_tools` and `call_tool` run the async
client with `anyio.run` in the calling thread, under one deadline for the whole exchange
(connect, handshake, call, end of session). A session lives for one exchange: nothing is
pooled between calls, so a call never rides a connection vetted for another.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import anyio

from spokestack.egress import EgressClient, EgressError, vet_url
from spokestack.egress_async import EgressTransport, async_client

MAX_TOOL_PAGES = 20
MAX_TOOLS = 500


class McpError(Exception):
    """The exchange with an MCP server failed. `message` is safe to show a model or an admin:
    it names the server's origin and the reason, never a path, header or secret."""

    def __init__(self, message: str, *, reason: str = "mcp_error", outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.outcome_unknown = outcome_unknown


# --- the exchanges --------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict
    read_only: bool


@dataclass(frozen=True)
class RemoteResult:
    content: Any  # the structured content (a dict) or the text of the content blocks
    is_error: bool


@dataclass(frozen=True)
class Endpoint:
    url: str
    headers: dict[str, str]
    timeout_s: float


def _failure(exc: BaseException, transport: EgressTransport, origin: str, timeout_s: float) -> McpError:
    if transport.error is not None:
        error = transport.error
        return McpError(error.message, reason=getattr(error, "reason", error.code),
                        outcome_unknown=error.outcome_unknown)
    if isinstance(exc, TimeoutError):
        return McpError(f"{origin} did not finish in {timeout_s:g} s.", reason="timeout", outcome_unknown=True)
    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, McpError):
            return leaf
    from mcp.shared.exceptions import MCPError

    for leaf in leaves:
        if isinstance(leaf, MCPError):
            text = str(getattr(leaf, "message", "") or leaf)[:300]
            return McpError(f"{origin} answered with an MCP error: {text}", reason="mcp_error")
    return McpError(f"The MCP exchange with {origin} failed ({leaves[0].__class__.__name__}).", reason="mcp_error",
                    outcome_unknown=True)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _origin(url: str) -> str:
    try:
        return vet_url(url, resolver=None).origin
    except EgressError as exc:
        raise McpError(exc.message, reason=getattr(exc, "reason", exc.code)) from None


def _run(endpoint: Endpoint, work, egress: EgressClient | None) -> Any:
    """Run `work(client)` in a session with the server, under the endpoint's deadline."""
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    origin = _origin(endpoint.url)
    transport = EgressTransport(egress=egress)

    async def exchange() -> Any:
        with anyio.fail_after(endpoint.timeout_s):
            async with async_client(transport=transport, headers=endpoint.headers,
                                    timeout_s=endpoint.timeout_s) as http:
                async with Client(streamable_http_client(endpoint.url, http_client=http), mode="legacy", cache=None,
                                  read_timeout_seconds=endpoint.timeout_s) as client:
                    return await work(client)

    try:
        return anyio.run(exchange)
    except McpError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure of the exchange becomes one readable McpError
        raise _failure(exc, transport, origin, endpoint.timeout_s) from None


def list_tools(endpoint: Endpoint, *, egress: EgressClient | None = None) -> list[RemoteTool]:
    """Every tool the server lists (pages followed, at most MAX_TOOLS)."""

    async def work(client) -> list[RemoteTool]:
        tools: list[RemoteTool] = []
        cursor = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                annotations = getattr(tool, "annotations", None)
                tools.append(RemoteTool(name=tool.name, description=tool.description or "",
                                        input_schema=dict(tool.input_schema or {}),
                                        read_only=bool(annotations and getattr(annotations, "read_only_hint", False))))
            cursor = page.next_cursor
            if not cursor or len(tools) >= MAX_TOOLS:
                break
        return tools[:MAX_TOOLS]

    return _run(endpoint, work, egress)


def call_tool(endpoint: Endpoint, name: str, arguments: dict, *, egress: EgressClient | None = None) -> RemoteResult:
    """Call one tool; its answer as the model reads it (structured content, else the text blocks)."""

    async def work(client) -> RemoteResult:
        result = await client.call_tool(name, arguments, read_timeout_seconds=endpoint.timeout_s)
        return RemoteResult(content=_content_of(result), is_error=bool(result.is_error))

    return _run(endpoint, work, egress)


def _content_of(result) -> Any:
    structured = getattr(result, "structured_content", None)
    if isinstance(structured, dict) and structured:
        return structured
    blocks = list(result.content or [])
    if len(blocks) == 1 and getattr(blocks[0], "type", "") == "text":
        try:  # a tool that answers one JSON document: the model (and the run's record) get it as data
            data = json.loads(blocks[0].text)
        except ValueError:
            data = None
        if isinstance(data, dict | list):
            return data
    parts = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource" and getattr(block.resource, "text", None) is not None:
            parts.append(block.resource.text)
        else:
            parts.append(f"[{kind or 'content'} block omitted: only text reaches the model]")
    return "\n".join(parts)


def cap_text(value: Any, limit: int) -> tuple[Any, bool]:
    """`value` within `limit` characters (as JSON text when it is not a string): (value, capped)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return value, False
    kept = max(0, limit - 120)
    note = (f"\n[Result capped: {kept} of {len(text)} characters shown "
            f"({math.ceil(len(text) / 1024)} KiB in all). Ask for less, e.g. a narrower query.]")
    return text[:kept] + note, True
