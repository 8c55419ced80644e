"""Scale-out, measured in one run (issue 23): the runtime benchmark's burst — 200 runs at once,
3 model turns of 2 s each — on one worker process and then on two (one per core, hostnames of
their own, as on two machines), and how soon an API client sees a run's first event.

* concurrent_runs_efficiency_1_worker / _2_workers: ideal makespan (6 s) / measured, each the
  second burst on its worker set (the first warms the workers' threads and connections);
  throughput_2_vs_1_workers: makespan with one / makespan with two.
* runs_per_worker_2_workers: how the 200 runs split between the two processes.
* web_events_per_s / web_event_latency_p95_ms: during the two-worker burst, a websocket viewer per
  run (200, joining 20 at a time) on the one web process: live events (written after their viewer
  joined) delivered per second from the first to the last, and how long each took from its row's
  creation to the viewer (the fan-out a web process sustained while two workers and the database
  shared its 2 cores).
* execute_to_first_event_p50_ms / _p95_ms: `POST /api/v1/agent/execute` with `stream: true` sent →
  the first `data:` line (run.queued) read by the client, idle (30 runs one after another);
  _during_burst_p95_ms: the same while a 200-run burst runs on one worker.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from collections import Counter

from django.db import connection
from django_tenants.utils import schema_context

from .bench_runtime import CONCURRENT_RUNS, TURN_LATENCY_S, Stack, _burst, _percentile


def _first_event_ms(stack: Stack, marker: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    body = json.dumps({"agent_type": "copy", "task": f"Headline {marker}", "client_id": stack.client.pk,
                       "stream": True})
    started = time.perf_counter()
    conn.request("POST", "/api/v1/agent/execute", body=body,
                 headers={"Host": f"{stack.host}:{stack.port}", "Authorization": f"Bearer {stack.token}",
                          "Content-Type": "application/json", "Accept": "text/event-stream"})
    response = conn.getresponse()
    assert response.status == 200, response.read()[:500]
    for raw in response:
        if raw.startswith(b"data: "):
            elapsed = (time.perf_counter() - started) * 1000
            break
    else:
        raise AssertionError("the stream ended without an event")
    conn.close()
    return elapsed


def _first_events(stack: Stack, n: int, label: str) -> list[float]:
    samples = []
    for i in range(n):
        marker = f"[first-{label}-{i}-{uuid.uuid4().hex[:6]}]"
        stack.script_tool_turns(marker, tool_turns=0)
        samples.append(_first_event_ms(stack, marker))
    return samples


def _follow_all(stack: Stack, run_ids: list[str], received: list[tuple[float, float]], failed: list) -> None:
    """A websocket viewer per run on the web process, until each run ends: (received, created) per event."""
    import asyncio
    from datetime import datetime

    import websockets

    async def follow(run_id: str, handshakes: asyncio.Semaphore) -> None:
        uri = f"ws://{stack.host}:{stack.port}/ws/runs/{run_id}/?after=0"
        async with handshakes:  # viewers join 20 at a time, as a crowd arriving, not in one instant
            ws = await websockets.connect(uri, host="127.0.0.1", port=stack.port, open_timeout=60,
                                          additional_headers={"Authorization": f"Bearer {stack.token}"})
        joined = time.time()
        async with ws:
            async for message in ws:
                event = json.loads(message)
                created = datetime.fromisoformat(event["created_at"]).timestamp()
                if created >= joined:  # written while the viewer was there: live, not replayed
                    received.append((time.time(), created))

    async def all_of_them() -> list:
        handshakes = asyncio.Semaphore(20)
        return await asyncio.gather(*(follow(run_id, handshakes) for run_id in run_ids), return_exceptions=True)

    failed.extend(o for o in asyncio.run(all_of_them()) if isinstance(o, BaseException))


def _burst_followed(stack: Stack) -> tuple[float, list[str], list[tuple[float, float]], list]:
    """The burst of bench_runtime, with a viewer per run joining as the runs are created."""
    from django.db import transaction

    from agents.services import run_create

    markers = [f"[scalef-{n}-{uuid.uuid4().hex[:6]}]" for n in range(CONCURRENT_RUNS)]
    for marker in markers:
        stack.script_tool_turns(marker, tool_turns=2, delay=TURN_LATENCY_S)
    received: list[tuple[float, float]] = []
    failed: list = []
    with schema_context(stack.instance.schema_name):
        with transaction.atomic():
            run_ids = [str(run_create(actor=stack.admin, agent_type="copy", task=f"Headline {m}",
                                      client_id=stack.client.pk).run.pk) for m in markers]
        started = time.monotonic()
    viewers = threading.Thread(target=_follow_all, args=(stack, run_ids, received, failed))
    viewers.start()
    stack.wait_finished(run_ids, timeout=600)
    makespan = time.monotonic() - started
    viewers.join(120)
    return makespan, run_ids, received, failed


def _split(stack: Stack, run_ids: list[str]) -> list[int]:
    from agents.models import RunEvent

    with schema_context(stack.instance.schema_name):
        started = RunEvent.objects.filter(run_id__in=run_ids, type="run.started").values_list("payload", flat=True)
        return sorted(Counter(p["worker"].split("/")[0] for p in started).values(), reverse=True)


def run() -> dict[str, float]:
    import os

    from tests.processes import WorkerProcess

    os.environ["STREAM_MAX_PER_USER"] = str(CONCURRENT_RUNS + 20)  # one viewer follows every run of a burst
    stack = Stack(name="scale", concurrency=CONCURRENT_RUNS + 8)
    second = None
    try:
        _first_events(stack, 5, "warm")
        idle = _first_events(stack, 30, "idle")
        _burst(stack)  # warms the worker
        during: list[float] = []
        sampler = threading.Thread(target=lambda: during.extend(_first_events(stack, 20, "burst")))
        sampler.start()
        one, _, _ = _burst(stack)
        sampler.join()
        connection.close()
        second = WorkerProcess(stack.env, "bench-scale-2", concurrency=CONCURRENT_RUNS + 8).start()
        _burst(stack)  # warms the second worker
        two, _, run_ids = _burst(stack)
        split = _split(stack, run_ids)
        _, _, received, failed = _burst_followed(stack)
        live = received
        span = max(at for at, _ in live) - min(at for at, _ in live)
        ideal = 3 * TURN_LATENCY_S
        return {
            "concurrent_runs_efficiency_1_worker": ideal / one,
            "concurrent_runs_efficiency_2_workers": ideal / two,
            "throughput_2_vs_1_workers": one / two,
            "runs_per_worker_2_workers": "/".join(map(str, split)),
            "web_events_per_s": len(live) / span,
            "web_events_delivered": len(live),
            "web_viewers_failed_of_200": len(failed),
            "web_event_latency_p50_ms": statistics.median((at - created) * 1000 for at, created in live),
            "web_event_latency_p95_ms": _percentile([(at - created) * 1000 for at, created in live], 0.95),
            "execute_to_first_event_p50_ms": statistics.median(idle),
            "execute_to_first_event_p95_ms": _percentile(idle, 0.95),
            "execute_to_first_event_during_burst_p50_ms": statistics.median(during),
            "execute_to_first_event_during_burst_p95_ms": _percentile(during, 0.95),
        }
    finally:
        if second is not None:
            second.stop()
        stack.close()
