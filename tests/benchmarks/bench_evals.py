"""Evals (issue 22) through the real parts: a Celery worker process, Redis, PostgreSQL, the real
anthropic SDK against the fake Messages API answering each turn after 1 s.

* eval_run_50_cases_s: an eval run of 50 cases (each a save_draft turn and an answer: 2 model
  turns, 2 s of model time), from the EvalRun's creation to its summary written. The cases run
  concurrently as sandbox runs, so the goal (≤ 10) is about the cases' 2 s plus the platform.
* plain_burst_50_s: the same 50 tasks as plain sandbox runs created in one transaction (what an
  eval run's first pass does), from the commit to the last run finished; measured in the same run
  of the bench, alternating with the eval run.
* eval_overhead_per_case_ms: (eval run − plain burst) / 50 per round, median of the rounds: what
  judging the cases and the task's passes add per case.
* eval_verdict_lag_p50_ms: from a case's run finishing to its verdict recorded (the task polls
  every ADVANCE_EVERY_S), median over every case.
"""

from __future__ import annotations

import statistics
import time
import uuid

from django.db import transaction
from django_tenants.utils import schema_context

from .bench_runtime import Stack

CASES = 50
ROUNDS = 3
TURN_S = 1.0


def _script(stack: Stack, marker: str) -> None:
    stack.model.script(marker, [
        {"content": [{"type": "tool_use", "name": "save_draft", "input": {"content": f"Glow gently {marker}"}}],
         "stop_reason": "tool_use", "delay_s": TURN_S},
        {"content": [{"type": "text", "text": f"Saved: Glow gently {marker}."}], "stop_reason": "end_turn",
         "delay_s": TURN_S},
    ], by_position=True)


def _eval_round(stack: Stack, n: int) -> tuple[float, list[float]]:
    from versions.evals.services import eval_case_create, eval_run_start
    from versions.models import EvalCase, EvalResult, EvalRun

    EvalCase.objects.update(enabled=False)
    for i in range(CASES):
        marker = f"[bench-eval-{n}-{i}-{uuid.uuid4().hex[:6]}]"
        _script(stack, marker)
        eval_case_create(actor=None, data={"agent_type": "copy", "task": f"Write and save a caption {marker}",
                                           "client_id": stack.client.pk,
                                           "expectations": {"tools_required": ["save_draft"], "min_chars": 5}})
    eval_run = eval_run_start(actor=stack.admin, agent_type="copy")
    deadline = time.monotonic() + 300
    while True:
        row = EvalRun.objects.get(pk=eval_run.pk)
        if row.status == EvalRun.Status.SUCCEEDED:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the eval run did not finish: {row.cases_done}/{row.cases_total}")
        time.sleep(0.05)
    assert row.cases_passed == CASES, row.summary
    lags = [(r.finished_at - r.run.finished_at).total_seconds() * 1000
            for r in EvalResult.objects.filter(eval_run=row).select_related("run")]
    return (row.finished_at - row.created_at).total_seconds(), lags


def _plain_round(stack: Stack, n: int) -> float:
    from agents.models import TERMINAL_STATUSES, AgentRun
    from agents.services import run_create

    ids = []
    with transaction.atomic():
        for i in range(CASES):
            marker = f"[bench-plain-{n}-{i}-{uuid.uuid4().hex[:6]}]"
            _script(stack, marker)
            ids.append(run_create(actor=stack.admin, agent_type="copy", task=f"Write and save a caption {marker}",
                                  client_id=stack.client.pk, sandbox=True).run.pk)
        started = AgentRun.objects.filter(pk=ids[0]).values_list("created_at", flat=True).get()
    deadline = time.monotonic() + 300
    while AgentRun.objects.filter(pk__in=ids, status__in=TERMINAL_STATUSES).count() < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError("the plain runs did not finish")
        time.sleep(0.05)
    assert not AgentRun.objects.filter(pk__in=ids).exclude(status="succeeded").exists()
    last = max(AgentRun.objects.filter(pk__in=ids).values_list("finished_at", flat=True))
    return (last - started).total_seconds()


def run() -> dict[str, float]:
    stack = Stack(name="evals", concurrency=CASES + 8)
    try:
        evals, plains, lags = [], [], []
        with schema_context(stack.instance.schema_name):
            for n in range(ROUNDS):  # alternating, so the machine's drift falls on both alike
                seconds, lag = _eval_round(stack, n)
                evals.append(seconds)
                lags += lag
                plains.append(_plain_round(stack, n))
        return {
            "eval_run_50_cases_s": statistics.median(evals),
            "eval_run_50_cases_max_s": max(evals),
            "plain_burst_50_s": statistics.median(plains),
            "eval_overhead_per_case_ms": statistics.median((e - p) * 1000 / CASES for e, p in zip(evals, plains,
                                                                                                  strict=True)),
            "eval_verdict_lag_p50_ms": statistics.median(lags),
            "eval_model_turn_s": TURN_S,
        }
    finally:
        stack.close()
