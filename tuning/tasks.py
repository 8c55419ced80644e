"""Celery work of the tuning app: the expiry of memories (a public, platform-wide beat task that
iterates the instance schemas itself)."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="tuning.expire_memories", ignore_result=True, soft_time_limit=120, time_limit=180, public=True)
def expire_memories() -> int:
    """Mark the memories past their expiry as expired, in every instance (audited system changes).
    Runs every 5 minutes from beat; until it does, the assembler already leaves them out."""
    from spokestack.tenancy.selectors import in_each_instance

    from .services import memories_expire

    expired = in_each_instance(lambda schema: memories_expire(), what="memory expiry")
    if expired:
        logger.info("expired %d memory(ies)", expired)
    return expired
