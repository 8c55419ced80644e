# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Delegation in-process (issue #19, agents/delegation.py): a proposal run hands parts of its job to
other agents as child runs, waits without a worker, resumes once when its last child ends, and reads
each child's output as the call's result; costs roll up exactly; a child is started once however
often its parent is delivered; cancel cascades; a lost settlement is the reaper's; access follows
the parent's."""

import json
import uuid

import pytest
from django.db import OperationalError, connection

from agents import delegation
from agents.loop import execute_run
from agents.models import AgentRun, RunStatus, ToolCall, ToolCallStatus
from agents.services import run_cancel, run_create
from agents.tasks import reap_stale_runs
from tuning.services import client_create

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401


@pytest.fixture(autouse=True)
def children_as_tasks(settings):
    """Here the test executes each child itself: children are tasks of their own (the worker path),
    not run inline by their parent (tests/agents/test_delegation_live.py and the benchmark do that)."""
    settings.AGENT_DELEGATION_INLINE = False


def marker(name: str) -> str:
    return f"[{name}-{uuid.uuid4().hex[:8]}]"


def delegating_parent(scripted, admin, client, *children: tuple[str, str], final: str = "Proposal assembled.",
                      sandbox: bool = True) -> tuple[AgentRun, list[str]]:
    """A proposal run scripted to delegate one task per (agent type, child marker) in its first turn."""
    parent = marker("proposal")
    calls = [(f"toolu_{uuid.uuid4().hex[:12]}", f"delegate_to_{agent}", {"task": f"{child} Do your part.",
                                                                         "context": "Budget AED 1.2m."})
             for agent, child in children]
    scripted.script(parent, [tool_turn(*calls), text_turn(final)], by_position=True)
    run = run_create(actor=admin, agent_type="proposal", task=f"{parent} Answer the Najd Dates RFP.",
                     client_id=client.pk, sandbox=sandbox).run
    return run, [call[0] for call in calls]


def child_of(parent: AgentRun, tool_use_id: str) -> AgentRun:
    return AgentRun.objects.get(parent=parent, parent_call__tool_use_id=tool_use_id)


def test_a_proposal_waits_for_its_children_and_reads_their_outputs(in_a, admin_a, client_a, scripted, runs_stay_here):
    rfp, content = marker("rfp"), marker("content")
    scripted.script(rfp, [text_turn("Requirements: 3 hero videos; submission 2026-12-20.")])
    scripted.script(content, [text_turn("Dear Najd Dates team, thank you for the invitation.")])
    run, (rfp_call, content_call) = delegating_parent(scripted, admin_a, client_a, ("rfp", rfp), ("content", content))

    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.WAITING
    run.refresh_from_db()
    assert (run.status, run.lease_owner, run.lease_until) == (RunStatus.WAITING, "", None)
    children = {c.agent_type: c for c in run.children.all()}
    assert sorted(children) == ["content", "rfp"]
    for child in children.values():
        assert (child.client, child.created_by, child.sandbox, child.depth, child.status) == (
            client_a, admin_a, True, 1, RunStatus.QUEUED)
        assert "Budget AED 1.2m." in child.task and "delegated_context" in child.task
    assert set(ToolCall.objects.filter(run=run).values_list("status", flat=True)) == {ToolCallStatus.DELEGATED}
    types = list(run.events.values_list("type", flat=True))
    assert types.count("delegation.started") == 2 and types[-1] == "run.waiting"

    # A duplicate delivery of the waiting parent does nothing, and starts no second child.
    assert execute_run(run_id=str(run.pk), worker="w2") == "skipped"
    assert run.children.count() == 2

    assert execute_run(run_id=str(children["rfp"].pk), worker="w3") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    children["rfp"].refresh_from_db()
    assert run.status == RunStatus.WAITING  # the content child has not run yet
    assert run.children_cost_usd == children["rfp"].cost_usd > 0
    assert execute_run(run_id=str(children["rfp"].pk), worker="w4") == "skipped"  # a finished child never runs again

    assert execute_run(run_id=str(children["content"].pk), worker="w5") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert list(run.events.values_list("type", flat=True)).count("run.delegation_resumed") == 1

    assert execute_run(run_id=str(run.pk), worker="w6") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    for child in children.values():
        child.refresh_from_db()
    assert run.children_cost_usd == sum(c.cost_usd for c in children.values())
    assert run.total_cost_usd == run.cost_usd + run.children_cost_usd
    results = {b["tool_use_id"]: b for m in run.messages if m["role"] == "user" and isinstance(m["content"], list)
               for b in m["content"] if b.get("type") == "tool_result"}
    assert "3 hero videos" in results[rfp_call]["content"] and not results[rfp_call]["is_error"]
    assert "thank you for the invitation" in results[content_call]["content"]
    assert ToolCall.objects.get(run=run, tool_use_id=rfp_call).status == ToolCallStatus.SUCCEEDED

    # Each child's events are in the parent's log, in the child's own order.
    mirrored = [e.payload for e in run.events.filter(type="child.event").order_by("seq")]
    for child in children.values():
        own = list(child.events.order_by("seq").values_list("seq", "type"))
        assert [(p["seq"], p["type"]) for p in mirrored if p["run_id"] == str(child.pk)] == own
        assert own[-1][1] == "run.succeeded"


def test_a_failed_child_is_an_error_the_parent_reads_and_its_cost_still_counts(in_a, admin_a, client_a, scripted,
                                                                                runs_stay_here):
    child_marker = marker("resource")
    scripted.script(child_marker, [{"status": 400, "error_message": "prompt is too long"}])
    run, (call,) = delegating_parent(scripted, admin_a, client_a, ("resource", child_marker),
                                     final="Resourcing failed; the proposal says so.")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.WAITING
    child = child_of(run, call)
    assert execute_run(run_id=str(child.pk), worker="w2") == RunStatus.FAILED
    assert execute_run(run_id=str(run.pk), worker="w3") == RunStatus.SUCCEEDED
    result = ToolCall.objects.get(run=run, tool_use_id=call)
    assert result.is_error and result.result["status"] == "failed" and result.result["error"]


def test_cancelling_a_parent_cancels_its_children_first(in_a, admin_a, client_a, scripted, runs_stay_here):
    run, calls = delegating_parent(scripted, admin_a, client_a, ("rfp", marker("rfp")), ("content", marker("c")))
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.WAITING
    run_cancel(actor=admin_a, run=run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    for call in calls:
        child = child_of(run, call)
        assert child.status == RunStatus.CANCELLED
        assert child.events.get(type="run.cancelled").payload["reason"].startswith("cancelled with the run")
        assert execute_run(run_id=str(child.pk), worker="w2") == "skipped"


def test_a_run_two_levels_down_is_not_offered_delegation(in_a, admin_a, client_a, scripted, runs_stay_here):
    deep = marker("deep")
    scripted.script(deep, [text_turn("I did it myself.")])
    run = run_create(actor=admin_a, agent_type="proposal", task=f"{deep} Answer the RFP.", client_id=client_a.pk,
                     sandbox=True).run
    AgentRun.objects.filter(pk=run.pk).update(depth=delegation.MAX_DEPTH)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    offered = {t["name"] for t in scripted.requests(deep)[0]["tools"]}
    assert "save_proposal" in offered and not {n for n in offered if n.startswith("delegate_to_")}
    top = marker("top")
    scripted.script(top, [text_turn("Done.")])
    run = run_create(actor=admin_a, agent_type="proposal", task=f"{top} Answer the RFP.", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    offered = {t["name"] for t in scripted.requests(top)[0]["tools"]}
    assert {"delegate_to_rfp", "delegate_to_commercial", "delegate_to_resource", "delegate_to_content"} <= offered


def test_a_lost_settlement_is_the_reapers(in_a, admin_a, client_a, scripted, runs_stay_here, monkeypatch):
    child_marker = marker("content")
    scripted.script(child_marker, [text_turn("Cover letter.")])
    run, (call,) = delegating_parent(scripted, admin_a, client_a, ("content", child_marker))
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.WAITING

    def outage(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(delegation, "children_settle", outage)  # the database goes away as the child ends
        assert execute_run(run_id=str(child_of(run, call).pk), worker="w2") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING and run.children_cost_usd == 0
    assert reap_stale_runs() >= 1
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.children_cost_usd == child_of(run, call).cost_usd
    assert reap_stale_runs() == 0  # settled once
    assert execute_run(run_id=str(run.pk), worker="w3") == RunStatus.SUCCEEDED, AgentRun.objects.get(pk=run.pk).error


def test_children_are_seen_by_who_sees_the_parent_only(in_a, admin_a, client_a, scripted, runs_stay_here, api,
                                                        assigned, instance_b):
    run, (call,) = delegating_parent(scripted, admin_a, client_a, ("rfp", marker("rfp")))
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.WAITING
    child = child_of(run, call)
    own_am = assigned("account_manager", client_a)
    other_am = assigned("account_manager", client_create(name="Gulf Bank", vertical="finance", region="GCC"))

    body = api(connection.tenant, own_am).get(f"/api/v1/agent/status/{run.pk}").json()
    assert body["children"][0]["run_id"] == str(child.pk) and body["children"][0]["tool_use_id"] == call
    assert body["depth"] == 0 and body["parent_run_id"] is None
    child_body = api(connection.tenant, own_am).get(f"/api/v1/agent/status/{child.pk}").json()
    assert (child_body["parent_run_id"], child_body["depth"]) == (str(run.pk), 1)
    assert api(connection.tenant, other_am).get(f"/api/v1/agent/status/{child.pk}").status_code == 404
    assert api(connection.tenant, other_am).get(f"/api/v1/agent/status/{run.pk}").status_code == 404
    assert api(instance_b, None).get(f"/api/v1/agent/status/{child.pk}").status_code in (401, 404)


def test_a_handoff_ends_the_run_and_the_other_agent_takes_over(in_a, admin_a, client_a, scripted, runs_stay_here):
    summary = "Estimate alpha-estimate-0007 saved: 12 days strategy, 20 days copy, from 2027-01-04."
    task = marker("handoff")
    scripted.script(task, [tool_turn(("toolu_h1", "hand_off_to_resource",
                                      {"summary": summary, "request": "Book the team for it."}))])
    run = run_create(actor=admin_a, agent_type="commercial", task=f"{task} Price and staff the Eid campaign.",
                     client_id=client_a.pk, sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.output == summary
    handed = run.events.get(type="run.handed_off").payload
    successor = AgentRun.objects.get(pk=handed["run_id"])
    assert (handed["to_agent_type"], successor.agent_type, successor.status) == ("resource", "resource", "queued")
    assert (successor.client, successor.created_by, successor.sandbox) == (client_a, admin_a, True)
    assert successor.task.startswith("Book the team for it.") and summary in successor.task
    assert successor.metadata["handed_off_by"]["run_id"] == str(run.pk)
    # A redelivered run finds its successor instead of starting another.
    assert AgentRun.objects.filter(metadata__handed_off_by__run_id=str(run.pk)).count() == 1


def test_a_handoff_in_a_thread_switches_the_thread_to_the_other_agent(in_a, admin_a, client_a, scripted,
                                                                      runs_stay_here):
    from agents.models import Thread
    from agents.threads import thread_message_send

    task, handed, follow = marker("thread-handoff"), marker("publisher-turn"), marker("next-message")
    scripted.script(task, [tool_turn(("toolu_h2", "hand_off_to_publisher",
                                      {"summary": f"{handed} Drafts d-1 and d-2 approved."}))])
    scripted.script(handed, [text_turn("Ready to schedule.")])
    first = run_create(actor=admin_a, agent_type="content", task=f"{task} Write and then publish the Eid posts.",
                       client_id=client_a.pk, sandbox=True, thread=True).run
    assert execute_run(run_id=str(first.pk), worker="w1") == RunStatus.SUCCEEDED
    thread = Thread.objects.get(pk=first.thread_id)
    assert (thread.agent_type, thread.turns_count) == ("publisher", 2)
    second = AgentRun.objects.get(thread=thread, thread_turn=2)
    assert second.agent_type == "publisher" and "Drafts d-1 and d-2 approved." in second.task
    scripted.script(follow, [text_turn("Scheduled both for Friday 18:00 Dubai time.")])
    # the publisher's own turn, then the person's next message goes to the publisher too
    assert execute_run(run_id=str(second.pk), worker="w2") == RunStatus.SUCCEEDED
    third = thread_message_send(actor=admin_a, thread_id=thread.pk, message=f"{follow} Schedule them.").run
    assert third.agent_type == "publisher" and third.thread_turn == 3
    assert execute_run(run_id=str(third.pk), worker="w3") == RunStatus.SUCCEEDED
    request = scripted.requests(follow)[0]
    assert {t["name"] for t in request["tools"]} >= {"schedule_post", "publish_post"}
    assert not any("hand_off_to_publisher" in json.dumps(m) for m in request["messages"]), \
        "the publisher's conversation starts from the summary, not the content agent's tool calls"
