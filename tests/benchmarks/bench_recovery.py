"""Recovery after a worker's death, through the real parts: two Celery worker processes, a real
`celery beat` sending agents.reap_stale_runs, daphne, PostgreSQL, Redis, the real anthropic SDK
against the fake Messages API, and the sample ERP. Settings as shipped (lease RUN_LEASE_SECONDS,
reaper every REAPER_INTERVAL_S).

* recovery_after_worker_kill_p50_s / _max_s: 20 runs in flight on one worker process, SIGKILL
  it; for each run, the time from the kill to its run.resumed event on the other worker (both
  on the database's clock). Three rounds, so 60 samples.
* step_overhead_p50_ms / _p99_ms: bench_runtime's step phase, with the lease heartbeat running
  (it always does): compare with the figures of earlier sessions in the README.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from .bench_runtime import Stack, _percentile, step_overhead

RUNS_IN_FLIGHT = 20
ROUNDS = 3


def _db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def _start_beat(env: dict[str, str]) -> subprocess.Popen:
    from tests.processes import LOGS, ROOT

    log = open(LOGS / "celery-bench-beat.log", "w")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "spokestack", "beat", "--loglevel", "INFO"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def _round(stack: Stack, victim, spare, n: int) -> list[float]:
    """The victim takes the burst alone; the spare starts, then the victim is killed mid-turn."""
    from agents.models import AgentRun, RunEvent

    markers = [f"[recovery-{n}-{i}-{uuid.uuid4().hex[:6]}]" for i in range(RUNS_IN_FLIGHT)]
    for marker in markers:
        # by position: a run asked a turn again after the kill gets the same answer, as from a model
        stack.model.script(marker, [
            {"content": [{"type": "tool_use", "name": "check_brand_rules", "input": {"text": f"Glow {marker}"}}],
             "stop_reason": "tool_use", "delay_s": 6.0},
            {"content": [{"type": "tool_use", "name": "save_draft", "input": {"content": f"Glow gently {marker}"}}],
             "stop_reason": "tool_use", "delay_s": 6.0},
            {"content": [{"type": "text", "text": "Saved."}], "stop_reason": "end_turn", "delay_s": 6.0},
        ], by_position=True)
    ids = [stack.execute(f"Check and save {marker}") for marker in markers]
    owner = f":{victim.process.pid}/"
    deadline = time.monotonic() + 60
    with schema_context(stack.instance.schema_name):
        while AgentRun.objects.filter(pk__in=ids, status="running", lease_owner__contains=owner).count() < len(ids):
            if time.monotonic() > deadline:
                raise TimeoutError("the runs did not all start on the worker to kill")
            time.sleep(0.05)
        spare.start()  # another worker process is up before the victim dies, as in production
        killed_at = _db_now()
        victim.kill()
        while RunEvent.objects.filter(run_id__in=ids, type="run.resumed", created_at__gt=killed_at) \
                .values("run_id").distinct().count() < len(ids):
            if time.monotonic() > deadline + 120:
                raise TimeoutError("the runs were not all resumed")
            time.sleep(0.1)
        resumed = {}
        for run_id, at in RunEvent.objects.filter(run_id__in=ids, type="run.resumed", created_at__gt=killed_at) \
                .order_by("seq").values_list("run_id", "created_at"):
            resumed.setdefault(run_id, at)
    stack.wait_finished(ids, timeout=120)
    return [(at - killed_at).total_seconds() for at in resumed.values()]


def run() -> dict[str, float]:
    from tests.processes import WorkerProcess, stop_process

    stack = Stack(name="recovery", concurrency=32)
    beat = _start_beat(stack.env)
    spare = None
    try:
        results: dict[str, float] = {k: v for k, v in step_overhead(stack).items() if k.startswith("step_overhead")}
        victim = stack.worker
        spare = WorkerProcess(stack.env, "bench-recovery-spare", concurrency=32)
        samples: list[float] = []
        for n in range(ROUNDS):
            if victim.process is None or victim.process.poll() is not None:
                victim.start()
            samples += _round(stack, victim, spare, n)
            victim, spare = spare, victim
        results.update({
            "recovery_after_worker_kill_p50_s": statistics.median(samples),
            "recovery_after_worker_kill_max_s": max(samples),
            "recovery_after_worker_kill_p90_s": _percentile(samples, 0.9),
            "recovery_samples": len(samples),
            "lease_seconds": settings.RUN_LEASE_SECONDS,
            "reaper_interval_s": float(os.environ.get("REAPER_INTERVAL_S", settings.REAPER_INTERVAL_S)),
        })
        return results
    finally:
        stop_process(beat)
        for worker in (stack.worker, spare):
            if worker is not None and worker.process is not None and worker.process.poll() is None:
                worker.stop()
        stack.worker.process = None  # stopped above
        stack.close()


