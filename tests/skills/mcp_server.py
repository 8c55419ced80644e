"""A real MCP server for the tests, written with the `mcp` SDK (MCPServer, streamable HTTP) and
served by uvicorn in a thread on 127.0.0.1 (a random port). It records the calls it gets and
the auth header each request carried."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from mcp.server.mcpserver import MCPServer


class McpTestServer:
    def __init__(self, *, json_response: bool = False, stateless: bool = False) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.auth_headers: list[str | None] = []
        mcp = MCPServer("agency-tools")

        @mcp.tool(description="The loyalty tier of a brand in the agency CRM.")
        def brand_tier(brand: str) -> dict:
            self.calls.append(("brand_tier", {"brand": brand}))
            return {"brand": brand, "tier": "gold", "owner": "Layla"}

        @mcp.tool(description="Past campaign notes for a brand; slow, and long when asked for many.")
        async def campaign_notes(brand: str, count: int = 1, delay_s: float = 0.0) -> str:
            self.calls.append(("campaign_notes", {"brand": brand, "count": count, "delay_s": delay_s}))
            await asyncio.sleep(delay_s)
            return "\n".join(f"Note {i} for {brand}: " + "glow " * 20 for i in range(count))

        app = mcp.streamable_http_app(json_response=json_response, stateless_http=stateless)
        self.app = self._recording(app)
        self.server: uvicorn.Server | None = None
        self.port = 0

    def _recording(self, app):
        async def wrapped(scope, receive, send):
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                value = headers.get(b"authorization")
                self.auth_headers.append(value.decode() if value else None)
            await app(scope, receive, send)

        return wrapped

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> McpTestServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self._thread.join(10)
