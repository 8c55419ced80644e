"""Celery tasks for event webhooks: thin, the work in services."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="webhooks.deliver", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
          soft_time_limit=120, time_limit=150)
def deliver(*, delivery_id: str, manual: bool = False) -> str:
    """One attempt of one delivery (a duplicate task finds it claimed or ended, and does nothing)."""
    from .services import delivery_attempt

    return delivery_attempt(delivery_id=delivery_id, manual=manual)


@app.task(name="webhooks.sweep", ignore_result=True, soft_time_limit=120, time_limit=180, public=True)
def sweep() -> int:
    """Queue, in every instance, the deliveries that are due and whose task was lost."""
    from spokestack.tenancy.selectors import in_each_instance

    from .services import deliveries_sweep

    queued = in_each_instance(lambda schema: deliveries_sweep(), what="webhook deliveries")
    if queued:
        logger.info("queued %d due webhook deliveries", queued)
    return queued
