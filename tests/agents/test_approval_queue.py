# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""The approval queue's depth (issue #21 part 3): priority and assignment from rules, the SLA
timeline on a frozen clock (warn at 75 %, escalate at 100 %, expire after the grace, each once),
instance admins' auto rules through the loop, a whole turn decided at once, a cancelled run's
requests closed, and who may manage rules (instance admins of their own instance only)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.db import connection

from agents.approval_rules import approval_rule_create, compare, field_at
from agents.approvals import approval_notify, pending_for
from agents.loop import execute_run
from agents.models import (
    AgentRun,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalRule,
    ApprovalStatus,
    RunStatus,
    ToolCall,
    ToolCallStatus,
)
from agents.services import run_cancel, run_create
from agents.tasks import expire_approvals
from spokestack.realtime import group_name
from tuning.models import Entity, TuningChange
from tuning.services import client_create, instance_tuning_update

from ..conftest import HOST_A
from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401

DRAFT = {"content": "Glow gently this Ramadan."}
DISCOUNT_RULE = {"tool_name": "request_discount_approval", "field_path": "discount_pct", "op": "<=", "value": 5}


def start(admin, client, marker, agent_type="copy"):
    return run_create(actor=admin, agent_type=agent_type, task=f"{marker}: do the work.", client_id=client.pk,
                      sandbox=True).run


def types(run):
    return list(run.events.values_list("type", flat=True))


@pytest.fixture
def gated(in_a):
    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal review")


@pytest.fixture
def waiting(gated, admin_a, client_a, scripted):
    marker = f"queue-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_q1", "save_draft", DRAFT)), text_turn()])
    run = start(admin_a, client_a, marker)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    return ApprovalRequest.objects.get(run=run)


@contextlib.contextmanager
def live_events(topic: str):
    """What the instance's `ws/events/` group of `topic` receives while the block runs (real Redis layer)."""
    group, subscribed, received, stop = group_name(connection.schema_name, topic), threading.Event(), [], \
        threading.Event()

    async def listen() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        subscribed.set()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    received.append((await asyncio.wait_for(layer.receive(channel), timeout=0.3))["data"])
        finally:
            await layer.group_discard(group, channel)

    listener = threading.Thread(target=asyncio.run, args=(listen(),))
    listener.start()
    assert subscribed.wait(5)
    try:
        yield received
        time.sleep(0.5)
    finally:
        stop.set()
        listener.join(10)


# --- the SLA timeline -------------------------------------------------------------------------


def test_sla_warning_escalation_and_expiry_each_notified_once_on_a_frozen_clock(
        waiting, admin_a, make_user, assigned, mailoutbox, django_capture_on_commit_callbacks):
    manager = make_user("instance_manager")
    am = assigned("account_manager", waiting.client)
    second_admin = make_user("instance_admin")
    t0, sla = waiting.created_at, timedelta(hours=24)
    # the timeline is fixed at creation: warn at 75 %, escalate at 100 %, expire after a grace of the SLA again
    assert waiting.sla == sla
    assert abs((waiting.warn_at - t0) - sla * 0.75) < timedelta(seconds=5)
    assert abs((waiting.sla_due_at - t0) - sla) < timedelta(seconds=5)
    assert abs((waiting.expires_at - t0) - 2 * sla) < timedelta(seconds=5)

    def beat(at) -> tuple[int, list]:
        with live_events("approvals") as events, django_capture_on_commit_callbacks(execute=True):
            moved = expire_approvals(now=at)
        return moved, events

    assert beat(t0 + timedelta(hours=17)) == (0, [])
    assert mailoutbox == []

    moved, events = beat(waiting.warn_at + timedelta(seconds=1))
    assert moved == 1 and [e.get("event") for e in events] == ["approval.sla_warning"]
    assert events[0]["sla_state"] == "warned" and events[0]["client_id"] == waiting.client_id
    (warning,) = mailoutbox
    assert warning.subject.startswith("Approval due soon: save_draft")
    assert {admin_a.email, manager.email, am.email} <= set(warning.to)
    assert beat(waiting.warn_at + timedelta(minutes=5)) == (0, [])  # the next beat (or a second worker): nothing
    assert len(mailoutbox) == 1

    moved, events = beat(waiting.sla_due_at + timedelta(seconds=1))
    assert moved == 1 and [e.get("event") for e in events] == ["approval.sla_escalated"]
    escalation = mailoutbox[1]
    assert escalation.subject.startswith("Approval overdue (escalated): save_draft")
    assert {admin_a.email, second_admin.email} <= set(escalation.to)  # the instance admins only
    assert manager.email not in escalation.to and am.email not in escalation.to
    assert beat(waiting.sla_due_at + timedelta(minutes=5)) == (0, [])
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.PENDING and waiting.warned_at and waiting.escalated_at
    assert AgentRun.objects.get(pk=waiting.run_id).status == RunStatus.AWAITING_APPROVAL  # not expired yet

    moved, events = beat(waiting.expires_at + timedelta(seconds=1))
    assert moved == 1 and [e["status"] for e in events] == ["expired"]
    assert mailoutbox[2].subject.startswith("Approval expired: save_draft") and len(mailoutbox) == 3
    assert beat(waiting.expires_at + timedelta(hours=1)) == (0, [])
    assert len(mailoutbox) == 3
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.EXPIRED
    run = AgentRun.objects.get(pk=waiting.run_id)
    assert run.status == RunStatus.QUEUED
    assert [t for t in types(run) if t.startswith("approval.")] == [
        "approval.requested", "approval.sla_warning", "approval.sla_escalated", "approval.expired"]


def test_a_request_whose_warning_was_missed_is_only_escalated(waiting, mailoutbox,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_approvals(now=(waiting.sla_due_at + timedelta(hours=1)).isoformat()) == 1  # ISO from beat
    waiting.refresh_from_db()
    assert waiting.warned_at is None and waiting.escalated_at is not None
    assert [m.subject.split(":")[0] for m in mailoutbox] == ["Approval overdue (escalated)"]


def test_a_decided_request_is_never_warned(waiting, admin_a, mailoutbox, django_capture_on_commit_callbacks):
    from agents.approvals import approval_decide

    approval_decide(actor=admin_a, approval_id=waiting.pk, approve=False, note="no")
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_approvals(now=waiting.sla_due_at + timedelta(seconds=1)) == 0
    assert mailoutbox == []


# --- priority and assignment -------------------------------------------------------------------


def test_a_route_rule_sets_priority_and_assigns_the_clients_account_manager(
        gated, admin_a, client_a, scripted, make_user, assigned, api, mailoutbox):
    make_user("instance_manager")
    am = assigned("account_manager", client_a)
    approval_rule_create(actor=admin_a, tool_name="save_draft", action="route", priority="urgent",
                         assignee_role="account_manager")
    marker = f"route-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_r1", "save_draft", DRAFT)), text_turn()])
    run = start(admin_a, client_a, marker)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    urgent = ApprovalRequest.objects.get(run=run)
    assert urgent.priority == ApprovalPriority.URGENT and urgent.assigned_to == am

    # another client's request (no rule matches a different tool) stays normal and unassigned
    other_client = client_create(name="Other Brand")
    other_am = assigned("account_manager", other_client)
    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft", "get_approved_examples"]},
                           reason="more review")
    marker2 = f"route2-{uuid.uuid4().hex[:6]}"
    scripted.script(marker2, [tool_turn(("toolu_r2", "get_approved_examples", {})), text_turn()])
    run2 = start(admin_a, other_client, marker2)
    assert execute_run(run_id=str(run2.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    normal = ApprovalRequest.objects.get(run=run2)
    assert normal.priority == ApprovalPriority.NORMAL and normal.assigned_to is None

    http = api(connection.tenant, admin_a)
    listing = http.get("/api/v1/approvals?status=pending&ordering=priority").json()["results"]
    assert [(a["id"], a["priority"], a["assigned_to"], a["sla_state"]) for a in listing] == [
        (str(urgent.pk), "urgent", am.email, "on_time"), (str(normal.pk), "normal", None, "on_time")]
    assert [a["id"] for a in http.get("/api/v1/approvals?priority=urgent").json()["results"]] == [str(urgent.pk)]
    assert http.get("/api/v1/approvals?ordering=sideways").status_code == 400
    assert http.get("/api/v1/approvals?priority=extreme").status_code == 400
    # the assignee filters to their own; an account manager still sees only their clients' requests
    mine = api(connection.tenant, am).get("/api/v1/approvals?assigned=me").json()["results"]
    assert [a["id"] for a in mine] == [str(urgent.pk)]
    assert [a["id"] for a in api(connection.tenant, other_am).get("/api/v1/approvals").json()["results"]] == [
        str(normal.pk)]
    # anyone who may decide still can: an instance manager decides the assigned request
    manager = make_user("instance_manager")
    assert api(connection.tenant, manager).post(f"/api/v1/approvals/{urgent.pk}/approve", {},
                                                format="json").status_code == 200

    # the assignee is told in a mail of their own
    assert approval_notify(approval_id=normal.pk) is True
    assert len(mailoutbox) == 1
    ApprovalRequest.objects.filter(pk=urgent.pk).update(status=ApprovalStatus.PENDING, notified_at=None)
    assert approval_notify(approval_id=urgent.pk) is True
    assert mailoutbox[-1].subject == f"Assigned to you: approve save_draft ({client_a.name})"
    assert mailoutbox[-1].to == [am.email] and "Assigned to: " + am.email in mailoutbox[-2].body


def test_the_admin_queue_shows_priority_assignee_and_sla_and_filters_them(waiting, admin_a):
    from django.test import Client as HttpClient

    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin_a)
    queue = http.get("/admin/agents/approvalrequest/")
    assert queue.status_code == 200
    assert b'data-priority="normal"' in queue.content and b'data-sla="on_time"' in queue.content
    row = f"/admin/agents/approvalrequest/{waiting.pk}/change/".encode()
    assert row in http.get("/admin/agents/approvalrequest/?sla=on_time").content
    assert row not in http.get("/admin/agents/approvalrequest/?sla=escalated").content
    assert row not in http.get("/admin/agents/approvalrequest/?assigned=me").content
    assert row in http.get(f"/admin/agents/approvalrequest/?priority__exact={ApprovalPriority.NORMAL}").content
    assert row not in http.get(f"/admin/agents/approvalrequest/?priority__exact={ApprovalPriority.URGENT}").content
    page = http.get(f"/admin/agents/approvalrequest/{waiting.pk}/change/")
    assert b'id="approval-priority">Normal' in page.content and b"nobody in particular" in page.content


# --- auto rules through the loop ---------------------------------------------------------------


def test_an_auto_rule_approves_a_matching_call_and_not_another(in_a, admin_a, client_a, scripted):
    rule = approval_rule_create(actor=admin_a, **DISCOUNT_RULE)
    assert rule.preview == "approve request_discount_approval when discount_pct ≤ 5"

    small = {"estimate_id": "alpha-estimate-0042", "discount_pct": 5, "reason": "Volume"}
    marker = f"auto-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_d5", "request_discount_approval", small)), text_turn("Asked.")])
    run = start(admin_a, client_a, marker, agent_type="commercial")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED  # never waited
    approval = ApprovalRequest.objects.get(run=run)
    assert (approval.status, approval.decided_by, approval.approved_by_rule) == (ApprovalStatus.APPROVED, None, rule)
    assert f"rule #{rule.pk}" in approval.note and "discount_pct ≤ 5" in approval.note
    call = ToolCall.objects.get(run=run)
    assert call.attempts == 1 and call.status in (ToolCallStatus.SUCCEEDED, ToolCallStatus.FAILED)
    assert "run.awaiting_approval" not in types(run) and "tool.started" in types(run)

    big = {**small, "discount_pct": 12}
    marker = f"auto-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_d12", "request_discount_approval", big)), text_turn("Asked.")])
    run = start(admin_a, client_a, marker, agent_type="commercial")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    assert ApprovalRequest.objects.get(run=run).status == ApprovalStatus.PENDING
    assert ToolCall.objects.get(run=run).attempts == 0

    # disabled: the same small discount waits for a person again
    from agents.approval_rules import approval_rule_update

    approval_rule_update(actor=admin_a, rule=rule, changes={"enabled": False})
    marker = f"auto-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_d5b", "request_discount_approval", small)), text_turn()])
    run = start(admin_a, client_a, marker, agent_type="commercial")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    assert TuningChange.objects.filter(entity=Entity.APPROVAL_RULE).count() == 2  # created, disabled


@pytest.mark.parametrize(("actual", "op", "value", "matches"), [
    (5, "<=", 5, True), (4.5, "<", 5, True), (12, "<=", 5, False), ("5", "<=", 5, False), (True, "<=", 5, False),
    (5, "==", 5.0, True), ("5", "==", 5, False), (True, "==", 1, False), ("EUR", "!=", "USD", True),
    ("EUR", "!=", 5, False), ("EUR", "in", ["EUR", "USD"], True), (5, "in", ["5"], False),
    ("Two-year retainer", "contains", "retainer", True), (["a", "b"], "contains", "b", True),
    (55, "contains", "5", False), (None, ">", 1, False)])
def test_comparisons_are_type_safe(actual, op, value, matches):
    assert compare(actual, op, value) is matches


def test_field_paths_reach_nested_values():
    data = {"budget": {"total": 10, "lines": [{"days": 3}]}}
    assert field_at(data, "budget.total") == 10 and field_at(data, "budget.lines.0.days") == 3
    assert not compare(field_at(data, "budget.missing"), "==", None)


# --- batch decision ----------------------------------------------------------------------------


def test_three_calls_of_one_turn_are_decided_together_and_the_run_resumes_once(
        gated, admin_a, client_a, scripted, api):
    marker = f"turn-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(*[(f"toolu_t{i}", "save_draft", {"content": f"Draft {i}."})
                                         for i in range(3)]), text_turn("Saved three.")])
    run = start(admin_a, client_a, marker)
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    first, *others = ApprovalRequest.objects.filter(run=run).order_by("created_at")
    assert len(others) == 2

    from django.test import Client as HttpClient

    page = HttpClient(HTTP_HOST=HOST_A)
    page.force_login(admin_a)
    shown = page.get(f"/admin/agents/approvalrequest/{first.pk}/change/")
    assert b'id="approval-whole-turn"' in shown.content and b"2 other pending calls" in shown.content

    decided = api(connection.tenant, admin_a).post(f"/api/v1/approvals/{first.pk}/approve",
                                                   {"note": "All three fine.", "whole_turn": True}, format="json")
    assert decided.status_code == 200, decided.json()
    assert sorted(decided.json()["turn_decided"]) == sorted(str(a.pk) for a in [first, *others])
    assert set(ApprovalRequest.objects.filter(run=run).values_list("status", flat=True)) == {ApprovalStatus.APPROVED}
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and types(run).count("run.approval_resumed") == 1
    again = api(connection.tenant, admin_a).post(f"/api/v1/approvals/{others[0].pk}/reject",
                                                 {"whole_turn": True}, format="json")
    assert again.status_code == 409
    assert api(connection.tenant, admin_a).post(f"/api/v1/approvals/{first.pk}/approve", {"whole_turn": "maybe"},
                                                format="json").status_code == 400


def test_without_whole_turn_only_one_call_is_decided_and_the_admin_checkbox_decides_the_rest(
        gated, admin_a, client_a, scripted):
    from django.test import Client as HttpClient

    marker = f"turn-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(*[(f"toolu_u{i}", "save_draft", {"content": f"Draft {i}."})
                                         for i in range(3)]), text_turn()])
    run = start(admin_a, client_a, marker)
    execute_run(run_id=str(run.pk), worker="w1")
    first, second, third = ApprovalRequest.objects.filter(run=run).order_by("created_at")
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin_a)
    assert http.post(f"/admin/agents/approvalrequest/{first.pk}/change/", {"_reject": "1", "note": "no"}
                     ).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert http.post(f"/admin/agents/approvalrequest/{second.pk}/change/",
                     {"_reject": "1", "note": "none of these", "whole_turn": "on"}).status_code == 302
    statuses = dict(ApprovalRequest.objects.filter(run=run).values_list("pk", "status"))
    assert statuses == {first.pk: "rejected", second.pk: "rejected", third.pk: "rejected"}
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and types(run).count("run.approval_resumed") == 1


# --- cancelled runs ----------------------------------------------------------------------------


def test_a_cancelled_runs_pending_requests_are_closed_and_leave_the_queue(waiting, admin_a, api):
    from django.test import Client as HttpClient

    run = AgentRun.objects.get(pk=waiting.run_id)
    run_cancel(actor=admin_a, run=run)
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.CANCELLED and "cancelled" in waiting.note
    assert "approval.closed" in types(run)
    assert list(pending_for(actor=admin_a)) == []
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(admin_a)
    row = f"/admin/agents/approvalrequest/{waiting.pk}/change/".encode()
    assert row not in http.get("/admin/agents/approvalrequest/").content  # the default: pending
    assert api(connection.tenant, admin_a).get("/api/v1/approvals?status=pending").json()["results"] == []
    assert api(connection.tenant, admin_a).post(f"/api/v1/approvals/{waiting.pk}/approve", {},
                                                format="json").status_code == 409


def test_the_beat_closes_requests_of_runs_that_ended_elsewhere(waiting):
    # a run cancelled or failed while a worker held it ends in the loop, not in run_cancel
    AgentRun.objects.filter(pk=waiting.run_id).update(status=RunStatus.FAILED)
    assert expire_approvals() == 1
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.CANCELLED and "failed" in waiting.note
    assert expire_approvals() == 0


# --- managing rules: API, admin, policy, isolation ----------------------------------------------


def test_rules_api_crud_by_an_instance_admin(in_a, admin_a, api):
    http = api(connection.tenant, admin_a)
    created = http.post("/api/v1/approval-rules", {**DISCOUNT_RULE, "note": "small discounts"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["preview"] == "approve request_discount_approval when discount_pct ≤ 5"
    assert body["created_by"] == admin_a.email and body["enabled"] is True and body["priority"] is None
    rule_id = body["id"]
    assert [r["id"] for r in http.get("/api/v1/approval-rules").json()] == [rule_id]
    changed = http.patch(f"/api/v1/approval-rules/{rule_id}", {"enabled": False, "priority": "high"}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False and changed.json()["priority"] == "high"
    assert http.get(f"/api/v1/approval-rules/{rule_id}").json()["preview"].endswith("(priority high) [disabled]")
    assert http.delete(f"/api/v1/approval-rules/{rule_id}").status_code == 204
    assert http.get(f"/api/v1/approval-rules/{rule_id}").status_code == 404
    assert list(TuningChange.objects.filter(entity=Entity.APPROVAL_RULE).values_list("action", flat=True)
                .order_by("pk")) == ["create", "update", "delete"]


@pytest.mark.parametrize(("body", "fix"), [
    ({**DISCOUNT_RULE, "value": "5"}, "value: a number for <="),
    ({**DISCOUNT_RULE, "op": "≈"}, "op"),
    ({**DISCOUNT_RULE, "op": ""}, "op: one of"),
    ({"tool_name": "save_draft", "op": "==", "value": 1}, "field_path: name the input field"),
    ({**DISCOUNT_RULE, "op": "in", "value": 5}, "value: a non-empty list"),
    ({**DISCOUNT_RULE, "priority": "extreme"}, "priority"),
    ({"tool_name": "save_draft", "action": "route"}, "sets a priority or an assignee_role"),
    ({**DISCOUNT_RULE, "tool_name": " "}, "tool_name"),
    ({**DISCOUNT_RULE, "field_path": "a..b"}, "field_path: dotted"),
])
def test_bad_rules_are_refused_with_what_to_fix(in_a, admin_a, api, body, fix):
    answer = api(connection.tenant, admin_a).post("/api/v1/approval-rules", body, format="json")
    assert answer.status_code == 400, answer.json()
    assert fix in str(answer.json())
    assert not ApprovalRule.objects.exists()


def test_bad_ids_and_bodies_on_rule_endpoints(in_a, admin_a, api):
    http = api(connection.tenant, admin_a)
    assert http.get("/api/v1/approval-rules/not-a-number").status_code == 404
    assert http.patch("/api/v1/approval-rules/999999", {"enabled": False}, format="json").status_code == 404
    rule = approval_rule_create(actor=admin_a, **DISCOUNT_RULE)
    assert http.patch(f"/api/v1/approval-rules/{rule.pk}", {"value": "five"}, format="json").status_code == 400
    assert http.patch(f"/api/v1/approval-rules/{rule.pk}", ["x"], format="json").status_code == 400


@pytest.mark.parametrize(("role", "expected"), [
    (None, (401, 403)), ("client_contact", (403,)), ("account_manager", (403,)), ("instance_manager", (403,)),
    ("instance_admin", (200, 201, 204))])
def test_only_instance_admins_manage_rules(in_a, admin_a, client_a, make_user, assigned, api, role, expected):
    rule = approval_rule_create(actor=admin_a, **DISCOUNT_RULE)
    user = assigned(role, client_a) if role in ("account_manager", "client_contact") else \
        make_user(role) if role else None
    http = api(connection.tenant, user)
    assert http.get("/api/v1/approval-rules").status_code in expected
    assert http.get(f"/api/v1/approval-rules/{rule.pk}").status_code in expected
    assert http.post("/api/v1/approval-rules", {**DISCOUNT_RULE, "value": 3}, format="json").status_code in expected
    assert http.patch(f"/api/v1/approval-rules/{rule.pk}", {"enabled": False}, format="json"
                      ).status_code in expected
    rule.refresh_from_db()
    assert rule.enabled is (role != "instance_admin")


def test_instance_b_cannot_see_or_touch_a_rules(in_a, admin_a, instance_a, instance_b, make_user, api):
    rule = approval_rule_create(actor=admin_a, **DISCOUNT_RULE)
    connection.set_tenant(instance_b)
    other = api(instance_b, make_user("instance_admin"))
    assert other.get("/api/v1/approval-rules").json() == []
    assert other.get(f"/api/v1/approval-rules/{rule.pk}").status_code == 404
    assert other.patch(f"/api/v1/approval-rules/{rule.pk}", {"enabled": False}, format="json").status_code == 404
    assert other.delete(f"/api/v1/approval-rules/{rule.pk}").status_code == 404
    connection.set_tenant(instance_a)
    rule.refresh_from_db()
    assert rule.enabled is True


def test_the_rules_admin_for_admins_only_with_a_plain_language_preview(in_a, admin_a, client_a, assigned):
    from django.test import Client as HttpClient

    def browser(user):
        http = HttpClient(HTTP_HOST=HOST_A)
        http.force_login(user)
        return http

    http = browser(admin_a)
    form = {"tool_name": "request_discount_approval", "field_path": "discount_pct", "op": "<=", "value": '"5"',
            "action": "approve", "priority": "", "assignee_role": "", "enabled": "on", "note": ""}
    refused = http.post("/admin/agents/approvalrule/add/", form)
    assert refused.status_code == 200 and b"value: a number for &lt;=" in refused.content
    assert not ApprovalRule.objects.exists()
    assert http.post("/admin/agents/approvalrule/add/", {**form, "value": "5"}).status_code == 302
    rule = ApprovalRule.objects.get()
    assert rule.value == 5 and rule.created_by == admin_a
    listing = http.get("/admin/agents/approvalrule/")
    assert "approve request_discount_approval when discount_pct ≤ 5" in listing.content.decode()
    assert http.post("/admin/agents/approvalrule/", {"action": "disable_rules", "_selected_action": [rule.pk],
                                                     "index": "0"}).status_code == 302
    rule.refresh_from_db()
    assert rule.enabled is False
    am = browser(assigned("account_manager", client_a))
    assert am.get("/admin/agents/approvalrule/").status_code == 403
    assert am.get(f"/admin/agents/approvalrule/{rule.pk}/change/").status_code == 403


def test_the_lists_take_a_fixed_number_of_queries(gated, admin_a, client_a, scripted, api):
    from django.test.utils import CaptureQueriesContext

    http = api(connection.tenant, admin_a)
    http.get("/api/v1/me")  # the token's last use is written once, on its first request

    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert http.get(url).status_code == 200
        return len(captured)

    approval_rule_create(actor=admin_a, tool_name="save_draft", action="route", priority="high")
    marker = f"count-{uuid.uuid4().hex[:6]}"
    scripted.script(marker, [tool_turn(("toolu_n1", "save_draft", DRAFT)), text_turn()])
    execute_run(run_id=str(start(admin_a, client_a, marker).pk), worker="w1")
    one = (queries("/api/v1/approvals?ordering=priority"), queries("/api/v1/approval-rules"))
    for i in range(3):
        approval_rule_create(actor=admin_a, **{**DISCOUNT_RULE, "value": i + 1})
        marker = f"count-{uuid.uuid4().hex[:6]}"
        scripted.script(marker, [tool_turn((f"toolu_n{i + 2}", "save_draft", DRAFT)), text_turn()])
        execute_run(run_id=str(start(admin_a, client_a, marker).pk), worker="w1")
    assert (queries("/api/v1/approvals?ordering=priority"), queries("/api/v1/approval-rules")) == one


def test_rule_changes_roll_back_through_the_services(in_a, admin_a):
    from agents.approval_rules import approval_rule_delete, approval_rule_update
    from tuning.services import tuning_rollback

    rule = approval_rule_create(actor=admin_a, tool_name="request_discount_approval", field_path="discount_pct",
                                op="<=", value=5)
    approval_rule_update(actor=admin_a, rule=rule, changes={"value": 8})
    entries = list(TuningChange.objects.filter(entity=Entity.APPROVAL_RULE).order_by("id"))
    tuning_rollback(actor=admin_a, change=entries[1])
    assert ApprovalRule.objects.get(pk=rule.pk).value == 5
    approval_rule_delete(actor=admin_a, rule=ApprovalRule.objects.get(pk=rule.pk))
    tuning_rollback(actor=admin_a, change=TuningChange.objects.get(entity=Entity.APPROVAL_RULE, action="delete"))
    restored = ApprovalRule.objects.get(tool_name="request_discount_approval")
    assert (restored.field_path, restored.op, restored.value) == ("discount_pct", "<=", 5)


def test_a_skill_that_demands_approval_gives_its_requests_its_priority(in_a, admin_a, client_a, scripted, api):
    from skills.services import skill_create

    skill_create(actor=admin_a, name="wire_money", description="Send a payment.", agent_types=["copy"],
                 input_schema={"type": "object", "properties": {"amount": {"type": "number"}}},
                 execution_type="internal", handler="list_clients", requires_approval=True,
                 approval_priority="urgent")
    http = api(in_a, admin_a)
    skill = http.get("/api/v1/agents/copy/skills").json()[0]
    assert (skill["name"], skill["approval_priority"]) == ("wire_money", "urgent")
    scripted.script("prio-skill", [{"content": [{"type": "tool_use", "id": "toolu_w1", "name": "wire_money",
                                                 "input": {"amount": 5}}], "stop_reason": "tool_use"},
                                   {"content": [{"type": "text", "text": "Waiting."}], "stop_reason": "end_turn"}])
    run = run_create(actor=admin_a, agent_type="copy", task="prio-skill: pay.", client_id=client_a.pk,
                     sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="w1") == "awaiting_approval"
    assert ApprovalRequest.objects.get(run=run).priority == ApprovalPriority.URGENT
    refused = http.patch(f"/api/v1/skills/{skill['id']}", {"approval_priority": "asap"}, format="json")
    assert refused.status_code == 400 and "approval_priority" in refused.json()["error"]["message"]
