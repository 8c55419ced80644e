"""Celery tasks for agent runs: thin, keyword-only ids, the work imported inside."""

from __future__ import annotations

import gc
import os
import smtplib
import socket
from datetime import datetime, timedelta

from celery.signals import worker_init, worker_process_init, worker_ready
from celery.utils.log import get_task_logger

from spokestack.celery import app

logger = get_task_logger(__name__)
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
QUEUED_GRACE = timedelta(seconds=60)


@worker_init.connect
def refuse_transaction_pooling(**kwargs) -> None:
    """A worker behind transaction pooling would run instances' tasks in each other's schemas: it
    does not start (SystemExit: Celery logs a signal handler's other exceptions and goes on)."""
    from django.core.exceptions import ImproperlyConfigured

    from spokestack.db import refuse_transaction_pooling as refuse

    try:
        refuse()
    except ImproperlyConfigured as exc:
        logger.critical("%s", exc)
        raise SystemExit(f"spokestack: {exc}") from exc


@worker_init.connect
def keep_redis_connections(sender=None, **kwargs) -> None:
    """Keep a cache connection per task slot (spokestack/cache.py): a run's flags are read at its
    start and end, many runs at once."""
    from spokestack.cache import keep_idle

    keep_idle(int(getattr(sender, "concurrency", 1) or 1))


@worker_process_init.connect
@worker_ready.connect
def warm_up(**kwargs) -> None:
    """Import the loop and build the model client before the first run arrives: the anthropic SDK
    takes about a second to import, which every run queued at start would otherwise wait for.

    Then tune the garbage collector for many runs in flight: what is loaded now lives as long as
    the process, so it is frozen out of every collection (gc.freeze), and young collections run
    every 10,000 allocations instead of 700 (runs allocate many short-lived objects that reference
    counting frees). Measured with 200 concurrent runs: about a quarter less CPU per run."""
    from .loop import RunLoop  # noqa: F401
    from .model import get_client
    from .registry import agent_types

    agent_types()  # loads the agent specs
    get_client()
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


@app.task(name="agents.run_agent", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_agent(*, run_id: str) -> str:
    """Drive one run to a terminal status. Safe to deliver twice: the run's lease decides who
    works on it, and a resumed run starts from its last checkpoint."""
    from .loop import execute_run

    return execute_run(run_id=run_id, worker=WORKER_ID)


@app.task(name="agents.notify_approvers", acks_late=True, reject_on_worker_lost=True, ignore_result=True,
          soft_time_limit=60, time_limit=90, autoretry_for=(smtplib.SMTPException, OSError), max_retries=3,
          retry_backoff=30, retry_jitter=True)
def notify_approvers(*, approval_id: str) -> bool:
    """E-mail the approvers of a new approval request, off the run's thread: a slow mail server
    delays only this task. Safe to deliver twice: the request is claimed before the mail goes
    out, so a second delivery (or a request already decided) sends nothing."""
    from .approvals import approval_notify

    return approval_notify(approval_id=approval_id)


# Runs whose lease expired (their worker died) or whose enqueue was lost, queued again at most
# once per expired lease, and once per REQUEUE_RETRY after that in case that message was lost too.
_REAP_SQL = """
UPDATE agents_agentrun SET requeued_at = now()
 WHERE ((status = 'running' AND lease_until < now())
        OR (status = 'queued' AND lease_until IS NULL AND created_at < now() - make_interval(secs => %(grace)s)))
   AND (requeued_at IS NULL OR requeued_at < now() - make_interval(secs => %(retry)s)
        OR (status = 'running' AND requeued_at < lease_until))
RETURNING id::text
"""
REQUEUE_RETRY = timedelta(seconds=60)


@app.task(name="agents.reap_stale_runs", ignore_result=True, soft_time_limit=60, time_limit=90, public=True)
def reap_stale_runs() -> int:
    """Hand runs whose worker died (running, lease expired) or whose enqueue was lost (queued for
    over a minute, never claimed) to a worker again, in every instance; and queue runs waiting for
    delegated runs that have all ended (agents/delegation.py) whose parent was not settled.

    Beat sends this every few seconds on its own queue (`maintenance`, so it never waits behind
    runs) with an expiry, so copies that piled up during an outage are dropped rather than run
    in a row. Each run is marked in the statement that selects it: however many copies run, a run
    is queued again once per expired lease."""
    from django.db import connection, transaction

    from spokestack.tenancy.selectors import in_each_instance

    def requeue(schema: str) -> int:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_REAP_SQL, {"grace": QUEUED_GRACE.total_seconds(),
                                           "retry": REQUEUE_RETRY.total_seconds()})
                run_ids = [row[0] for row in cursor.fetchall()]
            # Queued in the same transaction: if the broker refuses, the marks roll back and the
            # next reaper tries again.
            for run_id in run_ids:
                run_agent.apply_async(kwargs={"run_id": run_id})
        # A run waiting for delegated runs that all ended, whose settlement was lost: settled now; an
        # ended run whose usage was not counted (its process died in between): counted now.
        from usage.budgets import holds_release_ended
        from usage.services import usage_record_missing

        from .delegation import waiting_runs_settle

        return len(run_ids) + waiting_runs_settle() + usage_record_missing() + holds_release_ended()

    requeued = in_each_instance(requeue, what="re-queuing stale runs")
    if requeued:
        logger.warning("re-queued %d stale run(s)", requeued)
    return requeued


@app.task(name="agents.expire_approvals", ignore_result=True, soft_time_limit=120, time_limit=180, public=True)
def expire_approvals(*, now: str | datetime | None = None) -> int:
    """The approval SLA timeline in every instance (agents/approvals.py `approvals_sla_sweep`): warn
    the approvers at 75 % of the SLA, escalate to the instance admins at 100 %, fail the calls whose
    request outlived the grace after that (their runs queued again so the model hears about it), and
    close the requests of runs that ended. Each step is claimed in the database, so two beat workers
    never notify twice. Runs every 5 minutes from beat; `now` (ISO 8601) is for tests and replays."""
    from django.utils.dateparse import parse_datetime

    from spokestack.tenancy.selectors import in_each_instance

    from .approvals import approvals_sla_sweep

    at = parse_datetime(now) if isinstance(now, str) else now
    moved = in_each_instance(lambda schema: approvals_sla_sweep(now=at), what="approval SLA")
    if moved:
        logger.info("%d approval request(s) warned, escalated, expired or closed", moved)
    return moved
