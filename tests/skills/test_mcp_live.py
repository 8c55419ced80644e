"""The live test of MCP servers as skills (issue #21): an agent run started over HTTP (daphne) is
executed by the session's real Celery worker, whose real SDK model (the fake Messages API) calls an
exposed MCP tool; the worker's MCP client reaches the test suite's MCP server (the `mcp` SDK,
uvicorn on loopback) through the egress policy, and the tool's answer reaches the run.

The session's worker allows loopback only on the ports it was started with (the sample ERP and
`worker_webhook`), so the MCP server is reached through `worker_webhook`: a route there relays
each request, unchanged, to the MCP server (stateless, JSON responses: one answer per request)."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import ToolCall
from skills.mcp import mcp_server_create, mcp_tool_update, mcp_tools_refresh
from skills.models import McpTool, McpToolCall
from spokestack.accounts.services import api_token_create
from tuning.services import client_create

from ..conftest import wait_for
from ..loopback_server import Reply
from .mcp_server import McpTestServer

pytestmark = pytest.mark.live

TOKEN = "Bearer live-mcp-token-5e2a"
ROUTE = "/mcp-relay"


@pytest.fixture
def relayed_mcp(worker_webhook, egress_loopback):
    """The MCP test server behind `worker_webhook` + ROUTE (a port the session's worker may call)."""
    server = McpTestServer(json_response=True, stateless=True).start()

    def relay(request):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        headers = {k: v for k, v in request.headers.items() if k not in ("connection", "content-length")}
        conn.request(request.method, "/mcp", body=request.body or None, headers=headers)
        answer = conn.getresponse()
        body = answer.read()
        kept = {k: v for k, v in answer.getheaders() if k.lower() in ("content-type", "mcp-session-id")}
        conn.close()
        return Reply(answer.status, body, kept)

    egress_loopback(worker_webhook.port)
    worker_webhook.route(ROUTE, relay)
    yield server, f"{worker_webhook.url}{ROUTE}"
    worker_webhook.routes.pop(ROUTE, None)
    server.stop()


@pytest.fixture
def stack(live_instance, celery_worker, daphne_server, fake_model, relayed_mcp):
    server, url = relayed_mcp
    instance = live_instance.instance
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        token = api_token_create(user=live_instance.admin, name="live").raw
        added = mcp_server_create(actor=None, name="crm", url=url, auth_secret=TOKEN, timeout_s=10)
        mcp_tools_refresh(actor=None, server=added)
        tier = McpTool.objects.get(remote_name="brand_tier")
        mcp_tool_update(actor=None, tool=tier, changes={"enabled": True, "agent_types": ["copy"]})
    connection.set_schema_to_public()
    return {"instance": instance, "host": instance.domains.get().domain, "port": daphne_server, "token": token,
            "client": client, "model": fake_model, "mcp": server}


def _call(stack, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=30)
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers={
        "Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
        "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def test_the_real_worker_runs_an_agent_that_calls_an_mcp_tool(stack):
    marker = f"mcp-live-{uuid.uuid4().hex[:8]}"
    stack["model"].script(marker, [
        {"content": [{"type": "tool_use", "name": "mcp_crm_brand_tier", "input": {"brand": "Desert Bloom"}}],
         "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Desert Bloom is a gold-tier brand."}], "stop_reason": "end_turn"},
    ])
    status, body = _call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"{marker}: which tier is the brand?", "client_id": stack["client"].pk})
    assert status == 202, body
    run_id = body["run_id"]

    def finished():
        _, detail = _call(stack, "GET", f"/api/v1/agent/status/{run_id}")
        return detail if detail["status"] in ("succeeded", "failed", "cancelled") else None

    detail = wait_for(finished, timeout=60)
    assert detail["status"] == "succeeded", detail
    assert stack["mcp"].calls == [("brand_tier", {"brand": "Desert Bloom"})]
    assert TOKEN in stack["mcp"].auth_headers  # the secret reached the server in its header, from the worker
    offered = [t["name"] for t in stack["model"].requests(marker)[0]["tools"]]
    assert "mcp_crm_brand_tier" in offered
    result = stack["model"].requests(marker)[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is False and json.loads(result["content"])["tier"] == "gold"
    with schema_context(stack["instance"].schema_name):
        call = ToolCall.objects.get(run_id=run_id, name="mcp_crm_brand_tier")
        assert call.result == {"brand": "Desert Bloom", "tier": "gold", "owner": "Layla"}
        assert McpToolCall.objects.get(run_id=run_id).ok is True
    connection.set_schema_to_public()
