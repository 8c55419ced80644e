# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Issue #20: GET /api/v1/usage (and its CSV) reads the rollup: its numbers are the rows', an account
manager sees their clients only, another instance sees nothing, bad input is a 400 naming it."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.loop import execute_run
from agents.model import price_for
from agents.services import run_cancel, run_create
from tuning.services import client_create
from usage.models import UsageDaily

from ..skills.conftest import admin_a, client_a, scripted, text_turn, tool_turn  # noqa: F401

SUMS = ("runs_succeeded", "runs_failed", "runs_cancelled", "turns", "tool_calls", "input_tokens", "output_tokens",
        "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd")


@pytest.fixture
def usage_world(in_a, admin_a, client_a, scripted, runs_stay_here):
    """Runs of two agents for two clients and one without a client, ended and counted by the product."""
    other = client_create(name="Other Foods", vertical="food", region="GCC", language="en")
    plan = [("copy", client_a, "uapi-1", [tool_turn(("toolu_a1", "check_brand_rules", {"text": "Glow."})),
                                          text_turn("Glow gently.")]),
            ("copy", client_a, "uapi-2", [text_turn("Shine softly.")]),
            ("brief", other, "uapi-3", [text_turn("A brief.")]),
            ("copy", None, "uapi-4", [text_turn("House caption.")])]
    for agent_type, client, marker, turns in plan:
        scripted.script(marker, turns)
        run = run_create(actor=admin_a, agent_type=agent_type, task=f"{marker}: write it.",
                         client_id=client.pk if client else None, sandbox=True).run
        assert execute_run(run_id=str(run.pk), worker="w1") == "succeeded"
    cancelled = run_create(actor=admin_a, agent_type="brief", task="uapi-5: a brief.", client_id=other.pk).run
    run_cancel(actor=admin_a, run=cancelled)
    return {"admin": admin_a, "mine": client_a, "other": other}


def _sums(rows) -> dict:
    sums = rows.aggregate(**{name: Sum(name) for name in SUMS})
    return {name: (sums[name] or 0) for name in SUMS}


def _assert_metrics_equal(shown: dict, sums: dict) -> None:
    for name in SUMS:
        if name == "cost_usd":
            assert shown[name] == pytest.approx(float(sums[name]), abs=1e-6), name
        else:
            assert shown[name] == sums[name], name
    assert shown["runs"] == sums["runs_succeeded"] + sums["runs_failed"] + sums["runs_cancelled"]


@pytest.mark.parametrize("group_by", ["agent", "client", "user", "model", "day", "week"])
def test_the_numbers_are_the_rollups(usage_world, api, in_a, group_by):
    answer = api(in_a, usage_world["admin"]).get(f"/api/v1/usage?group_by={group_by}")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["group_by"] == group_by and body["to"] == str(timezone.localdate())
    rows = UsageDaily.objects.all()
    _assert_metrics_equal(body["totals"], _sums(rows))
    assert body["totals"]["runs"] == 5 and body["totals"]["runs_cancelled"] == 1
    assert sum(g["runs"] for g in body["groups"]) == 5
    assert sum(g["cost_usd"] for g in body["groups"]) == pytest.approx(body["totals"]["cost_usd"])
    if group_by == "client":
        by_client = {g["client_id"]: g for g in body["groups"]}
        assert set(by_client) == {usage_world["mine"].pk, usage_world["other"].pk, None}
        assert by_client[usage_world["mine"].pk]["client_name"] == "Desert Bloom Cosmetics"
        _assert_metrics_equal(by_client[usage_world["mine"].pk], _sums(rows.filter(client=usage_world["mine"])))
    if group_by == "agent":
        by_agent = {g["agent_type"]: g for g in body["groups"]}
        _assert_metrics_equal(by_agent["copy"], _sums(rows.filter(agent_type="copy")))
        assert by_agent["copy"]["tool_calls"] == 1 and by_agent["brief"]["runs_cancelled"] == 1


def test_cache_share_money_saved_and_durations(usage_world, api, in_a):
    body = api(in_a, usage_world["admin"]).get("/api/v1/usage?group_by=model").json()
    rows = UsageDaily.objects.all()
    saved = sum(Decimal(r.cache_read_input_tokens) * Decimal(str(price_for(r.model).input)) * Decimal("0.9")
                / Decimal(1_000_000) for r in rows)
    assert body["totals"]["cache_saved_usd"] == pytest.approx(float(saved), abs=1e-6)
    s = _sums(rows)
    prompt = s["input_tokens"] + s["cache_creation_input_tokens"] + s["cache_read_input_tokens"]
    assert body["totals"]["cache_read_share"] == pytest.approx(s["cache_read_input_tokens"] / prompt, abs=1e-4)
    assert body["totals"]["p50_duration_ms"] is not None and body["totals"]["p95_duration_ms"] >= \
        body["totals"]["p50_duration_ms"]


def test_filters_by_client_and_agent(usage_world, api, in_a):
    http = api(in_a, usage_world["admin"])
    mine = usage_world["mine"]
    body = http.get(f"/api/v1/usage?group_by=agent&client_id={mine.pk}").json()
    _assert_metrics_equal(body["totals"], _sums(UsageDaily.objects.filter(client=mine)))
    body = http.get("/api/v1/usage?group_by=client&agent_type=brief").json()
    assert [g["client_id"] for g in body["groups"]] == [usage_world["other"].pk]
    # a window before any run: nothing
    body = http.get("/api/v1/usage?from=2020-01-01&to=2020-01-31").json()
    assert body["groups"] == [] and body["totals"]["runs"] == 0 and body["totals"]["cost_usd"] == 0


def test_an_account_manager_sees_only_their_clients(usage_world, api, in_a, assigned):
    manager = assigned("account_manager", usage_world["mine"])
    http = api(in_a, manager)
    body = http.get("/api/v1/usage?group_by=client").json()
    assert [g["client_id"] for g in body["groups"]] == [usage_world["mine"].pk]  # not the other, not "no client"
    _assert_metrics_equal(body["totals"], _sums(UsageDaily.objects.filter(client=usage_world["mine"])))
    assert http.get(f"/api/v1/usage?client_id={usage_world['other'].pk}").status_code == 404
    assert http.get(f"/api/v1/usage.csv?client_id={usage_world['other'].pk}").status_code == 404
    lines = list(csv.reader(io.StringIO(http.get("/api/v1/usage.csv?group_by=client").content.decode())))
    assert [line[1] for line in lines[1:-1]] == ["Desert Bloom Cosmetics"]


def test_another_instance_sees_nothing_of_it(usage_world, api, in_a, instance_b, make_user):
    with schema_context(instance_b.schema_name):
        admin_b = make_user("instance_admin")
    body = api(instance_b, admin_b).get("/api/v1/usage?group_by=client").json()
    assert body["groups"] == [] and body["totals"]["runs"] == 0
    assert api(instance_b, admin_b).get(f"/api/v1/usage?client_id={usage_world['mine'].pk}").status_code == 404


def test_who_may_ask(usage_world, api, in_a, assigned):
    assert api(in_a).get("/api/v1/usage").status_code == 401
    contact = assigned("client_contact", usage_world["mine"])
    answer = api(in_a, contact).get("/api/v1/usage")
    assert answer.status_code == 403 and "usage" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("query", "named"), [
    ("from=2026-02-30", "from"), ("to=yesterday", "to"), ("from=2026-11-02&to=2026-11-01", "from"),
    ("group_by=team", "group_by"), ("client_id=abc", "client_id"), ("format=xml", "format"),
    ("from=２０２６-01-01", "from"),
])
def test_bad_input_is_a_400_naming_what_to_fix(usage_world, api, in_a, query, named):
    answer = api(in_a, usage_world["admin"]).get(f"/api/v1/usage?{query}")
    assert answer.status_code == 400, (query, answer.content)
    assert answer.json()["error"]["message"].startswith(f"{named}:"), answer.json()


def test_the_csv_has_a_header_and_the_same_totals(usage_world, api, in_a):
    http = api(in_a, usage_world["admin"])
    body = http.get("/api/v1/usage?group_by=agent").json()
    for url in ("/api/v1/usage?group_by=agent&format=csv", "/api/v1/usage.csv?group_by=agent"):
        answer = http.get(url)
        assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
        assert "attachment" in answer["Content-Disposition"]
        lines = list(csv.DictReader(io.StringIO(answer.content.decode())))
        assert list(lines[0])[:3] == ["agent_type", "runs", "runs_succeeded"]
        total = lines[-1]
        assert total["agent_type"] == "total" and int(total["runs"]) == body["totals"]["runs"] == 5
        assert Decimal(total["cost_usd"]) == pytest.approx(Decimal(str(body["totals"]["cost_usd"])))
        assert {line["agent_type"] for line in lines[:-1]} == {"copy", "brief"}
        assert sum(int(line["input_tokens"]) for line in lines[:-1]) == body["totals"]["input_tokens"]


def test_the_api_asks_a_fixed_number_of_queries(usage_world, api, in_a, django_assert_max_num_queries, scripted):
    http = api(in_a, usage_world["admin"])
    http.get("/api/v1/usage")  # warm the token and the policy's caches
    with django_assert_max_num_queries(12) as before:
        http.get("/api/v1/usage?group_by=client")
    for i in range(3):
        scripted.script(f"uapi-more-{i}", [text_turn("More.")])
        run = run_create(actor=usage_world["admin"], agent_type="copy", task=f"uapi-more-{i}: more.",
                         client_id=usage_world["mine"].pk, sandbox=True).run
        execute_run(run_id=str(run.pk), worker="w1")
    with django_assert_max_num_queries(len(before.captured_queries)):
        assert http.get("/api/v1/usage?group_by=client").json()["totals"]["runs"] == 8


def test_the_openapi_schema_documents_it(usage_world, api, in_a):
    schema = api(in_a, usage_world["admin"]).get("/api/schema/?format=json").json()
    get = schema["paths"]["/api/v1/usage"]["get"]
    assert {p["name"] for p in get["parameters"]} >= {"from", "to", "group_by", "client_id", "agent_type", "format"}
    assert "text/csv" in get["responses"]["200"]["content"]
    assert "cache_saved_usd" in schema["components"]["schemas"]["UsageMetrics"]["properties"]
