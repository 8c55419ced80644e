"""Reads for agent runs, scoped to what the actor may see."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from spokestack.accounts import policy
from spokestack.errors import NotFound

from .models import AgentRun, ReviewStatus, RunEvent

REVIEW_FILTERS = [ReviewStatus.PENDING.value, ReviewStatus.REVIEWED.value]


def runs_visible_to(*, actor: AbstractUser | None) -> QuerySet[AgentRun]:
    """Admins and managers see every run; account managers and client contacts the runs of their
    clients, plus the runs they started themselves (policy `run.view`)."""
    runs = AgentRun.objects.select_related("client", "created_by")
    if policy.acts_on_every_client(actor, "run.view"):
        return runs
    if not policy.allows(actor, "run.view"):
        return runs.none()
    return runs.filter(Q(client__in=policy.clients_for(actor, "run.view")) | Q(created_by=actor))


def runs_in_review(runs: QuerySet[AgentRun], review: str) -> QuerySet[AgentRun]:
    """The review queue ("pending": outputs that broke a rule, or of an agent the instance audits,
    with no feedback yet) or the runs feedback took out of it ("reviewed"), among `runs` (already
    scoped by runs_visible_to: an account manager's queue holds their clients' runs only)."""
    return runs.filter(review_status=review)


def run_get(*, actor: AbstractUser | None, run_id: uuid.UUID | str) -> AgentRun:
    try:
        return runs_visible_to(actor=actor).get(pk=run_id)
    except (AgentRun.DoesNotExist, ValidationError, ValueError):
        raise NotFound("No such run in this instance.", details={"run_id": str(run_id)}) from None


def events_after(*, run_id: uuid.UUID | str, seq: int, limit: int = 500) -> list[RunEvent]:
    return list(RunEvent.objects.filter(run_id=run_id, seq__gt=seq).order_by("seq")[:limit])
