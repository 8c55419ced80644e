"""The live test of issue #18, through daphne, the broker and the real Celery worker (the real SDK
against the local fake Messages API): an agent built through the API from three library tools, tried
in a sandbox thread, published as v1 and run for a client whose rule is in force; v2 published while
a v1 run is in flight (that run finishes on v1; new runs take v2); then a rollback."""

from __future__ import annotations

import http.client
import json
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import AgentRun
from spokestack.accounts.services import api_token_create
from tuning.services import client_create, client_rule_add

from ...conftest import wait_for

pytestmark = pytest.mark.live

DEFINITION = {
    "title": "Social caption agent",
    "purpose": "Short on-brand captions.",
    "instructions": "Write THREE caption options, then pick one.",
    "persona": {"voice": "Warm", "traits": {"creativity": 70}},
    "tools": ["copy.get_brand_guidelines", "copy.check_brand_rules", "core.search_knowledge"],
}


@pytest.fixture
def stack(live_instance, celery_worker, daphne_server, fake_model):
    instance = live_instance.instance
    with schema_context(instance.schema_name):
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
        client_rule_add(actor=None, client=client, kind="never", text="cheap", reason="brand")
        token = api_token_create(user=live_instance.admin, name="live").raw
    connection.set_schema_to_public()
    return {"instance": instance, "host": instance.domains.get().domain, "port": daphne_server, "token": token,
            "client": client, "model": fake_model}


def _call(stack, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack["port"], timeout=30)
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers={
        "Host": f"{stack['host']}:{stack['port']}", "Authorization": f"Bearer {stack['token']}",
        "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def _finished(stack, run_id):
    def done():
        status, detail = _call(stack, "GET", f"/api/v1/agent/status/{run_id}")
        return detail if detail["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout=90, interval=0.3)


def _system(request) -> str:
    return "".join(block["text"] for block in request["system"])


def test_build_try_publish_run_republish_and_roll_back_an_agent_through_the_worker(stack):
    model, client_id = stack["model"], stack["client"].pk
    status, created = _call(stack, "POST", "/api/v1/studio/agents", {"slug": "social_caption",
                                                                     "definition": DEFINITION})
    assert status == 201, created

    # a sandbox thread of the draft: two turns, both on the frozen draft, both sandboxed
    try_marker = f"[try-{uuid.uuid4().hex[:8]}]"
    model.script(try_marker, [{"content": [{"type": "text", "text": "Three options…"}]},
                              {"content": [{"type": "text", "text": "Shorter."}]}], by_position=True)
    status, tried = _call(stack, "POST", "/api/v1/studio/agents/social_caption/test",
                          {"task": f"Captions {try_marker}", "client_id": client_id, "thread": True})
    assert status == 202, tried
    assert _finished(stack, tried["run_id"])["status"] == "succeeded"
    status, turn2 = _call(stack, "POST", f"/api/v1/threads/{tried['thread_id']}/messages",
                          {"message": f"Shorter please {try_marker}"})
    assert status == 202, turn2
    assert _finished(stack, turn2["run_id"])["status"] == "succeeded"
    with schema_context(stack["instance"].schema_name):
        turns = list(AgentRun.objects.filter(thread_id=tried["thread_id"]).order_by("thread_turn"))
        assert [(r.sandbox, r.agent_version) for r in turns] == [(True, tried["agent_version"])] * 2

    status, v1 = _call(stack, "POST", "/api/v1/studio/agents/social_caption/publish", {"change_note": "First"})
    assert status == 201 and v1["version"] == "1.0.0"

    # a v1 run held in its first model call while v2 is published: it finishes on v1
    marker = f"[v1-{uuid.uuid4().hex[:8]}]"
    model.script(marker, [
        {"content": [{"type": "tool_use", "id": "toolu_c1", "name": "check_brand_rules",
                      "input": {"text": "A cheap glow for Ramadan"}}], "stop_reason": "tool_use", "delay_s": 2.0},
        {"content": [{"type": "text", "text": "A radiant glow for Ramadan."}]}])
    status, run1 = _call(stack, "POST", "/api/v1/agent/execute", {"agent_type": "social_caption",
                                                                  "task": f"Captions {marker}",
                                                                  "client_id": client_id})
    assert status == 202, run1
    wait_for(lambda: model.requests(marker), timeout=30, interval=0.05)
    status, _ = _call(stack, "PUT", "/api/v1/studio/agents/social_caption",
                      {"definition": {**DEFINITION, "instructions": "Write FIVE caption options."}})
    assert status == 200
    status, v2 = _call(stack, "POST", "/api/v1/studio/agents/social_caption/publish", {"change_note": "Five"})
    assert status == 201 and v2["version"] == "2.0.0"
    detail = _finished(stack, run1["run_id"])
    assert detail["status"] == "succeeded" and detail["agent_version"] == "1.0.0"
    requests = model.requests(marker)
    assert len(requests) == 2 and all("Write THREE" in _system(r) and "FIVE" not in _system(r) for r in requests)
    assert "cheap" in _system(requests[0])  # the client's rule, tier 3, in the agency agent's prompt
    results = {b["tool_use_id"]: b for b in requests[1]["messages"][-1]["content"]}
    assert json.loads(results["toolu_c1"]["content"])["passed"] is False  # … and enforced by its tool

    status, run2 = _call(stack, "POST", "/api/v1/agent/execute", {"agent_type": "social_caption", "task": "More",
                                                                  "client_id": client_id})
    assert _finished(stack, run2["run_id"])["agent_version"] == "2.0.0"
    status, v3 = _call(stack, "POST", "/api/v1/studio/agents/social_caption/rollback",
                       {"version": 1, "reason": "five is too many"})
    assert status == 201 and v3["version"] == "3.0.0" and v3["definition"]["instructions"].startswith("Write THREE")
    marker3 = f"[v3-{uuid.uuid4().hex[:8]}]"
    status, run3 = _call(stack, "POST", "/api/v1/agent/execute", {"agent_type": "social_caption",
                                                                  "task": f"Again {marker3}", "client_id": client_id})
    assert _finished(stack, run3["run_id"])["agent_version"] == "3.0.0"
    assert "Write THREE" in _system(model.requests(marker3)[0])
