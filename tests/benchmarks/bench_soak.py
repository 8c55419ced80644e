"""A soak: bounded load on the real parts for SOAK_MINUTES (default 30), to see memory creep and
failures that short runs do not show.

SOAK_IN_FLIGHT runs (default 20) are kept in flight on one worker process (threads pool) through
daphne's API: the copy agent answered by the offline model behind the fake Messages API (0.5 s
per turn), with its real tools against the sample ERP; every fifth run is also followed over SSE
to its end. The first SOAK_WARMUP_MINUTES (default 3, at most a fifth of the soak) are warm-up.

* worker_rss_{start,warm,end}_mb, web_rss_{...}: resident memory of the worker and daphne;
  *_rss_growth_pct: from the end of the warm-up to the end (goal ≤ 5).
* soak_runs, soak_failed_runs (goal 0), soak_runs_per_min.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import uuid

from django.db import connection
from django_tenants.utils import schema_context

from .bench_runtime import Stack


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _follow(stack: Stack, run_id: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=120)
    conn.request("GET", f"/api/v1/agent/runs/{run_id}/events",
                 headers={"Host": f"{stack.host}:{stack.port}", "Authorization": f"Bearer {stack.token}"})
    response = conn.getresponse()
    for _ in response:
        pass
    conn.close()


def run() -> dict[str, float]:
    from agents.models import TERMINAL_STATUSES, AgentRun

    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    in_flight = int(os.environ.get("SOAK_IN_FLIGHT", "20"))
    warmup_s = min(float(os.environ.get("SOAK_WARMUP_MINUTES", "3")), minutes / 5) * 60
    stack = Stack(name="soak", concurrency=in_flight + 8)
    stack.model.latency_s = 0.5
    stack.model.record = False
    worker_pid, web_pid = stack.worker.process.pid, stack.daphne.pid
    rss = {"worker_rss_start_mb": _rss_mb(worker_pid), "web_rss_start_mb": _rss_mb(web_pid)}
    started = time.monotonic()
    warm_at = started + warmup_s
    ends_at = started + minutes * 60
    pending: set[str] = set()
    submitted = 0
    finished: list[str] = []
    followers: list[threading.Thread] = []
    try:
        with schema_context(stack.instance.schema_name):
            while time.monotonic() < ends_at or pending:
                if pending:
                    done = set(AgentRun.objects.filter(pk__in=pending, status__in=TERMINAL_STATUSES)
                               .values_list("pk", flat=True).iterator())
                    done = {str(pk) for pk in done}
                    finished += done
                    pending -= done
                while time.monotonic() < ends_at and len(pending) < in_flight:
                    run_id = stack.execute(f"Write a caption for the Ramadan serum launch [soak-{uuid.uuid4().hex[:6]}]")
                    pending.add(run_id)
                    submitted += 1
                    if submitted % 5 == 0:
                        follower = threading.Thread(target=_follow, args=(stack, run_id), daemon=True)
                        follower.start()
                        followers.append(follower)
                        followers = [f for f in followers if f.is_alive()]
                if "worker_rss_warm_mb" not in rss and time.monotonic() >= warm_at:
                    rss.update(worker_rss_warm_mb=_rss_mb(worker_pid), web_rss_warm_mb=_rss_mb(web_pid))
                time.sleep(0.2)
            rss.update(worker_rss_end_mb=_rss_mb(worker_pid), web_rss_end_mb=_rss_mb(web_pid))
            failed = AgentRun.objects.filter(pk__in=finished).exclude(status="succeeded").count()
        connection.close()
        elapsed_min = (time.monotonic() - started) / 60
        return {
            "soak_minutes": round(elapsed_min, 2), "soak_runs": len(finished), "soak_failed_runs": failed,
            "soak_runs_per_min": len(finished) / elapsed_min, **rss,
            "worker_rss_growth_pct": 100 * (rss["worker_rss_end_mb"] / rss["worker_rss_warm_mb"] - 1),
            "web_rss_growth_pct": 100 * (rss["web_rss_end_mb"] / rss["web_rss_warm_mb"] - 1),
        }
    finally:
        stack.close()
