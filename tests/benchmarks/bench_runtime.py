"""The agent runtime, measured through the real parts: daphne, one Celery worker process
(threads pool, DB pool), Redis, PostgreSQL, the real anthropic SDK against a local fake
Messages API, and the sample ERP.

* step_overhead_*: platform time per loop step (model turn + tool call + persistence + events)
  with a zero-latency model, for runs started over the API.
* concurrent_runs_efficiency: 200 runs at once, 2 s per model turn, 3 turns per run, one
  worker process: ideal makespan (6 s) / measured makespan, in a worker that has run such a
  burst before (the first burst is reported as _cold); pg_connections_max and the worker's CPU
  per run alongside. concurrent_sdk_only_efficiency is the same burst's model calls alone, in a
  process of their own with nothing of the platform around them (sdk_only.py): the ceiling on
  this machine; concurrent_runs_efficiency_vs_sdk_only is the platform's share of it.
* stream_latency_*: an event persisted by the worker → received by a websocket client.
* prompt_prefix_stable: two runs of one agent × client with different tasks send
  byte-identical tools + system blocks (1.0) or not (0.0).
* delegation_overhead_*: platform time for a parent run to start a child run and take its result
  back, zero-latency model: _start (the parent's delegation call to the child's claim) plus _resume
  (the child's end to the parent's next turn). The child's own run in between (_child, its model
  time subtracted) costs what the same run started on its own costs (plain_run_overhead);
  delegation_total_platform is all three.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import threading
import time
import uuid
from datetime import datetime

from django.db import connection
from django_tenants.utils import schema_context

CONCURRENT_RUNS = 200
TURN_LATENCY_S = 2.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Stack:
    def __init__(self, name: str = "runtime", concurrency: int = CONCURRENT_RUNS + 8) -> None:
        from django.conf import settings

        from spokestack.accounts.services import api_token_create
        from spokestack.sample_erp import DEMO_API_KEYS, start_sample_erp
        from spokestack.tenancy.services import instance_provision, instance_set_erp
        from tests.fakes.messages_api import FakeMessagesApi
        from tests.processes import WorkerProcess, process_env, start_daphne
        from tuning.services import client_create

        self.erp, erp_url = start_sample_erp(port=0)
        # The development loopback allowance, for the sample ERP's port only (production refuses it).
        settings.EGRESS_ALLOW_LOOPBACK = True
        settings.EGRESS_LOOPBACK_PORTS = [self.erp.server_port]
        self.model = FakeMessagesApi()
        self.model.start()
        provisioned = instance_provision(name=f"Bench {name}", domain=f"bench-{name}.localhost",
                                         admin_email="admin@bench.example", schema_name=f"bench_{name}",
                                         tier="enterprise")
        self.instance = provisioned.instance
        instance_set_erp(instance=self.instance, base_url=erp_url, api_key=DEMO_API_KEYS["alpha"])
        with schema_context(self.instance.schema_name):
            self.client = client_create(name="Desert Bloom Cosmetics", vertical="beauty", region="GCC")
            self.token = api_token_create(user=provisioned.admin, name="bench").raw
            self.admin = provisioned.admin
        connection.close()
        env = {**process_env(), "ANTHROPIC_API_KEY": "sk-ant-bench-not-a-real-key", "ANTHROPIC_BASE_URL": self.model.base_url,
               "EGRESS_ALLOW_LOOPBACK": "1", "EGRESS_LOOPBACK_PORTS": str(self.erp.server_port),
               "DATABASE_POOL_MAX_SIZE": "20",
               # The benchmarks execute far beyond an API client's limits on purpose.
               "API_EXECUTE_RATE_PER_USER": "", "API_EXECUTE_RATE_PER_ADDRESS": ""}
        self.env = env
        self.worker = WorkerProcess(env, f"bench-{name}", concurrency=concurrency).start()
        self.daphne, self.port = start_daphne(env, f"bench-{name}")
        self.host = f"bench-{name}.localhost"

    def close(self) -> None:
        from tests.processes import stop_process

        self.worker.stop()
        stop_process(self.daphne)
        self.model.stop()
        self.erp.stop()

    def execute(self, task: str, agent_type: str = "copy") -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("POST", "/api/v1/agent/execute",
                     body=json.dumps({"agent_type": agent_type, "task": task, "client_id": self.client.pk}),
                     headers={"Host": f"{self.host}:{self.port}", "Authorization": f"Bearer {self.token}",
                              "Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        assert response.status == 202, body
        return body["run_id"]

    def wait_finished(self, run_ids: list[str], timeout: float = 300) -> None:
        from agents.models import TERMINAL_STATUSES, AgentRun

        deadline = time.monotonic() + timeout
        with schema_context(self.instance.schema_name):
            while time.monotonic() < deadline:
                if AgentRun.objects.filter(pk__in=run_ids, status__in=TERMINAL_STATUSES).count() == len(run_ids):
                    failed = AgentRun.objects.filter(pk__in=run_ids).exclude(status="succeeded")
                    assert not failed.exists(), list(failed.values_list("status", "error"))
                    return
                time.sleep(0.05)
        raise TimeoutError("runs did not finish")

    def script_tool_turns(self, marker: str, tool_turns: int, delay: float = 0.0) -> None:
        turns = [{"content": [{"type": "tool_use", "id": f"toolu_{n}", "name": "check_brand_rules",
                               "input": {"text": f"Glow gently, take {n}."}}], "stop_reason": "tool_use",
                  "delay_s": delay} for n in range(tool_turns)]
        turns.append({"content": [{"type": "text", "text": "Done: Glow gently."}], "stop_reason": "end_turn",
                      "delay_s": delay})
        self.model.script(marker, turns)


def step_overhead(stack: Stack) -> dict[str, float]:
    """A step is one model turn and its tool call, from one turn.started to the next. The fake
    model's own time answering the turn's request (measured in its server) is the model's, not
    the platform's: step_overhead is the step minus that; step_wall keeps it in."""
    from agents.models import RunEvent

    step_ms: list[float] = []
    wall_ms: list[float] = []
    answer_ms: list[float] = []
    for n in range(25):
        marker = f"[step-{n}-{uuid.uuid4().hex[:6]}]"
        stack.script_tool_turns(marker, tool_turns=4)
        run_id = stack.execute(f"Check four headlines {marker}")
        stack.wait_finished([run_id])
        with schema_context(stack.instance.schema_name):
            starts = list(RunEvent.objects.filter(run_id=run_id, type="turn.started").order_by("seq")
                          .values_list("created_at", flat=True))
        answers = stack.model.answer_ms(marker)
        for turn, (a, b) in enumerate(zip(starts, starts[1:], strict=False)):
            wall = (b - a).total_seconds() * 1000
            wall_ms.append(wall)
            answer_ms.append(answers[turn])
            step_ms.append(wall - answers[turn])
    return {"step_overhead_p50_ms": statistics.median(step_ms), "step_overhead_p99_ms": _percentile(step_ms, 0.99),
            "step_wall_p50_ms": statistics.median(wall_ms), "step_wall_p99_ms": _percentile(wall_ms, 0.99),
            "model_answer_p50_ms": statistics.median(answer_ms), "step_overhead_samples": len(step_ms)}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _burst(stack: Stack) -> tuple[float, float, list[str]]:
    """CONCURRENT_RUNS runs created in one transaction (queued together at its commit):
    (makespan s, worker CPU ms per run, run ids)."""
    from django.db import transaction

    from agents.services import run_create

    markers = [f"[conc-{n}-{uuid.uuid4().hex[:6]}]" for n in range(CONCURRENT_RUNS)]
    for marker in markers:
        stack.script_tool_turns(marker, tool_turns=2, delay=TURN_LATENCY_S)
    with schema_context(stack.instance.schema_name):
        with transaction.atomic():
            run_ids = [str(run_create(actor=stack.admin, agent_type="copy", task=f"Headline {m}",
                                      client_id=stack.client.pk).run.pk) for m in markers]
        started = time.monotonic()
        cpu_before = _cpu_seconds(stack.worker.process.pid)
    stack.wait_finished(run_ids, timeout=600)
    makespan = time.monotonic() - started
    return makespan, (_cpu_seconds(stack.worker.process.pid) - cpu_before) * 1000 / CONCURRENT_RUNS, run_ids


def _sdk_only(stack: Stack) -> tuple[float, float]:
    """(makespan s, CPU ms per run) of the burst's model calls alone, with the request the
    platform sends (sdk_only.py), in a process that has made such a burst before."""
    import subprocess
    import sys
    import tempfile

    from tests.processes import ROOT

    marker = f"[sdk-template-{uuid.uuid4().hex[:6]}]"
    stack.script_tool_turns(marker, tool_turns=0)
    stack.wait_finished([stack.execute(f"Headline {marker}")])
    request = stack.model.requests(marker)[0]
    rounds = [[f"[sdk-{r}-{n}-{uuid.uuid4().hex[:6]}]" for n in range(CONCURRENT_RUNS)] for r in range(2)]
    for marker in (m for markers in rounds for m in markers):
        stack.script_tool_turns(marker, tool_turns=2, delay=TURN_LATENCY_S)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec:
        json.dump({"template": {k: request[k] for k in ("model", "max_tokens", "system", "tools")},
                   "rounds": rounds}, spec)
        spec.flush()
        done = subprocess.run([sys.executable, "-m", "tests.benchmarks.sdk_only", spec.name], env=stack.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"sdk_only failed: {done.stderr[-2000:]}")
    warm = json.loads(done.stdout.strip().splitlines()[-1])
    return warm["makespan_s"], warm["cpu_ms_per_run"]


def concurrency(stack: Stack) -> dict[str, float]:
    """Two bursts of CONCURRENT_RUNS runs: the first meets a worker that has not had that many
    runs yet (it starts its threads, HTTP and database connections: reported as _cold), the
    second one a worker in its steady state, as in production (the figure)."""
    from agents.models import AgentRun

    stop = threading.Event()
    peak = [0]

    def watch() -> None:
        import psycopg
        from django.conf import settings

        db = settings.DATABASES["default"]
        with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"],
                             autocommit=True) as conn:
            while not stop.is_set():
                count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                                     "pg_backend_pid()", [db["NAME"]]).fetchone()[0]
                peak[0] = max(peak[0], count)
                time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cold_makespan, cold_cpu_ms, _ = _burst(stack)
    makespan, cpu_ms, run_ids = _burst(stack)
    stop.set()
    watcher.join()
    with schema_context(stack.instance.schema_name):
        turns = AgentRun.objects.filter(pk__in=run_ids).values_list("iterations", flat=True)
        assert set(turns) == {3}, set(turns)
    connection.close()
    sdk_makespan, sdk_cpu_ms = _sdk_only(stack)
    ideal = 3 * TURN_LATENCY_S
    return {"concurrent_runs": CONCURRENT_RUNS, "concurrent_runs_makespan_s": makespan,
            "concurrent_runs_ideal_makespan_s": ideal, "concurrent_runs_efficiency": ideal / makespan,
            "concurrent_runs_efficiency_cold": ideal / cold_makespan, "pg_connections_max": peak[0],
            "worker_cpu_ms_per_run": cpu_ms, "worker_cpu_ms_per_run_cold": cold_cpu_ms,
            "concurrent_sdk_only_efficiency": ideal / sdk_makespan, "sdk_only_cpu_ms_per_run": sdk_cpu_ms,
            "concurrent_runs_efficiency_vs_sdk_only": sdk_makespan / makespan}


def stream_latency(stack: Stack) -> dict[str, float]:
    import websockets

    latencies: list[float] = []

    async def follow(run_id: str) -> None:
        uri = f"ws://{stack.host}:{stack.port}/ws/runs/{run_id}/"
        async with websockets.connect(uri, host="127.0.0.1", port=stack.port,
                                      additional_headers={"Authorization": f"Bearer {stack.token}"}) as ws:
            async for message in ws:
                received = time.time()
                event = json.loads(message)
                if event["type"] in ("run.queued", "run.started"):
                    continue  # written before the socket joined: replayed, not live
                created = datetime.fromisoformat(event["created_at"]).timestamp()
                latencies.append((received - created) * 1000)

    for n in range(15):
        marker = f"[stream-{n}-{uuid.uuid4().hex[:6]}]"
        stack.script_tool_turns(marker, tool_turns=3, delay=0.3)
        run_id = stack.execute(f"Stream it {marker}")

        async def scenario(run_id=run_id):
            await follow(run_id)

        asyncio.run(scenario())
    return {"stream_latency_p50_ms": statistics.median(latencies), "stream_latency_p95_ms": _percentile(latencies, 0.95),
            "stream_latency_samples": len(latencies)}


def prefix_stable(stack: Stack) -> dict[str, float]:
    prefixes = []
    for task in ("Write an Instagram caption", "Write an email subject line about the new serum"):
        marker = f"[prefix-{uuid.uuid4().hex[:6]}]"
        stack.script_tool_turns(marker, tool_turns=0)
        stack.wait_finished([stack.execute(f"{task} {marker}")])
        request = stack.model.requests(marker)[0]
        prefixes.append(json.dumps({"tools": request["tools"], "system": request["system"]}, sort_keys=True).encode())
    return {"prompt_prefix_stable": 1.0 if prefixes[0] == prefixes[1] else 0.0}


def delegation_overhead(stack: Stack) -> dict[str, float]:
    """A proposal run delegates one task to the content agent and reads its answer: from the parent's
    turn that asked (turn.finished) to its next turn (turn.started), minus the child's model time
    (zero-latency model). What is left is the platform's: the delegation call recorded and the child
    created and queued, the parent parked, the child claimed, assembled, run and finished, the parent
    settled, queued, claimed again and resumed."""
    from agents.models import AgentRun, RunEvent

    overhead_ms: list[float] = []
    total_ms: list[float] = []
    phases: dict[str, list[float]] = {"start": [], "child": [], "resume": []}
    plain_ms: list[float] = []
    for n in range(20):
        parent, child = f"[deleg-{n}-{uuid.uuid4().hex[:6]}]", f"[child-{n}-{uuid.uuid4().hex[:6]}]"
        stack.model.script(parent, [
            {"content": [{"type": "tool_use", "id": "toolu_d1", "name": "delegate_to_content",
                          "input": {"task": f"Write the cover letter {child}"}}], "stop_reason": "tool_use"},
            {"content": [{"type": "text", "text": "Proposal assembled."}], "stop_reason": "end_turn"}])
        stack.model.script(child, [{"content": [{"type": "text", "text": "Dear Najd Dates team, ..."}],
                                    "stop_reason": "end_turn"}])
        run_id = stack.execute(f"Answer the Najd Dates RFP {parent}", agent_type="proposal")
        stack.wait_finished([run_id])
        with schema_context(stack.instance.schema_name):
            child_id = AgentRun.objects.get(parent_id=run_id, status="succeeded").pk
            at = {(e.run_id == child_id, e.type, e.payload.get("iteration")): e.created_at
                  for e in RunEvent.objects.filter(run_id__in=[run_id, child_id]).exclude(type="child.event")}
        model_ms = sum(stack.model.answer_ms(child))
        asked, resumed = at[(False, "turn.finished", 1)], at[(False, "turn.started", 2)]
        start = (at[(True, "run.started", None)] - asked).total_seconds() * 1000
        resume = (resumed - at[(True, "run.succeeded", None)]).total_seconds() * 1000
        overhead_ms.append(start + resume)
        total_ms.append((resumed - asked).total_seconds() * 1000 - model_ms)
        phases["start"].append(start)
        phases["child"].append((at[(True, "run.succeeded", None)] - at[(True, "run.started", None)]).total_seconds()
                               * 1000 - model_ms)
        phases["resume"].append(resume)
        # The same one-turn content run started on its own: what any run of it costs the platform.
        plain = f"[plain-{n}-{uuid.uuid4().hex[:6]}]"
        stack.model.script(plain, [{"content": [{"type": "text", "text": "Dear Najd Dates team, ..."}],
                                    "stop_reason": "end_turn"}])
        plain_id = stack.execute(f"Write the cover letter {plain}", agent_type="content")
        stack.wait_finished([plain_id])
        with schema_context(stack.instance.schema_name):
            own = {e.type: e.created_at for e in RunEvent.objects.filter(run_id=plain_id,
                                                                         type__in=("run.started", "run.succeeded"))}
        plain_ms.append((own["run.succeeded"] - own["run.started"]).total_seconds() * 1000
                        - sum(stack.model.answer_ms(plain)))
    return {"delegation_overhead_p50_ms": statistics.median(overhead_ms),
            "delegation_overhead_p95_ms": _percentile(overhead_ms, 0.95),
            "delegation_total_platform_p50_ms": statistics.median(total_ms),
            # where it goes: the call to the child's claim; the child's own run; its end to the parent's next turn
            **{f"delegation_{name}_p50_ms": statistics.median(values) for name, values in phases.items()},
            "plain_run_overhead_p50_ms": statistics.median(plain_ms)}


def cpu_at_rest(stack: Stack) -> dict[str, float]:
    """The worker's CPU per run with the machine otherwise quiet: the burst's runs (three turns, two
    tool calls), zero-latency model, ten at a time, 100 in all, after 20 that warm the worker up.
    Far less noisy than the burst's figure (no 200 threads contending for the GIL): the one to
    compare two versions of the platform with, A/B."""
    from django.db import transaction

    from agents.services import run_create

    def batch(n: int) -> list[str]:
        markers = [f"[rest-{uuid.uuid4().hex[:8]}]" for _ in range(n)]
        for marker in markers:
            stack.script_tool_turns(marker, tool_turns=2)
        with schema_context(stack.instance.schema_name), transaction.atomic():
            run_ids = [str(run_create(actor=stack.admin, agent_type="copy", task=f"Headline {m}",
                                      client_id=stack.client.pk).run.pk) for m in markers]
        stack.wait_finished(run_ids)
        return run_ids

    for _ in range(2):
        batch(10)
    cpu = _cpu_seconds(stack.worker.process.pid)
    for _ in range(10):
        batch(10)
    return {"worker_cpu_ms_per_run_at_rest": (_cpu_seconds(stack.worker.process.pid) - cpu) * 1000 / 100}


def writes_only(stack: Stack) -> dict[str, float]:
    """The CPU a run's statements cost the process that sends them, with nothing else around them:
    the burst's run (3 turns, 2 tool calls) replayed as its 8 writes — claim; per turn the hold and
    start, then the answer with its settlement (and the calls it starts); the finish with the
    output's check and artifact, its count and event — through the same services, from this process,
    one run after another. Set against `sdk_only_cpu_ms_per_run`: the floor of what persisting a
    run step by step costs a worker's Python, whatever else is made faster."""
    import time
    from decimal import Decimal

    from agents.models import AgentRun, Artifact
    from agents.services import (
        FinishedCall,
        HoldRefused,
        RunCheck,
        StartedCall,
        new_claim_token,
        run_claim,
        run_finish,
        run_write,
    )
    from agents.watcher import watcher as run_watcher
    from usage.budgets import reserve

    text = "Glow gently this Ramadan, with the light of the evening and the scent of oud. " * 6

    def queued(n: int) -> list[AgentRun]:  # created as the web side does, outside the measurement
        return [AgentRun.objects.create(agent_type="copy", agent_version="1.0.0", task=f"Headline {text[:40]}",
                                        client=stack.client, created_by=stack.admin) for _ in range(n)]

    def one_run(row: AgentRun) -> None:
        token = new_claim_token("bench")
        run = run_claim(run_id=row.pk, worker=token)
        run_watcher.watch(run.pk, stack.instance.schema_name, owner=token)  # as the worker: nobody watches it
        messages = [{"role": "user", "content": [{"type": "text", "text": text}]}]
        done: list[FinishedCall] = []
        for turn in range(3):
            started = [("turn.started", {"iteration": turn + 1})]
            try:
                run_write(run=run, worker=token, events=started, messages=messages if turn == 0 else None,
                          finish_calls=done, hold_usd=Decimal("0.05"))
            except HoldRefused:
                reserve(run_id=run.pk, client_id=run.client_id, user_id=run.created_by_id, amount=Decimal("0.05"))
                run_write(run=run, worker=token, events=started, finish_calls=done)
            calls = [StartedCall(tool_use_id=f"toolu_{turn}", name="check_brand_rules", input={"text": text[:80]},
                                 side_effect=False)] if turn < 2 else []
            messages = [*messages, {"role": "assistant", "content": [{"type": "text", "text": text}]}]
            usage = {"input_tokens": 1200, "output_tokens": 90, "cache_read_input_tokens": 1000}
            ids = run_write(run=run, worker=token, messages=messages, usage=usage, cost_usd=0.004,
                            model="claude-sonnet-5-5", iterations_delta=1, tool_calls_delta=len(calls),
                            start_calls=calls, settle_usd=Decimal("0.004"),
                            events=[("text.delta", {"text": text}), ("turn.finished", {"iteration": turn + 1,
                                                                                       "usage": usage})])
            done = [FinishedCall(id=ids[c.tool_use_id], result={"ok": True, "issues": []}, is_error=False,
                                 duration_ms=0.4) for c in calls]
        check = RunCheck(checks={"brand": "ok"}, review_status="", review_reason="")
        run_finish(run=run, status="succeeded", output=text, events=[check.event()], check=check,
                   artifacts=[Artifact(run=run, kind="output", title="copy output", content=text)])
        run_watcher.forget(run.pk)

    from django_tenants.utils import tenant_context

    with tenant_context(stack.instance):  # the instance itself, as a worker's task has it (its tier: no read)
        for row in queued(10):
            one_run(row)
        rows = queued(100)
        cpu = time.process_time()
        for row in rows:
            one_run(row)
        return {"writes_only_cpu_ms_per_run": (time.process_time() - cpu) * 1000 / 100}


def celery_task(stack: Stack) -> dict[str, float]:
    """The worker's CPU for the least an instance task does: Celery's handling of one task (the
    broker's delivery and ack, the tracer, the instance's schema set from the task's headers) around
    a single Redis write (`spokestack.worker_probe`, the readiness probe). 1,000 tasks queued at once
    after 100 that warm the worker up. What every run pays for being a Celery task, before its loop
    does anything: with `writes_only_cpu_ms_per_run`, a floor under `worker_cpu_ms_per_run`."""
    from django.core.cache import cache

    from spokestack.tasks import worker_probe, worker_probe_key

    def wave(n: int) -> None:
        ids = [uuid.uuid4().hex for _ in range(n)]
        with schema_context(stack.instance.schema_name):
            for probe_id in ids:
                worker_probe.apply_async(kwargs={"probe_id": probe_id})
            keys = [worker_probe_key(probe_id) for probe_id in ids]
            deadline = time.monotonic() + 120
            while len(cache.get_many(keys)) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the worker answered {len(cache.get_many(keys))} of {n} probes in 120 s")
                time.sleep(0.1)

    wave(100)
    cpu = _cpu_seconds(stack.worker.process.pid)
    wave(1000)
    return {"celery_task_cpu_ms": (_cpu_seconds(stack.worker.process.pid) - cpu) * 1000 / 1000}


PHASES = {"prefix": prefix_stable, "step": step_overhead, "stream": stream_latency, "concurrency": concurrency,
          "delegation": delegation_overhead, "rest": cpu_at_rest, "writes": writes_only, "celery": celery_task}


def run() -> dict[str, float]:
    """All phases, or those named in BENCH_PHASES (comma-separated: prefix, step, stream, concurrency,
    delegation, rest, writes, celery)."""
    import os

    wanted = [p.strip() for p in os.environ.get("BENCH_PHASES", ",".join(PHASES)).split(",") if p.strip()]
    stack = Stack()
    try:
        results: dict[str, float] = {}
        for phase in wanted:
            results.update(PHASES[phase](stack))
        return results
    finally:
        stack.close()
