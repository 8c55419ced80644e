"""Writes for agent runs. Services own every state transition of a run (DESIGN §5).

Transitions are conditional updates on the current status, so a race (a cancel arriving while
the worker finishes, two workers after a redelivery) is decided by the database, never by
whoever read the row last.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg
import psycopg.sql
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from spokestack import metrics
from spokestack.accounts import policy
from spokestack.catalog import UnknownAgentType, require_agent_type
from spokestack.db import execute_prepared
from spokestack.errors import Conflict, InvalidInput
from spokestack.outages import dependency_of
from spokestack.tasks import Enqueued, enqueue_on_commit
from tuning.models import Client
from tuning.specialization import normalise
from usage.budgets import HOLD_CTES, HOLD_VALUE, SETTLE_CTES, hold_params

from .events import event_append, nudge
from .models import TERMINAL_STATUSES, AgentRun, Artifact, RunStatus
from .registry import get_spec
from .watcher import cancel_flag_key, flags_changed
from .watcher import watcher as run_watcher

MAX_TASK_BYTES = 100_000
MAX_METADATA_BYTES = 16_000
SPECIALIZATION_KEYS = {"language", "region", "vertical"}
logger = logging.getLogger(__name__)
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _check_specialization(specialization: Any) -> dict[str, str]:
    if specialization in (None, ""):
        return {}
    if not isinstance(specialization, dict):
        raise InvalidInput("specialization: give an object with language, vertical and/or region.")
    unknown = set(specialization) - SPECIALIZATION_KEYS
    if unknown:
        raise InvalidInput(f"specialization: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"use {', '.join(sorted(SPECIALIZATION_KEYS))}.")
    cleaned = {}
    for key, value in specialization.items():
        if value in (None, ""):
            continue
        if not isinstance(value, str) or len(value) > 40:
            raise InvalidInput(f"specialization.{key}: give a short text value such as 'beauty', 'GCC' or 'ar'.")
        # One canonical form ("uae" -> GCC, "en-GB" -> en); unknown -> 400 listing the known values.
        cleaned[key] = normalise(key, value, field=f"specialization.{key}")
    return cleaned


def _agent_enabled(agent_type: str, version: str) -> bool:
    from tuning.assembly import assemble_prompt

    from .catalog import platform_tier

    return assemble_prompt(platform=platform_tier(get_spec(agent_type, version)), client=None).enabled


def run_version_for(agent_type: str) -> str:
    """The version of an agent type this instance runs now (the versions app may pin one)."""
    from .catalog import current_version_for

    return current_version_for(agent_type)


@dataclass(frozen=True)
class CreatedRun:
    run: AgentRun
    replayed: bool  # an earlier request with the same Idempotency-Key created it
    enqueued: Enqueued | None = None  # sent False: the broker was down; the reaper starts the run


IDEMPOTENT_FIELDS = ("agent_type", "task", "client_id", "metadata", "specialization", "sandbox")


def _replay(existing: AgentRun, request: dict[str, Any]) -> CreatedRun:
    """The run an earlier request with the same Idempotency-Key created, when this request is the
    same (every field of IDEMPOTENT_FIELDS); 409 naming the fields that differ otherwise."""
    differ = [name for name in IDEMPOTENT_FIELDS if getattr(existing, name) != request[name]]
    if (existing.thread_id is not None) != request["thread"]:
        differ.append("thread")
    if differ:
        raise Conflict(f"Idempotency-Key was already used for a request with another {', '.join(differ)}; send the "
                       "same request to get its run, or use a new key for a new one.",
                       details={"run_id": str(existing.pk), "fields": differ})
    return CreatedRun(run=existing, replayed=True)


@transaction.atomic
def run_create(
    *,
    actor: AbstractUser | None,
    agent_type: str,
    task: str,
    client_id: int | str | None = None,
    metadata: dict | None = None,
    specialization: dict | None = None,
    idempotency_key: str = "",
    sandbox: bool = False,
    agent_version: str | None = None,
    thread: bool = False,
) -> CreatedRun:
    """Validate an execute request, create the run (queued) and enqueue it after commit. With
    `thread`, the run is the first turn of a new thread (agents/threads.py)."""
    policy.require(actor, "run.create")
    if thread:
        policy.require(actor, "thread.create")
    if agent_version and str(agent_version).endswith("-test") and get_spec(agent_type, agent_version) is not None:
        # an agency-built agent's draft, frozen for a test (agents.studio): sandbox runs only
        if not sandbox:
            raise InvalidInput("agent_version: a draft's test version runs in sandbox mode only (sandbox: true).",
                               details={"agent_version": ["sandbox only"]})
    else:
        check_agent_type(agent_type)
    check_task(task, field="task")
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(json.dumps(metadata, default=str)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata: give an object of at most {MAX_METADATA_BYTES // 1000} kB.")
    specialization = _check_specialization(specialization)
    client = resolve_client(actor=actor, action="run.create", client_id=client_id)
    if thread:
        policy.require(actor, "thread.create", client)
    version = resolve_version(agent_type, agent_version)

    request = {"agent_type": agent_type, "task": task, "client_id": getattr(client, "pk", None), "metadata": metadata,
               "specialization": specialization, "sandbox": sandbox, "thread": thread}
    if idempotency_key:
        if len(idempotency_key) > 200:
            raise InvalidInput("Idempotency-Key: at most 200 characters.")
        existing = AgentRun.objects.filter(created_by=actor, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, request)

    # The tier's rate and concurrency limits (429 naming the limit); a replay above is never refused.
    from spokestack.limits import check_run_limits

    check_run_limits(connection.tenant, actor=actor)
    run = AgentRun(agent_type=agent_type, agent_version=version, client=client, created_by=actor, task=task,
                   metadata=metadata, specialization=specialization, sandbox=sandbox, idempotency_key=idempotency_key)
    if thread:
        from .threads import thread_open

        run.thread = thread_open(actor=actor, agent_type=agent_type, agent_version=version, client=client,
                                 title=task, specialization=specialization, sandbox=sandbox, turns_count=1)
        run.thread_turn = 1
    # The key's uniqueness is decided by the database, not by a check that races: concurrent
    # requests with one key all insert, one wins, the others wait for it and replay its run.
    run.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        existing = AgentRun.objects.filter(created_by=actor, idempotency_key=idempotency_key).first()
        if not idempotency_key or existing is None:
            raise
        if run.thread_id:
            run.thread.delete()  # the thread this request opened: the first request's run is the answer
        return _replay(existing, request)
    return CreatedRun(run=run, replayed=False, enqueued=run_queued(run))


def run_queued(run: AgentRun, *, enqueue: bool = True) -> Enqueued | None:
    """The saved run's `run.queued` event, and its task sent to the workers after commit (unless
    the caller runs it itself: a delegated run in its parent's worker slot)."""
    from .tasks import run_agent

    event_append(run_id=run.pk, type="run.queued", payload={
        "agent_type": run.agent_type, "agent_version": run.agent_version, "client_id": run.client_id,
        "sandbox": run.sandbox,
        **({"thread_id": str(run.thread_id), "thread_turn": run.thread_turn} if run.thread_id else {}),
        **({"parent_run_id": str(run.parent_id), "depth": run.depth} if run.parent_id else {})})
    return enqueue_on_commit(run_agent, run_id=str(run.pk)) if enqueue else None


def check_task(task: Any, *, field: str) -> None:
    """What the agent is asked: non-empty text of at most MAX_TASK_BYTES."""
    if not isinstance(task, str) or not task.strip():
        raise InvalidInput(f"{field}: describe what the agent should do.", details={field: "required"})
    if len(task.encode()) > MAX_TASK_BYTES:
        raise InvalidInput(f"{field}: at most {MAX_TASK_BYTES // 1000} kB; attach long documents to the client "
                           "instead.", details={field: f"{len(task.encode())} bytes"})


def check_agent_type(agent_type: Any) -> None:
    """An agent type a new run may use here (the one catalog's answer: 404 when it has none)."""
    require_agent_type(agent_type)


def resolve_client(*, actor: AbstractUser | None, action: str, client_id: int | str | None) -> Client | None:
    """The client a run (or thread) is for: one the actor may act on for `action`, not archived;
    None only for a role that acts on every client."""
    client = None
    if client_id not in (None, ""):
        try:
            client = Client.objects.get(pk=int(client_id))
        except (Client.DoesNotExist, ValueError, TypeError):
            raise InvalidInput(f"client_id: no client {client_id} in this instance.",
                               details={"client_id": client_id}) from None
        if not policy.can_see_client(actor, client):
            raise InvalidInput(f"client_id: no client {client_id} in this instance.", details={"client_id": client_id})
        policy.require(actor, action, client)
        check_not_archived(client)
    elif not policy.acts_on_every_client(actor, action):
        # Tools would take the client from the model's input: a person who acts for assigned
        # clients only names one, and the run is bound to it.
        raise InvalidInput("client_id: your role acts for the clients assigned to you; give one of their ids.",
                           details={"client_id": "required"})
    return client


def check_not_archived(client: Client | None) -> None:
    if client is not None and client.archived_at is not None:
        raise Conflict(f"client_id: {client.name} is archived (since {client.archived_at:%Y-%m-%d}), so it takes "
                       "no new runs; its history stays readable. An instance admin can unarchive it.",
                       details={"client_id": client.pk, "archived_at": client.archived_at.isoformat()})


def resolve_version(agent_type: str, agent_version: str | None) -> str:
    """The version a new run (or thread) of the agent type runs: the one asked for, else the
    instance's current one; the catalog's 404 when that version does not exist, 400 when the agent
    is disabled. (An agency agent's draft test version is found by `get_spec` though no list names it.)"""
    version = agent_version or run_version_for(agent_type)
    if get_spec(agent_type, version) is None:
        require_agent_type(agent_type, version)  # names what exists
        raise UnknownAgentType(f"agent_version: {agent_type} has no version {version!r}.",
                               details={"agent_version": [f"unknown version {version!r}"]})
    if not _agent_enabled(agent_type, version):
        raise InvalidInput(f"agent_type: the {agent_type} agent is disabled for this instance; an admin can enable it "
                           "in the instance tuning.", details={"agent_type": agent_type})
    return version


def run_cancel(*, actor: AbstractUser | None, run: AgentRun) -> AgentRun:
    """Ask a run to stop. A queued run stops at once; a running one at the next step or delta.
    Who may: policy `run.cancel` on the run's client (a run without one: at the role level, since
    only who may see the run reaches it)."""
    policy.require(actor, "run.cancel", run.client_id)
    if run.is_finished:
        raise Conflict(f"The run already {run.status}; there is nothing to cancel.", details={"status": run.status})
    from .delegation import descendants_unfinished

    # Its delegated runs first, deepest first: a descendant's row is locked before its ancestor's,
    # as the mirroring of its events does (no lock cycle).
    for descendant in descendants_unfinished(run):
        _cancel(descendant, reason=f"cancelled with the run that delegated to it ({run.pk})")
    _cancel(run, reason="cancelled by request")
    run.refresh_from_db()
    return run


def _cancel(run: AgentRun, *, reason: str) -> None:
    """Ask one run to stop: at once when it is not running, at its next step or delta otherwise."""
    # The row is the cancel: the worker's heartbeat reads it within a couple of seconds. The
    # cache flag only makes it quicker, and a cache outage must not lose or fail the cancel.
    AgentRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    try:
        cache.set(cancel_flag_key(run.pk), True, timeout=24 * 3600)
        flags_changed()
    except Exception:  # noqa: BLE001 - best effort: the database flag stands
        logger.warning("cancel of run %s: the cache is unavailable; the worker reads the database flag", run.pk)
    with transaction.atomic():
        stopped = AgentRun.objects.filter(
            pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.AWAITING_APPROVAL, RunStatus.WAITING]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Cancelled before it ran further.")
        if stopped:
            event_append(run_id=run.pk, type="run.cancelled", payload={"reason": reason})
            # Its calls waiting for a person are closed with it: no queue lists them, no one is asked.
            from .approvals import approvals_close_for_run

            approvals_close_for_run(run_id=run.pk, reason=f"The run was cancelled ({reason}) before anyone decided.")
        else:
            event_append(run_id=run.pk, type="run.cancel_requested", payload={})
    if stopped:
        _count_usage(run.pk)
        run.refresh_from_db()
        run_event_emit(run)
        metrics.run_finished(run.agent_type, RunStatus.CANCELLED, 0.0)
    if stopped and run.parent_id:
        from .delegation import child_ended

        child_ended(run)


OUTPUT_IN_EVENTS = 4000


def run_event_emit(run: AgentRun) -> None:
    """The run's end as an outbound event (`run.succeeded` / `run.failed` / `run.cancelled`:
    spokestack/webhooks), for the subscriptions that want it and the instance's live viewers."""
    from spokestack.webhooks.services import webhook_emit

    webhook_emit(f"run.{run.status}", {
        **_event_data(run, status=str(run.status), output=run.output or "", error=run.error or ""),
        "cost_usd": float(run.cost_usd or 0), "total_cost_usd": float(run.total_cost_usd or 0),
        "iterations": run.iterations, "finished_at": run.finished_at.isoformat() if run.finished_at else None})


def _event_data(run: AgentRun, *, status: str, output: str, error: str) -> dict[str, Any]:
    """A run's outbound end event but for what its row knows at the end (cost, iterations, finished_at)."""
    return {"run_id": str(run.pk), "agent_type": run.agent_type, "agent_version": run.agent_version,
            "client_id": run.client_id, "status": status, "error": error,
            "output": output[:OUTPUT_IN_EVENTS], "output_truncated": len(output) > OUTPUT_IN_EVENTS,
            "parent_run_id": str(run.parent_id) if run.parent_id else None,
            "thread_id": str(run.thread_id) if run.thread_id else None,
            "started_at": run.started_at.isoformat() if run.started_at else None}


def _count_usage(run_id) -> None:
    """Count an ended run in the usage rollup (usage/services.py). Never raises: the reaper counts a
    run whose counting was lost."""
    from usage.services import usage_record

    try:
        if connection.in_atomic_block:  # a savepoint: a failure leaves the caller's transaction usable
            with transaction.atomic():
                usage_record(run_id=run_id)
        else:
            usage_record(run_id=run_id)
    except Exception:  # noqa: BLE001 - the run's end stands; agents.reap_stale_runs counts it later
        logger.warning("could not count run %s in the usage rollup; the reaper will", run_id, exc_info=True)


# --- worker-side transitions ------------------------------------------------------------


def release_connection() -> None:
    """Give the database connection back (to the pool, in workers) before waiting on I/O."""
    if not connection.in_atomic_block:
        connection.close()


def lease_seconds() -> int:
    return int(getattr(settings, "RUN_LEASE_SECONDS", 10))


def call_idempotency_key(*, run_id: uuid.UUID | str, name: str, arguments: Any) -> str:
    """The idempotency key a tool call sends to the system it writes to: bound to the run and to
    what the call asks for, not to the model's tool_use id. A model that asks for the same write
    again (after an "outcome unknown" answer, or in a second execution of the run) sends the same
    key, so the receiving system writes it once."""
    canonical = json.dumps([name, arguments], sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"{run_id}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def new_claim_token(worker: str) -> str:
    """The owner of one execution of a run: unique per execution, not per process, so a second
    delivery of the run's task to the same process cannot write as the first."""
    return f"{worker}/{uuid.uuid4().hex[:12]}"


# Lease times come from the database's clock only (now() + the lease), never a worker's. With the
# run come what its loop reads first (RunLoop.__init__): its client, its starter with their roles, and
# the key of what it is offered (skills.selectors.offer_version).
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE agents_agentrun run
       SET status = 'running', lease_owner = %(worker)s, lease_until = now() + make_interval(secs => %(lease)s),
           requeued_at = NULL, started_at = COALESCE(run.started_at, now()), last_seq = run.last_seq + 1
      FROM (SELECT id, started_at FROM agents_agentrun WHERE id = %(run)s::uuid FOR UPDATE) AS before
     WHERE run.id = before.id AND run.status IN ('queued', 'running')
       AND (run.lease_until IS NULL OR run.lease_until < now())
 RETURNING {run}, before.started_at IS NOT NULL AS resumed
), event AS (
    INSERT INTO agents_runevent (run_id, seq, type, payload, created_at)
    SELECT id, last_seq, CASE WHEN resumed THEN 'run.resumed' ELSE 'run.started' END,
           CASE WHEN resumed THEN jsonb_build_object('worker', %(worker)s::text, 'iteration', iterations)
                ELSE jsonb_build_object('worker', %(worker)s::text) END, now()
      FROM claimed
)
SELECT claimed.*, {client}, {creator}, {roles}, version.*
  FROM claimed
  LEFT JOIN {client_table} client ON client.id = claimed.client_id
  LEFT JOIN {creator_table} creator ON creator.id = claimed.created_by_id
 CROSS JOIN ({version}) AS version
"""


@functools.cache
def _claim_sql() -> str:
    from django.contrib.auth import get_user_model

    from skills.selectors import offer_version_sql
    from spokestack.accounts.roles import role_names_sql
    from spokestack.db import columns

    user = get_user_model()
    return _CLAIM_SQL.format(
        run=columns(AgentRun, "run"), client=columns(Client, "client"), creator=columns(user, "creator"),
        roles=role_names_sql("creator"), client_table=Client._meta.db_table, creator_table=user._meta.db_table,
        version=offer_version_sql())


def run_claim(*, run_id: uuid.UUID | str, worker: str) -> AgentRun | None:
    """Take the run for one execution (`worker` is its claim token, see new_claim_token), in one
    statement with its run.started or run.resumed event: it must be queued, or running with an
    expired lease. None when the run is gone, finished, or any execution holds a live lease on it,
    this process's included. The run's `resumed` says whether it ran before; its client and its
    starter (with their roles) are read with it, and `offer_version` is the key of the skills and
    tuning it is offered. Its viewers are nudged by the caller (run_claim_announce), once the
    watcher knows whether it has any."""
    from django.contrib.auth import get_user_model

    from spokestack.accounts.roles import with_roles
    from spokestack.db import model_from_row

    rows = execute_prepared(_claim_sql(), {"run": str(run_id), "worker": worker, "lease": lease_seconds()})
    if not rows:
        return None
    row, user = rows[0], get_user_model()
    widths = [len(model._meta.concrete_fields) for model in (AgentRun, Client, user)]
    at = widths[0] + 1
    run = model_from_row(AgentRun, row[:widths[0]])
    run.resumed = row[widths[0]]
    client = model_from_row(Client, row[at:at + widths[1]]) if run.client_id else None
    at += widths[1]
    creator = with_roles(model_from_row(user, row[at:at + widths[2]]), row[at + widths[2]]) \
        if row[at] is not None else None
    AgentRun.client.field.set_cached_value(run, client)
    AgentRun.created_by.field.set_cached_value(run, creator)
    run.offer_version = tuple(row[at + widths[2] + 1:])  # the rest of the row
    return run


def run_claim_announce(run: AgentRun) -> None:
    """Nudge the viewers of a run just claimed (nobody, for a run the watcher knows is not watched)."""
    _nudge_after(run_id=run.pk, seq=run.last_seq, type="run.resumed" if run.resumed else "run.started", run=run)


_RENEW_SQL = """
WITH held AS (
    SELECT * FROM unnest(%(runs)s::uuid[], %(owners)s::text[]) AS held(id, owner)
), locked AS (  -- in id order, as every statement locking several runs does: no deadlock between them
    SELECT run.id FROM {table} run JOIN held ON run.id = held.id
     WHERE run.lease_owner = held.owner AND run.status = 'running'
     ORDER BY run.id
       FOR NO KEY UPDATE OF run
), renewed AS (
    UPDATE {table} run SET lease_until = now() + make_interval(secs => %(lease)s)
      FROM locked
     WHERE run.id = locked.id
 RETURNING run.id
)
SELECT run.id::text, run.cancel_requested, run.id IN (SELECT id FROM renewed)
  FROM {table} run JOIN held ON run.id = held.id
"""


def run_leases_renew(*, schema: str, owners: dict[str, str], cursor: psycopg.Cursor) -> dict[str, bool | None]:
    """The heartbeat: renew the leases of the runs this process holds in `schema` ({run id: claim
    token}) in one statement, on `cursor` (the watcher's own connection, outside the pool, so a
    busy pool cannot starve it). Returns {run id: cancel requested} for the runs still held by
    those executions, and None for a run that another execution holds now, or that is no longer
    running. A run the connection cannot see (not committed yet) is left out."""
    statement = psycopg.sql.SQL(_RENEW_SQL).format(table=psycopg.sql.Identifier(schema, "agents_agentrun"))
    cursor.execute(statement, {"lease": lease_seconds(), "runs": list(owners), "owners": list(owners.values())})
    return {run_id: cancel if renewed else None for run_id, cancel, renewed in cursor.fetchall()}


class LeaseLost(Exception):
    """Another worker took the run over (this one was presumed dead): stop without writing."""


_NO_HOLD = {"client": None, "user": None, "amount": Decimal(0), "instance_limit": Decimal(0),
            "month": date(2000, 1, 1)}  # a step that holds nothing: HOLD_CTES' parameters, unused


class HoldRefused(Exception):
    """A step's budget hold did not fit (or found no ledger of the month): nothing was written."""


@dataclass(frozen=True)
class StartedCall:
    """A tool call about to run, recorded with the turn that asked for it."""

    tool_use_id: str
    name: str
    input: dict
    side_effect: bool


@dataclass(frozen=True)
class RunCheck:
    """The check of a run's output, as the run keeps it (agents/checks.py)."""

    checks: dict
    review_status: str
    review_reason: str

    def event(self) -> tuple[str, dict]:
        return ("run.checked", {**self.checks, "review_status": self.review_status,
                                "review_reason": self.review_reason})


@dataclass(frozen=True)
class FinishedCall:
    """What came of a recorded tool call (`id` is the ToolCall row)."""

    id: int
    result: Any
    is_error: bool
    duration_ms: float


# The run's row is locked first (`before`), then, when the step holds the next model call's budget
# (usage/budgets.py, `reserve`) or settles the last one's (`settle`), the ledgers in id order: the
# order every budget statement locks in, so none of them deadlock with this one. A step that holds
# is written only if the hold fits every budget (`hold_verdict`), and then with it.
# A step's events (event_params) as rows (seq, type, payload), numbered up to the run's new last_seq
# less `before_last` (the events that follow them in the same statement), and its artifacts
# (artifact_params); `run` is the statement's updated run row. Events are inserted by one INSERT in
# seq order: the order of a statement's data-modifying CTEs is not defined, and readers expect ids
# in seq order.
STAGED_EVENTS = """
    SELECT run.last_seq - {before_last} - %(n_events)s + e.n AS seq, e.event->>0 AS type, e.event->1 AS payload
      FROM run, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(event, n)"""
ARTIFACTS = """artifacts AS (
    INSERT INTO agents_artifact (run_id, kind, title, content, data, tool_call_id, created_at)
    SELECT %(run)s::uuid, a.kind, a.title, a.content, a.data, a.tool_call_id, now()
      FROM run, jsonb_array_elements(%(artifacts)s::jsonb) WITH ORDINALITY AS staged(artifact, n),
           jsonb_to_record(staged.artifact) AS a(kind text, title text, content text, data jsonb, tool_call_id bigint)
     ORDER BY staged.n
)"""


# A group of rows is one JSON parameter (read by jsonb_array_elements / jsonb_to_recordset), not an
# array parameter per column: psycopg's list dumpers were 8 % of a worker's time in the step write.
def event_params(events: Sequence[tuple[str, dict]]) -> dict[str, Any]:
    return {"n_events": len(events), "events": _json(events)}


def artifact_params(artifacts: Sequence[Artifact]) -> dict[str, Any]:
    return {"artifacts": _json([{"kind": a.kind, "title": a.title, "content": a.content, "data": a.data,
                                 "tool_call_id": a.tool_call_id} for a in artifacts])}


def check_params(check: RunCheck | None) -> dict[str, Any]:
    return {"checks": None if check is None else _json(check.checks),
            "review_status": None if check is None else check.review_status,
            "review_reason": None if check is None else check.review_reason}


def _checked(run: AgentRun, check: RunCheck | None) -> None:
    if check is not None:
        run.checks, run.review_status, run.review_reason = check.checks, check.review_status, check.review_reason


_WRITE_SQL = f"""
WITH before AS (
    SELECT id, budget_hold FROM agents_agentrun WHERE id = %(run)s::uuid FOR NO KEY UPDATE
), held_run AS (
    SELECT id FROM before WHERE %(hold)s AND budget_hold IS NULL
), {HOLD_CTES}, run AS (
    UPDATE agents_agentrun run
       SET last_seq = run.last_seq + %(n_events)s,
           lease_until = now() + make_interval(secs => %(lease)s),
           messages = COALESCE(%(messages)s::jsonb, run.messages),
           iterations = run.iterations + %(iterations)s,
           tool_calls_count = run.tool_calls_count + %(tool_calls)s,
           input_tokens = run.input_tokens + %(input_tokens)s,
           output_tokens = run.output_tokens + %(output_tokens)s,
           cache_creation_input_tokens = run.cache_creation_input_tokens + %(cache_creation_input_tokens)s,
           cache_read_input_tokens = run.cache_read_input_tokens + %(cache_read_input_tokens)s,
           cost_usd = run.cost_usd + %(cost_usd)s,
           model = COALESCE(NULLIF(%(model)s, ''), run.model),
           used_fallback = run.used_fallback OR %(used_fallback)s,
           simulated = run.simulated OR %(simulated)s,
           budget_hold = CASE WHEN %(settle)s THEN NULL WHEN %(hold)s THEN {HOLD_VALUE} ELSE run.budget_hold END,
           checks = COALESCE(%(checks)s::jsonb, run.checks),
           review_status = COALESCE(%(review_status)s, run.review_status),
           review_reason = COALESCE(%(review_reason)s, run.review_reason)
      FROM before, hold_verdict
     WHERE run.id = before.id AND run.lease_owner = %(worker)s AND run.status = 'running'
       AND (NOT %(hold)s OR hold_verdict.ok)
 RETURNING run.last_seq, CASE WHEN %(settle)s THEN before.budget_hold END AS hold
), events AS (
    INSERT INTO agents_runevent (run_id, seq, type, payload, created_at)
    SELECT %(run)s::uuid, seq, type, payload, now() FROM ({STAGED_EVENTS.format(before_last=0)}) AS e ORDER BY seq
), started AS (
    INSERT INTO agents_toolcall (run_id, tool_use_id, name, input, status, result, is_error, side_effect,
                                 idempotency_key, iteration, attempts, started_at)
    SELECT %(run)s::uuid, c.tool_use_id, c.name, c.input, 'started', NULL, false, c.side_effect,
           c.idempotency_key, %(iteration)s, 1, now()
      FROM run, jsonb_to_recordset(%(start)s::jsonb)
                AS c(tool_use_id text, name text, input jsonb, side_effect boolean, idempotency_key text)
        ON CONFLICT (run_id, tool_use_id) DO NOTHING
 RETURNING id, tool_use_id
), finished AS (
    UPDATE agents_toolcall call
       SET status = CASE WHEN c.is_error THEN 'failed' ELSE 'succeeded' END, result = c.result,
           is_error = c.is_error, duration_ms = c.duration_ms
      FROM run, jsonb_to_recordset(%(done)s::jsonb) AS c(id bigint, result jsonb, is_error boolean, duration_ms float8)
     WHERE call.id = c.id AND call.run_id = %(run)s::uuid
), {ARTIFACTS}, held AS (
    UPDATE usage_budgetperiod ledger SET reserved_usd = ledger.reserved_usd + %(amount)s
      FROM run, hold_verdict WHERE %(hold)s AND ledger.id = ANY(hold_verdict.ids)
), settling AS (
    SELECT hold FROM run WHERE hold IS NOT NULL
), {SETTLE_CTES}
SELECT run.last_seq, (SELECT COALESCE(jsonb_object_agg(tool_use_id, id), '{{}}'::jsonb) FROM started),
       (SELECT jsonb_agg(jsonb_build_array(id, spent_usd, hold)) FROM settled), NOT %(hold)s OR hold_verdict.ok
  FROM hold_verdict LEFT JOIN run ON true
"""  # noqa: S608 - built from constants, not from input


def _execute_prepared(sql: str, params: dict[str, Any]) -> tuple | None:
    """Run one of the loop's statements (prepared once per connection: spokestack/db.py); its row."""
    rows = execute_prepared(sql, params)
    return rows[0] if rows else None


def _json(value: Any) -> str:
    return json.dumps(value, default=str)


def run_write(*, run: AgentRun, worker: str, events: Sequence[tuple[str, dict]] = (),
              messages: list[dict] | None = None, usage: dict[str, int] | None = None, cost_usd: float = 0.0,
              model: str = "", used_fallback: bool = False, simulated: bool = False, iterations_delta: int = 0,
              tool_calls_delta: int = 0, start_calls: Sequence[StartedCall] = (),
              finish_calls: Sequence[FinishedCall] = (), settle_usd: Decimal | float | None = None,
              hold_usd: Decimal | None = None, artifacts: Sequence[Artifact] = (),
              check: RunCheck | None = None) -> dict[str, int]:
    """Record one step of the loop in one statement: the conversation checkpoint and usage, tool
    calls started and finished, the artifacts they made, the output's check (agents/checks.py; its
    `run.checked` event among `events`), and the step's events (in order), renewing the lease; with
    `settle_usd`, the last model call's budget hold settled to that cost (usage.budgets.settle's
    work); with `hold_usd`, that much held for the next call on every budget covering the run
    (usage.budgets.reserve's): HoldRefused, and nothing written, when it does not fit them all or
    this month's ledgers do not exist yet (`reserve` says which budget, or creates them).

    Only the lease owner writes: LeaseLost when another worker took the run over, and then
    nothing was written (nor settled: the next execution releases the hold). Returns the new
    ToolCall ids by tool_use id."""
    usage = usage or {}
    params = {
        "run": str(run.pk), "worker": worker, **event_params(events), **artifact_params(artifacts),
        **check_params(check), "lease": lease_seconds(),
        "messages": None if messages is None else _json(messages),
        "iterations": iterations_delta, "tool_calls": tool_calls_delta, "cost_usd": Decimal(str(cost_usd)),
        **{field: usage.get(field, 0) for field in USAGE_FIELDS},
        "model": model, "used_fallback": used_fallback, "simulated": simulated,
        "iteration": run.iterations + iterations_delta,
        "start": _json([{"tool_use_id": c.tool_use_id, "name": c.name, "input": c.input, "side_effect": c.side_effect,
                         "idempotency_key": call_idempotency_key(run_id=run.pk, name=c.name, arguments=c.input)}
                        for c in start_calls]),
        "done": _json([{"id": c.id, "result": c.result, "is_error": c.is_error, "duration_ms": c.duration_ms}
                       for c in finish_calls]),
        "settle": settle_usd is not None, "actual_usd": Decimal(str(settle_usd or 0)),
        "hold": hold_usd is not None,
        **(hold_params(client_id=run.client_id, user_id=run.created_by_id, amount=hold_usd) if hold_usd is not None
           else _NO_HOLD),
    }
    last_seq, started, settled, held = _execute_prepared(_WRITE_SQL, params)
    if not held:
        raise HoldRefused(str(run.pk))
    if last_seq is None:
        raise LeaseLost(str(run.pk))
    if settled and settle_usd:
        from usage.budgets import warn_crossed

        warn_crossed([(ledger_id, Decimal(str(spent)), hold) for ledger_id, spent, hold in _loaded(settled)])
    # Only the lease owner writes these fields, so the row now holds exactly this: no re-read.
    if messages is not None:
        run.messages = messages
    run.last_seq = last_seq
    run.iterations += iterations_delta
    run.tool_calls_count += tool_calls_delta
    for field in USAGE_FIELDS:
        setattr(run, field, getattr(run, field) + usage.get(field, 0))
    run.cost_usd = Decimal(run.cost_usd) + Decimal(str(cost_usd))
    run.model = model or run.model
    run.used_fallback = run.used_fallback or used_fallback
    run.simulated = run.simulated or simulated
    _checked(run, check)
    if events:
        _nudge_after(run_id=run.pk, seq=last_seq, type=events[-1][0], run=run)
    return _loaded(started)


def _loaded(value: Any) -> Any:
    """A jsonb value as psycopg gives it (already loaded, or text when no loader is registered)."""
    return json.loads(value) if isinstance(value, str) else value


def _nudge_after(*, run_id: uuid.UUID | str, seq: int, type: str, run: AgentRun | None = None) -> None:
    """Nudge live viewers once for a batch of events: they read everything up to `seq`. A run
    nobody watches is not announced (agents/watcher.py). A delegated run's events are in its
    ancestors' logs too (mirrored by the database): their viewers are nudged as well."""
    schema = connection.schema_name
    if run_watcher.watched(run_id):
        transaction.on_commit(lambda: nudge(schema=schema, run_id=run_id, seq=seq, type=type))
    for ancestor in _ancestors(run):
        if run_watcher.watched(ancestor):
            transaction.on_commit(lambda ancestor=ancestor: nudge(schema=schema, run_id=ancestor, seq=0,
                                                                 type="child.event"))


def _ancestors(run: AgentRun | None) -> tuple[uuid.UUID, ...]:
    """The ids of a delegated run's parent and grandparent (read once per run object)."""
    if run is None or not run.parent_id:
        return ()
    known = getattr(run, "_ancestors", None)
    if known is None:
        grandparent = AgentRun.objects.filter(pk=run.parent_id).values_list("parent_id", flat=True).first() \
            if run.depth > 1 else None
        known = run._ancestors = tuple(filter(None, (run.parent_id, grandparent)))
    return known


# A run's end in one statement: its row and terminal event; for a top-level run (%(whole)s) also its
# count in the usage rollup (usage.services' COUNT_INSERT, once: usage_recorded) and its outbound event
# (spokestack.webhooks' EMIT_CTES, its `data` completed from the row). A delegated run's end counts and
# emits in statements of their own: its event's insert locks its parent's row at the statement's end
# (the mirror trigger), which must not wait behind a rollup row.
_FINISH_SQL = """
WITH before AS (
    SELECT id, usage_recorded FROM agents_agentrun WHERE id = %(run)s::uuid FOR NO KEY UPDATE
), run AS (
    UPDATE agents_agentrun run
       SET status = %(status)s::text, output = %(output)s, error = %(error)s, finished_at = now(), lease_until = NULL,
           lease_owner = '', last_seq = run.last_seq + %(n_events)s + 1, usage_recorded = run.usage_recorded OR %(whole)s,
           checks = COALESCE(%(checks)s::jsonb, run.checks),
           review_status = COALESCE(%(review_status)s, run.review_status),
           review_reason = COALESCE(%(review_reason)s, run.review_reason)
      FROM before
     WHERE run.id = before.id AND run.status = 'running' AND run.lease_owner = %(worker)s
 RETURNING run.last_seq, run.finished_at, run.simulated, run.children_cost_usd,
           %(whole)s AND NOT before.usage_recorded AS uncounted, {count_columns}
), {artifacts}, event AS (
    INSERT INTO agents_runevent (run_id, seq, type, payload, created_at)
    SELECT %(run)s::uuid, seq, type, payload, now() FROM ({staged_events}
     UNION ALL
    SELECT last_seq, %(type)s, jsonb_build_object(
               'status', %(status)s::text, 'error', %(error)s::text, 'output', %(output)s::text,
               'usage', jsonb_build_object('input_tokens', input_tokens, 'output_tokens', output_tokens,
                                           'cache_creation_input_tokens', cache_creation_input_tokens,
                                           'cache_read_input_tokens', cache_read_input_tokens),
               'cost_usd', cost_usd::float8, 'iterations', iterations, 'simulated', simulated)
      FROM run) AS e ORDER BY seq
), counted AS (
    SELECT * FROM run WHERE uncounted
), usage AS ({count_insert}
), webhook_body AS (
    SELECT %(webhook_payload)s::jsonb || jsonb_build_object('data', %(webhook_data)s::jsonb || jsonb_build_object(
               'cost_usd', cost_usd::float8, 'total_cost_usd', (cost_usd + children_cost_usd)::float8,
               'iterations', iterations,
               'finished_at', to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
           AS payload
      FROM run WHERE %(whole)s
), {emit_ctes}
SELECT last_seq, finished_at, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens,
       cost_usd, iterations, simulated, children_cost_usd,
       ARRAY(SELECT id FROM webhook_deliveries), (SELECT payload FROM webhook_body)
  FROM run
"""


@functools.cache
def _finish_sql() -> str:
    from spokestack.webhooks.services import EMIT_CTES
    from usage.services import COUNT_COLUMNS, COUNT_INSERT

    return _FINISH_SQL.format(count_columns=COUNT_COLUMNS, count_insert=COUNT_INSERT, emit_ctes=EMIT_CTES,
                              staged_events=STAGED_EVENTS.format(before_last=1), artifacts=ARTIFACTS)


def run_finish(*, run: AgentRun, status: str, output: str = "", error: str = "",
               events: Sequence[tuple[str, dict]] = (), check: RunCheck | None = None,
               artifacts: Sequence[Artifact] = ()) -> bool:
    """Move a running run to a terminal status, with its terminal event, counted in the usage
    rollup and emitted as an outbound event (`run_event_emit`), in one statement; with the loop's
    last staged `events` (before the terminal one), its output's `check` and its `artifacts`. False,
    and nothing written, when it was not running any more (e.g. cancelled meanwhile: the first
    terminal transition wins) or another execution holds it now (only the lease owner,
    `run.lease_owner`, finishes)."""
    from spokestack.webhooks.services import emit_params, webhook_emitted
    from usage.services import count_params

    assert status in TERMINAL_STATUSES
    whole = not run.parent_id
    emit, payload = emit_params(f"run.{status}", _event_data(run, status=status, output=output, error=error))
    data = payload.pop("data")
    params = {"run": str(run.pk), "worker": run.lease_owner, "status": str(status), "output": output, "error": error,
              "type": f"run.{status}", "whole": whole, **count_params(), **emit, **event_params(events),
              **artifact_params(artifacts), **check_params(check),
              "webhook_payload": _json(payload), "webhook_data": _json(data)}
    try:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            row = _execute_prepared(_finish_sql(), params)
    except psycopg.Error as exc:
        if not whole or dependency_of(exc) is not None:
            raise
        # The count or the event was refused (e.g. a time zone PostgreSQL does not know): the run's
        # end must not fail for them. It ends alone; they are tried apart, each logged if it fails.
        logger.warning("run %s: its end with its count and event was refused (%s); ending it alone", run.pk, exc)
        whole = params["whole"] = False
        row = _execute_prepared(_finish_sql(), params)
    if row is None:
        return False
    (run.last_seq, run.finished_at, run.input_tokens, run.output_tokens, run.cache_creation_input_tokens,
     run.cache_read_input_tokens, run.cost_usd, run.iterations, run.simulated, run.children_cost_usd, deliveries,
     emitted) = row
    run.status, run.output, run.error, run.lease_until, run.lease_owner = status, output, error, None, ""
    _checked(run, check)
    _nudge_after(run_id=run.pk, seq=run.last_seq, type=f"run.{status}", run=run)
    if whole:
        webhook_emitted(list(deliveries), _loaded(emitted))
    else:
        _count_usage(run.pk)
        run_event_emit(run)
    metrics.run_finished(run.agent_type, status, (run.finished_at - (run.started_at or run.finished_at)).total_seconds())
    if run.parent_id:
        from .delegation import child_ended

        child_ended(run)
    return True


