"""The base task for instance work, and the worker probe behind deep readiness checks."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name
from tenant_schemas_celery.task import TenantTask

from spokestack.outages import REDIS_ERRORS


class MissingInstanceSchema(RuntimeError):
    pass


class InstanceTask(TenantTask):
    """Runs in the schema it was queued from. Tasks that are about one instance (nearly all)
    refuse to start in the public schema; platform-wide tasks set `public = True`."""

    abstract = True
    public = False

    def __call__(self, *args, **kwargs):
        if not self.public and connection.schema_name == get_public_schema_name():
            raise MissingInstanceSchema(
                f"Task {self.name} was queued without an instance schema; queue it from inside the instance."
            )
        return super().__call__(*args, **kwargs)


logger = logging.getLogger(__name__)


@dataclass
class Enqueued:
    """What came of an enqueue after commit: `sent` is None until the transaction commits."""

    sent: bool | None = None


def enqueue_on_commit(task: Any, **kwargs: Any) -> Enqueued:
    """Queue `task(**kwargs)` once the current transaction commits.

    What was committed stands whatever the broker does: when it is unreachable the failure is
    logged, `sent` turns False and the request still answers (saying so); the row the task is
    about carries its own recovery (a queued run is started by agents.reap_stale_runs). A request
    never answers 5xx after committing, which would invite a retry that does the work twice."""
    outcome = Enqueued()

    def send() -> None:
        try:
            task.apply_async(kwargs=kwargs)
        except REDIS_ERRORS + (OSError,):
            logger.warning("!!! the broker is unavailable: %s(%s) was not queued; it will be recovered", task.name,
                           kwargs, exc_info=True)
            outcome.sent = False
        else:
            outcome.sent = True

    transaction.on_commit(send)
    return outcome


def worker_probe_key(probe_id: str) -> str:
    return f"worker-probe:{probe_id}"


from spokestack.celery import app  # noqa: E402 - the app module imports this one for task_cls


@app.task(name="spokestack.worker_probe", soft_time_limit=5, time_limit=10)
def worker_probe(*, probe_id: str) -> None:
    """Answer a readiness probe: write the schema this ran in and the worker's host to the cache.

    The cache key goes through the schema-aware key function, so the answer is only found by a
    reader in the same instance: a probe proves a worker runs this instance's tasks in its schema.
    """
    cache.set(worker_probe_key(probe_id), {"schema": connection.schema_name, "worker": socket.gethostname()}, 60)
