# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Human approval gates in-process: which calls wait, the run parks without a worker, decisions
over the API (first wins, 409 after), approval runs exactly that call, rejection and expiry give
the model a readable error, permissions and isolation."""

import smtplib
import uuid

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.utils import timezone

from agents.approvals import approval_decide, approval_notify, approvals_expire
from agents.loop import execute_run
from agents.models import AgentRun, ApprovalRequest, ApprovalStatus, RunStatus, ToolCall, ToolCallStatus
from agents.services import run_claim, run_create
from agents.tasks import notify_approvers, reap_stale_runs
from skills.services import skill_create
from tuning.services import client_create, client_tuning_update, instance_tuning_update

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401

DRAFT = {"content": "Glow gently this Ramadan."}


def start(admin, client, marker, **kwargs):
    return run_create(actor=admin, agent_type="copy", task=f"{marker}: write a Ramadan caption.",
                      client_id=client.pk, sandbox=True, **kwargs).run


def types(run):
    return list(run.events.values_list("type", flat=True))


@pytest.fixture
def gated(in_a):
    instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal review")


def test_a_gated_call_parks_the_run_and_runs_exactly_once_after_approval(gated, admin_a, client_a, scripted, api):
    scripted.script("appr-ok", [tool_turn(("toolu_a1", "save_draft", DRAFT)), text_turn("Saved the draft.")])
    run = start(admin_a, client_a, "appr-ok")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and run.lease_owner == "" and run.lease_until is None
    approval = ApprovalRequest.objects.get()
    assert (approval.tool_name, approval.tool_input, approval.client, approval.status) == (
        "save_draft", DRAFT, client_a, ApprovalStatus.PENDING)
    assert approval.rule == "instance/client approval rule 'save_draft'"
    assert '"content": "Glow gently this Ramadan."' in approval.rendered_input
    call = ToolCall.objects.get()
    assert call.status == ToolCallStatus.AWAITING_APPROVAL and call.attempts == 0
    assert "tool.started" not in types(run) and types(run)[-2:] == ["approval.requested", "run.awaiting_approval"]

    # nothing resumes it by itself
    assert run_claim(run_id=run.pk, worker="w2") is None
    assert reap_stale_runs() == 0
    assert execute_run(run_id=str(run.pk), worker="w2") == "skipped"

    http = api(connection.tenant, admin_a)
    pending = http.get("/api/v1/approvals?status=pending").json()["results"]
    assert [(p["id"], p["tool"], p["rule"], p["client_id"]) for p in pending] == [
        (str(approval.pk), "save_draft", approval.rule, client_a.pk)]
    decided = http.post(f"/api/v1/approvals/{approval.pk}/approve", {"note": "Cleared by legal."}, format="json")
    assert decided.status_code == 200, decided.json()
    assert decided.json()["status"] == "approved" and decided.json()["decided_by"] == admin_a.email
    again = http.post(f"/api/v1/approvals/{approval.pk}/reject", {"note": "too late"}, format="json")
    assert again.status_code == 409 and "already approved" in again.json()["error"]["message"]
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and types(run).count("run.approval_resumed") == 1

    assert execute_run(run_id=str(run.pk), worker="w3") == RunStatus.SUCCEEDED
    call.refresh_from_db()
    assert call.status == ToolCallStatus.SUCCEEDED and call.attempts == 1 and call.result["simulated"] is True
    assert run.artifacts.filter(kind="draft").count() == 1
    assert http.get("/api/v1/approvals?status=pending").json()["results"] == []


def test_approvers_are_emailed_by_a_task_queued_after_commit(
        gated, admin_a, client_a, scripted, make_user, assigned, django_capture_on_commit_callbacks, mailoutbox,
        monkeypatch):
    manager = make_user("instance_manager")
    am = assigned("account_manager", client_a)
    other_am = assigned("account_manager", client_create(name="Other Client"))
    contact = make_user("client_contact")
    queued = []
    monkeypatch.setattr(notify_approvers, "delay", lambda **kwargs: queued.append((connection.schema_name, kwargs)))
    scripted.script("appr-mail", [tool_turn(("toolu_m1", "save_draft", DRAFT)), text_turn()])
    run = start(admin_a, client_a, "appr-mail")
    with django_capture_on_commit_callbacks() as callbacks:
        assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    assert queued == [] and mailoutbox == []  # nothing before commit
    for callback in callbacks:
        callback()
    approval = ApprovalRequest.objects.get()
    assert queued == [("tenant_a", {"approval_id": str(approval.pk)})]
    assert mailoutbox == []  # the run's thread sends no mail

    assert notify_approvers.apply(kwargs=queued[0][1], throw=True).result is True
    (email,) = mailoutbox
    assert {admin_a.email, manager.email, am.email} <= set(email.to)
    assert other_am.email not in email.to and contact.email not in email.to
    assert email.subject == f"Approval needed: save_draft ({client_a.name})" and "Glow gently" in email.body
    approval.refresh_from_db()
    assert approval.notified_at is not None

    # delivered twice (acks late, a worker lost): the second delivery sends nothing
    assert notify_approvers.apply(kwargs=queued[0][1], throw=True).result is False
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("outcome", ["approved", "rejected", "expired"])
def test_a_request_decided_before_the_task_runs_sends_no_mail(waiting, admin_a, mailoutbox, outcome):
    if outcome == "expired":
        ApprovalRequest.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
        assert approvals_expire() == 1
    else:
        approval_decide(actor=admin_a, approval_id=waiting.pk, approve=outcome == "approved")
    assert notify_approvers.apply(kwargs={"approval_id": str(waiting.pk)}, throw=True).result is False
    assert mailoutbox == []
    waiting.refresh_from_db()
    assert waiting.status == outcome and waiting.notified_at is None


def test_the_task_for_a_request_of_a_finds_nothing_in_b(waiting, instance_a, instance_b, mailoutbox):
    connection.set_tenant(instance_b)
    assert notify_approvers.apply(kwargs={"approval_id": str(waiting.pk)}, throw=True).result is False
    assert connection.schema_name == "tenant_b" and mailoutbox == []
    connection.set_tenant(instance_a)
    waiting.refresh_from_db()
    assert waiting.notified_at is None
    assert notify_approvers.apply(kwargs={"approval_id": str(waiting.pk)}, throw=True).result is True
    assert len(mailoutbox) == 1


class DisconnectingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("the mail server went away")


def test_a_mail_server_error_releases_the_claim_for_the_retry(waiting, mailoutbox, settings):
    assert smtplib.SMTPException in notify_approvers.autoretry_for
    settings.EMAIL_BACKEND = f"{__name__}.DisconnectingBackend"
    with pytest.raises(smtplib.SMTPServerDisconnected):
        approval_notify(approval_id=waiting.pk)
    waiting.refresh_from_db()
    assert waiting.notified_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert approval_notify(approval_id=waiting.pk) is True
    assert len(mailoutbox) == 1


def test_rejection_gives_the_note_to_the_model(gated, admin_a, client_a, scripted, api):
    scripted.script("appr-no", [tool_turn(("toolu_r1", "save_draft", DRAFT)), text_turn("Understood.")])
    run = start(admin_a, client_a, "appr-no")
    execute_run(run_id=str(run.pk), worker="w1")
    approval = ApprovalRequest.objects.get()
    response = api(connection.tenant, admin_a).post(f"/api/v1/approvals/{approval.pk}/reject",
                                                    {"note": "Legal has not cleared the claim"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "rejected"
    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.SUCCEEDED
    result = scripted.requests("appr-no")[-1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert "rejected" in result["content"] and "Legal has not cleared the claim" in result["content"]
    call = ToolCall.objects.get()
    assert call.status == ToolCallStatus.FAILED and call.attempts == 0  # never executed


def test_expiry_fails_the_call_with_a_message(gated, admin_a, client_a, scripted):
    scripted.script("appr-late", [tool_turn(("toolu_e1", "save_draft", DRAFT)), text_turn("It still needs approval.")])
    run = start(admin_a, client_a, "appr-late")
    execute_run(run_id=str(run.pk), worker="w1")
    assert approvals_expire() == 0
    ApprovalRequest.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1),  # 24 h later
                                   created_at=timezone.now() - timezone.timedelta(hours=24, seconds=1))
    assert approvals_expire() == 1
    assert ApprovalRequest.objects.get().status == ApprovalStatus.EXPIRED
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.SUCCEEDED
    result = scripted.requests("appr-late")[-1]["messages"][-1]["content"][0]
    assert result["is_error"] is True and "within 24 h" in result["content"]


def test_several_calls_in_one_turn_each_get_a_request_and_the_run_waits_for_all(
        in_a, admin_a, client_a, scripted, api):
    client_tuning_update(actor=None, client=client_a, changes={"required_approvals": ["save_draft"]})
    skill_create(actor=None, name="conflict_check", description="Check for client conflicts.",
                 input_schema={"type": "object", "properties": {"client": {"type": "string"}}},
                 execution_type="internal", handler="check_conflicts", agent_types=["copy"], requires_approval=True)
    skill_create(actor=None, name="publish_post", description="Publish a post.",
                 input_schema={"type": "object", "properties": {}}, execution_type="internal",
                 handler="list_clients", agent_types=["copy"])
    scripted.script("appr-many", [
        tool_turn(("toolu_s1", "save_draft", DRAFT), ("toolu_s2", "conflict_check", {}),
                  ("toolu_s3", "publish_post", {}), ("toolu_s4", "get_approved_examples", {})),
        text_turn("All done.")])
    run = start(admin_a, client_a, "appr-many")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    rules = dict(ApprovalRequest.objects.values_list("tool_name", "rule"))
    assert rules == {"save_draft": "instance/client approval rule 'save_draft'",
                     "conflict_check": "skill 'conflict_check' requires approval",
                     "publish_post": "platform confirmation pattern 'publish_*'"}
    # the ungated call ran already and is not repeated on resume
    assert ToolCall.objects.get(name="get_approved_examples").status in (ToolCallStatus.SUCCEEDED,
                                                                          ToolCallStatus.FAILED)
    http = api(connection.tenant, admin_a)
    ids = {a.tool_name: a.pk for a in ApprovalRequest.objects.all()}
    # (one approved call, so it runs inline: a thread of its own would not see this test's uncommitted rows)
    assert http.post(f"/api/v1/approvals/{ids['save_draft']}/reject", {}, format="json").status_code == 200
    assert http.post(f"/api/v1/approvals/{ids['publish_post']}/reject", {"note": "no"}, format="json").status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and "run.approval_resumed" not in types(run)
    assert http.post(f"/api/v1/approvals/{ids['conflict_check']}/approve", {}, format="json").status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.SUCCEEDED
    calls = {c.name: c for c in ToolCall.objects.all()}
    assert calls["save_draft"].status == ToolCallStatus.FAILED and calls["save_draft"].attempts == 0
    assert calls["conflict_check"].status == ToolCallStatus.SUCCEEDED and calls["conflict_check"].attempts == 1
    assert calls["conflict_check"].result["conflict"] is False
    assert calls["publish_post"].status == ToolCallStatus.FAILED and calls["get_approved_examples"].attempts == 1
    results = scripted.requests("appr-many")[-1]["messages"][-1]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_s1", "toolu_s2", "toolu_s3", "toolu_s4"]


def test_invalid_input_is_refused_without_asking_anyone(gated, admin_a, client_a, scripted):
    scripted.script("appr-bad", [tool_turn(("toolu_b1", "save_draft", {"wrong": 1})), text_turn()])
    run = start(admin_a, client_a, "appr-bad")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.SUCCEEDED
    assert not ApprovalRequest.objects.exists()


@pytest.fixture
def waiting(gated, admin_a, client_a, scripted):
    marker = f"appr-perm-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_p1", "save_draft", DRAFT)), text_turn()])
    run = start(admin_a, client_a, marker)
    execute_run(run_id=str(run.pk), worker="w1")
    return ApprovalRequest.objects.get()


@pytest.mark.parametrize(("role", "list_status", "decide_status"), [
    # A client contact may never decide (policy approval.decide): 403 whatever the request.
    (None, 401, 401), ("client_contact", 403, 403), ("other_account_manager", 200, 404),
    ("account_manager", 200, 200), ("instance_manager", 200, 200), ("instance_admin", 200, 200)])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_permissions_on_every_approval_endpoint(waiting, make_user, assigned, api, role, list_status,
                                                decide_status, action):
    if role == "account_manager":
        user = assigned("account_manager", waiting.client)
    elif role == "other_account_manager":
        user = assigned("account_manager", client_create(name="Someone Else"))
    else:
        user = make_user(role) if role else None
    http = api(connection.tenant, user)
    listing = http.get("/api/v1/approvals?status=pending")
    assert listing.status_code in ((401, 403) if role is None else (list_status,))
    if list_status == 200:
        expected = [] if role == "other_account_manager" else [str(waiting.pk)]
        assert [a["id"] for a in listing.json()["results"]] == expected
    decided = http.post(f"/api/v1/approvals/{waiting.pk}/{action}", {"note": "ok"}, format="json")
    assert decided.status_code in ((401, 403) if role is None else (decide_status,))
    waiting.refresh_from_db()
    assert (waiting.status == ApprovalStatus.PENDING) == (decide_status != 200)


def test_bad_requests_to_the_approval_api(waiting, admin_a, api):
    http = api(connection.tenant, admin_a)
    assert http.get("/api/v1/approvals?status=maybe").status_code == 400
    assert http.post("/api/v1/approvals/not-a-uuid/approve", {}, format="json").status_code == 404
    assert http.post(f"/api/v1/approvals/{waiting.pk}/approve", {"note": "x" * 2001}, format="json").status_code == 400
    assert ApprovalRequest.objects.get().status == ApprovalStatus.PENDING


def test_instance_b_cannot_see_or_decide_a_approvals(waiting, instance_a, instance_b, make_user, api):
    connection.set_tenant(instance_b)
    other = api(instance_b, make_user("instance_admin"))
    assert other.get("/api/v1/approvals").json()["results"] == []
    for action in ("approve", "reject"):
        assert other.post(f"/api/v1/approvals/{waiting.pk}/{action}", {}, format="json").status_code == 404
    connection.set_tenant(instance_a)
    assert ApprovalRequest.objects.get().status == ApprovalStatus.PENDING
    assert AgentRun.objects.get().status == RunStatus.AWAITING_APPROVAL


def test_the_beat_task_expires_requests_in_every_instance(waiting, settings):
    from agents.tasks import expire_approvals

    assert settings.CELERY_BEAT_SCHEDULE["expire-approvals"]["task"] == "agents.expire_approvals"
    assert expire_approvals() == 0
    ApprovalRequest.objects.update(expires_at=timezone.now() - timezone.timedelta(minutes=1))
    assert expire_approvals() == 1
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.EXPIRED
    assert AgentRun.objects.get().status == RunStatus.QUEUED


def test_the_sla_is_per_instance(gated, admin_a, client_a, scripted, instance_a, instance_b):
    from spokestack.tenancy.models import Instance

    Instance.objects.filter(pk=instance_a.pk).update(approval_sla_hours=2)
    connection.set_tenant(Instance.objects.get(pk=instance_a.pk))  # as a worker's task loads it
    marker = f"appr-sla-{uuid.uuid4().hex[:8]}"
    scripted.script(marker, [tool_turn(("toolu_sla", "save_draft", DRAFT)), text_turn("It still needs approval.")])
    run = start(admin_a, client_a, marker)
    execute_run(run_id=str(run.pk), worker="w1")
    approval = ApprovalRequest.objects.get()
    assert abs((approval.expires_at - approval.created_at).total_seconds() - 14400) < 5  # SLA + grace
    assert Instance.objects.get(pk=instance_b.pk).approval_sla_hours == 24  # b keeps its own

    # the message names the SLA the request was given, even after the instance's changes
    Instance.objects.filter(pk=instance_a.pk).update(approval_sla_hours=48)
    ApprovalRequest.objects.update(expires_at=timezone.now() - timezone.timedelta(seconds=1),
                                   created_at=timezone.now() - timezone.timedelta(hours=2, seconds=1))
    assert approvals_expire() == 1
    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.SUCCEEDED
    result = scripted.requests(marker)[-1]["messages"][-1]["content"][0]
    assert "within 2 h" in result["content"]


def test_the_sla_is_read_from_the_instance_row_in_a_schema_context(in_a, instance_a):
    from django_tenants.utils import schema_context

    from agents.approvals import approval_sla
    from spokestack.tenancy.models import Instance

    Instance.objects.filter(pk=instance_a.pk).update(approval_sla_hours=5)
    with schema_context(instance_a.schema_name):
        assert approval_sla() == timezone.timedelta(hours=5)


def test_a_gated_call_left_without_its_request_is_asked_for_on_resume_never_run(gated, admin_a, client_a, scripted):
    """Fail closed: the state a worker killed between the held call and its request could leave
    (before both were one transaction) — the run resumes, finds the call held with nobody asked,
    asks, and waits. The call runs only after a decision."""
    scripted.script("appr-orphan", [tool_turn(("toolu_o1", "save_draft", DRAFT)), text_turn("Saved.")])
    run = start(admin_a, client_a, "appr-orphan")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    ApprovalRequest.objects.filter(run=run).delete()  # the request never made it
    AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="dead",
                                              lease_until="2000-01-01T00:00:00Z")

    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.AWAITING_APPROVAL
    call = ToolCall.objects.get(run=run)
    assert call.status == ToolCallStatus.AWAITING_APPROVAL and call.attempts == 0, "not run"
    approval = ApprovalRequest.objects.get(run=run)
    assert approval.status == ApprovalStatus.PENDING and approval.tool_call == call

    approval_decide(actor=admin_a, approval_id=approval.pk, approve=True, note="ok")
    assert execute_run(run_id=str(run.pk), worker="w3") == RunStatus.SUCCEEDED
    call.refresh_from_db()
    assert call.status == ToolCallStatus.SUCCEEDED and call.attempts == 1


def test_a_gated_call_and_its_decision_are_outbound_events(gated, admin_a, client_a, scripted):
    """Issue #21: approval.requested and run.awaiting_approval when a call waits, approval.decided
    when a person decides it, each recorded for the subscription that wants it (spokestack/webhooks)."""
    from spokestack.webhooks.models import WebhookEvent, WebhookSubscription

    WebhookSubscription.objects.create(url="https://hooks.example.com/e", event_types=[
        "approval.requested", "approval.decided", "run.awaiting_approval", "run.succeeded"])
    scripted.script("appr-hook", [tool_turn(("toolu_h1", "save_draft", DRAFT)), text_turn("Saved the draft.")])
    run = start(admin_a, client_a, "appr-hook")
    assert execute_run(run_id=str(run.pk), worker="w1") == RunStatus.AWAITING_APPROVAL
    approval = ApprovalRequest.objects.get(run=run)
    approval_decide(actor=admin_a, approval_id=approval.pk, approve=True, note="Fine.")
    assert execute_run(run_id=str(run.pk), worker="w2") == RunStatus.SUCCEEDED
    events = [(e.type, e.payload["data"]) for e in WebhookEvent.objects.order_by("created_at")]
    assert [t for t, _ in events] == ["approval.requested", "run.awaiting_approval", "approval.decided",
                                      "run.succeeded"]
    requested, awaiting, decided, succeeded = (d for _, d in events)
    assert requested["tool_name"] == "save_draft" and requested["tool_input"] == DRAFT
    assert requested["client_id"] == client_a.pk and awaiting["approval_ids"] == [str(approval.pk)]
    assert decided["status"] == "approved" and decided["decided_by"] == admin_a.email and decided["note"] == "Fine."
    assert succeeded["run_id"] == str(run.pk) and succeeded["output"] == "Saved the draft."
