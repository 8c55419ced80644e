"""A release fanned out to instances by the real Celery worker.

* release_fanout_1000_instances_s (with BENCH_VERSIONS_INSTANCES=1000; by default
  release_fanout_1000_instances_extrapolated_s from 50 real instances): impact analysis + update notification (+ e-mail to the
  notify contacts, + auto-apply where the policy allows) for one release across 1,000 instances,
  run as Celery work. Cloning 1,000 schemas would take minutes (~0.2 s each), so the benchmark
  provisions REAL_INSTANCES real schemas, times the worker's fan-out over them from the sync to
  the job row's `done`, and reports the per-instance cost × 1,000 (plus a fixed part measured
  with a fan-out over no instance). Each instance has two skills on media_buying and a third of
  them a performance preference (caution) or policy auto (applied), so all branches run.
"""

from __future__ import annotations

import os
import time
import uuid

from django.db import connection
from django_tenants.utils import schema_context

REAL_INSTANCES = int(os.environ.get("BENCH_VERSIONS_INSTANCES", "50"))
TARGET = 1000


def _wait_done(fanout_ids: list[int], timeout: float = 600.0) -> float:
    from versions.catalog.models import ReleaseFanout

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if ReleaseFanout.objects.filter(pk__in=fanout_ids, status="done").count() == len(fanout_ids):
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError("the fan-out did not finish")


def run() -> dict:
    from skills.models import Skill
    from spokestack.tenancy.models import Instance
    from spokestack.tenancy.services import instance_provision
    from tests.processes import WorkerProcess, process_env
    from versions.catalog.models import CatalogVersion
    from versions.models import UpdateNotification
    from versions.services import catalog_sync, version_config_update

    hidden = [("media_buying", "2.4.0"), ("rfp", "2.4.0")]
    CatalogVersion.objects.filter(agent_type__in=["media_buying", "rfp"]).delete()
    catalog_sync(hidden=hidden)  # the instances start on 2.3.1, before the release
    tag = uuid.uuid4().hex[:6]
    schemas = []
    provision_started = time.monotonic()
    for n in range(REAL_INSTANCES):
        item = instance_provision(name=f"Bench {n}", domain=f"bv{tag}-{n}.localhost", admin_email="a@bench.localhost",
                                  admin_password="bench-password-1", schema_name=f"bv_{tag}_{n}")
        with schema_context(item.instance.schema_name):
            Skill.objects.create(name="roas_optimizer", description="Optimises bids toward a target ROAS.",
                                 agent_types=["media_buying"], input_schema={"type": "object"})
            Skill.objects.create(name="slack_notify", description="Posts a message to Slack.",
                                 agent_types=["media_buying", "rfp"], input_schema={"type": "object"})
            changes = ({"optimization_preferences": ["performance", "roas"], "notify_contacts": ["o@bench.localhost"]},
                       {"policy": "auto"}, {})[n % 3]
            if changes:
                version_config_update(actor=None, agent_type="media_buying", changes=changes)
        schemas.append(item.instance.schema_name)
        # One provisioning per connection, as in a request: a backend that clones hundreds of
        # schemas keeps growing its catalog caches and slows down (see bench_tenants).
        connection.close()
    provision_s = time.monotonic() - provision_started
    connection.set_schema_to_public()

    worker = WorkerProcess({**process_env(), "DATABASE_POOL_MAX_SIZE": "10"}, "bench-versions", concurrency=4).start()
    try:
        def release(only: list[str]) -> float:
            CatalogVersion.objects.filter(agent_type__in=["media_buying", "rfp"]).delete()
            catalog_sync(hidden=hidden)
            started = time.monotonic()
            result = catalog_sync(fanout_schemas=only)
            return _wait_done(result.fanouts) - started

        fixed_s = release([])  # queueing, pick-up and the job's own bookkeeping
        measured_s = release(schemas)
    finally:
        worker.stop()
    notified = 0
    for schema in schemas:
        with schema_context(schema):
            notified += UpdateNotification.objects.filter(version="2.4.0").count()
    per_instance_s = max(measured_s - fixed_s, 0.0) / REAL_INSTANCES
    for instance in Instance.objects.filter(schema_name__in=schemas):
        instance.delete(force_drop=True)
    return {
        # Measured outright with BENCH_VERSIONS_INSTANCES=1000; otherwise extrapolated, and named so.
        ("release_fanout_1000_instances_s" if REAL_INSTANCES >= TARGET
         else "release_fanout_1000_instances_extrapolated_s"): fixed_s + per_instance_s * TARGET,
        "release_fanout_measured_instances": REAL_INSTANCES,
        "release_fanout_measured_s": measured_s,
        "release_fanout_fixed_s": fixed_s,
        "release_fanout_per_instance_ms": per_instance_s * 1000,
        "release_fanout_notifications": notified,  # media_buying and rfp: 2 per instance
        "release_fanout_goal_s": 30,
        "bench_provision_s": provision_s,
    }
