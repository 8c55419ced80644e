"""The guide's media-buying 2.3.1 → 2.4.0 scenario end to end: the release fan-out, the sandbox
runs and the agent runs all go through the real Celery worker (fake Messages API, sample ERP)."""

from __future__ import annotations

import http.client
import json
import os
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import AgentRun, RunEvent, ToolCall
from skills.models import SkillCall
from skills.services import skill_create
from skills.signing import verify
from spokestack.accounts.services import api_token_create
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_provision, instance_set_erp
from tuning.services import client_create
from versions.catalog.models import CatalogVersion, ReleaseFanout
from versions.models import UpdateNotification
from versions.services import catalog_sync, version_config_update

from ..conftest import PASSWORD, wait_for
from ..loopback_server import Reply
from .helpers import catalog_before_release, skill

pytestmark = pytest.mark.live
ROAS = "Optimises the bid strategy toward a target ROAS from conversion value data."



class Api:
    def __init__(self, instance, admin, port):
        self.host = instance.domains.get().domain
        self.port = port
        with schema_context(instance.schema_name):
            self.token = api_token_create(user=admin, name="versions-live").raw

    def __call__(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, "/api/v1" + path, body=json.dumps(body) if body is not None else None,
                     headers={"Host": f"{self.host}:{self.port}", "Authorization": f"Bearer {self.token}",
                              "Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, json.loads(data) if data else None


@pytest.fixture
def world(live_instance, live_db, celery_worker, daphne_server, sample_erp, fake_model, egress_loopback):
    """Three instances on media_buying 2.3.1: an e-commerce one (performance/roas and a
    roas_optimizer skill), one with a skill named audience_expansion, one with policy auto."""
    egress_loopback(sample_erp[0].server_port)
    extra = []
    for n in (1, 2):
        extra.append(instance_provision(name=f"Versions {n}", domain=f"ver{os.getpid()}-{n}-{uuid.uuid4().hex[:6]}.localhost",
                                        admin_email="admin@ver.localhost", admin_password=PASSWORD,
                                        schema_name=f"ver_{os.getpid()}_{n}_{uuid.uuid4().hex[:6]}"))
    connection.set_schema_to_public()
    shop, collide, auto = live_instance, extra[0], extra[1]
    for item in (shop, auto):
        instance_set_erp(instance=item.instance, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    catalog_before_release()
    with schema_context(shop.instance.schema_name):
        version_config_update(actor=None, agent_type="media_buying",
                              changes={"optimization_preferences": ["performance", "roas"]})
        skill("roas_optimizer", ROAS)
        client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC", language="en")
    with schema_context(collide.instance.schema_name):
        skill("audience_expansion", "Sizes our own lookalike audiences from the CRM.")
    with schema_context(auto.instance.schema_name):
        version_config_update(actor=None, agent_type="media_buying", changes={"policy": "auto"})
    connection.set_schema_to_public()
    yield {"client": client, "shop": shop, "collide": collide, "auto": auto, "model": fake_model, "erp": sample_erp[0],
           "api": {k: Api(v.instance, v.admin, daphne_server) for k, v in
                   (("shop", shop), ("collide", collide), ("auto", auto))}}
    connection.set_schema_to_public()
    catalog_sync(fanout_schemas=[])  # leave the full catalog for the rest of the session, notifying no one
    for item in extra:
        item.instance.refresh_from_db()
        item.instance.delete(force_drop=True)


def notification(item, agent_type="media_buying"):
    with schema_context(item.instance.schema_name):
        return UpdateNotification.objects.filter(agent_type=agent_type).first()


def erp_writes(erp) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", erp.server_port, timeout=10)
    conn.request("GET", "/writes", headers={"X-Api-Key": DEMO_API_KEYS["alpha"]})
    return json.loads(conn.getresponse().read())["count"]


def media_turns(first_tools):
    return [
        {"content": [{"type": "text", "text": "Let me size this."}, *first_tools], "stop_reason": "tool_use"},
        {"content": [{"type": "tool_use", "name": "save_plan", "input": {
            "name": "Q1 plan", "budget": 20000, "channels": [{"channel": "search", "share": 0.6},
                                                             {"channel": "social", "share": 0.4}]}}],
         "stop_reason": "tool_use"},
        {"content": [{"type": "text", "text": "Plan saved."}], "stop_reason": "end_turn"},
    ]


BID = {"type": "tool_use", "name": "recommend_bid_strategy", "input": {"monthly_budget": 20000}}
EXPAND = {"type": "tool_use", "name": "audience_expansion", "input": {"seed_audience_size": 5000}}
NOTIFY = {"type": "tool_use", "name": "notify_trading_desk", "input": {"summary": "Q1: 20k/month, search 60/social 40"}}
NOTIFY_SCHEMA = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"],
                 "additionalProperties": False}


@pytest.fixture
def trading_desk(world, worker_webhook, egress_loopback):
    """A webhook skill of media_buying on the shop instance, pointed at a loopback server that the
    worker is allowed to reach: a call that is not simulated would arrive there."""
    egress_loopback(worker_webhook.port)
    worker_webhook.requests.clear()
    worker_webhook.connections = 0  # the session's server: other tests' webhooks reached it before
    worker_webhook.route("/desk", Reply.json({"received": True}))
    url = f"{worker_webhook.url}/desk"
    with schema_context(world["shop"].instance.schema_name):
        created = skill_create(actor=None, name="notify_trading_desk", description="Tell the trading desk a plan.",
                               input_schema=NOTIFY_SCHEMA, agent_types=["media_buying"], webhook_url=url)
    connection.set_schema_to_public()
    yield {"server": worker_webhook, "url": url, "created": created}
    worker_webhook.routes.pop("/desk", None)


def test_release_sandbox_promote_rollback_and_pinning_through_the_worker(world, trading_desk):
    shop, collide, auto, api = world["shop"], world["collide"], world["auto"], world["api"]
    schemas = [x.instance.schema_name for x in (shop, collide, auto)]

    # --- the release: synced in the request path, analysed and notified by the worker ---
    result = catalog_sync(fanout_schemas=schemas)
    assert "media_buying 2.4.0" in result.created
    with schema_context("public"):
        wait_for(lambda: ReleaseFanout.objects.filter(pk__in=result.fanouts, status="done").count() == 2, timeout=45)
        assert CatalogVersion.objects.filter(agent_type="media_buying", version="2.4.0").exists()

    note = notification(shop)
    assert (note.recommendation, note.status) == ("caution", "pending")
    assert "Optimization mismatch" in note.reason and note.analysis["affected_skills"] == ["roas_optimizer"]
    clash = notification(collide)
    assert clash.recommendation == "caution"
    assert {"severity": "critical", "kind": "name_collision"}.items() <= clash.analysis["conflicts"][0].items()
    assert notification(auto).status == "auto_applied"
    assert api["auto"]("GET", "/agents/media_buying/version")[1]["current_version"] == "2.4.0"
    assert api["shop"]("GET", "/agents/media_buying/version")[1]["current_version"] == "2.3.1"

    # --- a pinned instance runs 2.3.1 while an unpinned one runs 2.4.0, at the same time ---
    status, body = api["shop"]("PUT", "/agents/media_buying/version", {"pinned_version": "2.3.1"})
    assert status == 200 and body["pinned_version"] == "2.3.1"
    marker = f"[pin-{uuid.uuid4().hex[:8]}]"
    world["model"].script(marker, [{"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                                    "delay_s": 0.5}] * 2)
    run_ids = {}
    for key in ("shop", "auto"):
        status, body = api[key]("POST", "/agent/execute", {"agent_type": "media_buying", "task": f"Plan {marker}"})
        assert status == 202, body
        run_ids[key] = body["run_id"]

    def finished(key):
        with schema_context(world[key].instance.schema_name):
            run = AgentRun.objects.get(pk=run_ids[key])
            return run if run.is_finished else None

    runs = {key: wait_for(lambda key=key: finished(key), timeout=45) for key in run_ids}
    assert runs["shop"].agent_version == "2.3.1" and runs["auto"].agent_version == "2.4.0"
    assert runs["shop"].started_at < runs["auto"].finished_at and runs["auto"].started_at < runs["shop"].finished_at
    api["shop"]("PUT", "/agents/media_buying/version", {"pinned_version": None})

    # --- sandbox: both versions, concurrently, nothing reaches the ERP or a webhook: each run
    # calls save_plan (an ERP write) and the notify_trading_desk webhook skill ---
    desk = trading_desk["server"]
    writes_before = erp_writes(world["erp"])
    status, body = api["shop"]("POST", f"/updates/{note.pk}/review", {"action": "sandbox"})
    assert status == 200, body
    session_id = body["sandbox"]["id"]
    world["model"].script(f"{session_id}:2.3.1", media_turns([BID, NOTIFY]))
    world["model"].script(f"{session_id}:2.4.0", media_turns([BID, EXPAND, NOTIFY]))
    status, body = api["shop"]("POST", f"/sandbox/{session_id}/test", {
        "task": "Plan a 20k/month campaign for our store; tell the trading desk the summary.",
        "client_id": world["client"].pk})
    assert status == 202, body

    def compared():
        s, b = api["shop"]("GET", f"/sandbox/{session_id}")
        return b["tests"][0] if b["tests"] and b["tests"][0]["finished"] else None

    comparison = wait_for(compared, timeout=45)
    assert comparison["current"]["status"] == comparison["test"]["status"] == "succeeded", comparison
    assert comparison["tools_added"] == ["audience_expansion"] and comparison["tools_removed"] == []
    assert "bid_strategy" in comparison["differences"], json.dumps(comparison, default=str)[:3000]
    assert comparison["differences"]["bid_strategy"]["test"] == "maximize_reach"
    assert comparison["differences"]["bid_strategy"]["current"] != "maximize_reach"
    assert comparison["current"]["budget_split"] == {"search": 0.6, "social": 0.4}
    assert comparison["current"]["simulated_writes"] and comparison["test"]["simulated_writes"]
    assert isinstance(comparison["output_length_change"], int)
    with schema_context(shop.instance.schema_name):
        sandbox_runs = AgentRun.objects.filter(pk__in=[comparison["current"]["run_id"], comparison["test"]["run_id"]])
        assert all(r.sandbox for r in sandbox_runs)
        first, second = sorted(sandbox_runs, key=lambda r: r.started_at)
        assert second.started_at < first.finished_at, "the two versions ran concurrently"
    would_send = {"method": "POST", "url": trading_desk["url"]}
    for side in ("current", "test"):
        assert "notify_trading_desk" in comparison[side]["tools_used"] and comparison[side]["tool_errors"] == []
        writes = comparison[side]["simulated_writes"]
        assert any(w and w.get("path") == "/plans" for w in writes), writes
        assert any(w and would_send.items() <= w.items() for w in writes), writes
    with schema_context(shop.instance.schema_name):
        for run in sandbox_runs:
            plan = ToolCall.objects.get(run=run, name="save_plan")
            assert plan.side_effect and plan.result["simulated"] and plan.result["would_have"]["path"] == "/plans"
            call = ToolCall.objects.get(run=run, name="notify_trading_desk")
            assert (call.status, call.side_effect, call.is_error) == ("succeeded", True, False)
            assert call.result["simulated"] is True and would_send.items() <= call.result["would_send"].items()
            assert call.result["would_send"]["body_bytes"] > 0
            (skill_call,) = SkillCall.objects.filter(run_id=run.pk)
            assert skill_call.simulated and skill_call.ok and skill_call.status_code is None
            finished_events = [e.payload for e in RunEvent.objects.filter(run=run, type="tool.finished")
                               if e.payload["name"] == "notify_trading_desk"]
            assert len(finished_events) == 1 and '"simulated": true' in finished_events[0]["output"]
    assert erp_writes(world["erp"]) == writes_before, "sandbox mode wrote nothing to the ERP"
    assert desk.requests == [] and desk.connections == 0, "sandbox mode called no webhook"

    # --- the same calls in a normal run do reach both: the checks above can fail ---
    marker = f"[live-{uuid.uuid4().hex[:8]}]"
    world["model"].script(marker, media_turns([NOTIFY]))
    status, body = api["shop"]("POST", "/agent/execute", {"agent_type": "media_buying", "client_id": world["client"].pk,
                                                          "task": f"Plan a 20k/month campaign {marker}"})
    assert status == 202, body
    run_ids["shop"] = body["run_id"]
    live_run = wait_for(lambda: finished("shop"), timeout=45)
    assert live_run.status == "succeeded" and not live_run.sandbox, live_run.error
    (request,) = desk.requests
    assert (request.method, request.path) == ("POST", "/desk")
    assert request.headers.get("webhook-id") and request.headers.get("webhook-signature")
    verify(trading_desk["created"].signing_secret, request.headers, request.body)
    assert request.json()["input"] == NOTIFY["input"] and request.json()["context"]["run_id"] == str(live_run.pk)
    assert erp_writes(world["erp"]) == writes_before + 1, "the normal run's save_plan wrote to the ERP"
    with schema_context(shop.instance.schema_name):
        assert SkillCall.objects.get(run_id=live_run.pk).simulated is False

    # --- promote, then roll back; runs follow ---
    status, body = api["shop"]("POST", f"/sandbox/{session_id}/promote", {})
    assert status == 200 and body["current_version"] == "2.4.0"
    assert [h["action"] for h in body["history"]][:1] == ["promote"]
    status, body = api["shop"]("POST", "/agents/media_buying/version/rollback",
                               {"version": "2.3.1", "reason": "ROAS fell in the first week"})
    assert status == 200 and body["current_version"] == "2.3.1"
    assert body["history"][0]["reason"] == "ROAS fell in the first week"
    marker = f"[back-{uuid.uuid4().hex[:8]}]"
    world["model"].script(marker, [{"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}])
    status, body = api["shop"]("POST", "/agent/execute", {"agent_type": "media_buying", "task": f"Plan {marker}"})
    run_ids["shop"] = body["run_id"]
    assert wait_for(lambda: finished("shop"), timeout=45).agent_version == "2.3.1"
