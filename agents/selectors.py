"""Reads for agent runs, scoped to what the actor may see."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from spokestack.errors import NotFound
from tuning.governance import sees_every_client
from tuning.selectors import clients_visible_to

from .models import AgentRun, RunEvent


def runs_visible_to(*, actor: AbstractUser | None) -> QuerySet[AgentRun]:
    """Admins and managers see every run; account managers and client contacts the runs of their
    clients, plus the runs they started themselves."""
    runs = AgentRun.objects.select_related("client", "created_by")
    if sees_every_client(actor):
        return runs
    return runs.filter(Q(client__in=clients_visible_to(actor=actor)) | Q(created_by=actor))


def run_get(*, actor: AbstractUser | None, run_id: uuid.UUID | str) -> AgentRun:
    try:
        return runs_visible_to(actor=actor).get(pk=run_id)
    except (AgentRun.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No such run in this instance.", details={"run_id": str(run_id)}) from None


def events_after(*, run_id: uuid.UUID | str, seq: int, limit: int = 500) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=run_id, seq__gt=seq).order_by("seq")[:limit])
