"""Celery work of the versions app: the release fan-out over instance schemas and the expiry of
sandbox sessions (public, platform-wide tasks: they iterate the instance schemas themselves)."""

from __future__ import annotations

from celery.utils.log import get_task_logger

from spokestack.celery import app

logger = get_task_logger(__name__)


@app.task(name="versions.release_fanout", ignore_result=True, soft_time_limit=1500, time_limit=1800, public=True)
def release_fanout(*, fanout_id: int) -> None:
    from .services import release_fanout_run

    release_fanout_run(fanout_id=fanout_id)


@app.task(name="versions.release_fanout_batch", ignore_result=True, soft_time_limit=600, time_limit=900, public=True)
def release_fanout_batch(*, fanout_id: int, schemas: list[str]) -> None:
    from .services import release_fanout_batch_run

    release_fanout_batch_run(fanout_id=fanout_id, schemas=schemas)


@app.task(name="versions.expire_sandboxes", ignore_result=True, soft_time_limit=120, time_limit=180, public=True)
def expire_sandboxes() -> int:
    """End the sandbox sessions past their 24 hours, in every instance. Runs every 10 minutes from
    beat; until it does, the services already refuse an expired session."""
    from spokestack.tenancy.selectors import in_each_instance

    from .services import sandboxes_expire

    expired = in_each_instance(lambda schema: sandboxes_expire(), what="sandbox expiry")
    if expired:
        logger.info("expired %d sandbox session(s)", expired)
    return expired


@app.task(name="versions.eval_run_advance", ignore_result=True, soft_time_limit=120, time_limit=180)
def eval_run_advance(*, eval_run_id: str) -> None:
    """One pass of an eval run (versions.evals.services.eval_run_advance), queued again until every
    case is in. A duplicate delivery is harmless: each case is started and counted once."""
    from .evals.services import eval_run_advance as advance

    wait = advance(eval_run_id=eval_run_id)
    if wait is not None:
        eval_run_advance.apply_async(kwargs={"eval_run_id": eval_run_id}, countdown=wait)


@app.task(name="versions.eval_runs_sweep", ignore_result=True, soft_time_limit=120, time_limit=180, public=True)
def eval_runs_sweep() -> int:
    """Queue a pass of every eval run whose task was lost, in every instance (beat, every minute)."""
    from spokestack.tenancy.selectors import in_each_instance

    from .evals.services import eval_runs_sweep as sweep

    queued = in_each_instance(lambda schema: sweep(), what="eval run sweep")
    if queued:
        logger.info("re-queued %d eval run(s) left behind", queued)
    return queued
