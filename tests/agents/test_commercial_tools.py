# ruff: noqa: F811 - the ERP fixture is imported by name
"""The commercial agent's tools and its part of the sample ERP: rate card, effort model, margins
against the floor, past pricing scoped to the run's clients, budgets, estimates the ERP checks add
up, and discount requests that a person approves before they run.

Every number asserted here is worked out by hand from the seeds in spokestack/sample_erp/commercial.py.
"""

import dataclasses

import pytest
from jsonschema import ValidationError

from agents.approvals import approval_rule_for
from agents.catalog import platform_tier
from agents.registry import ToolError, get_spec
from spokestack.erp import ErpClient, ErpError
from spokestack.sample_erp import commercial as erp_commercial
from spokestack.sample_erp import data
from tests.agents.test_tools import call, client_of, erp, make_ctx, writes  # noqa: F401 - erp is a fixture

GULF = client_of("gulf-bank")
# Alpha (AED): Strategy Director 7,500 sell / 3,400 cost; Video Producer (freelance) 5,000 / 3,300.
TWO_LINES = [{"role": "Strategy Director", "days": 10}, {"role": "Video Producer", "days": 10}]


def api(base_url: str, agency: str = "alpha") -> ErpClient:
    return ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency])


def with_settings(ctx, **settings):
    return dataclasses.replace(ctx, settings=settings)


def estimate_body(**changes):
    body = {"client": "gulf-bank", "title": "SME launch", "total": 125_000,
            "lines": [{"role": "Strategy Director", "days": 10, "day_rate": 7500, "amount": 75_000},
                      {"role": "Video Producer", "days": 10, "day_rate": 5000, "amount": 50_000}]}
    return {**body, **changes}


# --- the ERP's commercial endpoints -------------------------------------------------------------


def test_rate_card_has_eight_roles_per_agency_held_by_the_real_team(erp):
    _, base_url = erp
    for agency in data.AGENCIES:
        card = api(base_url, agency).get("/rate-card")
        assert card["currency"] == data.AGENCIES[agency].currency and card["count"] == len(card["roles"]) == 8
        team = {m["id"]: m["role"] for m in data.TEAM[agency]}
        held = {member: row["role"] for row in card["roles"] for member in row["team_members"]}
        assert held == team, "every team member's role is on the card, with that member"
        assert all(0 < row["cost_rate"] < row["day_rate"] for row in card["roles"])
        covered = {d for row in card["roles"] for d in row["disciplines"]}
        assert covered == set(erp_commercial.DISCIPLINES), "the effort model can staff every discipline"
        assert sum(i["share_pct"] for i in card["instalments"]) == 100
    alpha = api(base_url).get("/rate-card")
    assert alpha["tax"] == {"name": "VAT", "rate_pct": 5.0} and alpha["payment_days"] == 30
    with pytest.raises(ErpError) as missing_key:
        ErpClient(base_url=base_url, api_key="nope").get("/rate-card")
    assert missing_key.value.status_code == 401


def test_pricing_history_filters_and_refuses_bad_input(erp):
    _, base_url = erp
    every = api(base_url).get("/pricing-history")
    assert every["count"] == 6 and [r["year"] for r in every["results"]] == sorted(
        [r["year"] for r in every["results"]], reverse=True)
    gulf = api(base_url).get("/pricing-history", params={"client": "gulf-bank", "outcome": "lost"})
    assert [r["id"] for r in gulf["results"]] == ["alpha-ph05"] and gulf["results"][0]["fee"] == 1_250_000
    video = api(base_url).get("/pricing-history", params={"service": "VIDEO"})
    assert {r["id"] for r in video["results"]} == {"alpha-ph01", "alpha-ph05"}
    assert "copywriting" in video["services"]
    with pytest.raises(ErpError, match="outcome: 'maybe' is not one of won, lost") as bad:
        api(base_url).get("/pricing-history", params={"outcome": "maybe"})
    assert bad.value.status_code == 400
    with pytest.raises(ErpError, match="No client 'hudson-cloud'") as other_agency:
        api(base_url).get("/pricing-history", params={"client": "hudson-cloud"})
    assert other_agency.value.status_code == 404


def test_client_budgets_compute_what_remains(erp):
    _, base_url = erp
    budgets = api(base_url).get("/client-budgets", params={"client": "gulf-bank"})
    assert [(b["fiscal_year"], b["total"], b["committed"], b["remaining"]) for b in budgets["results"]] == [
        ("FY2026", 2_400_000, 2_310_000, 90_000), ("FY2027", 3_000_000, 400_000, 2_600_000)]
    assert api(base_url, "beta").get("/client-budgets")["count"] == 2
    with pytest.raises(ErpError) as other_agency:
        api(base_url).get("/client-budgets", params={"client": "covent-kitchen"})
    assert other_agency.value.status_code == 404


@pytest.mark.parametrize("changes, message", [
    ({"total": 120_000}, "total: 120000 does not match the lines (the lines add up to 125000)"),
    ({"discount_pct": 10}, "the lines add up to 125000, less 10% is 112500)"),
    ({"lines": [{"role": "Astronaut", "days": 1, "day_rate": 1, "amount": 1}], "total": 1},
     "lines[0].role: 'Astronaut' is not on the rate card; roles: Strategy Director"),
    ({"lines": [{"role": "Data Analyst", "days": 2, "day_rate": 3800, "amount": 7000}], "total": 7000},
     "lines[0].amount: 7000 is not days × day_rate (7600)"),
    ({"lines": [{"role": "Data Analyst", "days": 0, "day_rate": 3800, "amount": 0}], "total": 0},
     "lines[0].days: must be greater than 0"),
    ({"lines": []}, "lines: at least one line"),
    ({"currency": "USD"}, "currency: estimates are in the agency's currency, AED"),
    ({"client": "hudson-cloud"}, "client: no client 'hudson-cloud'"),
    ({"margin": 40}, "Unknown field(s) margin"),
])
def test_the_erp_refuses_an_estimate_that_does_not_add_up(erp, changes, message):
    _, base_url = erp
    with pytest.raises(ErpError) as refused:
        api(base_url).post("/estimates", estimate_body(**changes), idempotency_key="e1")
    assert refused.value.status_code == 400 and message in refused.value.message
    assert writes(base_url)["count"] == 0


def test_estimates_and_discount_requests_are_written_read_and_patched(erp):
    _, base_url = erp
    alpha = api(base_url)
    estimate = alpha.post("/estimates", estimate_body(discount_pct=10, total=112_500), idempotency_key="e1")
    assert (estimate["id"], estimate["currency"], estimate["status"]) == ("alpha-estimate-0001", "AED", "draft")
    assert alpha.get("/estimates", params={"client": "gulf-bank"})["count"] == 1
    assert alpha.patch("/estimates/alpha-estimate-0001", {"status": "sent"}, idempotency_key="e2")["status"] == "sent"
    with pytest.raises(ErpError, match="status: 'won' is not one of draft, sent, accepted, rejected"):
        alpha.patch("/estimates/alpha-estimate-0001", {"status": "won"}, idempotency_key="e3")
    with pytest.raises(ErpError, match="does not match the lines"):  # a PATCH is checked like a POST
        alpha.patch("/estimates/alpha-estimate-0001", {"total": 1}, idempotency_key="e4")
    with pytest.raises(ErpError) as elsewhere:
        api(base_url, "beta").get("/estimates/alpha-estimate-0001")
    assert elsewhere.value.status_code == 404

    request = alpha.post("/discount_requests", {"client": "gulf-bank", "estimate_id": "alpha-estimate-0001",
                                                "discount_pct": 12.5, "reason": "Two-year retainer"},
                         idempotency_key="d1")
    assert (request["id"], request["status"]) == ("alpha-discount-0001", "pending")
    assert alpha.patch("/discount_requests/alpha-discount-0001", {"status": "approved"},
                       idempotency_key="d2")["status"] == "approved"
    with pytest.raises(ErpError) as elsewhere:
        api(base_url, "gamma").get("/discount_requests/alpha-discount-0001")
    assert elsewhere.value.status_code == 404


@pytest.mark.parametrize("changes, message", [
    ({"discount_pct": 0}, "discount_pct: greater than 0 and at most 50"),
    ({"discount_pct": 60}, "discount_pct: greater than 0 and at most 50"),
    ({"estimate_id": "alpha-estimate-0099"}, "estimate_id: no estimate 'alpha-estimate-0099' for client 'gulf-bank'"),
    ({"client": "desert-bloom-cosmetics"},
     "estimate_id: no estimate 'alpha-estimate-0001' for client 'desert-bloom-cosmetics'"),
    ({"reason": None}, "reason: this field is required"),
])
def test_the_erp_refuses_a_discount_request_it_cannot_honour(erp, changes, message):
    _, base_url = erp
    api(base_url).post("/estimates", estimate_body(), idempotency_key="e1")
    body = {"client": "gulf-bank", "estimate_id": "alpha-estimate-0001", "discount_pct": 10, "reason": "Volume",
            **changes}
    with pytest.raises(ErpError) as refused:
        api(base_url).post("/discount_requests", {k: v for k, v in body.items() if v is not None},
                           idempotency_key="d1")
    assert refused.value.status_code == 400 and message in refused.value.message
    assert writes(base_url)["count"] == 1  # the estimate only


def test_another_agencys_estimate_cannot_be_discounted(erp):
    _, base_url = erp
    api(base_url).post("/estimates", estimate_body(), idempotency_key="e1")
    with pytest.raises(ErpError) as refused:
        api(base_url, "gamma").post("/discount_requests", {"client": "hudson-cloud", "estimate_id":
                                                           "alpha-estimate-0001", "discount_pct": 5, "reason": "x"})
    assert refused.value.status_code == 400 and "no estimate 'alpha-estimate-0001'" in refused.value.message


# --- get_rate_card ------------------------------------------------------------------------------


def test_get_rate_card_returns_roles_rates_terms_and_tax(erp):
    _, base_url = erp
    card = call("commercial", "get_rate_card", make_ctx(base_url), {})
    strategy = card["roles"][0]
    assert (card["currency"], card["rate_card_version"], len(card["roles"])) == ("AED", "2026-H2", 8)
    assert strategy == {"role": "Strategy Director", "day_rate": 7500, "disciplines": ["strategy"],
                        "sourcing": "in_house", "team_members": ["alpha-t01"], "cost_rate": 3400,
                        "card_margin_pct": 54.7}
    assert card["payment_terms"] == "50% on signature, 50% on delivery" and card["tax"]["rate_pct"] == 5.0
    beta = call("commercial", "get_rate_card", make_ctx(base_url, agency="beta"), {"role": "analytics"})
    assert [r["role"] for r in beta["roles"]] == ["Paid Media Manager"] and beta["currency"] == "GBP"
    none = call("commercial", "get_rate_card", make_ctx(base_url), {"role": "astronaut"})
    assert none["roles"] == [] and "roles: Strategy Director" in none["note"]


def test_get_rate_card_can_hide_cost_rates(erp):
    _, base_url = erp
    hidden = call("commercial", "get_rate_card", with_settings(make_ctx(base_url), show_cost_rates=False), {})
    assert all("cost_rate" not in r and "card_margin_pct" not in r for r in hidden["roles"])
    assert hidden["roles"][0]["day_rate"] == 7500 and "calculate_margin" in hidden["note"]


# --- estimate_effort ----------------------------------------------------------------------------


def test_estimate_effort_maps_the_effort_model_to_the_rate_card(erp):
    _, base_url = erp
    # 3 medium hero videos = 1 + 2 × 0.5 = 2 units: design 6, copy 4, production 16 (26 delivery days),
    # account management 10% = 2.6; +10% contingency, rounded up to half days.
    result = call("commercial", "estimate_effort", make_ctx(base_url),
                  {"deliverables": [{"type": "hero_video", "quantity": 3}]})
    assert [(line["role"], line["days"]) for line in result["lines"]] == [
        ("Creative Director", 7.0), ("Senior Arabic Copywriter", 4.5), ("Video Producer", 18.0),
        ("Account Manager", 3.0)]
    assert result["total_days"] == 32.5 and result["currency"] == "AED"
    assert result["indicative_fee"] == 7 * 8000 + 4.5 * 4800 + 18 * 5000 + 3 * 3600 == 178_400
    assert result["by_deliverable"] == [{"type": "hero_video", "quantity": 3, "complexity": "medium", "days": 26.0}]
    assert any("Contingency of 10%" in a for a in result["assumptions"])
    assert any("not included" in a for a in result["assumptions"])
    # The lines go straight into the next tools.
    margin = call("commercial", "calculate_margin", make_ctx(base_url),
                  {"lines": [{"role": line["role"], "days": line["days"]} for line in result["lines"]]})
    assert margin["revenue"] == result["indicative_fee"]


def test_estimate_effort_complexity_and_one_role_for_two_disciplines(erp):
    _, base_url = erp
    # Beta's Paid Media Manager covers media and analytics: 5 + 1.5 days high (x1.5) = 9.75, +10% = 10.725.
    result = call("commercial", "estimate_effort", make_ctx(base_url, agency="beta"),
                  {"deliverables": [{"type": "media_plan", "quantity": 1, "complexity": "high"}]})
    lines = {line["role"]: line for line in result["lines"]}
    assert lines["Paid Media Manager"]["disciplines"] == ["media", "analytics"]
    assert lines["Paid Media Manager"]["days"] == 11.0 and lines["Planning Director"]["days"] == 2.0
    assert lines["Account Director"]["days"] == 1.5  # 1.125 account days + 10%, rounded up to a half day
    assert result["currency"] == "GBP"


def test_estimate_effort_contingency_setting_changes_the_days(erp):
    _, base_url = erp
    tool_input = {"deliverables": [{"type": "hero_video", "quantity": 3}]}
    none = call("commercial", "estimate_effort", with_settings(make_ctx(base_url), contingency_pct=0), tool_input)
    assert [line["days"] for line in none["lines"]] == [6.0, 4.0, 16.0, 3.0] and none["total_days"] == 29.0
    assert any("Contingency of 0%" in a for a in none["assumptions"])


# --- calculate_margin ---------------------------------------------------------------------------


def test_calculate_margin_against_the_floor(erp):
    _, base_url = erp
    full = call("commercial", "calculate_margin", make_ctx(base_url), {"lines": TWO_LINES})
    # revenue 75,000 + 50,000; cost 34,000 + 33,000.
    assert (full["revenue"], full["cost"], full["margin"], full["margin_pct"]) == (125_000, 67_000, 58_000, 46.4)
    assert full["below_floor"] is False and full["floor_pct"] == 35
    # The largest discount that keeps 35%: revenue ≥ 67,000 / 0.65 = 103,076.92, i.e. 17.5% off.
    assert full["max_discount_pct_within_floor"] == 17.5
    assert [line["margin_pct"] for line in full["lines"]] == [54.7, 34.0]
    discounted = call("commercial", "calculate_margin", make_ctx(base_url), {"lines": TWO_LINES, "discount_pct": 20})
    assert (discounted["revenue"], discounted["margin"], discounted["margin_pct"]) == (100_000, 33_000, 33.0)
    assert discounted["below_floor"] is True and "request_discount_approval" in discounted["verdict"]


def test_calculate_margin_floor_setting_changes_the_verdict(erp):
    _, base_url = erp
    tool_input = {"lines": TWO_LINES, "discount_pct": 20}
    lenient = call("commercial", "calculate_margin", with_settings(make_ctx(base_url), min_margin_pct=30), tool_input)
    assert lenient["below_floor"] is False and lenient["floor_pct"] == 30
    strict = call("commercial", "calculate_margin", with_settings(make_ctx(base_url), min_margin_pct=50),
                  {"lines": TWO_LINES})
    assert strict["below_floor"] is True and strict["max_discount_pct_within_floor"] == 0.0
    assert "rate-card day rates" in strict["verdict"]


def test_calculate_margin_reads_disciplines_rate_overrides_and_refuses_unknown_roles(erp):
    _, base_url = erp
    result = call("commercial", "calculate_margin", make_ctx(base_url),
                  {"lines": [{"role": "strategy", "days": 2, "day_rate": 6000}]})
    line = result["lines"][0]
    assert (line["role"], line["amount"], line["card_day_rate"], line["cost"]) == ("Strategy Director", 12_000,
                                                                                   7500, 6800)
    with pytest.raises(ToolError, match="'Astronaut' is not on the agency's rate card. Use one of these roles: "
                                        "Strategy Director, Senior Arabic Copywriter"):
        call("commercial", "calculate_margin", make_ctx(base_url), {"lines": [{"role": "Astronaut", "days": 1}]})


# --- get_past_pricing ---------------------------------------------------------------------------


def test_get_past_pricing_summarises_the_agencys_quotes(erp):
    _, base_url = erp
    result = call("commercial", "get_past_pricing", make_ctx(base_url), {})
    assert result["count"] == 6 and result["summary"]["won"] == 5 and result["summary"]["lost"] == 1
    assert result["summary"]["win_rate"] == 0.83
    assert result["summary"]["avg_margin_pct_won"] == round((41.5 + 38.0 + 33.0 + 39.0 + 36.5) / 5, 1)
    lost = call("commercial", "get_past_pricing", make_ctx(base_url), {"outcome": "lost", "service": "video"})
    assert [q["id"] for q in lost["quotes"]] == ["alpha-ph05"] and "Lost on price" in lost["quotes"][0]["notes"]
    nothing = call("commercial", "get_past_pricing", make_ctx(base_url), {"service": "holography"})
    assert nothing["count"] == 0 and "paid_media" in nothing["note"]


def test_get_past_pricing_only_reaches_the_runs_clients(erp):
    _, base_url = erp
    scoped = dataclasses.replace(make_ctx(base_url), client_scope=frozenset({"gulf-bank"}))
    result = call("commercial", "get_past_pricing", scoped, {})
    assert {q["client"] for q in result["quotes"]} == {"gulf-bank"} and result["count"] == 3
    assert result["summary"]["win_rate"] == 0.67
    with pytest.raises(ToolError, match="no client 'desert-bloom-cosmetics' this run may act for"):
        call("commercial", "get_past_pricing", scoped, {"client": "desert-bloom-cosmetics"})
    nobody = dataclasses.replace(make_ctx(base_url), client_scope=frozenset())
    assert call("commercial", "get_past_pricing", nobody, {})["count"] == 0
    for_client = call("commercial", "get_past_pricing", make_ctx(base_url, client=client_of("desert-bloom-cosmetics")),
                      {})
    assert {q["client"] for q in for_client["quotes"]} == {"desert-bloom-cosmetics"}


def test_get_past_pricing_max_rows_setting(erp):
    _, base_url = erp
    result = call("commercial", "get_past_pricing", with_settings(make_ctx(base_url), max_rows=2), {})
    assert len(result["quotes"]) == 2 and result["quotes_not_shown"] == 4 and result["summary"]["won"] == 5


# --- draft_estimate -----------------------------------------------------------------------------


def test_draft_estimate_builds_the_document_and_saves_nothing(erp):
    _, base_url = erp
    result = call("commercial", "draft_estimate", make_ctx(base_url, client=GULF),
                  {"title": "SME launch", "lines": TWO_LINES, "discount_pct": 10, "notes": "Excludes media."})
    assert (result["client"], result["client_name"], result["saved"]) == ("gulf-bank", "Gulf Bank", False)
    assert (result["subtotal"], result["discount_amount"], result["total"]) == (125_000, 12_500, 112_500)
    assert result["tax"] == {"name": "VAT", "rate_pct": 5.0, "amount": 5625.0}
    assert result["total_with_tax"] == 118_125
    assert result["margin"] == {"cost": 67_000, "margin": 45_500, "margin_pct": 40.4}
    assert result["payment_schedule"] == [{"when": "on signature", "share_pct": 50, "amount": 59_062.5},
                                          {"when": "on delivery", "share_pct": 50, "amount": 59_062.5}]
    assert result["payment_terms"] == "50% on signature, 50% on delivery; invoices due in 30 days"
    assert result["valid_days"] == 30 and result["notes"] == "Excludes media."
    assert all("cost" not in line for line in result["lines"]), "cost rates stay out of the client's document"
    assert writes(base_url)["count"] == 0


def test_draft_estimate_payment_terms_and_validity_settings(erp):
    _, base_url = erp
    ctx = with_settings(make_ctx(base_url, client=GULF), payment_terms="full_upfront", validity_days=14)
    result = call("commercial", "draft_estimate", ctx, {"title": "SME launch", "lines": TWO_LINES})
    assert result["payment_schedule"] == [{"when": "on signature", "share_pct": 100, "amount": 131_250.0}]
    assert result["payment_terms"].startswith("100% on signature") and result["valid_days"] == 14
    beta = call("commercial", "draft_estimate", make_ctx(base_url, agency="beta", client=client_of("covent-kitchen")),
                {"title": "Christmas", "lines": [{"role": "Copywriter", "days": 3}]})
    assert (beta["currency"], beta["total"], beta["tax"]["amount"], beta["total_with_tax"]) == ("GBP", 2550, 510,
                                                                                                  3060)
    assert beta["payment_schedule"] == [{"when": "monthly in arrears", "share_pct": 100, "amount": 3060}]


def test_draft_estimate_needs_a_client(erp):
    _, base_url = erp
    with pytest.raises(ToolError, match="needs to know the client"):
        call("commercial", "draft_estimate", make_ctx(base_url), {"title": "t", "lines": TWO_LINES})


# --- compare_to_budget --------------------------------------------------------------------------


def test_compare_to_budget_fits_tight_and_over(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=GULF)
    fits = call("commercial", "compare_to_budget", ctx, {"amount": 500_000})
    assert (fits["verdict"], fits["budget"]["fiscal_year"], fits["share_of_remaining_pct"]) == ("fits", "FY2027",
                                                                                                 19.2)
    assert fits["remaining_after"] == 2_100_000 and fits["other_fiscal_years"] == ["FY2026"]
    over = call("commercial", "compare_to_budget", ctx, {"amount": 100_000, "fiscal_year": "fy2026"})
    assert (over["verdict"], over["over_by"]) == ("over", 10_000) and "by 10000" in over["summary"]
    tight = call("commercial", "compare_to_budget", ctx, {"amount": 2_200_000})
    assert tight["verdict"] == "tight" and tight["share_of_remaining_pct"] == 84.6
    with pytest.raises(ToolError, match="No FY2030 budget for 'gulf-bank'; fiscal years on file: FY2026, FY2027"):
        call("commercial", "compare_to_budget", ctx, {"amount": 1, "fiscal_year": "FY2030"})


def test_compare_to_budget_share_setting_changes_the_verdict(erp):
    _, base_url = erp
    ctx = with_settings(make_ctx(base_url, client=GULF), max_share_of_remaining_pct=90)
    assert call("commercial", "compare_to_budget", ctx, {"amount": 2_200_000})["verdict"] == "fits"
    strict = with_settings(make_ctx(base_url, client=GULF), max_share_of_remaining_pct=10)
    assert call("commercial", "compare_to_budget", strict, {"amount": 500_000})["verdict"] == "tight"


# --- save_estimate ------------------------------------------------------------------------------


def test_save_estimate_writes_once_per_key_and_nothing_in_sandbox(erp):
    _, base_url = erp
    tool_input = {"title": "SME launch", "lines": TWO_LINES, "notes": "Excludes media."}
    sandboxed = call("commercial", "save_estimate", make_ctx(base_url, client=GULF, sandbox=True, key="s1"),
                     tool_input)
    assert sandboxed["simulated"] is True and sandboxed["would_have"]["path"] == "/estimates"
    assert sandboxed["would_have"]["body"]["total"] == 125_000 and writes(base_url)["count"] == 0
    first = call("commercial", "save_estimate", make_ctx(base_url, client=GULF, key="s1"), tool_input)
    again = call("commercial", "save_estimate", make_ctx(base_url, client=GULF, key="s1"), tool_input)
    assert first == again and first["estimate_id"] == "alpha-estimate-0001"
    assert (first["total"], first["currency"], first["margin_pct"], first["status"]) == (125_000, "AED", 46.4, "draft")
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1 and log["results"][0]["path"] == "/estimates"
    stored = api(base_url).get("/estimates/alpha-estimate-0001")
    assert stored["lines"][1] == {"role": "Video Producer", "days": 10, "day_rate": 5000, "amount": 50_000}
    assert stored["payment_terms"] == "50% on signature, 50% on delivery; invoices due in 30 days"
    assert stored["metadata"] == {"agent": "commercial", "run_id": "run-1"} and stored["valid_days"] == 30


def test_save_estimate_is_for_the_runs_client_only(erp):
    _, base_url = erp
    with pytest.raises(ToolError, match="run is for the client 'gulf-bank'"):
        call("commercial", "save_estimate", make_ctx(base_url, client=GULF),
             {"title": "t", "lines": TWO_LINES, "client": "desert-bloom-cosmetics"})
    with pytest.raises(ToolError, match="needs to know the client"):
        call("commercial", "save_estimate", make_ctx(base_url), {"title": "t", "lines": TWO_LINES})
    assert writes(base_url)["count"] == 0


# --- request_discount_approval ------------------------------------------------------------------


def _saved_estimate(base_url: str, client=GULF) -> str:
    return call("commercial", "save_estimate", make_ctx(base_url, client=client, key=f"save-{client.slug}"),
                {"title": "SME launch", "lines": TWO_LINES})["estimate_id"]


def test_request_discount_approval_files_a_pending_request_with_its_effect(erp):
    _, base_url = erp
    estimate_id = _saved_estimate(base_url)
    tool_input = {"estimate_id": estimate_id, "discount_pct": 15, "reason": "Two-year retainer"}
    first = call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF, key="d1"), tool_input)
    again = call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF, key="d1"), tool_input)
    assert first == again and (first["request_id"], first["status"]) == ("alpha-discount-0001", "pending")
    # 125,000 at 46.4% margin: cost 67,000; 15% off is 106,250, margin (106,250 - 67,000) / 106,250.
    assert (first["total_before"], first["total_after"]) == (125_000, 106_250)
    assert (first["margin_pct_before"], first["margin_pct_after"]) == (46.4, 36.9)
    log = writes(base_url)
    assert log["count"] == 2 and log["results"][1]["path"] == "/discount_requests" and len(log["replays"]) == 1
    stored = api(base_url).get("/discount_requests/alpha-discount-0001")
    assert (stored["estimate_id"], stored["discount_pct"], stored["client"]) == (estimate_id, 15, "gulf-bank")


def test_request_discount_approval_in_sandbox_writes_nothing(erp):
    _, base_url = erp
    estimate_id = _saved_estimate(base_url)
    for given in (estimate_id, "alpha-estimate-0042"):  # a sandbox run's own estimate was never saved
        result = call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF, sandbox=True),
                      {"estimate_id": given, "discount_pct": 10, "reason": "Volume"})
        assert result["simulated"] is True and result["would_have"]["path"] == "/discount_requests"
    assert result["note"].startswith("Sandbox") and writes(base_url)["count"] == 1  # the estimate only


def test_request_discount_approval_leaves_the_cap_to_the_erp(erp):
    _, base_url = erp
    estimate_id = _saved_estimate(base_url)
    assert call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF),
                {"estimate_id": estimate_id, "discount_pct": 50, "reason": "Pro bono partner"})["status"] == "pending"
    with pytest.raises(ValidationError, match="greater than the maximum of 50"):  # refused before anyone is asked
        call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF),
             {"estimate_id": estimate_id, "discount_pct": 51, "reason": "Too much"})
    assert writes(base_url)["count"] == 2


def test_request_discount_approval_never_touches_another_clients_estimate(erp):
    _, base_url = erp
    other = _saved_estimate(base_url, client_of("desert-bloom-cosmetics"))
    with pytest.raises(ToolError, match=f"There is no estimate '{other}' for 'gulf-bank'"):
        call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF),
             {"estimate_id": other, "discount_pct": 5, "reason": "Volume"})
    with pytest.raises(ErpError, match="HTTP 404: No estimate 'nope'") as missing:
        call("commercial", "request_discount_approval", make_ctx(base_url, client=GULF),
             {"estimate_id": "nope", "discount_pct": 5, "reason": "Volume"})
    assert missing.value.status_code == 404
    assert writes(base_url)["count"] == 1


# --- the spec -----------------------------------------------------------------------------------


def test_the_commercial_spec_gates_discount_requests_and_only_them():
    spec = get_spec("commercial", "1.0.0")
    assert spec is get_spec("commercial") and spec.title == "Commercial"
    patterns = platform_tier(spec).confirmation_patterns
    assert {"delete_*", "publish_*", "request_discount_approval"} <= set(patterns)
    rule = approval_rule_for(tool_name="request_discount_approval", patterns=patterns, platform_patterns=patterns)
    assert rule == "platform confirmation pattern 'request_discount_approval'"
    for tool in spec.tools:
        if tool.name != "request_discount_approval":
            assert approval_rule_for(tool_name=tool.name, patterns=patterns, platform_patterns=patterns) == ""
    assert {t.name for t in spec.tools if t.side_effect} == {"save_estimate", "request_discount_approval"}
    assert "financial performance promises" in {f.name for f in spec.content_filters}
