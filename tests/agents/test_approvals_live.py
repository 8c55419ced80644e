# ruff: noqa: F811 - the live stack fixture is imported by name
"""Approval gates through the real parts: a Celery worker subprocess, daphne, PostgreSQL.

* 20 threads approve and reject one request at once over HTTP: exactly one decision, 19 × 409,
  and the run resumes once and completes through the worker.
* Paused runs hold no worker slot: 50 runs wait for approval (the worker has 16 threads), a new
  run still starts and finishes at once; an approved one then completes through the worker.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.approvals import approval_decide
from agents.models import AgentRun, ApprovalRequest, RunStatus, ToolCall
from agents.services import run_create
from tuning.services import instance_tuning_update

from ..skills.conftest import text_turn, tool_turn
from .test_runtime_live import api_call, stack  # noqa: F401 - the live stack fixture

pytestmark = pytest.mark.live

DRAFT = {"content": "Glow gently this Ramadan."}


def wait_for(schema, run_ids, statuses, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with schema_context(schema):
            done = AgentRun.objects.filter(pk__in=run_ids, status__in=statuses).count()
        if done == len(run_ids):
            return
        time.sleep(0.1)
    with schema_context(schema):
        states = list(AgentRun.objects.filter(pk__in=run_ids).values_list("status", "error"))
    raise AssertionError(f"runs did not reach {statuses} in {timeout} s: {states[:5]}")


def start_gated_run(stack, marker):
    stack["model"].script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", "save_draft", DRAFT)),
                                   text_turn("Saved the draft.")])
    schema = stack["instance"].schema_name
    with schema_context(schema):
        return run_create(actor=None, agent_type="copy", task=f"{marker}: write and save a caption.",
                          client_id=stack["client"].pk, sandbox=True).run.pk


@pytest.fixture
def gated_stack(stack, live_db):  # noqa: F811
    with schema_context(stack["instance"].schema_name):
        instance_tuning_update(actor=None, changes={"require_approval_for": ["save_draft"]}, reason="legal review")
    connection.set_schema_to_public()
    return stack


def test_twenty_racing_decisions_one_wins_the_run_resumes_once(gated_stack):
    stack, schema = gated_stack, gated_stack["instance"].schema_name
    run_id = start_gated_run(stack, f"race-{uuid.uuid4().hex[:8]}")
    wait_for(schema, [run_id], [RunStatus.AWAITING_APPROVAL])
    with schema_context(schema):
        approval_id = ApprovalRequest.objects.get(run_id=run_id).pk
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def decide(i: int) -> None:
        action = "approve" if i % 2 == 0 else "reject"
        barrier.wait()
        status, _ = api_call(stack, "POST", f"/api/v1/approvals/{approval_id}/{action}", {"note": f"thread {i}"})
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200] + [409] * 19
    wait_for(schema, [run_id], [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
    with schema_context(schema):
        run = AgentRun.objects.get(pk=run_id)
        approval = ApprovalRequest.objects.get(pk=approval_id)
        types = list(run.events.values_list("type", flat=True))
        call = ToolCall.objects.get(run=run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert types.count("run.approval_resumed") == 1 and types.count("approval.decided") == 1
    assert types.count("run.resumed") == 1
    assert call.attempts == (1 if approval.status == "approved" else 0)


def test_paused_runs_hold_no_worker_slot(gated_stack):
    stack, schema = gated_stack, gated_stack["instance"].schema_name
    paused = [start_gated_run(stack, f"pause-{n}-{uuid.uuid4().hex[:8]}") for n in range(50)]
    wait_for(schema, paused, [RunStatus.AWAITING_APPROVAL], timeout=120)

    marker = f"fresh-{uuid.uuid4().hex[:8]}"
    stack["model"].script(marker, [text_turn("Caption: Glow gently.")])
    started = time.monotonic()
    with schema_context(schema):
        fresh = run_create(actor=None, agent_type="copy", task=f"{marker}: a caption.", client_id=stack["client"].pk,
                           sandbox=True).run.pk
    wait_for(schema, [fresh], [RunStatus.SUCCEEDED], timeout=15)
    elapsed = time.monotonic() - started
    print(f"\nnew run with 50 runs paused for approval (16 worker threads): finished in {elapsed:.2f} s")
    assert elapsed < 10

    with schema_context(schema):
        approval = ApprovalRequest.objects.get(run_id=paused[0])
        approval_decide(actor=None, approval_id=approval.pk, approve=True, note="fine")
    wait_for(schema, [paused[0]], [RunStatus.SUCCEEDED], timeout=30)
    with schema_context(schema):
        assert ToolCall.objects.get(run_id=paused[0]).attempts == 1
        assert AgentRun.objects.filter(pk__in=paused[1:], status=RunStatus.AWAITING_APPROVAL).count() == 49
