"""Threads: conversations with one agent, one run per turn (issue #16 part 1).

A thread is created by `thread_create` (POST /api/v1/threads) or by an execute with `thread: true`
(services.run_create). `thread_message_send` starts the next turn: an ordinary run whose saved
conversation (`AgentRun.messages`, the loop's checkpoint) is the last succeeded turn's conversation
plus the new user message, so the loop continues it as it resumes any run. Each turn keeps
everything a run has (events, streaming with replay, approvals, cancel, cost, feedback, resume
after a dead worker, the limits per run).

One turn at a time: a message while the thread's last turn is not finished is 409, decided on the
thread row (SELECT … FOR UPDATE), and (thread, turn) is unique in the database besides. A failed or
cancelled turn is left out of the conversation that follows (the next turn continues from the last
succeeded one). The thread keeps the agent version it was created with until it is closed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import Conflict, InvalidInput, NotFound
from tuning.models import Client

from .models import TERMINAL_STATUSES, AgentRun, RunStatus, Thread, ThreadStatus
from .registry import get_spec
from .services import (
    CreatedRun,
    _agent_enabled,
    _check_specialization,
    check_agent_type,
    check_not_archived,
    check_task,
    resolve_client,
    resolve_version,
    run_queued,
)

TITLE_MAX = 200


# --- reads ------------------------------------------------------------------------------------


def threads_visible_to(*, actor: AbstractUser | None) -> QuerySet[Thread]:
    """As runs_visible_to: admins and managers see every thread; account managers and client
    contacts the threads of their clients, plus those they started themselves (policy `thread.view`)."""
    threads = Thread.objects.select_related("client", "created_by")
    if policy.acts_on_every_client(actor, "thread.view"):
        return threads
    if not policy.allows(actor, "thread.view"):
        return threads.none()
    return threads.filter(Q(client__in=policy.clients_for(actor, "thread.view")) | Q(created_by=actor))


def thread_get(*, actor: AbstractUser | None, thread_id: uuid.UUID | str) -> Thread:
    try:
        return threads_visible_to(actor=actor).get(pk=thread_id)
    except (Thread.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No such thread in this instance.", details={"thread_id": str(thread_id)}) from None


def thread_list(*, actor: AbstractUser | None, status: str | None = None, agent_type: str | None = None,
                client_id: int | None = None) -> QuerySet[Thread]:
    threads = threads_visible_to(actor=actor)
    if status:
        threads = threads.filter(status=status)
    if agent_type:
        threads = threads.filter(agent_type=agent_type)
    if client_id is not None:
        threads = threads.filter(client_id=client_id)
    return threads.order_by("-updated_at")


def thread_turns(thread: Thread) -> list[AgentRun]:
    """The thread's runs, oldest first, without their saved conversations (each holds the whole
    thread so far)."""
    return list(thread.turns.defer("messages").order_by("thread_turn"))


def thread_messages(turns: list[AgentRun]) -> list[dict]:
    """The conversation as people read it: each turn's user message and its final answer (or what
    became of the turn), with the run's id, status and cost."""
    messages = []
    for run in turns:
        common = {"turn": run.thread_turn, "run_id": str(run.pk), "created_at": run.created_at}
        messages.append({"role": "user", "text": run.task, **common})
        messages.append({"role": "assistant", "text": run.output, "status": run.status, "error": run.error,
                         "cost_usd": float(run.cost_usd), "finished_at": run.finished_at, **common})
    return messages


def thread_cost(turns: list[AgentRun]) -> float:
    return float(sum((Decimal(run.cost_usd) for run in turns), Decimal(0)))


# --- writes -----------------------------------------------------------------------------------


def thread_open(*, actor: AbstractUser | None, agent_type: str, agent_version: str, client: Client | None,
                title: str, specialization: dict, sandbox: bool, turns_count: int = 0) -> Thread:
    """Insert a thread (the callers validated everything and asked the policy)."""
    title = " ".join((title or "").split())
    if len(title) > TITLE_MAX:
        title = title[: TITLE_MAX - 1] + "…"
    return Thread.objects.create(agent_type=agent_type, agent_version=agent_version, client=client,
                                 created_by=actor, title=title, specialization=specialization, sandbox=sandbox,
                                 turns_count=turns_count)


@dataclass(frozen=True)
class CreatedThread:
    thread: Thread
    turn: CreatedRun | None  # the first turn, when the request carried a message


@transaction.atomic
def thread_create(*, actor: AbstractUser | None, agent_type: str, client_id: int | str | None = None,
                  title: str = "", message: str = "", specialization: dict | None = None,
                  metadata: dict | None = None) -> CreatedThread:
    """Open a thread with the agent type's current version (kept until it is closed); with a
    `message`, its first turn starts too."""
    policy.require(actor, "thread.create")
    check_agent_type(agent_type)
    if not isinstance(title, str) or len(title) > TITLE_MAX:
        raise InvalidInput(f"title: give a text of at most {TITLE_MAX} characters.", details={"title": "too long"})
    if message not in (None, ""):
        policy.require(actor, "thread.message")
        check_task(message, field="message")
    specialization = _check_specialization(specialization)
    client = resolve_client(actor=actor, action="thread.create", client_id=client_id)
    version = resolve_version(agent_type, None)
    thread = thread_open(actor=actor, agent_type=agent_type, agent_version=version, client=client,
                         title=title or message or "", specialization=specialization, sandbox=False)
    turn = None
    if message not in (None, ""):
        turn = _start_turn(actor=actor, thread=thread, message=message, metadata=metadata)
    return CreatedThread(thread=thread, turn=turn)


def _start_turn(*, actor: AbstractUser | None, thread: Thread, message: str, metadata: dict | None) -> CreatedRun:
    """The thread's next turn (the caller holds the thread row locked and checked it takes one)."""
    from .loop import _task_message

    metadata = metadata or {}
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata: give an object.")
    earlier = (AgentRun.objects.filter(thread=thread, status=RunStatus.SUCCEEDED)
               .order_by("-thread_turn").values_list("messages", flat=True).first())
    number = thread.turns_count + 1
    run = AgentRun(agent_type=thread.agent_type, agent_version=thread.agent_version, client=thread.client,
                   created_by=actor, task=message, metadata=metadata, specialization=thread.specialization,
                   sandbox=thread.sandbox, thread=thread, thread_turn=number)
    # The conversation so far plus the new message: the loop continues it like a checkpoint.
    run.messages = [*earlier, _task_message(run)] if earlier else []
    run.full_clean(validate_constraints=False)
    run.save()
    Thread.objects.filter(pk=thread.pk).update(turns_count=number, updated_at=timezone.now())
    thread.turns_count = number
    return CreatedRun(run=run, replayed=False, enqueued=run_queued(run))


@transaction.atomic
def thread_message_send(*, actor: AbstractUser | None, thread_id: uuid.UUID | str, message: str,
                        metadata: dict | None = None) -> CreatedRun:
    """Send the next user message: a new run continuing the conversation, with the thread's
    pinned agent version. 409 when the thread is closed or its last turn has not finished."""
    visible = thread_get(actor=actor, thread_id=thread_id)
    policy.require(actor, "thread.message", visible.client_id)
    check_task(message, field="message")
    # The row lock decides between concurrent messages: the second waits, then sees the first's turn.
    thread = Thread.objects.select_for_update().get(pk=visible.pk)
    if thread.status == ThreadStatus.CLOSED:
        raise Conflict(f"The thread was closed at {thread.closed_at:%Y-%m-%d %H:%M} UTC and takes no more messages; "
                       "start a new thread.", details={"thread_id": str(thread.pk), "status": thread.status})
    last = AgentRun.objects.filter(thread=thread).only("pk", "status", "thread_turn").order_by("-thread_turn").first()
    if last is not None and not last.is_finished:
        raise Conflict(f"Turn {last.thread_turn} of this thread is still {last.get_status_display().lower()} "
                       f"(run {last.pk}); send the next message when it has finished, or cancel it first.",
                       details={"thread_id": str(thread.pk), "run_id": str(last.pk), "status": last.status})
    client = Client.objects.filter(pk=thread.client_id).first() if thread.client_id else None
    check_not_archived(client)
    if get_spec(thread.agent_type, thread.agent_version) is None:
        raise Conflict(f"{thread.agent_type} {thread.agent_version}, the version this thread runs, is no longer "
                       "available; start a new thread.", details={"agent_version": thread.agent_version})
    if not _agent_enabled(thread.agent_type, thread.agent_version):
        raise Conflict(f"The {thread.agent_type} agent is disabled for this instance; an admin can enable it in the "
                       "instance tuning.", details={"agent_type": thread.agent_type})
    thread.client = client
    from spokestack.limits import check_run_limits

    check_run_limits(connection.tenant, actor=actor)  # a turn is a run: the tier's rate and concurrency limits
    return _start_turn(actor=actor, thread=thread, message=message, metadata=metadata)


@transaction.atomic
def thread_close(*, actor: AbstractUser | None, thread_id: uuid.UUID | str) -> Thread:
    """Close the thread: it takes no more messages, and a turn still queued, running or awaiting
    approval is cancelled (as `DELETE /api/v1/agent/task/{id}` would: whoever may close a thread
    may cancel its runs). 409 when it was closed already."""
    from .services import run_cancel

    visible = thread_get(actor=actor, thread_id=thread_id)
    policy.require(actor, "thread.close", visible.client_id)
    closed = Thread.objects.filter(pk=visible.pk, status=ThreadStatus.OPEN).update(
        status=ThreadStatus.CLOSED, closed_at=timezone.now(), updated_at=timezone.now())
    if not closed:
        raise Conflict("The thread is already closed.", details={"thread_id": str(visible.pk)})
    for turn in AgentRun.objects.filter(thread_id=visible.pk).exclude(status__in=TERMINAL_STATUSES):
        run_cancel(actor=actor, run=turn)
    return thread_get(actor=actor, thread_id=visible.pk)


@dataclass(frozen=True)
class ContinuedThread:
    thread: Thread
    created: bool  # False: the run was a thread's turn already, and this is that thread


@transaction.atomic
def thread_continue_from_run(*, actor: AbstractUser | None, run_id: uuid.UUID | str) -> ContinuedThread:
    """"Continue in a thread": a thread on the succeeded run's agent type and version, client,
    specialization and sandbox, with the run as its turn 1, so the next message continues that
    run's conversation. A run that is a thread's turn already (a second click, two people at once)
    answers that thread, created=False: the run row is locked, so only one thread is ever opened."""
    from .selectors import run_get

    visible = run_get(actor=actor, run_id=run_id)
    policy.require(actor, "thread.create", visible.client_id)
    run = AgentRun.objects.select_for_update().defer("messages").get(pk=visible.pk)
    if run.thread_id is not None:
        return ContinuedThread(thread=Thread.objects.select_related("client", "created_by").get(pk=run.thread_id),
                               created=False)
    if run.status != RunStatus.SUCCEEDED:
        then = "continue it when it has finished" if not run.is_finished else "start a new run or thread instead"
        raise Conflict(f"Only a succeeded run can be continued in a thread; this one is "
                       f"{run.get_status_display().lower()}: {then}.",
                       details={"run_id": str(run.pk), "status": run.status})
    client = Client.objects.filter(pk=run.client_id).first() if run.client_id else None
    check_not_archived(client)
    if get_spec(run.agent_type, run.agent_version) is None:
        raise Conflict(f"{run.agent_type} {run.agent_version}, the version this run used, is no longer available; "
                       "start a new thread.", details={"agent_version": run.agent_version})
    thread = thread_open(actor=actor, agent_type=run.agent_type, agent_version=run.agent_version, client=client,
                         title=run.task, specialization=run.specialization, sandbox=run.sandbox, turns_count=1)
    AgentRun.objects.filter(pk=run.pk).update(thread=thread, thread_turn=1)
    return ContinuedThread(thread=thread, created=True)
