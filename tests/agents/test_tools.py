"""Core tools against a real sample ERP on loopback: real data back, writes exactly once per
idempotency key, nothing written in sandbox mode, and failures a model can read.

Every call goes through `call`, which validates the input against the tool's schema first, as
the loop does, so the inputs here are also proof that the schemas accept what the tools need.
"""

import itertools
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from jsonschema import Draft202012Validator

from agents.registry import ToolContext, ToolError, get_spec
from spokestack.erp import ErpClient, ErpError, ErpNotConfigured
from spokestack.sample_erp import data
from spokestack.sample_erp.server import start_sample_erp
from tuning.models import Client

RFP_TEXT = """\
Request for Proposal: Najd Dates Ramadan 2027 campaign

Najd Dates invites agencies to submit proposals for its Ramadan and Eid 2027 campaign in the UAE and Saudi Arabia.

Scope of work:
- Integrated campaign strategy for Ramadan and Eid al-Fitr
- Arabic and English copywriting for social and e-commerce
- Influencer programme with at least 10 Gulf creators

The agency must provide a dedicated Arabic-speaking account team. Proposals should include a media plan with expected ROAS.

Deliverables:
- Campaign strategy and creative concept
- 3 hero videos (30s, 15s, 6s)
- Social content calendar for 8 weeks
- Weekly performance report and final dashboard

Budget: the total budget is AED 1.2m including production, with a cap of AED 1,500,000.

Key dates:
- Questions by 5 December 2026
- Proposals due 2026-12-20
- Pitch presentations on January 10, 2027
- Campaign launch 1 February 2027

Evaluation criteria:
- Creative approach (40%)
- Relevant experience – 25%
- Team and Arabic capability: 20 points
- Price 15%

Proposals will also be evaluated on cultural fit and sustainability credentials.
"""
DISCOUNT_RULE = {"kind": "never", "text": "Never use discount or urgency language such as 'sale', '% off', 'hurry'"}
COMPETITOR_RULE = {"kind": "competitor", "text": "Sahara Glow"}
ALWAYS_RULE = {"kind": "always", "text": "Mention halal-certified ingredients when relevant"}

_calls = itertools.count(1)


@pytest.fixture
def erp(egress_loopback):
    """The sample ERP on a free loopback port, allowed for this test only."""
    server, base_url = start_sample_erp()
    egress_loopback(server.server_port)
    yield server, base_url
    server.stop()


def client_of(slug: str) -> Client:
    """An (unsaved) platform client mirroring the ERP's client of that slug."""
    record = next(c for clients in data.CLIENTS.values() for c in clients if c["slug"] == slug)
    return Client(name=record["name"], slug=slug, vertical=record["industry"], region=record["region"],
                  language=record["language"])


def make_ctx(base_url: str, *, agency: str = "alpha", client: Client | None = None, sandbox: bool = False,
             rules=(), key: str | None = None, specialization=None) -> ToolContext:
    tool_use_id = f"toolu_{next(_calls)}"
    return ToolContext(instance=None, run_id="run-1", tool_use_id=tool_use_id,
                       idempotency_key=key or f"run-1:{tool_use_id}", client=client,
                       specialization=specialization or {}, rules=tuple(rules), sandbox=sandbox,
                       erp_factory=lambda: ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency]))


def call(agent_type: str, tool_name: str, ctx: ToolContext, tool_input: dict, *, version: str | None = None):
    tool = get_spec(agent_type, version).tool(tool_name)
    assert tool is not None, f"{agent_type} {version or 'latest'} has no {tool_name}"
    Draft202012Validator(tool.input_schema).validate(tool_input)
    result = tool.handler(ctx, tool_input)
    json.dumps(result)  # a tool result goes back to the model as JSON
    return result


def writes(base_url: str, agency: str = "alpha") -> dict:
    return ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS[agency]).get("/writes")


# --- rfp ----------------------------------------------------------------------------------


def test_analyze_rfp_extracts_requirements_dates_budget_criteria_and_deliverables():
    result = call("rfp", "analyze_rfp", None, {"rfp_text": RFP_TEXT}, version="2.3.1")
    assert "The agency must provide a dedicated Arabic-speaking account team." in result["requirements"]
    assert "Influencer programme with at least 10 Gulf creators" in result["requirements"]
    assert [(d["date"], d["label"]) for d in result["deadlines"]] == [
        ("2026-12-05", "questions"), ("2026-12-20", "submission"), ("2027-01-10", "presentation"),
        ("2027-02-01", "launch")]
    assert (result["budget"]["min"], result["budget"]["max"], result["budget"]["currency"]) == (
        1_200_000, 1_500_000, "AED")
    assert "3 hero videos (30s, 15s, 6s)" in result["deliverables"]
    assert {"video", "influencer programme", "media plan"} <= set(result["deliverables_mentioned"])
    # 2.3.1: criteria from the criteria section only, weights left in the text.
    assert result["evaluation_criteria"][0] == {"criterion": "Creative approach (40%)"}
    assert len(result["evaluation_criteria"]) == 4 and "weights_total" not in result


def test_analyze_rfp_2_4_0_reads_weights_and_inline_criteria():
    result = call("rfp", "analyze_rfp", None, {"rfp_text": RFP_TEXT}, version="2.4.0")
    assert result["evaluation_criteria"] == [
        {"criterion": "Creative approach", "weight": 40}, {"criterion": "Relevant experience", "weight": 25},
        {"criterion": "Team and Arabic capability", "weight": 20}, {"criterion": "Price", "weight": 15},
        {"criterion": "cultural fit", "weight": None}, {"criterion": "sustainability credentials", "weight": None}]
    assert result["weights_total"] == 100 and "weights_warning" not in result
    skewed = call("rfp", "analyze_rfp", None, {"rfp_text": "Evaluation criteria:\n- Price 50%\n- Team 30%\n"})
    assert skewed["weights_total"] == 80 and "not 100" in skewed["weights_warning"]


def test_analyze_rfp_reads_prose_rfps_with_other_currencies_and_date_formats():
    text = ("# RFP: developer campaign\nThe budget is between $250k and $400k (fees excluding media). Media spend of "
            "USD 2 million is handled separately.\nResponses must be received by March 3, 2027. Questions may be "
            "sent until 2027-02-10. The project will kick off on 1st April 2027.\nProposals will be scored on: "
            "strategic insight (30%), creative ideas (30%), measurement approach (20%) and cost (20%).\n"
            "Deliverables: messaging framework, landing page, and a paid search plan.")
    result = call("rfp", "analyze_rfp", None, {"rfp_text": text}, version="2.4.0")
    assert [(d["date"], d["label"]) for d in result["deadlines"]] == [
        ("2027-02-10", "questions"), ("2027-03-03", "submission"), ("2027-04-01", "project_start")]
    assert (result["budget"]["min"], result["budget"]["max"], result["budget"]["currency"]) == (250_000, 400_000, "USD")
    assert result["requirements"] == ["Responses must be received by March 3, 2027."]
    assert result["deliverables"] == ["messaging framework", "landing page", "a paid search plan"]
    assert [(c["criterion"], c["weight"]) for c in result["evaluation_criteria"]] == [
        ("strategic insight", 30), ("creative ideas", 30), ("measurement approach", 20), ("cost", 20)]
    old = call("rfp", "analyze_rfp", None, {"rfp_text": text}, version="2.3.1")
    assert old["evaluation_criteria"] == [], "2.3.1 misses criteria given inline (the bug 2.4.0 fixes)"


def test_analyze_rfp_is_deterministic_and_refuses_a_fragment():
    first = call("rfp", "analyze_rfp", None, {"rfp_text": RFP_TEXT})
    assert call("rfp", "analyze_rfp", None, {"rfp_text": RFP_TEXT}) == first
    with pytest.raises(ToolError, match="too short"):
        call("rfp", "analyze_rfp", None, {"rfp_text": "see attached"})


def test_query_past_projects_filters_real_projects(erp):
    _, base_url = erp
    result = call("rfp", "query_past_projects", make_ctx(base_url), {"industry": "beauty", "outcome": "won"})
    assert [p["id"] for p in result["projects"]] == ["alpha-p01", "alpha-p02"]
    assert result["win_rate"] == 1.0 and result["projects"][0]["kpis"]["roas"] == 5.2
    ranked = call("rfp", "query_past_projects", make_ctx(base_url), {"query": "ramadan gifting", "limit": 2})
    assert ranked["returned"] == 2 and ranked["projects"][0]["id"] in {"alpha-p01", "alpha-p06"}
    other_agency = call("rfp", "query_past_projects", make_ctx(base_url, agency="beta"), {"industry": "beauty"})
    assert other_agency["count"] == 0, "agencies never see each other's projects"


def test_get_team_capabilities_lists_people_and_availability(erp):
    _, base_url = erp
    result = call("rfp", "get_team_capabilities", make_ctx(base_url), {"capability": "arabic_copywriting"})
    assert [m["name"] for m in result["members"]] == ["Karim Youssef"]
    assert result["members"][0]["availability"] == {"share_free": 0.6, "available_from": "2026-11-24"}
    everyone = call("rfp", "get_team_capabilities", make_ctx(base_url), {})
    assert everyone["count"] == 6 and everyone["capabilities"]["video"] == ["Rami Khoury"]


def test_draft_response_writes_once_per_idempotency_key(erp):
    _, base_url = erp
    client = client_of("desert-bloom-cosmetics")
    tool_input = {"title": "Response: Ramadan 2027", "content": "# Executive summary\nWe will win Ramadan."}
    first = call("rfp", "draft_response", make_ctx(base_url, client=client, key="run-1:toolu_a"), tool_input)
    again = call("rfp", "draft_response", make_ctx(base_url, client=client, key="run-1:toolu_a"), tool_input)
    assert first["draft_id"] == again["draft_id"] == "alpha-draft-0001" and first["status"] == "draft"
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1
    assert log["results"][0]["idempotency_key"] == "run-1:toolu_a" and log["results"][0]["path"] == "/drafts"
    stored = ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS["alpha"]).get("/drafts/alpha-draft-0001")
    assert stored["client"] == "desert-bloom-cosmetics" and stored["channel"] == "rfp_response"
    call("rfp", "draft_response", make_ctx(base_url, client=client, key="run-1:toolu_b"), tool_input)
    assert writes(base_url)["count"] == 2


def test_estimate_timeline_plans_phases_around_team_availability(erp):
    _, base_url = erp
    analysis = call("rfp", "analyze_rfp", None, {"rfp_text": RFP_TEXT})
    result = call("rfp", "estimate_timeline", make_ctx(base_url), {
        "requirements": analysis["requirements"], "deliverables": analysis["deliverables"],
        "start_date": "2026-11-23", "deadline": "2027-02-01"})
    assert [p["phase"] for p in result["phases"]] == [
        "Discovery and research", "Strategy", "Creative development", "Production", "Review and launch"]
    assert result["total_weeks"] == sum(p["weeks"] for p in result["phases"])
    assert result["staffing"]["video"]["people"] == ["Rami Khoury"]
    # The strategist is free from 2026-12-01 and the video lead from 2027-01-05: work starts when all can.
    assert result["start"] == "2027-01-05" and result["start_delayed_by_availability_days"] == 43
    assert result["phases"][0]["start"] == result["start"] and result["phases"][-1]["end"] == result["end"]
    assert result["fits_deadline"] is False and result["slack_days"] < 0
    assert call("rfp", "estimate_timeline", make_ctx(base_url), {"deliverables": ["events"]})["capability_gaps"] == [
        "events"]
    assert get_spec("rfp", "2.3.1").tool("estimate_timeline") is None
    with pytest.raises(ToolError, match="YYYY-MM-DD"):
        call("rfp", "estimate_timeline", make_ctx(base_url), {"deliverables": ["video"], "start_date": "soon"})


# --- copy ---------------------------------------------------------------------------------


def test_get_brand_guidelines_returns_the_erp_guidelines_and_platform_rules(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("desert-bloom-cosmetics"), rules=[DISCOUNT_RULE])
    result = call("copy", "get_brand_guidelines", ctx, {})
    assert "whitening" in result["brand_guidelines"]["never"]
    assert result["competitors"] == ["Oud Luxe", "Sahara Glow"] and result["language"] == "ar"
    assert result["platform_rules"] == [DISCOUNT_RULE]


def test_get_approved_examples_filters_by_channel_and_language(erp):
    _, base_url = erp
    ctx = make_ctx(base_url)
    result = call("copy", "get_approved_examples", ctx,
                  {"client": "desert-bloom-cosmetics", "channel": "instagram", "language": "ar"})
    assert result["count"] == 1 and result["examples"][0]["text"].startswith("جمالك")
    none = call("copy", "get_approved_examples", ctx, {"client": "desert-bloom-cosmetics", "channel": "tv"})
    assert none["count"] == 0 and "instagram" in none["note"]


@pytest.mark.parametrize("text, flagged", [
    ("Get 20% off today", ["% off"]),
    ("Hurry, sale ends soon", ["Hurry", "sale"]),
    ("Glow like never before: softer than Sahara Glow", ["Sahara Glow"]),
    ("Huge DISCOUNTS this week", ["DISCOUNTS"]),
    ("Stocks are going fast, hurrying is wise", ["hurrying"]),
])
def test_check_brand_rules_flags_never_phrases_and_competitors(text, flagged):
    ctx = ToolContext(instance=None, run_id="r", tool_use_id="t", idempotency_key="r:t",
                      rules=(DISCOUNT_RULE, COMPETITOR_RULE, ALWAYS_RULE))
    result = call("copy", "check_brand_rules", ctx, {"text": text})
    assert result["passed"] is False
    assert [v["match"] for v in result["violations"]] == flagged
    for violation in result["violations"]:
        assert text[violation["start"]:violation["end"]] == violation["match"]
        assert violation["rule"] in (DISCOUNT_RULE["text"], COMPETITOR_RULE["text"])


def test_check_brand_rules_passes_a_clean_text_and_reminds_of_always_rules():
    ctx = ToolContext(instance=None, run_id="r", tool_use_id="t", idempotency_key="r:t",
                      rules=(DISCOUNT_RULE, COMPETITOR_RULE, ALWAYS_RULE))
    text = "Radiance rooted in the desert: the new collection, made for the Gulf sun. Wholesale enquiries welcome."
    result = call("copy", "check_brand_rules", ctx, {"text": text})
    assert result == {"passed": True, "violations": [], "rules_checked": 2, "reminders": [ALWAYS_RULE["text"]]}


def test_check_brand_rules_also_checks_the_erp_never_list_when_passed():
    ctx = ToolContext(instance=None, run_id="r", tool_use_id="t", idempotency_key="r:t")
    result = call("copy", "check_brand_rules", ctx, {"text": "A miracle cream, cheaper than Oud Luxe",
                                                     "extra_never": ["miracle", "cheap"],
                                                     "extra_competitors": ["Oud Luxe"]})
    assert [v["match"] for v in result["violations"]] == ["miracle", "cheaper", "Oud Luxe"]
    assert "note" in call("copy", "check_brand_rules", ctx, {"text": "anything"})


def test_check_brand_rules_reads_the_erp_never_lists_as_written(erp):
    _, base_url = erp
    guidelines = call("copy", "get_brand_guidelines", make_ctx(base_url, agency="beta"),
                      {"client": "thames-outfitters"})
    ctx = ToolContext(instance=None, run_id="r", tool_use_id="t", idempotency_key="r:t")
    check = {"extra_never": guidelines["brand_guidelines"]["never"], "extra_competitors": guidelines["competitors"]}
    flagged = call("copy", "check_brand_rules", ctx, {"text": "Eco-friendly jackets, less disposable than Barbour's",
                                                      **check})
    assert [v["match"] for v in flagged["violations"]] == ["Eco-friendly", "disposable", "Barbour"]
    clean = call("copy", "check_brand_rules", ctx, {"text": "Rain is just weather. Repairs are free for life.",
                                                    **check})
    assert clean["passed"] is True and clean["rules_checked"] == 6


def test_parallel_redeliveries_of_one_call_write_once(erp):
    _, base_url = erp
    client = client_of("desert-bloom-cosmetics")
    tool_input = {"content": "Radiance rooted in the desert.", "channel": "instagram", "language": "en"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: call("copy", "save_draft", make_ctx(base_url, client=client,
                                                                              key="run-7:toolu_x"), tool_input),
                                range(8)))
    assert {r["draft_id"] for r in results} == {"alpha-draft-0001"}
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 7


def test_save_draft_in_sandbox_mode_writes_nothing(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"), sandbox=True)
    result = call("copy", "save_draft", ctx, {"content": "Open an SME account in 10 minutes. Terms apply.",
                                             "channel": "linkedin"})
    assert result["simulated"] is True
    assert result["would_have"] == {"method": "POST", "path": "/drafts", "body": {
        "client": "gulf-bank", "content": "Open an SME account in 10 minutes. Terms apply.", "channel": "linkedin",
        "metadata": {"agent": "copy", "run_id": "run-1"}}}
    assert writes(base_url)["count"] == 0


# --- brief --------------------------------------------------------------------------------


def test_get_client_info_returns_profile_and_briefs(erp):
    _, base_url = erp
    result = call("brief", "get_client_info", make_ctx(base_url, client=client_of("gulf-bank")), {})
    assert result["client"]["name"] == "Gulf Bank" and result["client"]["annual_budget"] == 9_500_000
    assert [b["id"] for b in result["briefs"]] == ["alpha-b02"] and result["briefs_by_status"] == {"in_review": 1}


def test_create_brief_is_idempotent_and_simulated_in_sandbox(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    tool_input = {"title": "SME Ramadan push", "objective": "Open 3,000 SME accounts during Ramadan 2027.",
                  "channels": ["linkedin", "search"], "budget": 400000, "deadline": "2027-02-01"}
    sandboxed = call("brief", "create_brief", make_ctx(base_url, client=client, sandbox=True, key="k1"), tool_input)
    assert sandboxed["simulated"] is True and writes(base_url)["count"] == 0
    first = call("brief", "create_brief", make_ctx(base_url, client=client, key="k1"), tool_input)
    again = call("brief", "create_brief", make_ctx(base_url, client=client, key="k1"), tool_input)
    assert first == again and first["brief_id"] == "alpha-brief-0001"
    assert writes(base_url)["count"] == 1
    info = call("brief", "get_client_info", make_ctx(base_url, client=client), {})
    assert info["briefs"][0]["id"] == "alpha-brief-0001" and info["briefs"][0]["budget"] == 400000


# --- media buying -------------------------------------------------------------------------


def _expected(channel: str, spend: float, vertical="finance", region="GCC"):
    row = data.benchmark(channel, vertical, region)
    impressions = spend / row["cpm"] * 1000
    return row, impressions, impressions * row["ctr"] * row["cvr"]


def test_recommend_bid_strategy_default_differs_by_version(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    tool_input = {"monthly_budget": 50000}
    old = call("media_buying", "recommend_bid_strategy", ctx, tool_input, version="2.3.1")
    new = call("media_buying", "recommend_bid_strategy", ctx, tool_input, version="2.4.0")
    assert (old["objective"], old["strategy"]) == ("conversions", "target_cpa")
    assert (new["objective"], new["strategy"]) == ("reach", "maximize_reach")
    assert old["objective_source"] == new["objective_source"] == "version_default"
    conversions = sum(_expected(c, 25000)[2] for c in ("search", "social"))
    assert old["numbers"]["expected_monthly_conversions"] == pytest.approx(conversions, abs=0.2)
    assert old["numbers"]["target_cpa"] == pytest.approx(50000 / conversions * 1.1, rel=0.01)
    assert old["benchmarks"]["search"] == data.benchmark("search", "finance", "GCC")
    explicit = call("media_buying", "recommend_bid_strategy", ctx, {**tool_input, "objective": "conversions"},
                    version="2.4.0")
    assert explicit["strategy"] == "target_cpa", "an explicit objective behaves the same in both versions"


def test_recommend_bid_strategy_picks_roas_or_learning_by_volume(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, specialization={"vertical": "beauty", "region": "GCC"})
    roas = call("media_buying", "recommend_bid_strategy", ctx,
                {"objective": "sales", "monthly_budget": 80000, "average_order_value": 60})
    assert roas["strategy"] == "target_roas" and roas["numbers"]["target_roas"] > 0
    small = call("media_buying", "recommend_bid_strategy", ctx, {"objective": "leads", "monthly_budget": 500,
                                                                 "channels": ["search"]})
    assert small["strategy"] == "maximize_conversions" and "below" in small["reasoning"][-1]


def test_benchmark_tools_need_a_market_and_fall_back_to_the_erp_client(erp):
    _, base_url = erp
    with pytest.raises(ToolError, match="vertical and region for benchmarks is unknown"):
        call("media_buying", "recommend_bid_strategy", make_ctx(base_url), {"objective": "reach"})
    unclassified = Client(name="Gulf Bank", slug="gulf-bank", vertical="other", region="")
    bid = call("media_buying", "recommend_bid_strategy", make_ctx(base_url, client=unclassified), {"objective": "reach"})
    assert (bid["vertical"], bid["region"]) == ("finance", "GCC"), "from the ERP's record of the client"
    chosen = call("media_buying", "recommend_bid_strategy", make_ctx(base_url, client=unclassified),
                  {"objective": "reach", "vertical": "technology", "region": "US"})
    assert (chosen["vertical"], chosen["region"]) == ("technology", "US")


def test_forecast_budget_follows_the_benchmarks(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    result = call("media_buying", "forecast_budget", ctx, {"budget": 100000, "channel_split": {"search": 60,
                                                                                               "social": 40}})
    row, impressions, conversions = _expected("search", 60000)
    assert result["channels"]["search"]["impressions"] == round(impressions)
    assert result["channels"]["search"]["conversions"] == pytest.approx(conversions, abs=0.1)
    assert result["channels"]["search"]["cpm"] == row["cpm"] and result["channels"]["social"]["share"] == 0.4
    assert result["totals"]["spend"] == 100000
    with pytest.raises(ToolError, match="adds up to 0.9"):
        call("media_buying", "forecast_budget", ctx, {"budget": 1000, "channel_split": {"search": 0.5,
                                                                                        "social": 0.4}})


def test_save_plan_idempotent_and_sandboxed(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    plan = {"name": "Q1 SME", "budget": 120000, "channels": [{"channel": "search", "share": 0.6},
                                                             {"channel": "social", "share": 0.4}],
            "bid_strategy": "target_cpa", "forecast": {"conversions": 900}}
    call("media_buying", "save_plan", make_ctx(base_url, client=client, sandbox=True, key="p1"), plan)
    assert writes(base_url)["count"] == 0
    first = call("media_buying", "save_plan", make_ctx(base_url, client=client, key="p1"), plan)
    again = call("media_buying", "save_plan", make_ctx(base_url, client=client, key="p1"), plan)
    assert first == again and first["currency"] == "AED"
    log = writes(base_url)
    assert log["count"] == 1 and log["results"][0]["path"] == "/plans" and len(log["replays"]) == 1


def test_audience_expansion_sizes_lookalike_and_interest_audiences(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("desert-bloom-cosmetics"))
    result = call("media_buying", "audience_expansion", ctx, {"seed_audience_size": 50000, "budget": 20000})
    lookalike, interest = result["options"][0], result["options"][1]
    assert lookalike["audience_size"] == 1_200_000 and interest["audience_size"] == 400_000  # 3% of 40M; 8x seed
    cpm = data.benchmark("social", "beauty", "GCC")["cpm"]
    assert lookalike["expected_cpm"] == round(cpm * 0.9, 2)
    assert lookalike["estimated_reach"] == round(20000 / lookalike["expected_cpm"] * 1000 / 3)
    assert result["recommended"] in {"lookalike", "interest"}
    assert get_spec("media_buying", "2.3.1").tool("audience_expansion") is None


# --- clients, errors, and the instance's own ERP ------------------------------------------

CLIENT_TOOLS = [("rfp", "draft_response", {"title": "t", "content": "c"}),
                ("copy", "get_brand_guidelines", {}), ("copy", "get_approved_examples", {}),
                ("copy", "save_draft", {"content": "c"}), ("brief", "get_client_info", {}),
                ("brief", "create_brief", {"title": "t", "objective": "o"}),
                ("media_buying", "save_plan", {"name": "n", "budget": 1, "channels": [{"channel": "search"}]}),
                ("media_buying", "forecast_budget", {"budget": 1, "channel_split": {"search": 1}})]


@pytest.mark.parametrize("agent_type, tool_name, tool_input", CLIENT_TOOLS, ids=[t[1] for t in CLIENT_TOOLS])
def test_a_client_tool_without_a_client_asks_for_one(erp, agent_type, tool_name, tool_input):
    _, base_url = erp
    with pytest.raises(ToolError, match="client") as error:
        call(agent_type, tool_name, make_ctx(base_url), tool_input)
    assert "slug" in error.value.message
    assert writes(base_url)["count"] == 0


def test_a_run_for_one_client_cannot_act_for_another(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    with pytest.raises(ToolError, match="run is for the client 'gulf-bank'"):
        call("copy", "save_draft", ctx, {"content": "x", "client": "desert-bloom-cosmetics"})
    assert writes(base_url)["count"] == 0


def test_an_unknown_client_slug_is_the_erps_readable_404(erp):
    _, base_url = erp
    with pytest.raises(ErpError, match="HTTP 404: No client 'acme'. Clients: desert-bloom-cosmetics, gulf-bank"):
        call("brief", "get_client_info", make_ctx(base_url), {"client": "acme"})


def test_erp_failures_propagate_as_readable_erp_errors(egress_loopback):
    server, base_url = start_sample_erp(failures={"/projects": 503})
    egress_loopback(server.server_port)
    try:
        with pytest.raises(ErpError) as error:
            call("rfp", "query_past_projects", make_ctx(base_url), {})
        assert error.value.code == "erp_http_error" and error.value.status_code == 503
        assert error.value.message.startswith("The ERP answered GET /projects with HTTP 503")
    finally:
        server.stop()
    with pytest.raises(ErpError, match="could not be reached for GET /team; try again later") as down:
        call("rfp", "get_team_capabilities", make_ctx(base_url), {})
    assert down.value.code == "erp_unreachable"


def test_tools_reach_the_erp_configured_on_the_instance(erp, in_a):
    from spokestack.tenancy.models import Instance
    from spokestack.tenancy.services import instance_set_erp
    from tuning.services import client_create

    _, base_url = erp
    instance = instance_set_erp(instance=Instance.objects.get(pk=in_a.pk), base_url=base_url,
                                api_key=data.DEMO_API_KEYS["beta"])
    client = client_create(name="Covent Kitchen", vertical="food", region="EU", language="en")
    ctx = ToolContext(instance=instance, run_id="run-9", tool_use_id="toolu_9", idempotency_key="run-9:toolu_9",
                      client=client)
    info = call("brief", "get_client_info", ctx, {})
    assert info["client"]["contact"] == "Marco Rossi, Founder" and info["briefs"][0]["id"] == "beta-b02"
    bid = call("media_buying", "recommend_bid_strategy", ctx, {"objective": "awareness"})
    assert (bid["vertical"], bid["region"], bid["strategy"]) == ("food", "EU", "maximize_reach")


def test_an_instance_without_an_erp_gets_a_readable_error(in_a):
    from spokestack.tenancy.models import Instance
    from spokestack.tenancy.services import instance_set_erp

    instance = instance_set_erp(instance=Instance.objects.get(pk=in_a.pk), base_url="", api_key="")
    ctx = ToolContext(instance=instance, run_id="r", tool_use_id="t", idempotency_key="r:t")
    with pytest.raises(ErpNotConfigured, match="an admin must set its base URL"):
        call("rfp", "get_team_capabilities", ctx, {})
