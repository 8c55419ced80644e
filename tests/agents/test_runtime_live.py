"""End to end through the real parts: daphne (HTTP, SSE, websocket), the Redis channel layer, a
real Celery worker subprocess, the real anthropic SDK talking to a local fake Messages API, and
the sample ERP over loopback."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from datetime import datetime

import pytest
import websockets
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import AgentRun, RunEvent, ToolCall
from spokestack.accounts.services import api_token_create
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_set_erp
from tuning.services import client_create

from ..conftest import run_async, wait_for

pytestmark = pytest.mark.live


@pytest.fixture
def stack(live_instance, celery_worker, daphne_server, sample_erp, fake_model, egress_loopback):
    """A fresh instance wired to the sample ERP, with a client and an admin token."""
    egress_loopback(sample_erp[0].server_port)
    instance = live_instance.instance
    instance_set_erp(instance=instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        token = api_token_create(user=live_instance.admin, name="live").raw
    connection.set_schema_to_public()
    return {"instance": instance, "host": instance.domains.get().domain, "port": daphne_server, "token": token,
            "client": client, "erp": sample_erp[0], "model": fake_model, "worker": celery_worker}


def api_call(stack, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=30)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
                          "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def sse_events(stack, run_id, after=0, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=timeout)
    conn.request("GET", f"/api/v1/agent/runs/{run_id}/events", headers={
        "Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
        "Last-Event-ID": str(after)})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("text/event-stream")
    events = []
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    conn.close()
    return events


async def ws_events(stack, run_id, after=0, host=None):
    host = host or stack["host"]
    uri = f"ws://{host}:{stack['port']}/ws/runs/{run_id}/?after={after}"
    events = []
    async with websockets.connect(uri, host="127.0.0.1", port=stack["port"], open_timeout=10,
                                  additional_headers={"Authorization": f"Bearer {stack['token']}"}) as ws:
        async for message in ws:
            events.append(json.loads(message))
    return events



def run_row(stack, run_id) -> AgentRun:
    with schema_context(stack["instance"].schema_name):
        return AgentRun.objects.get(pk=run_id)


def test_execute_streams_every_event_in_order_to_websocket_and_sse(stack):
    marker = f"[e2e-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "text", "text": "Checking the brand first."},
                     {"type": "tool_use", "id": "toolu_a1", "name": "get_brand_guidelines", "input": {}},
                     {"type": "tool_use", "id": "toolu_a2", "name": "check_brand_rules",
                      "input": {"text": "Glow gently this Ramadan."}}],
         "stop_reason": "tool_use", "delay_s": 0.3},
        {"content": [{"type": "text", "text": "Caption: Glow gently this Ramadan. ✨"}], "stop_reason": "end_turn"},
    ])
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Write a Ramadan caption {marker}", "client_id": stack["client"].pk})
    assert status == 202, body
    run_id = body["run_id"]

    results = {}
    sse_thread = threading.Thread(target=lambda: results.setdefault("sse", sse_events(stack, run_id)))
    sse_thread.start()
    results["ws"] = run_async(ws_events(stack, run_id))
    sse_thread.join(30)

    ws_seqs = [e["seq"] for e in results["ws"]]
    assert ws_seqs == list(range(1, len(ws_seqs) + 1)), "every event, in order, none missing"
    assert results["sse"] == results["ws"], "SSE and websocket carry the same events"
    types = [e["type"] for e in results["ws"]]
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    started = [e["payload"]["name"] for e in results["ws"] if e["type"] == "tool.started"]
    assert sorted(started) == ["check_brand_rules", "get_brand_guidelines"]
    finished = {e["payload"]["name"]: e["payload"] for e in results["ws"] if e["type"] == "tool.finished"}
    assert not finished["get_brand_guidelines"]["is_error"], finished
    assert "Desert Bloom" in finished["get_brand_guidelines"]["output"]
    text = "".join(e["payload"]["text"] for e in results["ws"] if e["type"] == "text.delta")
    assert "Caption: Glow gently this Ramadan." in text

    status, detail = api_call(stack, "GET", f"/api/v1/agent/status/{run_id}")
    assert detail["status"] == "succeeded" and detail["usage"]["input_tokens"] > 0
    sent = stack["model"].requests(marker)
    assert len(sent) == 2 and {b["tool_use_id"] for b in sent[1]["messages"][-1]["content"]} == {"toolu_a1", "toolu_a2"}

    # A viewer that reconnects after seq 5 gets exactly the rest.
    replay = run_async(ws_events(stack, run_id, after=5))
    assert [e["seq"] for e in replay] == ws_seqs[5:]
    assert [e["seq"] for e in sse_events(stack, run_id, after=5)] == ws_seqs[5:]


def test_worker_killed_mid_run_resumes_elsewhere_and_runs_the_side_effect_once(stack):
    from agents.tasks import reap_stale_runs

    marker = f"[kill-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "tool_use", "id": "toolu_k1", "name": "save_draft",
                      "input": {"content": "Glow gently this Ramadan."}}], "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Saved the draft."}], "stop_reason": "end_turn", "delay_s": 4.0},
        {"content": [{"type": "text", "text": "Saved the draft."}], "stop_reason": "end_turn"},
    ])
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Save a draft {marker}", "client_id": stack["client"].pk})
    run_id = body["run_id"]

    def draft_saved():
        with schema_context(stack["instance"].schema_name):
            return RunEvent.objects.filter(run_id=run_id, type="tool.finished").exists()

    wait_for(draft_saved)
    time.sleep(0.5)  # the worker is now waiting on the slow second model turn
    stack["worker"].kill()
    stack["worker"].start()
    time.sleep(3.5)  # the dead worker's lease (RUN_LEASE_SECONDS=3) runs out
    with schema_context("public"):
        reap_stale_runs.delay()
    wait_for(lambda: run_row(stack, run_id).status == "succeeded", timeout=60)

    with schema_context(stack["instance"].schema_name):
        assert RunEvent.objects.filter(run_id=run_id, type="run.resumed").exists()
        call = ToolCall.objects.get(run_id=run_id, name="save_draft")
        assert call.attempts == 1 and call.status == "succeeded"
    erp = http.client.HTTPConnection("127.0.0.1", stack["erp"].server_port, timeout=10)
    erp.request("GET", "/writes", headers={"X-Api-Key": DEMO_API_KEYS["alpha"]})
    log = json.loads(erp.getresponse().read())
    writes = [w for w in log["results"] if w["idempotency_key"] == call.idempotency_key]
    assert len(writes) == 1, "the draft was written exactly once"


def test_cancel_mid_stream_stops_the_turn_at_once_with_no_further_tool_calls(stack):
    marker = f"[cancel-{uuid.uuid4().hex[:8]}]"
    stack["model"].script(marker, [
        {"content": [{"type": "text", "text": "word " * 400},
                     {"type": "tool_use", "id": "toolu_c1", "name": "save_draft", "input": {"content": "x"}}],
         "stop_reason": "tool_use", "delay_s": 10.0},
    ])
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Long answer {marker}", "client_id": stack["client"].pk})
    run_id = body["run_id"]

    def streaming():
        with schema_context(stack["instance"].schema_name):
            return RunEvent.objects.filter(run_id=run_id, type="text.delta").exists()

    wait_for(streaming)
    asked = time.monotonic()
    status, cancelled = api_call(stack, "DELETE", f"/api/v1/agent/task/{run_id}")
    assert status == 202
    wait_for(lambda: run_row(stack, run_id).status == "cancelled", timeout=5, interval=0.02)
    # The scripted answer streams for 10 s: a cancel that waited for the turn to end would take that
    # long. (Typically well under a second here; a timing is a benchmark's job, not this test's.)
    assert time.monotonic() - asked < 5.0
    time.sleep(0.5)
    with schema_context(stack["instance"].schema_name):
        assert not ToolCall.objects.filter(run_id=run_id).exists()
        assert RunEvent.objects.filter(run_id=run_id).order_by("-seq").first().type == "run.cancelled"


def test_websocket_for_a_run_of_another_instance_is_refused(stack, instance_b):
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {"agent_type": "brief", "task": "Brief"})
    run_id = body["run_id"]

    async def scenario():
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ws_events(stack, run_id, host="tenant-b.localhost")
        assert refused.value.response.status_code == 403

    run_async(scenario())
    wait_for(lambda: run_row(stack, run_id).is_finished, timeout=30)


def test_a_tool_call_whose_input_streams_for_long_shows_before_the_turn_ends(stack):
    """A short turn's events are written with its checkpoint; a tool input that keeps streaming
    (a long draft) is announced while it streams, so the live page shows the call at once."""
    marker = f"[long-input-{uuid.uuid4().hex[:8]}]"
    draft = "Glow gently this Ramadan with serum that lasts from suhoor to iftar. " * 8
    stack["model"].script(marker, [
        {"content": [{"type": "tool_use", "id": "toolu_d1", "name": "check_brand_rules", "input": {"text": draft}}],
         "stop_reason": "tool_use", "delay_s": 3.0},
        {"content": [{"type": "text", "text": "Checked."}], "stop_reason": "end_turn"},
    ])
    status, body = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "copy", "task": f"Check this draft {marker}", "client_id": stack["client"].pk})
    assert status == 202, body
    events = run_async(ws_events(stack, body["run_id"]))
    at = {e["type"]: e["created_at"] for e in reversed(events)}  # the first of each type
    requested, finished = (datetime.fromisoformat(at[t]) for t in ("tool.requested", "turn.finished"))
    assert (finished - requested).total_seconds() > 0.5, "announced while the input still streamed"


def test_a_worker_keeps_its_redis_connections_across_runs(stack):
    """A worker's runs read their flags in Redis as they start, many at once: the worker keeps a
    cache connection per task slot rather than opening (and closing) one for most reads."""
    import redis
    from django.conf import settings
    from django.db import transaction

    from agents.services import run_create

    def batch(n: int) -> None:
        markers = [f"[conn-{uuid.uuid4().hex[:8]}]" for _ in range(n)]
        for marker in markers:
            stack["model"].script(marker, [{"content": [{"type": "text", "text": "Glow gently."}],
                                            "stop_reason": "end_turn"}])
        with schema_context(stack["instance"].schema_name), transaction.atomic():  # queued at once
            run_ids = [run_create(actor=None, agent_type="copy", task=f"Headline {m}", client_id=stack["client"].pk,
                                  ).run.pk for m in markers]
        wait_for(lambda: all(run_row(stack, r).status == "succeeded" for r in run_ids), timeout=60)

    def connections_received() -> int:
        return redis.Redis.from_url(settings.REDIS_URL).info("stats")["total_connections_received"]

    batch(16)  # the worker's slots have each used the cache once
    before = connections_received()
    batch(32)
    opened = connections_received() - before - 1  # this test's own INFO connection
    # The server counts every client's connections: this test's own broker publishes and the web
    # process may open one or two meanwhile (3 seen once in CI's shard). A worker opening a
    # connection for most reads, as before keep_idle, opened 9 or more.
    assert opened <= 4, f"Redis accepted {opened} new connections for 32 runs"
