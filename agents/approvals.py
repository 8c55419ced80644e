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

The queue (issue #21): each request gets a priority and may be assigned to one approver (from
the instance admins' `ApprovalRule`s, agents/approval_rules.py; an `approve` rule decides it at
once, decided_by NULL, `approved_by_rule` set). Its SLA timeline, fixed when it is created:

    created ── 75 % of the SLA: warn the approvers ── 100 %: escalate to the instance admins
            ── SLA + grace (the SLA again): expire (the call fails, the model is told)

so a person always hears before the request dies. The beat task (`agents.expire_approvals`,
`approvals_sla_sweep`) takes each step with a conditional update on `warned_at` / `escalated_at`
/ `status`, so however many beat workers run, each step is notified once (e-mail + the instance's
live `approvals` event). A request that skipped a step (the beat was down) is not notified late
for it: only its latest due step is. Pending requests of runs that ended (cancelled, failed)
are closed as `cancelled`.
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
from .models import (
    AgentRun,
    ApprovalAssignee,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalStatus,
    RunStatus,
    ToolCall,
)

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


WARN_AT = 0.75  # of the SLA


def approval_expiry_grace(sla: timedelta) -> timedelta:
    """How long a request lives after its SLA was breached and escalated: the SLA again, so the
    admins told at the breach have as long as the approvers had."""
    return sla


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


def assignee_for(client, role: str) -> AbstractUser | None:
    """The one approver a rule assigns: for `account_manager`, the client's account manager first,
    else an instance manager, else an instance admin (the first of each, by id); only people who
    may decide the request (`approvers_for`)."""
    if not role:
        return None
    people = approvers_for(client)
    order = {ApprovalAssignee.ACCOUNT_MANAGER: ("account_manager", "instance_manager", "instance_admin"),
             ApprovalAssignee.INSTANCE_MANAGER: ("instance_manager", "instance_admin"),
             ApprovalAssignee.INSTANCE_ADMIN: ("instance_admin",)}.get(role, ())
    for wanted in order:
        found = sorted((u for u in people if wanted in roles_of(u)), key=lambda u: u.pk)
        if found:
            return found[0]
    return None


@transaction.atomic
def approval_request_create(*, run: AgentRun, tool_call: ToolCall, rule: str,
                            priority: int = ApprovalPriority.NORMAL) -> ApprovalRequest:
    """Hold one tool call for a person's decision and tell the approvers (after commit); or, when an
    instance admin's enabled `approve` rule matches its input, record it approved by that rule (the
    loop then runs it at once). `priority`: the demanding rule's or skill's (normal by default); a
    matching `route` rule sets the priority and the assignee instead."""
    from .approval_rules import approval_rule_match

    auto, route = approval_rule_match(tool_name=tool_call.name, tool_input=tool_call.input)
    routing = auto or route
    if routing is not None and routing.priority:
        priority = routing.priority
    now = timezone.now()
    sla = approval_sla()
    approval = ApprovalRequest(run=run, tool_call=tool_call, client=run.client, tool_name=tool_call.name,
                               tool_input=tool_call.input, rendered_input=render_input(tool_call.input), rule=rule,
                               priority=priority, sla=sla, warn_at=now + sla * WARN_AT, sla_due_at=now + sla,
                               expires_at=now + sla + approval_expiry_grace(sla))
    if auto is not None:
        approval.status, approval.decided_at, approval.approved_by_rule = ApprovalStatus.APPROVED, now, auto
        approval.note = f"Approved automatically by rule #{auto.pk}: {auto.preview}."
    elif routing is not None:
        approval.assigned_to = assignee_for(run.client, routing.assignee_role)
    approval.full_clean(exclude=["run", "tool_call", "client", "assigned_to"])
    approval.save()
    event_append(run_id=run.pk, type="approval.requested", payload={
        "approval_id": str(approval.pk), "tool_use_id": tool_call.tool_use_id, "name": tool_call.name,
        "rule": rule, "expires_at": approval.expires_at.isoformat(), "sla_due_at": approval.sla_due_at.isoformat(),
        "priority": ApprovalPriority(approval.priority).name.lower(),
        "assigned_to": getattr(approval.assigned_to, "email", None)})
    schema = connection.schema_name
    approval_id = str(approval.pk)
    _emit(approval.pk, "approval.decided" if auto is not None else "approval.requested")
    if auto is not None:
        metrics.approval_decided(run.agent_type, ApprovalStatus.APPROVED)
        event_append(run_id=run.pk, type="approval.decided", payload={
            "approval_id": approval_id, "status": ApprovalStatus.APPROVED, "name": approval.tool_name,
            "decided_by": f"rule #{auto.pk}", "rule_id": auto.pk})
        transaction.on_commit(lambda: _publish(schema=schema, approval_id=approval_id))
    else:
        transaction.on_commit(lambda: _announce(schema=schema, approval_id=approval_id))
    return approval


def _emit(approval_id, event_type: str) -> None:
    """The request as an outbound event (spokestack/webhooks), in the caller's transaction."""
    from spokestack.webhooks.services import webhook_emit

    approval = ApprovalRequest.objects.select_related("decided_by").get(pk=approval_id)
    data = {"approval_id": str(approval.pk), "run_id": str(approval.run_id), "client_id": approval.client_id,
            "tool_name": approval.tool_name, "tool_input": approval.tool_input, "rule": approval.rule,
            "status": str(approval.status), "expires_at": approval.expires_at.isoformat()}
    if event_type == "approval.decided":
        rule = getattr(approval, "approved_by_rule_id", None)
        data |= {"decided_by": approval.decided_by.email if approval.decided_by else (f"rule #{rule}" if rule else None),
                 "note": approval.note}
    webhook_emit(event_type, data)


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
        from spokestack.webhooks.services import webhook_emit

        webhook_emit("run.awaiting_approval", {"run_id": str(run.pk), "agent_type": run.agent_type,
                                               "client_id": run.client_id, "approval_ids": [str(p) for p in pending]})
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


def turn_pending(approval: ApprovalRequest) -> QuerySet[ApprovalRequest]:
    """The pending requests of the same turn (same run, same iteration) as `approval`, itself included."""
    return ApprovalRequest.objects.filter(run_id=approval.run_id, status=ApprovalStatus.PENDING,
                                          tool_call__iteration=approval.tool_call.iteration)


def approval_decide(*, actor: AbstractUser | None, approval_id: uuid.UUID | str, approve: bool,
                    note: str = "", whole_turn: bool = False) -> ApprovalRequest:
    """Approve or reject a pending call. The first decision wins; any later one is a Conflict.
    Approval runs exactly that call in a new task; rejection gives the note to the model.

    `whole_turn`: the same decision (and note) for every call of the turn still pending, in one
    transaction under the run's lock, so the run is resumed once. The named request must be
    pending (else 409); the others already decided keep their decision. `approval.turn_decided`
    lists the ids this decision took."""
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"note: text of at most {MAX_NOTE_CHARS} characters.")
    if not isinstance(whole_turn, bool):
        raise InvalidInput("whole_turn: true or false.")
    policy.require(actor, "approval.decide")
    approval = approval_get(actor=actor, approval_id=approval_id)
    policy.require(actor, "approval.decide", approval.client_id)
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().get(pk=approval.run_id)
        if run.is_finished:
            raise Conflict(f"The run already {run.status}; there is nothing left to approve.",
                           details={"run_status": run.status})
        others = [pk for pk in turn_pending(approval).exclude(pk=approval.pk).order_by("created_at")
                  .values_list("pk", flat=True)] if whole_turn else []
        taken = []
        for pk in [approval.pk, *others]:
            decided = ApprovalRequest.objects.filter(pk=pk, status=ApprovalStatus.PENDING).update(
                status=status, note=note.strip(), decided_by=actor, decided_at=timezone.now())
            if not decided and pk == approval.pk:
                approval.refresh_from_db()
                by = f" by {approval.decided_by.email}" if approval.decided_by else ""
                raise Conflict(f"This request was already {approval.status}{by}; the first decision stands.",
                               details={"status": approval.status})
            if decided:
                taken.append(pk)
                metrics.approval_decided(run.agent_type, status)
                event_append(run_id=run.pk, type="approval.decided", payload={
                    "approval_id": str(pk), "status": status, "name": approval.tool_name if pk == approval.pk else
                    ApprovalRequest.objects.values_list("tool_name", flat=True).get(pk=pk),
                    "decided_by": getattr(actor, "email", "system"), "whole_turn": whole_turn})
        for pk in taken:
            _emit(pk, "approval.decided")
        _resume_if_ready(run)
        schema = connection.schema_name
        for pk in taken:
            transaction.on_commit(functools.partial(_publish, schema=schema, approval_id=pk))
    approval.refresh_from_db()
    approval.turn_decided = [str(pk) for pk in taken]
    logger.info("approval %s %s by %s (%d of the turn)", approval.pk, status, getattr(actor, "email", "system"),
                len(taken))
    return approval


def approvals_expire(*, now=None) -> int:
    """Fail every pending request past its expiry (the SLA plus its grace) in the current schema; the
    call fails with a message, and the `ws/events/` subscribers who see the request's client hear
    that it expired. The instance admins, told at the breach, are told once more."""
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
            _emit(approval_id, "approval.expired")
            _resume_if_ready(run)
            transaction.on_commit(functools.partial(_publish, schema=connection.schema_name, approval_id=approval_id))
            transaction.on_commit(functools.partial(_sla_mail, approval_id=approval_id, step="expired"))
    return expired


def approvals_warn(*, now=None) -> int:
    """Warn the approvers of each pending request past 75 % of its SLA (and not yet breached), once."""
    now = now or timezone.now()
    warned = 0
    for approval_id in ApprovalRequest.objects.filter(
            status=ApprovalStatus.PENDING, warn_at__lte=now, sla_due_at__gt=now, warned_at__isnull=True,
            escalated_at__isnull=True).values_list("pk", flat=True):
        # The claim is the decision: only the worker whose update took the row notifies.
        if ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING,
                                          warned_at__isnull=True).update(warned_at=now):
            warned += 1
            _sla_step(approval_id=approval_id, step="sla_warning")
    return warned


def approvals_escalate(*, now=None) -> int:
    """Escalate each pending request whose SLA is breached (and that has not expired) to the instance
    admins, once."""
    now = now or timezone.now()
    escalated = 0
    for approval_id in ApprovalRequest.objects.filter(
            status=ApprovalStatus.PENDING, sla_due_at__lte=now, expires_at__gte=now,
            escalated_at__isnull=True).values_list("pk", flat=True):
        if ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING,
                                          escalated_at__isnull=True).update(escalated_at=now):
            escalated += 1
            _sla_step(approval_id=approval_id, step="sla_escalated")
    return escalated


def approvals_close_for_run(*, run_id, reason: str) -> int:
    """Close the pending requests of a run that ended without them (cancelled, failed): `cancelled`,
    with the reason as the note, so no queue lists them and no one is asked any more."""
    closed = list(ApprovalRequest.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING)
                  .values_list("pk", flat=True))
    taken = 0
    agent_type = None
    for approval_id in closed:
        if ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING).update(
                status=ApprovalStatus.CANCELLED, decided_at=timezone.now(), note=reason[:MAX_NOTE_CHARS]):
            taken += 1
            agent_type = agent_type or AgentRun.objects.values_list("agent_type", flat=True).get(pk=run_id)
            metrics.approval_decided(agent_type, ApprovalStatus.CANCELLED)
            event_append(run_id=run_id, type="approval.closed", payload={"approval_id": str(approval_id),
                                                                         "reason": reason})
            transaction.on_commit(functools.partial(_publish, schema=connection.schema_name, approval_id=approval_id))
    return taken


def approvals_close_ended(*, now=None) -> int:
    """Close the pending requests of runs that already ended (a run cancelled or failed while a worker
    held it ends in the loop, not in `run_cancel`)."""
    from .models import TERMINAL_STATUSES

    closed = 0
    for run_id, status in ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING,
                                                         run__status__in=TERMINAL_STATUSES) \
            .order_by().values_list("run_id", "run__status").distinct():
        with transaction.atomic():
            closed += approvals_close_for_run(run_id=run_id, reason=f"The run {status} before anyone decided.")
    return closed


def approvals_sla_sweep(*, now=None) -> int:
    """The beat's pass over the current schema: close the requests of ended runs, expire, escalate,
    warn (in that order, so a request is notified for its latest due step only). Returns how many
    requests took a step."""
    now = now or timezone.now()
    return (approvals_close_ended(now=now) + approvals_expire(now=now) + approvals_escalate(now=now)
            + approvals_warn(now=now))


def approval_outcome(approval: ApprovalRequest) -> tuple[str, str]:
    """(action, message) for the loop: run | fail | wait."""
    if approval.status == ApprovalStatus.APPROVED:
        return "run", ""
    if approval.status == ApprovalStatus.REJECTED:
        note = approval.note or "no reason given"
        return "fail", (f"A person rejected this call to {approval.tool_name}: {note}. It was not made; "
                        "do not call it again with the same input, adapt to the reason instead.")
    if approval.status == ApprovalStatus.EXPIRED:
        sla = approval.sla or (approval.expires_at - approval.created_at)  # the SLA it was given
        hours = round(sla.total_seconds() / 3600)
        return "fail", (f"No one approved this call to {approval.tool_name} within {hours:g} h (nor in the grace "
                        "after it was escalated), so it was not made. Finish without it and say that it still "
                        "needs approval.")
    if approval.status == ApprovalStatus.CANCELLED:
        return "fail", f"This call to {approval.tool_name} was not made: {approval.note or 'the run was cancelled'}."
    return "wait", ""


def pending_for(*, actor: AbstractUser | None) -> QuerySet[ApprovalRequest]:
    """The queue: pending requests the actor may decide, of runs that have not ended."""
    from .models import TERMINAL_STATUSES

    return approvals_visible_to(actor=actor).filter(status=ApprovalStatus.PENDING).exclude(
        run__status__in=TERMINAL_STATUSES)


# --- notifications ----------------------------------------------------------------------


def _publish(*, schema: str, approval_id, extra: dict | None = None) -> None:
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
            "priority": ApprovalPriority(approval.priority).name.lower(),
            "assigned_to_id": approval.assigned_to_id, "sla_state": sla_state(approval), **(extra or {}),
            "pending": ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING,
                                                      client_id=approval.client_id).count()})
    except Exception:  # noqa: BLE001 - a notification must never fail the decision or the run
        logger.warning("could not publish approval %s", approval_id, exc_info=True)


def sla_state(approval: ApprovalRequest) -> str:
    """on_time | warned | escalated (pending), else the status."""
    if approval.status != ApprovalStatus.PENDING:
        return approval.status
    if approval.escalated_at:
        return "escalated"
    if approval.warned_at:
        return "warned"
    return "on_time"


def instance_admins() -> list[AbstractUser]:
    return list(get_user_model().objects.filter(is_active=True, groups__name=policy.IA).distinct().order_by("pk"))


SLA_STEPS = {
    "sla_warning": ("Approval due soon", "75 % of its approval time has passed; it is escalated to the instance "
                    "admins at {due} UTC."),
    "sla_escalated": ("Approval overdue (escalated)", "Its approval time ended at {due} UTC without a decision, so "
                      "it is escalated to you, the instance admins. It expires at {expires} UTC."),
    "expired": ("Approval expired", "No one decided it in time: the call was not made and the agent was told."),
}


def _sla_step(*, approval_id, step: str) -> None:
    """After a step was claimed: the run's event log and the instance's live event now, the e-mail
    once the claim is committed (a mail error is logged: the claim stands, the live event and the
    queue's SLA column still show it)."""
    approval = ApprovalRequest.objects.only("run_id").get(pk=approval_id)
    event_append(run_id=approval.run_id, type=f"approval.{step}", payload={"approval_id": str(approval_id)})
    schema = connection.schema_name
    transaction.on_commit(functools.partial(_publish, schema=schema, approval_id=approval_id,
                                            extra={"event": f"approval.{step}"}))
    transaction.on_commit(functools.partial(_sla_mail, approval_id=approval_id, step=step))


def _sla_mail(*, approval_id, step: str) -> bool:
    approval = ApprovalRequest.objects.select_related("client", "run", "assigned_to").get(pk=approval_id)
    people = approvers_for(approval.client) if step == "sla_warning" else instance_admins()
    recipients = sorted({u.email for u in people if u.email})
    if not recipients:
        return False
    title, text = SLA_STEPS[step]
    client = approval.client.name if approval.client else "no client"
    assignee = f"\nAssigned to: {approval.assigned_to.email} (anyone who may decide still can)" \
        if approval.assigned_to else ""
    try:
        send_mail(subject=f"{title}: {approval.tool_name} ({client})",
                  message=(f"The request to call {approval.tool_name} for {client} (run {approval.run_id}, priority "
                           f"{approval.get_priority_display().lower()}) is still waiting.\n"
                           + text.format(due=f"{approval.sla_due_at:%Y-%m-%d %H:%M}" if approval.sla_due_at else "?",
                                         expires=f"{approval.expires_at:%Y-%m-%d %H:%M}")
                           + f"{assignee}\n\nInput:\n{approval.rendered_input}\n\nDecide in the admin (Agents › "
                           f"Approval requests) or with POST /api/v1/approvals/{approval.pk}/approve or /reject."),
                  from_email=None, recipient_list=recipients)
    except Exception:  # noqa: BLE001 - one mail server error must not stop the sweep; the step stands
        logger.warning("could not e-mail the %s of approval %s", step, approval_id, exc_info=True)
        return False
    return True


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
    approval = ApprovalRequest.objects.select_related("client", "run", "assigned_to").get(pk=approval_id)
    recipients = sorted({u.email for u in approvers_for(approval.client) if u.email})
    if not recipients:
        return False
    client = approval.client.name if approval.client else "no client"
    due = approval.sla_due_at or approval.expires_at
    assignee = approval.assigned_to
    try:
        send_mail(
            subject=f"Approval needed: {approval.tool_name} ({client})",
            message=(f"An agent run ({approval.run.agent_type}, run {approval.run_id}) wants to call "
                     f"{approval.tool_name} for {client}.\nRule: {approval.rule}\nPriority: "
                     f"{approval.get_priority_display().lower()}\n"
                     + (f"Assigned to: {assignee.email} (anyone who may decide still can)\n" if assignee else "")
                     + f"\nInput:\n{approval.rendered_input}\n\n"
                     f"Decide in the admin (Agents › Approval requests) or with POST /api/v1/approvals/"
                     f"{approval.pk}/approve or /reject before {due:%Y-%m-%d %H:%M} UTC."),
            from_email=None, recipient_list=recipients)
    except Exception:
        ApprovalRequest.objects.filter(pk=approval_id, notified_at=claimed_at).update(notified_at=None)
        raise
    if assignee is not None and assignee.email:
        # Its own mail, after the claim's mail went out: a failure here is logged, never retried (the
        # approvers' mail, which names the assignee, must not go twice).
        try:
            send_mail(subject=f"Assigned to you: approve {approval.tool_name} ({client})",
                      message=(f"You are asked first to decide the call to {approval.tool_name} for {client} "
                               f"(priority {approval.get_priority_display().lower()}), before {due:%Y-%m-%d %H:%M} "
                               f"UTC.\n\nInput:\n{approval.rendered_input}\n\nAdmin: Agents › Approval requests; "
                               f"API: POST /api/v1/approvals/{approval.pk}/approve or /reject."),
                      from_email=None, recipient_list=[assignee.email])
        except Exception:  # noqa: BLE001 - see above
            logger.warning("could not e-mail the assignee of approval %s", approval_id, exc_info=True)
    return True
