"""The "Analyze now" job: a row with a state machine (queued → running → done | failed) that the
page which asked follows, while a worker runs the analysis (`services.analysis_run`, one model
request). The rows are progress, not configuration: nothing here changes a client's tuning."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractUser
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from spokestack.accounts import policy
from spokestack.errors import DomainError
from spokestack.tasks import enqueue_on_commit
from tuning.models import Client

from . import services
from .models import AnalysisJob, AnalysisJobStatus
from .selectors import analysis_agent_type


def analysis_job_start(*, actor: AbstractUser | None, client: Client, agent_type: str = "") -> AnalysisJob:
    """"Analyze now": a job row the page can follow, queued for a worker after commit (the analysis
    makes a model request, never inside a request or a transaction)."""
    policy.require(actor, "analysis.run", client)
    agent_type = analysis_agent_type(agent_type)
    job = AnalysisJob.objects.create(client=client, agent_type=agent_type, requested_by=actor)
    _send(job)
    return job


# A queued job no worker took within this long is sent again (its message was lost: the broker was
# down when it was sent, or Redis lost it); a running job older than the task's hard time limit
# (360 s) lost its worker (killed, or the machine went away) and is queued again. The analysis is
# idempotent (it refreshes the client's suggestions), so running it twice changes nothing twice.
RESEND_QUEUED_AFTER = timedelta(seconds=30)
REQUEUE_RUNNING_AFTER = timedelta(seconds=420)


def _send(job: AnalysisJob):
    from .tasks import analyze_client

    return enqueue_on_commit(analyze_client, schema=connection.schema_name, client_id=job.client_id, agent_type=job.agent_type, job_id=job.pk)


def analysis_job_recover(*, job: AnalysisJob, now=None) -> AnalysisJob:
    """Called whenever the page that asked reads the job: a job whose message or worker was lost is
    sent again (decided in the database, so two pages polling at once send it once)."""
    now = now or timezone.now()
    lost = AnalysisJob.objects.filter(pk=job.pk).filter(
        Q(status=AnalysisJobStatus.QUEUED, queued_at__lt=now - RESEND_QUEUED_AFTER)
        | Q(status=AnalysisJobStatus.RUNNING, started_at__lt=now - REQUEUE_RUNNING_AFTER))
    if lost.update(status=AnalysisJobStatus.QUEUED, queued_at=now) == 1:
        job.refresh_from_db()
        _send(job)
    return job


def analysis_job_run(*, job_id: int) -> AnalysisJob | None:
    """The worker's side of a job: claimed once (queued → running, decided in the database), then
    the analysis, then done with its counts, or failed with the reason. None when the job is gone or
    another delivery has it already."""
    if AnalysisJob.objects.filter(pk=job_id, status=AnalysisJobStatus.QUEUED).update(
            status=AnalysisJobStatus.RUNNING, started_at=timezone.now()) != 1:
        return None
    job = AnalysisJob.objects.select_related("client", "requested_by").get(pk=job_id)
    try:
        # the person who asked is asked about again: the job runs with their rights, not the system's
        row = services.analysis_run(client=job.client, agent_type=job.agent_type, actor=job.requested_by)
    except Exception as exc:
        message = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        AnalysisJob.objects.filter(pk=job_id).update(status=AnalysisJobStatus.FAILED, error=message[:500],
                                                     finished_at=timezone.now())
        raise
    created = len(row.result.get("created_suggestion_ids") or [])
    AnalysisJob.objects.filter(pk=job_id).update(
        status=AnalysisJobStatus.DONE, analysis=row, created_suggestions=created,
        refreshed_suggestions=len(row.result.get("suggestion_ids") or []) - created, finished_at=timezone.now())
    job.refresh_from_db()
    return job

