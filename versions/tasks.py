"""Celery work of the versions app: the release fan-out over instance schemas."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="versions.release_fanout", soft_time_limit=1500, time_limit=1800)
def release_fanout(*, fanout_id: int) -> dict:
    from .services import release_fanout_run

    fanout = release_fanout_run(fanout_id=fanout_id)
    return {"fanout_id": fanout_id, "done": getattr(fanout, "instances_done", None)}
