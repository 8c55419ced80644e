# ruff: noqa: F811 - the live stack fixtures are imported by name
"""Delegation through the real parts (issue #19): a proposal run and its four child runs on real Celery
workers, daphne, PostgreSQL and Redis, the real anthropic SDK against the fake Messages API, and the
sample ERP's write log as the judge.

* The parent runs its children in its own worker slot; a gated `request_discount_approval` in the
  commercial child pauses that child only; the worker running the resource child (and the parent) is
  SIGKILLed mid-turn, both resume on a new worker and the parent waits for the child without a slot; every child's side
  effect (the content child's draft, the approved discount request) and the parent's proposal are
  written once; the parent's one stream carries each child's events in the child's own order; the
  cost rolls up exactly.
* Cancelling the parent over the API cancels its children.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django_tenants.utils import schema_context

from agents.models import AgentRun, ApprovalRequest
from spokestack.erp import ErpClient
from spokestack.sample_erp import DEMO_API_KEYS

from ..conftest import wait_for
from .test_faults_live import Reaper, _worker_holding, api_call, erp_writes, faulty, stack  # noqa: F401
from .test_runtime_live import sse_events

pytestmark = pytest.mark.live


def tool_use(name: str, tool_input: dict, *, delay_s: float = 0.0) -> dict:
    return {"content": [{"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": name,
                         "input": tool_input}], "stop_reason": "tool_use", "delay_s": delay_s}


def text(answer: str, *, delay_s: float = 0.0) -> dict:
    return {"content": [{"type": "text", "text": answer}], "stop_reason": "end_turn", "delay_s": delay_s}


def family(stack, run_id) -> tuple[AgentRun, dict[str, AgentRun]]:
    with schema_context(stack["instance"].schema_name):
        parent = AgentRun.objects.get(pk=run_id)
        return parent, {c.agent_type: c for c in AgentRun.objects.filter(parent_id=run_id)}


def saved_estimate(stack) -> str:
    """An estimate of the demo client in the ERP, for the commercial child to ask a discount on."""
    erp = ErpClient(base_url=f"http://127.0.0.1:{stack['erp'].server_port}", api_key=DEMO_API_KEYS["alpha"])
    role = erp.get("/rate-card")["roles"][0]
    amount = round(role["day_rate"] * 4, 2)
    return erp.post("/estimates", {"client": "desert-bloom-cosmetics", "title": "Ramadan 2027", "total": amount,
                                   "lines": [{"role": role["role"], "days": 4, "day_rate": role["day_rate"],
                                              "amount": amount}]})["id"]


def test_a_proposal_delegates_to_four_agents_through_a_dead_worker_and_an_approval(request, stack):
    schema = stack["instance"].schema_name
    m = {name: f"[{name}-{uuid.uuid4().hex[:8]}]" for name in ("proposal", "rfp", "commercial", "resource", "content")}
    estimate_id = saved_estimate(stack)
    stack["model"].script(m["proposal"], [
        {"content": [{"type": "tool_use", "id": f"toolu_{agent}", "name": f"delegate_to_{agent}",
                      "input": {"task": f"{m[agent]} Your part of the Najd Dates proposal.",
                                "context": "Budget AED 1.2m; proposals due 2026-12-20."}}
                     for agent in ("rfp", "commercial", "resource", "content")], "stop_reason": "tool_use"},
        tool_use("save_proposal", {"title": f"Najd Dates Ramadan 2027 {m['proposal']}",
                                   "content": "## Executive summary\nBilingual Ramadan campaign.\n\n## Team\nNoura, "
                                              "Karim.\n\n## Commercials\nFee AED 1.1m."}),
        text("The proposal is saved for review."),
    ], by_position=True)
    stack["model"].script(m["rfp"], [text("Requirements: 3 hero videos; submission 2026-12-20.")], by_position=True)
    stack["model"].script(m["content"], [
        tool_use("save_draft", {"content": f"Dear Najd Dates team, thank you. {m['content']}", "title": "Cover"}),
        text("Cover letter saved.")], by_position=True)
    stack["model"].script(m["commercial"], [
        tool_use("request_discount_approval", {"estimate_id": estimate_id, "discount_pct": 10,
                                               "reason": "Three-year retainer."}),
        text("Estimate with a 10% discount, approved.")], by_position=True)
    # The resource child's one turn takes 8 s: its worker is killed while it waits for it.
    stack["model"].script(m["resource"], [text("Noura 40%, Karim 60%, from 2027-01-04.", delay_s=8.0)],
                          by_position=True)

    status, body, _ = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "proposal", "task": f"{m['proposal']} Answer the Najd Dates Ramadan RFP.",
        "client_id": stack["client"].pk})
    assert status == 202, body
    run_id = body["run_id"]

    def children_state():
        # The parent runs its children in its own worker slot (AGENT_DELEGATION_INLINE): it is running
        # while the resource child's turn is, the commercial child waits for its approval.
        parent, children = family(stack, run_id)
        return len(children) == 4 and children["resource"].status == "running" and \
            children["commercial"].status == "awaiting_approval" and children["content"].status == "succeeded" \
            and children["rfp"].status == "succeeded" and parent.status in ("running", "waiting")

    wait_for(children_state, timeout=60)
    parent, children = family(stack, run_id)
    holder = _worker_holding(request, stack, str(children["resource"].pk))
    holder.kill()  # the resource child's execution dies mid-turn (and the parent's, when in the same process)
    holder.start()
    with Reaper(interval=0.5):
        wait_for(lambda: family(stack, run_id)[1]["resource"].status == "succeeded", timeout=60)
    parent, children = family(stack, run_id)
    assert parent.status == "waiting", "the commercial child still waits for its approval"
    assert children["commercial"].status == "awaiting_approval"
    with schema_context(schema):
        approval = ApprovalRequest.objects.get(run_id=children["commercial"].pk)
        resumed = list(children["resource"].events.values_list("type", flat=True))
    assert "run.resumed" in resumed and "turn.interrupted" in resumed
    status, body, _ = api_call(stack, "POST", f"/api/v1/approvals/{approval.pk}/approve", {"note": "Fine."})
    assert status == 200, body
    wait_for(lambda: family(stack, run_id)[0].is_finished, timeout=60)

    parent, children = family(stack, run_id)
    assert parent.status == "succeeded", parent.error
    assert {c.status for c in children.values()} == {"succeeded"}
    assert parent.children_cost_usd == sum(c.cost_usd + c.children_cost_usd for c in children.values())
    status, body, _ = api_call(stack, "GET", f"/api/v1/agent/status/{run_id}")
    assert body["total_cost_usd"] == pytest.approx(float(parent.cost_usd + parent.children_cost_usd))
    assert sorted(c["run_id"] for c in body["children"]) == sorted(str(c.pk) for c in children.values())

    # Every side effect once: the content child's draft, the approved discount, the proposal.
    with schema_context(schema):
        keys = {name: list(AgentRun.objects.get(pk=pk).tool_calls.filter(name=name)
                           .values_list("idempotency_key", flat=True))
                for pk, name in ((children["content"].pk, "save_draft"),
                                 (children["commercial"].pk, "request_discount_approval"),
                                 (parent.pk, "save_proposal"))}
    writes = erp_writes(stack)
    for name, call_keys in keys.items():
        assert len(call_keys) == 1, name
        assert sum(w["idempotency_key"] == call_keys[0] for w in writes) == 1, f"{name} written once"

    # One parent stream: each child's events, in the child's order, as on the child's own stream.
    streamed = sse_events(stack, run_id)
    mirrored = [e["payload"] for e in streamed if e["type"] == "child.event"]
    for child in children.values():
        own = [(e["seq"], e["type"]) for e in sse_events(stack, str(child.pk))]
        assert [(p["seq"], p["type"]) for p in mirrored if p["run_id"] == str(child.pk)] == own
        assert own[-1][1] == "run.succeeded"
    types = [e["type"] for e in streamed]
    assert types.count("delegation.started") == 4 and types[-1] == "run.succeeded"
    assert types.index("run.waiting") < types.index("run.delegation_resumed")
    assert json.dumps(streamed).count(estimate_id) >= 1  # the child's approval is in the parent's stream


def test_cancelling_the_parent_over_the_api_cancels_its_children(stack):
    m = {name: f"[{name}-{uuid.uuid4().hex[:8]}]" for name in ("proposal", "rfp", "content")}
    stack["model"].script(m["proposal"], [
        {"content": [{"type": "tool_use", "id": f"toolu_{agent}", "name": f"delegate_to_{agent}",
                      "input": {"task": f"{m[agent]} Your part."}} for agent in ("rfp", "content")],
         "stop_reason": "tool_use"}, text("Done.")], by_position=True)
    for agent in ("rfp", "content"):
        stack["model"].script(m[agent], [text("Slow part.", delay_s=20.0)], by_position=True)
    status, body, _ = api_call(stack, "POST", "/api/v1/agent/execute", {
        "agent_type": "proposal", "task": f"{m['proposal']} Answer the RFP.", "client_id": stack["client"].pk,
        "sandbox": True})
    run_id = body["run_id"]
    wait_for(lambda: {c.status for c in family(stack, run_id)[1].values()} == {"running"}
             and len(family(stack, run_id)[1]) == 2, timeout=60)
    started = time.monotonic()
    status, body, _ = api_call(stack, "DELETE", f"/api/v1/agent/task/{run_id}")
    assert status == 202, body
    wait_for(lambda: all(c.status == "cancelled" for c in family(stack, run_id)[1].values())
             and family(stack, run_id)[0].status == "cancelled", timeout=30)
    assert time.monotonic() - started < 15, "the children stopped mid-turn, not after their 20 s answers"
