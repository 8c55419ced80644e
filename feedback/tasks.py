"""Scheduled and on-demand analysis of feedback: thin tasks, the work in `feedback.services`."""

from __future__ import annotations

from celery.utils.log import get_task_logger
from django_tenants.utils import schema_context

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="feedback.analyze_client", ignore_result=True, soft_time_limit=300, time_limit=360)
def analyze_client(*, schema: str, client_id: int, agent_type: str = "", job_id: int | None = None) -> int | None:
    """One client's analysis (the admin's "Analyze now" passes its job, whose progress the page
    follows; the beat none); returns the analysis id."""
    from tuning.models import Client

    from .jobs import analysis_job_run
    from .services import analysis_run

    with schema_context(schema):
        if job_id is not None:
            job = analysis_job_run(job_id=job_id)
            return job.analysis_id if job is not None else None
        client = Client.objects.filter(pk=client_id).first()
        if client is None:
            return None
        return analysis_run(client=client, agent_type=agent_type).pk


@app.task(name="feedback.analyze_all_instances", ignore_result=True, soft_time_limit=3000, time_limit=3600,
          public=True)
def analyze_all_instances() -> int:
    """Beat: analyse every client with feedback, in every instance (one model request per client)."""
    from spokestack.tenancy.selectors import in_each_instance
    from tuning.models import Client

    def queue(schema: str) -> int:
        client_ids = list(Client.objects.filter(feedback__isnull=False).distinct().values_list("pk", flat=True))
        for client_id in client_ids:
            analyze_client.delay(schema=schema, client_id=client_id)
        return len(client_ids)

    done = in_each_instance(queue, what="queuing feedback analysis")
    logger.info("queued feedback analysis for %d client(s)", done)
    return done
