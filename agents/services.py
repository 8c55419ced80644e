"""Writes for agent runs. Services own every state transition of a run (DESIGN §5).

Transitions are conditional updates on the current status, so a race (a cancel arriving while
the worker finishes, two workers after a redelivery) is decided by the database, never by
whoever read the row last.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from spokestack.errors import Conflict, InvalidInput, NotAllowed
from tuning.governance import can_view_client, roles_of
from tuning.models import Client

from .events import event_append
from .models import TERMINAL_STATUSES, AgentRun, RunStatus
from .registry import get_spec

MAX_TASK_BYTES = 100_000
MAX_METADATA_BYTES = 16_000
SPECIALIZATION_KEYS = {"language", "region", "vertical"}
RUNNER_ROLES = {"instance_admin", "instance_manager", "account_manager"}


def cancel_flag_key(run_id: uuid.UUID | str) -> str:
    return f"run-cancel:{run_id}"


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
        cleaned[key] = value
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
) -> CreatedRun:
    """Validate an execute request, create the run (queued) and enqueue it after commit."""
    if actor is not None and not actor.is_superuser and not (roles_of(actor) & RUNNER_ROLES):
        raise NotAllowed("Your role does not allow you to run agents.")
    if not isinstance(agent_type, str) or get_spec(agent_type) is None:
        from .registry import agent_types

        raise InvalidInput(f"agent_type: unknown agent type '{agent_type}'; choose one of {', '.join(agent_types())}.",
                           details={"agent_type": agent_type})
    if not isinstance(task, str) or not task.strip():
        raise InvalidInput("task: describe what the agent should do.", details={"task": "required"})
    if len(task.encode()) > MAX_TASK_BYTES:
        raise InvalidInput(f"task: at most {MAX_TASK_BYTES // 1000} kB; attach long documents to the client instead.",
                           details={"task": f"{len(task.encode())} bytes"})
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(json.dumps(metadata, default=str)) > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata: give an object of at most {MAX_METADATA_BYTES // 1000} kB.")
    specialization = _check_specialization(specialization)

    client = None
    if client_id not in (None, ""):
        try:
            client = Client.objects.get(pk=int(client_id))
        except (Client.DoesNotExist, ValueError, TypeError):
            raise InvalidInput(f"client_id: no client {client_id} in this instance.",
                               details={"client_id": client_id}) from None
        if actor is not None and not can_view_client(actor, client):
            raise InvalidInput(f"client_id: no client {client_id} in this instance.", details={"client_id": client_id})

    version = agent_version or run_version_for(agent_type)
    if get_spec(agent_type, version) is None:
        raise InvalidInput(f"agent_version: {agent_type} has no version {version}.")
    if not _agent_enabled(agent_type, version):
        raise InvalidInput(f"agent_type: the {agent_type} agent is disabled for this instance; an admin can enable it "
                           "in the instance tuning.", details={"agent_type": agent_type})

    if idempotency_key:
        if len(idempotency_key) > 200:
            raise InvalidInput("Idempotency-Key: at most 200 characters.")
        existing = AgentRun.objects.filter(created_by=actor, idempotency_key=idempotency_key).first()
        if existing is not None:
            same = (existing.agent_type, existing.task, existing.client_id) == (agent_type, task, getattr(client, "pk", None))
            if not same:
                raise Conflict("Idempotency-Key was already used for a different request; use a new key.",
                               details={"run_id": str(existing.pk)})
            return CreatedRun(run=existing, replayed=True)

    run = AgentRun(agent_type=agent_type, agent_version=version, client=client, created_by=actor, task=task,
                   metadata=metadata, specialization=specialization, sandbox=sandbox, idempotency_key=idempotency_key)
    run.full_clean()
    run.save()
    event_append(run_id=run.pk, type="run.queued", payload={
        "agent_type": agent_type, "agent_version": version, "client_id": getattr(client, "pk", None),
        "sandbox": sandbox})
    from .tasks import run_agent

    transaction.on_commit(lambda: run_agent.delay(run_id=str(run.pk)))
    return CreatedRun(run=run, replayed=False)


def run_cancel(*, actor: AbstractUser | None, run: AgentRun) -> AgentRun:
    """Ask a run to stop. A queued run stops at once; a running one at the next step or delta."""
    if run.is_finished:
        raise Conflict(f"The run already {run.status}; there is nothing to cancel.", details={"status": run.status})
    AgentRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    cache.set(cancel_flag_key(run.pk), True, timeout=24 * 3600)
    with transaction.atomic():
        stopped = AgentRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.AWAITING_APPROVAL]).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Cancelled before it ran further.")
        if stopped:
            event_append(run_id=run.pk, type="run.cancelled", payload={"reason": "cancelled by request"})
        else:
            event_append(run_id=run.pk, type="run.cancel_requested", payload={})
    run.refresh_from_db()
    return run


def cancel_requested(run_id: uuid.UUID | str) -> bool:
    """Cheap enough to poll while a model response streams: one cache read."""
    return bool(cache.get(cancel_flag_key(run_id)))


# --- worker-side transitions ------------------------------------------------------------


def lease_seconds() -> int:
    return int(getattr(settings, "RUN_LEASE_SECONDS", 30))


def run_claim(*, run_id: uuid.UUID | str, worker: str) -> AgentRun | None:
    """Take the run for this worker: it must be queued or running with an expired (or our own)
    lease. None when the run is gone, finished, or another live worker holds it."""
    now = timezone.now()
    from django.db.models import Q

    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now) | Q(lease_owner=worker)
    claimed = AgentRun.objects.filter(free, pk=run_id, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.RUNNING, lease_owner=worker, lease_until=now + timedelta(seconds=lease_seconds()))
    if not claimed:
        return None
    run = AgentRun.objects.select_related("client").get(pk=run_id)
    if run.started_at is None:
        AgentRun.objects.filter(pk=run_id, started_at__isnull=True).update(started_at=now)
        run.started_at = now
        event_append(run_id=run_id, type="run.started", payload={"worker": worker})
    else:
        event_append(run_id=run_id, type="run.resumed", payload={"worker": worker, "iteration": run.iterations})
    return run


def run_renew_lease(*, run_id: uuid.UUID | str, worker: str) -> bool:
    return bool(AgentRun.objects.filter(pk=run_id, lease_owner=worker, status=RunStatus.RUNNING).update(
        lease_until=timezone.now() + timedelta(seconds=lease_seconds())))


class LeaseLost(Exception):
    """Another worker took the run over (this one was presumed dead): stop without writing."""


def run_checkpoint(*, run: AgentRun, worker: str, messages: list[dict], usage: dict[str, int] | None = None,
                   cost_usd: float = 0.0, model: str = "", used_fallback: bool = False, simulated: bool = False,
                   iterations_delta: int = 0, tool_calls_delta: int = 0) -> None:
    """Save the conversation after a completed step, adding this step's usage to the run's."""
    usage = usage or {}
    updates: dict[str, Any] = {
        "messages": messages,
        "lease_until": timezone.now() + timedelta(seconds=lease_seconds()),
        "iterations": F("iterations") + iterations_delta,
        "tool_calls_count": F("tool_calls_count") + tool_calls_delta,
        "input_tokens": F("input_tokens") + usage.get("input_tokens", 0),
        "output_tokens": F("output_tokens") + usage.get("output_tokens", 0),
        "cache_creation_input_tokens": F("cache_creation_input_tokens") + usage.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": F("cache_read_input_tokens") + usage.get("cache_read_input_tokens", 0),
        "cost_usd": F("cost_usd") + cost_usd,
    }
    if model:
        updates["model"] = model
    if used_fallback:
        updates["used_fallback"] = True
    if simulated:
        updates["simulated"] = True
    if not AgentRun.objects.filter(pk=run.pk, lease_owner=worker, status=RunStatus.RUNNING).update(**updates):
        raise LeaseLost(str(run.pk))
    # Only the lease owner writes these fields, so the row now holds exactly this: no re-read.
    run.messages = messages
    run.iterations += iterations_delta
    run.tool_calls_count += tool_calls_delta
    for field in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        setattr(run, field, getattr(run, field) + usage.get(field, 0))
    run.cost_usd = Decimal(run.cost_usd) + Decimal(str(cost_usd))
    run.model = model or run.model
    run.used_fallback = run.used_fallback or used_fallback
    run.simulated = run.simulated or simulated


def run_finish(*, run: AgentRun, status: str, output: str = "", error: str = "") -> bool:
    """Move a running run to a terminal status. False when it was not running any more (e.g.
    cancelled meanwhile): the first terminal transition wins."""
    assert status in TERMINAL_STATUSES
    with transaction.atomic():
        done = AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=status, output=output, error=error, finished_at=timezone.now(), lease_until=None, lease_owner="")
        if done:
            run.refresh_from_db()
            event_append(run_id=run.pk, type=f"run.{status}", payload={
                "status": status, "error": error, "output": output, "usage": run_usage(run),
                "cost_usd": float(run.cost_usd), "iterations": run.iterations, "simulated": run.simulated})
    return bool(done)


def run_usage(run: AgentRun) -> dict[str, int]:
    return {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens,
            "cache_creation_input_tokens": run.cache_creation_input_tokens,
            "cache_read_input_tokens": run.cache_read_input_tokens}
