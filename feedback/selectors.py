"""Reads for feedback, analyses and suggestions, scoped to the clients the actor may see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.catalog import require_agent_type
from spokestack.errors import NotFound
from tuning.models import Client

from .analysis import FeedbackItem
from .models import Analysis, AnalysisJob, Feedback, FeedbackSettings, Suggestion, SuggestionStatus


def feedback_settings() -> FeedbackSettings:
    return FeedbackSettings.objects.order_by("pk").first() or FeedbackSettings()


def feedback_visible_to(*, actor: AbstractUser | None) -> QuerySet[Feedback]:
    """Policy `feedback.view`: every row, or the rows of the actor's clients plus their own."""
    rows = Feedback.objects.select_related("client", "author", "run")
    if policy.acts_on_every_client(actor, "feedback.view"):
        return rows
    if not policy.allows(actor, "feedback.view"):
        return rows.none()
    return rows.filter(Q(client__in=policy.clients_for(actor, "feedback.view")) | Q(author=actor))


def suggestions_visible_to(*, actor: AbstractUser | None, client: Client | None = None) -> QuerySet[Suggestion]:
    rows = Suggestion.objects.select_related("client", "decided_by")
    if client is not None:
        rows = rows.filter(client=client)
    if policy.acts_on_every_client(actor, "suggestion.view"):
        return rows
    return rows.filter(client__in=policy.clients_for(actor, "suggestion.view"))


def suggestion_get(*, actor: AbstractUser | None, suggestion_id: int | str) -> Suggestion:
    try:
        return suggestions_visible_to(actor=actor).get(pk=int(suggestion_id))
    except (Suggestion.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such suggestion.", details={"suggestion_id": suggestion_id}) from None


def pending_count(*, actor: AbstractUser | None) -> int:
    return suggestions_visible_to(actor=actor).filter(status=SuggestionStatus.PENDING).count()


def feedback_items(*, client: Client, agent_type: str = "", days: int | None = None) -> list[FeedbackItem]:
    """The current feedback on the client's outputs in the window, as plain items (one query)."""
    days = days if days is not None else feedback_settings().window_days
    rows = Feedback.objects.filter(client=client, current=True, created_at__gte=timezone.now() - timedelta(days=days))
    if agent_type:
        rows = rows.filter(agent_type=agent_type)
    fields = ("verdict", "original_text", "corrected_text", "reason", "category", "rating", "created_at", "agent_type",
              "comment")
    return [FeedbackItem(verdict=v, original=o, corrected=c, reason=r, category=cat, rating=rt, created_at=at,
                         agent_type=t, comment=cm)
            for v, o, c, r, cat, rt, at, t, cm in rows.order_by("created_at").values_list(*fields)]


def analysis_job_visible(*, actor: AbstractUser | None, job_id: int | str) -> AnalysisJob:
    """An "Analyze now" job of a client the actor may see analyses of; NotFound otherwise."""
    try:
        job = AnalysisJob.objects.select_related("client", "analysis").get(pk=int(job_id))
    except (AnalysisJob.DoesNotExist, ValueError, TypeError):
        raise NotFound("No such analysis job.", details={"job_id": job_id}) from None
    if not policy.allows(actor, "analysis.view", job.client):
        raise NotFound("No such analysis job.", details={"job_id": job_id})
    return job


def analysis_jobs_recent(*, actor: AbstractUser | None, client: Client | None = None,
                         minutes: int = 30) -> list[AnalysisJob]:
    """The newest "Analyze now" job per client that the actor asked for in the last minutes: what the
    page shows as running, or as just finished with its result."""
    if actor is None:
        return []
    rows = AnalysisJob.objects.select_related("client").filter(
        requested_by=actor, created_at__gte=timezone.now() - timedelta(minutes=minutes))
    if client is not None:
        rows = rows.filter(client=client)
    newest: dict[int, AnalysisJob] = {}
    for job in rows.order_by("-created_at", "-id"):
        if job.client_id not in newest and policy.allows(actor, "analysis.view", job.client):
            newest[job.client_id] = job
    return list(newest.values())


def latest_analysis(*, client: Client, agent_type: str = "") -> Analysis | None:
    return Analysis.objects.filter(client=client, agent_type=agent_type).order_by("-created_at", "-id").first()


def analysis_agent_type(value: Any) -> str:
    """'' (all agent types together) or an agent type the catalog has; its 404 otherwise, so a typo
    names the choices rather than storing an empty analysis under a type nobody runs."""
    if value is None or value == "":
        return ""
    return require_agent_type(value)


def analysis_latest_visible(*, actor: AbstractUser | None, client: Client, agent_type: Any = "") -> Analysis | None:
    """The newest stored analysis of the client for that agent type ('' is the one of all types), or
    None. Reading runs nothing and costs no model tokens; running one is `services.analysis_run`."""
    policy.require(actor, "analysis.view", client)
    return latest_analysis(client=client, agent_type=analysis_agent_type(agent_type))
