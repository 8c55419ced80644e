# ruff: noqa: F811 - the live stack fixtures are imported by name
"""Issue #20: a budget holds under concurrency, through the real parts (a Celery worker with 64 run
slots, daphne, PostgreSQL, the real SDK against the fake Messages API): 50 runs of one client
started at once against a budget that covers exactly 10 of their model calls → exactly 10 calls
reach the model, every other run ends with the budget's reason, and the ledger is exact."""

from __future__ import annotations

import json
import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.loop import RunLoop, _task_message
from agents.models import AgentRun
from agents.registry import get_spec
from agents.services import run_version_for
from usage.budgets import this_month, worst_case_usd
from usage.models import Budget, BudgetPeriod, BudgetScope

from ..agents.test_faults_live import api_call, faulty, stack  # noqa: F401
from ..conftest import wait_for

pytestmark = pytest.mark.live


def test_fifty_runs_against_a_budget_for_ten_calls_make_exactly_ten(stack):
    schema, client = stack["instance"].schema_name, stack["client"]
    markers = [f"[b50-{i:02d}-{uuid.uuid4().hex[:8]}]" for i in range(50)]
    task = "Write one caption {marker}"
    with schema_context(schema):
        version = run_version_for("copy")
        spec = get_spec("copy", version)
        # The request every one of these runs sends first (same length markers), as the loop sizes it.
        probe = AgentRun(agent_type="copy", agent_version=version, client=client, task=task.format(marker=markers[0]))
        loop = RunLoop(probe, spec, "calibrate")
        chars = loop._prefix_chars() + len(json.dumps([_task_message(probe)], ensure_ascii=False, default=str))
        worst = worst_case_usd(model=spec.model, request_chars=chars, max_tokens=loop.prompt.max_tokens)
        limit = Decimal(math.ceil(worst * 10 * 100)) / 100  # cents: ten calls fit, an eleventh never does
        assert limit < worst * 11
        budget, _ = Budget.objects.update_or_create(scope=BudgetScope.CLIENT, client=client,
                                                    defaults={"monthly_limit_usd": limit})
    connection.set_schema_to_public()
    for marker in markers:  # every call that is made answers after 5 s: all 50 hold or are refused before
        stack["model"].script(marker, [{"content": [{"type": "text", "text": "Glow gently."}],
                                        "stop_reason": "end_turn", "delay_s": 5.0}], by_position=True)

    def start(marker):
        status, body, _ = api_call(stack, "POST", "/api/v1/agent/execute", {
            "agent_type": "copy", "task": task.format(marker=marker), "client_id": client.pk})
        assert status == 202, body
        return body["run_id"]

    with ThreadPoolExecutor(max_workers=25) as pool:
        run_ids = list(pool.map(start, markers))

    def ended():
        with schema_context(schema):
            return AgentRun.objects.filter(pk__in=run_ids, status__in=["succeeded", "failed"]).count() == 50

    wait_for(ended, timeout=90)
    with schema_context(schema):
        runs = list(AgentRun.objects.filter(pk__in=run_ids))
        ledger = BudgetPeriod.objects.get(budget=budget, month=this_month())
    succeeded = [r for r in runs if r.status == "succeeded"]
    refused = [r for r in runs if r.status == "failed"]
    asked = sum(len(stack["model"].requests(marker)) for marker in markers)
    assert (len(succeeded), len(refused), asked) == (10, 40, 10)
    assert all("would cross the monthly budget of Desert Bloom Cosmetics" in r.error for r in refused)
    assert ledger.spent_usd == sum((r.cost_usd for r in succeeded), Decimal(0))
    assert ledger.reserved_usd == 0 and all(r.budget_hold is None for r in runs)


def test_holds_settlements_and_lease_heartbeats_never_deadlock(stack):
    """Budget holds and settlements of many runs against one instance ledger, while a heartbeat
    renews all their leases in a changing order (as the watcher does, in one statement): the
    database never has to break a deadlock (it once did, failing a run, under 200 concurrent runs)."""
    import random
    import threading

    import psycopg

    from agents.services import run_leases_renew
    from usage.budgets import reserve, settle

    schema, client = stack["instance"].schema_name, stack["client"]
    with schema_context(schema):
        runs = [AgentRun.objects.create(agent_type="copy", agent_version=run_version_for("copy"), client=client,
                                        task="deadlock probe", status="running", lease_owner=f"probe-{n}",
                                        lease_until=timezone.now() + timedelta(hours=1))
                for n in range(12)]
    connection.set_schema_to_public()
    owners = {str(run.pk): run.lease_owner for run in runs}
    errors: list[BaseException] = []
    done = threading.Event()

    def calls(run):
        try:
            with schema_context(schema):
                for _ in range(40):
                    reserve(run_id=run.pk, client_id=client.pk, user_id=None, amount=Decimal("0.01"))
                    settle(run_id=run.pk, actual_usd=Decimal("0.001"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def heartbeat():
        try:
            with schema_context(schema):
                connection.ensure_connection()
                with psycopg.Cursor(connection.connection) as cursor:
                    while not done.is_set():
                        order = list(owners.items())
                        random.shuffle(order)
                        run_leases_renew(schema=schema, owners=dict(order), cursor=cursor)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    beats = [threading.Thread(target=heartbeat) for _ in range(2)]
    for beat in beats:
        beat.start()
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        list(pool.map(calls, runs))
    done.set()
    for beat in beats:
        beat.join()
    with schema_context(schema):
        held = AgentRun.objects.filter(pk__in=owners, budget_hold__isnull=False).count()
        AgentRun.objects.filter(pk__in=owners).update(status="cancelled", lease_owner="", lease_until=None)
    assert errors == [] and held == 0
