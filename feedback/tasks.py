"""Scheduled and on-demand analysis of feedback: thin tasks, the work in `feedback.services`."""

from __future__ import annotations

from celery.utils.log import get_task_logger
from django_tenants.utils import get_public_schema_name, schema_context

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="feedback.analyze_client", ignore_result=True, soft_time_limit=300, time_limit=360)
def analyze_client(*, schema: str, client_id: int, agent_type: str = "") -> int | None:
    """One client's analysis (the admin's "Analyze now"); returns the analysis id."""
    from tuning.models import Client

    from .services import analysis_run

    with schema_context(schema):
        client = Client.objects.filter(pk=client_id).first()
        if client is None:
            return None
        return analysis_run(client=client, agent_type=agent_type).pk


@app.task(name="feedback.analyze_all_instances", ignore_result=True, soft_time_limit=3000, time_limit=3600,
          public=True)
def analyze_all_instances() -> int:
    """Beat: analyse every client with feedback, in every instance (one model request per client)."""
    from spokestack.tenancy.models import Instance
    from tuning.models import Client

    done = 0
    for schema in Instance.objects.exclude(schema_name=get_public_schema_name()).values_list("schema_name", flat=True):
        with schema_context(schema):
            for client_id in Client.objects.filter(feedback__isnull=False).distinct().values_list("pk", flat=True):
                analyze_client.delay(schema=schema, client_id=client_id)
                done += 1
    logger.info("queued feedback analysis for %d client(s)", done)
    return done
