"""Celery work of the versions app: the release fan-out over instance schemas (a public,
platform-wide task: it iterates the instance schemas itself, in batches)."""

from __future__ import annotations

from spokestack.celery import app


@app.task(name="versions.release_fanout", ignore_result=True, soft_time_limit=1500, time_limit=1800, public=True)
def release_fanout(*, fanout_id: int) -> int | None:
    from .services import release_fanout_run

    fanout = release_fanout_run(fanout_id=fanout_id)
    return getattr(fanout, "instances_done", None)
