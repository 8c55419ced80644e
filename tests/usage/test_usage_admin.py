# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Issue #20: the instance's Usage page (charts, totals, top runs, filters, CSV) and the platform's
per-instance page, as the people who open them notice them."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client as HttpClient
from django_tenants.utils import schema_context

from agents.loop import execute_run
from agents.services import run_create
from tuning.services import client_create
from usage.models import UsageDaily

from ..conftest import HOST_A, HOST_B
from ..skills.conftest import admin_a, client_a, scripted, text_turn  # noqa: F401

PAGE = "/admin/usage/usagedaily/"


@pytest.fixture
def usage_world(in_a, admin_a, client_a, scripted, runs_stay_here):
    other = client_create(name="Other Foods", vertical="food", region="GCC", language="en")
    runs = {}
    for agent_type, client, marker in (("copy", client_a, "uadm-1"), ("brief", client_a, "uadm-2"),
                                       ("copy", other, "uadm-3")):
        scripted.script(marker, [text_turn(f"{marker} done.")])
        run = run_create(actor=admin_a, agent_type=agent_type, task=f"{marker}: write it.", client_id=client.pk,
                         sandbox=True).run
        assert execute_run(run_id=str(run.pk), worker="w1") == "succeeded"
        runs[marker] = run
    return {"admin": admin_a, "mine": client_a, "other": other, "runs": runs}


def _http(user, host=HOST_A, schema: str | None = None) -> HttpClient:
    http = HttpClient(HTTP_HOST=host, raise_request_exception=False)
    with schema_context(schema or connection.schema_name):
        http.force_login(user)
    return http


def _cost(**filters) -> str:
    return f"${UsageDaily.objects.filter(**filters).aggregate(c=Sum('cost_usd'))['c']:,.4f}"


def test_the_page_shows_charts_totals_and_the_costliest_runs(usage_world):
    answer = _http(usage_world["admin"]).get(PAGE)
    assert answer.status_code == 200
    page = answer.content.decode()
    assert page.count("<svg class=\"usage-chart\"") == 3 and "<rect class=\"segment\"" in page
    assert "Cost by week, per agent" in page and "Cost by week, per client" in page and "Runs by week" in page
    assert "Desert Bloom Cosmetics" in page and "Other Foods" in page  # the client chart's legend
    assert 'id="usage-total-runs">3<' in page
    assert _cost() in page  # the totals row and the figures
    for run in usage_world["runs"].values():  # the top runs link to their pages
        assert f"/admin/agents/agentrun/{run.pk}/change/" in page
    assert "of prompt tokens were read from the cache" in page
    assert "/admin/usage/usagedaily/export.csv?" in page


def test_filtering_by_client_changes_the_totals(usage_world):
    mine = usage_world["mine"]
    page = _http(usage_world["admin"]).get(f"{PAGE}?client_id={mine.pk}").content.decode()
    assert 'id="usage-total-runs">2<' in page and _cost(client=mine) in page
    assert f"/admin/agents/agentrun/{usage_world['runs']['uadm-3'].pk}/change/" not in page
    page = _http(usage_world["admin"]).get(f"{PAGE}?agent_type=brief").content.decode()
    assert 'id="usage-total-runs">1<' in page


def test_a_bad_filter_says_so_and_shows_the_default_window(usage_world):
    answer = _http(usage_world["admin"]).get(f"{PAGE}?from=2026-13-01")
    assert answer.status_code == 200
    assert "from: give a date that exists as YYYY-MM-DD" in answer.content.decode()
    assert _http(usage_world["admin"]).get(f"{PAGE}export.csv?group_by=team").status_code == 400


def test_an_account_manager_sees_their_clients_only(usage_world, assigned):
    manager = assigned("account_manager", usage_world["mine"])
    http = _http(manager)
    page = http.get(PAGE).content.decode()
    assert 'id="usage-total-runs">2<' in page and "Other Foods" not in page
    assert _cost(client=usage_world["mine"]) in page
    assert http.get(f"{PAGE}?client_id={usage_world['other'].pk}").status_code == 404
    assert http.get(f"{PAGE}export.csv?client_id={usage_world['other'].pk}").status_code == 404
    lines = list(csv.reader(io.StringIO(http.get(f"{PAGE}export.csv?group_by=client").content.decode())))
    assert [line[1] for line in lines[1:-1]] == ["Desert Bloom Cosmetics"]


def test_a_client_contact_is_refused(usage_world, assigned):
    contact = assigned("client_contact", usage_world["mine"])
    answer = _http(contact).get(PAGE)
    assert answer.status_code == 403 and b"see usage and costs" in answer.content


def test_the_csv_export_has_a_header_and_the_pages_totals(usage_world):
    answer = _http(usage_world["admin"]).get(f"{PAGE}export.csv?group_by=agent")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert lines[-1]["agent_type"] == "total" and lines[-1]["runs"] == "3"
    assert {line["agent_type"]: line["runs"] for line in lines[:-1]} == {"copy": "2", "brief": "1"}


def test_another_instance_sees_none_of_it(usage_world, instance_b, make_user):
    with schema_context(instance_b.schema_name):
        admin_b = make_user("instance_admin")
    page = _http(admin_b, HOST_B, instance_b.schema_name).get(PAGE).content.decode()
    assert 'id="usage-total-runs">0<' in page and "Desert Bloom" not in page and "Nothing in this window" in page


def test_the_platform_page_shows_each_instances_totals(usage_world, instance_a):
    from django.contrib.auth import get_user_model

    cost = UsageDaily.objects.aggregate(c=Sum("cost_usd"))["c"].quantize(Decimal("0.01"))
    connection.set_schema_to_public()
    staff = get_user_model().objects.create_superuser("platform-usage@example.com", "platform-usage@example.com",
                                                      "pw-123456789")
    http = HttpClient(HTTP_HOST="localhost", raise_request_exception=False)
    http.force_login(staff)
    answer = http.get("/admin/usage/usagedaily/")
    connection.set_tenant(instance_a)
    assert answer.status_code == 200, answer.content[:500]
    page = answer.content.decode()
    assert instance_a.name in page and "<svg" in page
    assert f"${cost}" in page  # the instance's 30 days, to the cent
    assert http.get("/admin/usage/usagedaily/1/change/").status_code == 404  # only the page is routed


def test_runs_totals_for_the_runs_changelist_add_up_the_filtered_runs(usage_world):
    from agents.models import AgentRun
    from usage.selectors import runs_totals

    totals = runs_totals(AgentRun.objects.filter(client=usage_world["mine"]))
    rows = UsageDaily.objects.filter(client=usage_world["mine"])
    assert totals["runs"] == 2 and totals["cost_usd"] == rows.aggregate(c=Sum("cost_usd"))["c"]
    assert totals["input_tokens"] == rows.aggregate(t=Sum("input_tokens"))["t"]
    assert runs_totals(AgentRun.objects.none()) == {**dict.fromkeys(totals, 0), "cost_usd": 0}


def test_the_page_asks_the_same_queries_however_many_runs(usage_world, scripted, django_assert_max_num_queries):
    http = _http(usage_world["admin"])
    http.get(PAGE)  # warm the session and the policy's caches
    with django_assert_max_num_queries(40) as before:
        http.get(PAGE)
    for i in range(3):
        scripted.script(f"uadm-more-{i}", [text_turn("More.")])
        run = run_create(actor=usage_world["admin"], agent_type="brief", task=f"uadm-more-{i}: more.",
                         client_id=usage_world["other"].pk, sandbox=True).run
        execute_run(run_id=str(run.pk), worker="w1")
    with django_assert_max_num_queries(len(before.captured_queries)):
        assert 'id="usage-total-runs">6<' in http.get(PAGE).content.decode()
