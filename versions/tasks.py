"""Celery work of the versions app: the release fan-out over instance schemas (a public,
platform-wide task: it iterates the instance schemas itself, in batches)."""

from __future__ import annotations

from spokestack.celery import app


@app.task(name="versions.release_fanout", ignore_result=True, soft_time_limit=1500, time_limit=1800, public=True)
def release_fanout(*, fanout_id: int) -> None:
    from .services import release_fanout_run

    release_fanout_run(fanout_id=fanout_id)


@app.task(name="versions.release_fanout_batch", ignore_result=True, soft_time_limit=600, time_limit=900, public=True)
def release_fanout_batch(*, fanout_id: int, schemas: list[str]) -> None:
    from .services import release_fanout_batch_run

    release_fanout_batch_run(fanout_id=fanout_id, schemas=schemas)
