"""Human approval gates (DESIGN §6): services and reads for `ApprovalRequest`.

A tool call that matches the assembled approval patterns (platform confirmation patterns,
the instance's require-approval-for, the client's required approvals) or calls a skill flagged
requires-approval is not executed: the loop records the call (ToolCall, status
awaiting_approval), creates one request per call, and moves the run to awaiting_approval, so
the task returns and no worker waits.

Races are decided in the database. Every decision (approve, reject, expire) and the loop's
pause take the run's row lock first; a decision moves the request out of `pending` with a
conditional update (the first wins, the others get Conflict → 409); whoever leaves the run
awaiting approval with nothing pending queues it again, once, in a new task after commit.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from django_tenants.utils import schema_context

from spokestack import metrics
from spokestack.accounts import policy
from spokestack.accounts.roles import roles_of
from spokestack.errors import Conflict, InvalidInput, NotFound
from spokestack.tasks import enqueue_on_commit

from .events import event_append
from .models import AgentRun, ApprovalRequest, ApprovalStatus, RunStatus, ToolCall

logger = logging.getLogger(__name__)

MAX_NOTE_CHARS = 2000


def approval_sla() -> timedelta:
    """The current instance's approval SLA (`Instance.approval_sla_hours`, set by platform staff).
    Workers see a change within CELERY_TASK_TENANT_CACHE_SECONDS (their cached instance)."""
    from spokestack.tenancy.models import DEFAULT_APPROVAL_SLA_HOURS, Instance

    hours = getattr(connection.tenant, "approval_sla_hours", None)
    if hours is None:  # a schema_context (FakeTenant): read the row
        hours = Instance.objects.filter(schema_name=connection.schema_name).values_list(
            "approval_sla_hours", flat=True).first()
    return timedelta(hours=hours or DEFAULT_APPROVAL_SLA_HOURS)


def approval_rule_for(*, tool_name: str, patterns: tuple[str, ...], platform_patterns: tuple[str, ...] = (),
                      skill_requires_approval: bool = False) -> str:
    """Which rule demands approval of a call to `tool_name` ('' when none does)."""
    if skill_requires_approval:
        return f"skill '{tool_name}' requires approval"
    for pattern in patterns:
        if fnmatch.fnmatchcase(tool_name, pattern):
            source = "platform confirmation pattern" if pattern in platform_patterns else \
                "instance/client approval rule"
            return f"{source} '{pattern}'"
    return ""


# --- who decides ------------------------------------------------------------------------


def can_decide(actor: AbstractUser | None, approval: ApprovalRequest) -> bool:
    """Policy `approval.decide` on the request's client, for a request the actor sees
    (`approvals_visible_to`: a request without a client only those who act on every client)."""
    return policy.allows(actor, "approval.decide", approval.client_id)


def may_approve(actor: AbstractUser | None) -> bool:
    """Whether the actor's role sees approval requests at all (which ones, `approvals_visible_to` says)."""
    return policy.allows(actor, "approval.view")


def approvals_visible_to(*, actor: AbstractUser | None) -> QuerySet[ApprovalRequest]:
    approvals = ApprovalRequest.objects.select_related("run", "client", "decided_by", "tool_call")
    if policy.acts_on_every_client(actor, "approval.view"):
        return approvals
    return approvals.filter(client__in=policy.clients_for(actor, "approval.view"))


def approval_get(*, actor: AbstractUser | None, approval_id: uuid.UUID | str) -> ApprovalRequest:
    try:
        return approvals_visible_to(actor=actor).get(pk=approval_id)
    except (ApprovalRequest.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No such approval request in this instance.", details={"approval_id": str(approval_id)}) \
            from None


def approvers_for(client) -> list[AbstractUser]:
    """Who is told about a new request: whoever may decide it (policy `approval.decide`): the roles
    that act on every client, and the client's assigned people of the scoped roles."""
    deciders = policy.rule("approval.decide").roles
    users = get_user_model().objects.filter(is_active=True)
    people = list(users.filter(groups__name__in=sorted(deciders - set(policy.SCOPED_ROLES))).distinct())
    if client is not None:
        from guardian.shortcuts import get_users_with_perms

        for role in sorted(deciders & set(policy.SCOPED_ROLES)):
            assigned = get_users_with_perms(client, only_with_perms_in=[policy.SCOPED_ROLES[role]],
                                            with_group_users=False)
            people += [u for u in assigned if u.is_active and role in roles_of(u) and u not in people]
    return people


# --- the loop's side --------------------------------------------------------------------


def render_input(tool_input: dict) -> str:
    return json.dumps(tool_input, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@transaction.atomic
def approval_request_create(*, run: AgentRun, tool_call: ToolCall, rule: str) -> ApprovalRequest:
    """Hold one tool call for a person's decision and tell the approvers (after commit)."""
    approval = ApprovalRequest(run=run, tool_call=tool_call, client=run.client, tool_name=tool_call.name,
                               tool_input=tool_call.input, rendered_input=render_input(tool_call.input), rule=rule,
                               expires_at=timezone.now() + approval_sla())
    approval.full_clean(exclude=["run", "tool_call", "client"])
    approval.save()
    event_append(run_id=run.pk, type="approval.requested", payload={
        "approval_id": str(approval.pk), "tool_use_id": tool_call.tool_use_id, "name": tool_call.name,
        "rule": rule, "expires_at": approval.expires_at.isoformat()})
    schema = connection.schema_name
    approval_id = str(approval.pk)
    transaction.on_commit(lambda: _announce(schema=schema, approval_id=approval_id))
    return approval


def run_await_approval(*, run: AgentRun, worker: str) -> bool:
    """Park a running run while any of its calls awaits a decision; the worker is released.

    False when every request was decided meanwhile (the loop goes on at once)."""
    from .services import LeaseLost

    with transaction.atomic():
        locked = AgentRun.objects.select_for_update().filter(pk=run.pk, status=RunStatus.RUNNING,
                                                             lease_owner=worker).first()
        if locked is None:
            raise LeaseLost(str(run.pk))
        pending = list(ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING)
                       .values_list("pk", flat=True))
        if not pending:
            return False
        AgentRun.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL, lease_until=None,
                                                  lease_owner="")
        event_append(run_id=run.pk, type="run.awaiting_approval", payload={
            "approval_ids": [str(p) for p in pending]})
    return True


# --- decisions --------------------------------------------------------------------------


def _resume_if_ready(run: AgentRun) -> bool:
    """With the run's row lock held: queue an awaiting run again once nothing is pending."""
    if run.status != RunStatus.AWAITING_APPROVAL:
        return False
    if ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING).exists():
        return False
    # requeued_at: the reaper leaves the run to this enqueue for a minute, then queues it itself
    # (when the broker was down as the decision committed).
    if not AgentRun.objects.filter(pk=run.pk, status=RunStatus.AWAITING_APPROVAL).update(
            status=RunStatus.QUEUED, lease_until=None, lease_owner="", requeued_at=Now()):
        return False
    event_append(run_id=run.pk, type="run.approval_resumed", payload={})
    from .tasks import run_agent

    enqueue_on_commit(run_agent, run_id=str(run.pk))
    return True


def approval_decide(*, actor: AbstractUser | None, approval_id: uuid.UUID | str, approve: bool,
                    note: str = "") -> ApprovalRequest:
    """Approve or reject a pending call. The first decision wins; any later one is a Conflict.
    Approval runs exactly that call in a new task; rejection gives the note to the model."""
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"note: text of at most {MAX_NOTE_CHARS} characters.")
    policy.require(actor, "approval.decide")
    approval = approval_get(actor=actor, approval_id=approval_id)
    policy.require(actor, "approval.decide", approval.client_id)
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=approval.run_id)
        if run.is_finished:
            raise Conflict(f"The run already {run.status}; there is nothing left to approve.",
                           details={"run_status": run.status})
        decided = ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=status, note=note.strip(), decided_by=actor, decided_at=timezone.now())
        if not decided:
            approval.refresh_from_db()
            by = f" by {approval.decided_by.email}" if approval.decided_by else ""
            raise Conflict(f"This request was already {approval.status}{by}; the first decision stands.",
                           details={"status": approval.status})
        metrics.approval_decided(run.agent_type, status)
        event_append(run_id=run.pk, type="approval.decided", payload={
            "approval_id": str(approval.pk), "status": status, "name": approval.tool_name,
            "decided_by": getattr(actor, "email", "system")})
        _resume_if_ready(run)
        schema = connection.schema_name
        transaction.on_commit(lambda: _publish(schema=schema, approval_id=approval.pk))
    approval.refresh_from_db()
    logger.info("approval %s %s by %s", approval.pk, status, getattr(actor, "email", "system"))
    return approval


def approvals_expire(*, now=None) -> int:
    """Fail every pending request past its SLA in the current schema; the call fails with a message,
    and the `ws/events/` subscribers who see the request's client hear that it expired."""
    now = now or timezone.now()
    expired = 0
    for approval_id, run_id in ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, expires_at__lt=now) \
            .values_list("pk", "run_id"):
        with transaction.atomic():
            run = AgentRun.objects.select_for_update().get(pk=run_id)
            if not ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING).update(
                    status=ApprovalStatus.EXPIRED, decided_at=now,
                    note="No one decided within the approval time limit."):
                continue
            expired += 1
            metrics.approval_decided(run.agent_type, ApprovalStatus.EXPIRED)
            event_append(run_id=run_id, type="approval.expired", payload={"approval_id": str(approval_id)})
            _resume_if_ready(run)
            transaction.on_commit(functools.partial(_publish, schema=connection.schema_name, approval_id=approval_id))
    return expired


def approval_outcome(approval: ApprovalRequest) -> tuple[str, str]:
    """(action, message) for the loop: run | fail | wait."""
    if approval.status == ApprovalStatus.APPROVED:
        return "run", ""
    if approval.status == ApprovalStatus.REJECTED:
        note = approval.note or "no reason given"
        return "fail", (f"A person rejected this call to {approval.tool_name}: {note}. It was not made; "
                        "do not call it again with the same input, adapt to the reason instead.")
    if approval.status == ApprovalStatus.EXPIRED:
        hours = round((approval.expires_at - approval.created_at).total_seconds() / 3600)  # the SLA it was given
        return "fail", (f"No one approved this call to {approval.tool_name} within {hours:g} h, so it was not made. "
                        "Finish without it and say that it still needs approval.")
    return "wait", ""


def pending_for(*, actor: AbstractUser | None) -> QuerySet[ApprovalRequest]:
    """The queue: pending requests the actor may decide, of runs that have not ended."""
    from .models import TERMINAL_STATUSES

    return approvals_visible_to(actor=actor).filter(status=ApprovalStatus.PENDING).exclude(
        run__status__in=TERMINAL_STATUSES)


# --- notifications ----------------------------------------------------------------------


def _publish(*, schema: str, approval_id) -> None:
    """Tell the `ws/events/` subscribers of `approvals`; each socket passes the message on only
    when its viewer may see `client_id` (spokestack/consumers.py). `pending` counts the pending
    requests of that client alone: an instance-wide count would tell about clients the viewer
    may not see."""
    try:
        from spokestack.realtime import publish_instance_event

        approval = ApprovalRequest.objects.get(pk=approval_id)
        publish_instance_event(schema, "approvals", {
            "approval_id": str(approval.pk), "status": approval.status, "tool": approval.tool_name,
            "run_id": str(approval.run_id), "client_id": approval.client_id,
            "pending": ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING,
                                                      client_id=approval.client_id).count()})
    except Exception:  # noqa: BLE001 - a notification must never fail the decision or the run
        logger.warning("could not publish approval %s", approval_id, exc_info=True)


def _announce(*, schema: str, approval_id: str) -> None:
    """Tell the admin (live) about a new request and queue the approvers' e-mail.

    Runs on commit, in autocommit mode that is inside the run's own thread: only the quick
    publish happens here, the SMTP round trip is the `agents.notify_approvers` task's."""
    _publish(schema=schema, approval_id=approval_id)
    try:
        from .tasks import notify_approvers

        with schema_context(schema):  # the task carries the schema it is queued from
            notify_approvers.delay(approval_id=approval_id)
    except Exception:  # noqa: BLE001 - a notification must never fail the run
        logger.warning("could not queue the e-mail to the approvers of %s", approval_id, exc_info=True)


def approval_notify(*, approval_id: uuid.UUID | str) -> bool:
    """E-mail the approvers of a pending request, at most once; True when a mail went out.

    The request is claimed first (`notified_at`, a conditional update on a pending, unclaimed
    row), so a task delivered twice sends one mail, and a request decided or expired before the
    task runs, or one of another instance, sends none. A mail server error releases the claim
    and is raised for the task to retry; a worker killed between the claim and the send loses
    that mail rather than sending it twice."""
    claimed_at = timezone.now()
    try:
        claimed = ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING,
                                                 notified_at__isnull=True).update(notified_at=claimed_at)
    except (ValidationError, ValueError):
        return False
    if not claimed:
        return False
    approval = ApprovalRequest.objects.select_related("client", "run").get(pk=approval_id)
    recipients = sorted({u.email for u in approvers_for(approval.client) if u.email})
    if not recipients:
        return False
    client = approval.client.name if approval.client else "no client"
    try:
        send_mail(
            subject=f"Approval needed: {approval.tool_name} ({client})",
            message=(f"An agent run ({approval.run.agent_type}, run {approval.run_id}) wants to call "
                     f"{approval.tool_name} for {client}.\nRule: {approval.rule}\n\nInput:\n{approval.rendered_input}\n\n"
                     f"Decide in the admin (Agents › Approval requests) or with POST /api/v1/approvals/"
                     f"{approval.pk}/approve or /reject before {approval.expires_at:%Y-%m-%d %H:%M} UTC."),
            from_email=None, recipient_list=recipients)
    except Exception:
        ApprovalRequest.objects.filter(pk=approval_id, notified_at=claimed_at).update(notified_at=None)
        raise
    return True
