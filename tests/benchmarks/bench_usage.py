"""Usage and budgets (issue #20).

* budget_check_overhead_p50_ms: what the budget costs a model call: the reservation of its worst case
  against the instance's, the client's and the person's budgets (one statement) and its settlement to
  the real cost (one statement), timed around `reserve` + `settle` for 500 calls of one run in a fresh
  instance, after a warm-up, in the instance's context as a worker has it.
* usage_page_queries_N: SQL statements of the instance's usage page (the admin, an instance admin) with
  N runs counted in the rollup; constant in N (it reads the rollup, never the runs).
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from . import fresh_instance

SCHEMA = "bench_usage"
HOST = "bench-usage.localhost"


def _budget_check(provisioned) -> dict[str, float]:
    from agents.models import AgentRun
    from tuning.services import client_create
    from usage.budgets import covers_for, reserve, settle
    from usage.models import Budget, BudgetScope

    client = client_create(name="Bench Client", vertical="beauty", region="GCC")
    Budget.objects.create(scope=BudgetScope.CLIENT, client=client, monthly_limit_usd=Decimal("100000"))
    Budget.objects.create(scope=BudgetScope.USER, user=provisioned.admin, monthly_limit_usd=Decimal("100000"))
    run = AgentRun.objects.create(agent_type="copy", agent_version="2.3.1", client=client,
                                  created_by=provisioned.admin, task="bench")
    covers = covers_for(client_id=client.pk, user_id=provisioned.admin.pk)
    assert len(covers) == 3
    samples = []
    for n in range(600):
        started = time.perf_counter()
        reserve(run_id=run.pk, client_id=client.pk, user_id=provisioned.admin.pk, amount=Decimal("0.043"))
        settle(run_id=run.pk, actual_usd=Decimal("0.009"))
        if n >= 100:
            samples.append((time.perf_counter() - started) * 1000)
    return {"budget_check_overhead_p50_ms": statistics.median(samples),
            "budget_check_overhead_p95_ms": sorted(samples)[int(len(samples) * 0.95)]}


def _page_queries(provisioned) -> dict[str, int]:
    """The usage page's statements with 10 and then 1,000 runs' worth of rollup rows."""
    from django.test import Client as HttpClient
    from django.test.utils import CaptureQueriesContext
    from django.urls import NoReverseMatch, reverse

    from tuning.models import Client
    from usage.models import UsageDaily

    try:
        url = reverse("instance_admin:usage_usagedaily_changelist")
    except NoReverseMatch:
        return {}
    http = HttpClient(HTTP_HOST=HOST)
    http.force_login(provisioned.admin)
    clients = list(Client.objects.all())
    out = {}
    import datetime

    for total in (10, 1000):
        UsageDaily.objects.all().delete()
        UsageDaily.objects.bulk_create([UsageDaily(
            day=datetime.date(2026, 11, 1) + datetime.timedelta(days=n % 30), agent_type=("copy", "brief")[n % 2],
            client=clients[n % len(clients)], model=f"m{n}", runs_succeeded=1, turns=2, cost_usd=Decimal("0.01"))
            for n in range(total)])
        with CaptureQueriesContext(connection) as queries:
            assert http.get(f"{url}?from=2026-11-01&to=2026-11-30").status_code == 200
        out[f"usage_page_queries_{total}"] = len(queries)
    return out


def run() -> dict[str, float | int]:
    provisioned = fresh_instance(schema=SCHEMA, host=HOST, name="Bench usage")
    results: dict[str, float | int] = {}
    with tenant_context(provisioned.instance):  # as in a worker: the instance's row is at hand
        results.update(_budget_check(provisioned))
    with schema_context(SCHEMA):
        results.update(_page_queries(provisioned))
    return results
