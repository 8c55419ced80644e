# ruff: noqa: F811 - the ERP fixture is imported by name
"""Brief 2.4.0 against a real sample ERP on loopback: past briefs, audience segments, the channel
mix computed from them and the market benchmarks, and update_brief (exactly once per idempotency
key, nothing written in sandbox mode, never another client's brief); plus the ERP's /audiences
endpoints and the release's declared changes."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request

import pytest

from agents.registry import ToolError, get_spec
from agents.tools import brief as brief_tools
from spokestack.erp import ErpClient, ErpError
from spokestack.sample_erp import data
from spokestack.sample_erp.audiences import AUDIENCES

from .test_specs import _diff
from .test_tools import call, client_of, erp, make_ctx, writes  # noqa: F401 - erp is a fixture

CHANNELS = data.CHANNELS


def ctx_for(base_url: str, *, settings=None, client_scope=None, **kwargs):
    """make_ctx plus the two things a run may add: the tool's settings and the creator's client scope."""
    ctx = make_ctx(base_url, **kwargs)
    return dataclasses.replace(ctx, settings=settings or {}, client_scope=client_scope)


def erp_get(base_url: str, path: str, agency: str | None = "alpha") -> tuple[int, dict]:
    request = urllib.request.Request(base_url + path, headers={"X-Api-Key": data.DEMO_API_KEYS[agency]} if agency
                                     else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def segments(slug: str) -> list[dict]:
    return [s for rows in AUDIENCES.values() for s in rows if s["client"] == slug]


def weighted(rows: list[dict]) -> dict[str, float]:
    total = sum(s["size"] for s in rows)
    return {c: sum(s["channel_habits"][c] * s["size"] for s in rows) / total for c in CHANNELS}


# --- the ERP's audience endpoints ---------------------------------------------------------------


def test_audiences_endpoint_lists_the_agency_s_segments_largest_first_and_filters(erp):
    _, base_url = erp
    status, body = erp_get(base_url, "/audiences")
    assert status == 200 and body["count"] == 5
    assert [r["id"] for r in body["results"]] == ["alpha-aud-01", "alpha-aud-02", "alpha-aud-03", "alpha-aud-04",
                                                  "alpha-aud-05"]
    assert {r["client"] for r in body["results"]} == {"desert-bloom-cosmetics", "gulf-bank"}
    status, body = erp_get(base_url, "/audiences?client=gulf-bank")
    assert [(r["id"], r["size"]) for r in body["results"]] == [("alpha-aud-04", 410_000), ("alpha-aud-05", 185_000)]
    assert body["results"][0]["channel_habits"] == {"search": 0.32, "social": 0.26, "display": 0.08, "video": 0.2,
                                                    "ctv": 0.14}
    assert (body["results"][0]["age_min"], body["results"][0]["age_max"]) == (30, 45)
    assert [r["id"] for r in erp_get(base_url, "/audiences?client=gulf-bank&language=HI")[1]["results"]] == [
        "alpha-aud-04"]
    assert [r["id"] for r in erp_get(base_url, "/audiences?min_size=900000")[1]["results"]] == [
        "alpha-aud-01", "alpha-aud-02"]
    status, body = erp_get(base_url, "/audiences?client=thames-outfitters", agency="beta")
    assert status == 200 and [r["id"] for r in body["results"]] == ["beta-aud-01", "beta-aud-02"]


def test_audiences_endpoint_errors_are_readable(erp):
    _, base_url = erp
    status, body = erp_get(base_url, "/audiences?client=thames-outfitters")
    assert status == 404 and body["error"]["message"] == (
        "No client 'thames-outfitters'. Clients: desert-bloom-cosmetics, gulf-bank.")
    status, body = erp_get(base_url, "/audiences?language=arabic")
    assert status == 400 and "two-letter language code" in body["error"]["message"]
    status, body = erp_get(base_url, "/audiences?min_size=-5")
    assert status == 400 and body["error"]["message"] == "min_size: must be a whole number of people (0 or more)."
    assert erp_get(base_url, "/audiences", agency=None)[0] == 401
    status, body = erp_get(base_url, "/audiences/alpha-aud-03")
    assert status == 200 and body["name"] == "Professional women 35-50"
    status, body = erp_get(base_url, "/audiences/alpha-aud-03", agency="beta")
    assert status == 404 and body["error"]["message"] == "No audience 'alpha-aud-03'.", "another agency's id"
    erp_client = ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS["alpha"])
    with pytest.raises(ErpError) as refused:
        erp_client.post("/audiences", {"client": "gulf-bank"}, idempotency_key="k")
    assert refused.value.status_code == 405 and writes(base_url)["count"] == 0


def test_brief_patch_endpoint_checks_status_and_agency(erp):
    _, base_url = erp
    alpha = ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS["alpha"])
    with pytest.raises(ErpError, match="status: 'done' is not one of draft, in_review, approved, archived"):
        alpha.patch("/briefs/alpha-b02", {"status": "done"}, idempotency_key="p1")
    with pytest.raises(ErpError, match="HTTP 404: No brief 'alpha-b02'"):
        ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS["beta"]).patch(
            "/briefs/alpha-b02", {"status": "archived"}, idempotency_key="p2")
    assert alpha.patch("/briefs/alpha-b02", {"status": "approved"}, idempotency_key="p3")["status"] == "approved"
    assert writes(base_url)["count"] == 1 and writes(base_url, "beta")["count"] == 0


# --- get_past_briefs ---------------------------------------------------------------------------


def test_get_past_briefs_lists_the_client_s_briefs_with_channels_and_budgets(erp):
    _, base_url = erp
    result = call("brief", "get_past_briefs", make_ctx(base_url, client=client_of("gulf-bank")), {})
    assert [b["id"] for b in result["briefs"]] == ["alpha-b02"] and result["count"] == 1
    assert result["briefs"][0]["budget"] == 1_200_000 and result["briefs"][0]["status"] == "in_review"
    assert result["briefs_by_status"] == {"in_review": 1}
    assert result["channels_used"] == {"linkedin": 1, "search": 1, "youtube": 1}
    assert result["budgets"] == {"min": 1_200_000, "max": 1_200_000, "total": 1_200_000, "approved_total": 0}
    approved = call("brief", "get_past_briefs", make_ctx(base_url), {"client": "desert-bloom-cosmetics",
                                                                     "status": ["approved"]})
    assert [b["id"] for b in approved["briefs"]] == ["alpha-b01"] and approved["budgets"]["approved_total"] == 600_000
    none = call("brief", "get_past_briefs", make_ctx(base_url), {"client": "gulf-bank", "status": ["draft"]})
    assert none["count"] == 0 and none["briefs"] == [] and none["briefs_by_status"] == {"in_review": 1}


def test_get_past_briefs_is_newest_first_by_instant_and_limited(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    for n in (1, 2):
        call("brief", "create_brief", make_ctx(base_url, client=client, key=f"new-{n}"),
             {"title": f"Brief {n}", "objective": "Open 1,000 accounts by 2027-03-31.", "channels": ["search"]})
    result = call("brief", "get_past_briefs", make_ctx(base_url, client=client), {"limit": 2})
    assert [b["id"] for b in result["briefs"]] == ["alpha-brief-0002", "alpha-brief-0001"]
    assert result["count"] == 3 and result["briefs_not_shown"] == 1
    assert result["channels_used"] == {"search": 3, "linkedin": 1, "youtube": 1}
    assert result["briefs_by_status"] == {"in_review": 1, "draft": 2}
    # Local offsets compare as instants: 06:30Z is later than 09:00+04:00 (05:00Z), whatever the text says.
    mixed = [{"id": "a", "created_at": "2026-03-02T09:00:00+04:00"}, {"id": "b", "created_at": "2026-03-02T06:30:00+00:00"}]
    assert [b["id"] for b in brief_tools._newest_first(mixed)] == ["b", "a"]


def test_get_past_briefs_setting_hides_budgets(erp):
    _, base_url = erp
    ctx = ctx_for(base_url, client=client_of("gulf-bank"), settings={"include_budgets": False})
    result = call("brief", "get_past_briefs", ctx, {})
    assert "budget" not in result["briefs"][0] and "budgets" not in result
    assert result["briefs"][0]["objective"].startswith("Raise consideration") and "not show past budgets" in result[
        "note"]


# --- get_audience_data -------------------------------------------------------------------------


def test_get_audience_data_returns_sized_segments_and_weighted_habits(erp):
    _, base_url = erp
    result = call("brief", "get_audience_data", make_ctx(base_url, client=client_of("desert-bloom-cosmetics")), {})
    assert [(s["id"], s["size"]) for s in result["segments"]] == [
        ("alpha-aud-01", 1_850_000), ("alpha-aud-02", 920_000), ("alpha-aud-03", 640_000)]
    assert result["largest_segment_size"] == 1_850_000 and result["languages"] == ["ar", "en"]
    expected = weighted(segments("desert-bloom-cosmetics"))
    assert result["channel_habits_weighted"] == {c: round(v, 4) for c, v in expected.items()}
    assert result["channel_habits_weighted"]["social"] == pytest.approx(0.4377, abs=1e-4)
    assert result["segments"][0]["interests"][0] == "skincare" and "note" not in result


def test_get_audience_data_filters_by_language_and_the_agency_s_minimum_size(erp):
    _, base_url = erp
    hindi = call("brief", "get_audience_data", make_ctx(base_url), {"client": "gulf-bank", "language": "hi"})
    assert [s["name"] for s in hindi["segments"]] == ["Expat families"]
    french = call("brief", "get_audience_data", make_ctx(base_url), {"client": "gulf-bank", "language": "fr"})
    assert french["count"] == 0 and "Describe the audience from the request" in french["note"]
    big = call("brief", "get_audience_data", ctx_for(base_url, client=client_of("desert-bloom-cosmetics"),
                                                     settings={"min_segment_size": 1_000_000}), {})
    assert [s["id"] for s in big["segments"]] == ["alpha-aud-01"]
    assert big["note"] == "Segments under 1,000,000 people are left out by the agency's settings."


# --- get_channel_mix ---------------------------------------------------------------------------


def expected_shares(slug, objective, vertical, region, *, weight=0.5, floor=0.05, ids=None):
    metric = {"awareness": "cpm", "consideration": "cpc", "conversion": "cpa"}[objective]
    rows = [s for s in segments(slug) if ids is None or s["id"] in ids]
    habits = weighted(rows)
    cost = {c: data.benchmark(c, vertical, region)[metric] for c in CHANNELS}
    best = min(cost.values())
    score = {c: habits[c] * (best / cost[c]) ** weight for c in CHANNELS}
    kept = list(CHANNELS)
    while True:
        shares = {c: score[c] / sum(score[k] for k in kept) for c in kept}
        small = [c for c in kept if shares[c] < floor]
        if not small:
            return shares
        kept.remove(min(small, key=lambda c: shares[c]))


def test_get_channel_mix_follows_habits_and_benchmarks_with_its_numbers(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    result = call("brief", "get_channel_mix", ctx, {"objective": "conversion", "budget": 100_000})
    expected = expected_shares("gulf-bank", "conversion", "finance", "GCC")
    assert (result["vertical"], result["region"], result["metric"]) == ("finance", "GCC", "cpa")
    assert {line["channel"]: line["share"] for line in result["mix"]} == pytest.approx(expected, abs=0.0015)
    assert sum(line["share"] for line in result["mix"]) == pytest.approx(1.0, abs=1e-9)
    assert [line["share"] for line in result["mix"]] == sorted((line["share"] for line in result["mix"]), reverse=True)
    search = next(line for line in result["mix"] if line["channel"] == "search")
    bench = data.benchmark("search", "finance", "GCC")
    assert search["cpa"] == bench["cpa"] and search["benchmark"]["cpm"] == bench["cpm"]
    assert search["habit_share"] == pytest.approx(weighted(segments("gulf-bank"))["search"], abs=1e-4)
    assert search["spend"] == pytest.approx(100_000 * search["share"])
    assert search["expected_impressions"] == round(search["spend"] / bench["cpm"] * 1000)
    assert sum(line["spend"] for line in result["mix"]) == pytest.approx(100_000, abs=0.05)
    assert [s["id"] for s in result["segments"]] == ["alpha-aud-04", "alpha-aud-05"]
    assert "finance/GCC" in result["reasoning"][1] and "habit × efficiency_index^0.5" in result["reasoning"][2]
    assert call("brief", "get_channel_mix", ctx, {"objective": "conversion", "budget": 100_000}) == result


def test_get_channel_mix_objective_segments_and_channels_change_the_split(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("desert-bloom-cosmetics"))
    awareness = call("brief", "get_channel_mix", ctx, {"objective": "awareness"})
    conversion = call("brief", "get_channel_mix", ctx, {"objective": "conversion"})
    for result, objective in ((awareness, "awareness"), (conversion, "conversion")):
        expected = expected_shares("desert-bloom-cosmetics", objective, "beauty", "GCC")
        assert {line["channel"]: line["share"] for line in result["mix"]} == pytest.approx(expected, abs=0.0015)
    assert awareness["mix"] != conversion["mix"] and awareness["mix"][0]["channel"] == "social"
    gifting = call("brief", "get_channel_mix", ctx, {"objective": "awareness", "audience_ids": ["alpha-aud-02"]})
    assert [s["id"] for s in gifting["segments"]] == ["alpha-aud-02"]
    assert {line["channel"]: line["share"] for line in gifting["mix"]} == pytest.approx(
        expected_shares("desert-bloom-cosmetics", "awareness", "beauty", "GCC", ids={"alpha-aud-02"}), abs=0.0015)
    two = call("brief", "get_channel_mix", ctx, {"objective": "consideration", "channels": ["search", "social"]})
    assert {line["channel"] for line in two["mix"]} == {"search", "social"}
    assert sum(line["share"] for line in two["mix"]) == pytest.approx(1.0)
    us = call("brief", "get_channel_mix", ctx, {"objective": "awareness", "region": "US"})
    assert us["region"] == "US" and us["mix"][0]["cpm"] == data.benchmark(us["mix"][0]["channel"], "beauty", "US")["cpm"]


def test_get_channel_mix_settings_change_the_split(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    habits_only = call("brief", "get_channel_mix", ctx_for(base_url, client=client, settings={"efficiency_weight": 0}),
                       {"objective": "awareness"})
    habits = weighted(segments("gulf-bank"))
    assert {line["channel"]: line["share"] for line in habits_only["mix"]} == pytest.approx(habits, abs=0.0015)
    default = call("brief", "get_channel_mix", make_ctx(base_url, client=client), {"objective": "awareness"})
    assert default["mix"] != habits_only["mix"]
    strict = call("brief", "get_channel_mix", ctx_for(base_url, client=client, settings={"min_channel_share": 0.2}),
                  {"objective": "awareness"})
    expected = expected_shares("gulf-bank", "awareness", "finance", "GCC", floor=0.2)
    assert {line["channel"]: line["share"] for line in strict["mix"]} == pytest.approx(expected, abs=0.0015)
    assert all(line["share"] >= 0.2 for line in strict["mix"]) and len(strict["mix"]) < len(default["mix"])
    assert {d["channel"] for d in strict["dropped"]} == set(CHANNELS) - set(expected)
    assert strict["settings"] == {"efficiency_weight": 0.5, "min_channel_share": 0.2}


def test_get_channel_mix_refuses_unknown_segments_and_needs_a_client(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    with pytest.raises(ToolError, match=r"No segment 'alpha-aud-01' for 'gulf-bank'; its segments are "
                                        r"alpha-aud-04, alpha-aud-05"):
        call("brief", "get_channel_mix", ctx, {"objective": "awareness", "audience_ids": ["alpha-aud-01"]})
    with pytest.raises(ToolError, match="needs to know the client"):
        call("brief", "get_channel_mix", make_ctx(base_url), {"objective": "awareness"})


# --- update_brief ------------------------------------------------------------------------------


def test_update_brief_changes_fields_once_per_key_and_nothing_in_sandbox(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    change = {"brief_id": "alpha-b02", "status": "approved", "budget": 1_350_000, "channels": ["search", "youtube"]}
    sandboxed = call("brief", "update_brief", make_ctx(base_url, client=client, sandbox=True, key="u1"), change)
    assert sandboxed["simulated"] is True and sandboxed["would_have"] == {
        "method": "PATCH", "path": "/briefs/alpha-b02",
        "body": {"status": "approved", "budget": 1_350_000, "channels": ["search", "youtube"]}}
    assert writes(base_url)["count"] == 0
    first = call("brief", "update_brief", make_ctx(base_url, client=client, key="u1"), change)
    again = call("brief", "update_brief", make_ctx(base_url, client=client, key="u1"), change)
    assert first["brief_id"] == "alpha-b02" and first["status"] == "approved" and first["status_before"] == "in_review"
    assert first["changed"] == ["budget", "channels", "status"] and first["updated_at"]
    assert again["status"] == "approved"
    log = writes(base_url)
    assert log["count"] == 1 and len(log["replays"]) == 1
    assert (log["results"][0]["method"], log["results"][0]["path"]) == ("PATCH", "/briefs/alpha-b02")
    past = call("brief", "get_past_briefs", make_ctx(base_url, client=client), {})
    assert past["briefs"][0]["budget"] == 1_350_000 and past["briefs_by_status"] == {"approved": 1}


def test_update_brief_never_touches_another_client_s_or_agency_s_brief(erp):
    _, base_url = erp
    ctx = make_ctx(base_url, client=client_of("gulf-bank"))
    with pytest.raises(ToolError, match="'alpha-b01' is not one of 'gulf-bank's briefs") as refused:
        call("brief", "update_brief", ctx, {"brief_id": "alpha-b01", "status": "archived"})
    assert "desert-bloom" not in refused.value.message
    with pytest.raises(ErpError, match="HTTP 404: No brief 'beta-b01'"):
        call("brief", "update_brief", ctx, {"brief_id": "beta-b01", "status": "archived"})
    with pytest.raises(ToolError, match="Nothing to change"):
        call("brief", "update_brief", ctx, {"brief_id": "alpha-b02"})
    with pytest.raises(ToolError, match="YYYY-MM-DD"):
        call("brief", "update_brief", ctx, {"brief_id": "alpha-b02", "deadline": "next spring"})
    assert writes(base_url)["count"] == 0


def test_update_brief_approval_can_be_kept_for_a_person(erp):
    _, base_url = erp
    client = client_of("gulf-bank")
    ctx = ctx_for(base_url, client=client, settings={"allow_approval": False})
    with pytest.raises(ToolError, match="a person approves briefs"):
        call("brief", "update_brief", ctx, {"brief_id": "alpha-b02", "status": "approved"})
    assert call("brief", "update_brief", ctx, {"brief_id": "alpha-b02", "status": "in_review",
                                               "notes": "Ready for Omar."})["status"] == "in_review"
    assert writes(base_url)["count"] == 1


# --- client scope ----------------------------------------------------------------------------

BRIEF_READS = [("get_past_briefs", {}), ("get_audience_data", {}), ("get_channel_mix", {"objective": "awareness"}),
               ("update_brief", {"brief_id": "alpha-b01", "status": "archived"})]


@pytest.mark.parametrize("tool_name, tool_input", BRIEF_READS, ids=[t[0] for t in BRIEF_READS])
def test_a_scoped_run_cannot_reach_a_client_outside_its_scope(erp, tool_name, tool_input):
    _, base_url = erp
    ctx = ctx_for(base_url, client_scope=frozenset({"gulf-bank"}))
    with pytest.raises(ToolError, match="There is no client 'desert-bloom-cosmetics' this run may act for"):
        call("brief", tool_name, ctx, {**tool_input, "client": "desert-bloom-cosmetics"})
    assert writes(base_url)["count"] == 0


def test_a_scoped_run_sees_only_its_client_s_rows_even_from_an_erp_that_ignores_the_filter(erp):
    _, base_url = erp
    real = ErpClient(base_url=base_url, api_key=data.DEMO_API_KEYS["alpha"])

    class IgnoresClientFilter:
        """A customer's ERP that answers every list with all of the agency's rows."""

        def get(self, path, params=None):
            return real.get(path, params={k: v for k, v in (params or {}).items() if k != "client"})

    ctx = dataclasses.replace(ctx_for(base_url, client_scope=frozenset({"gulf-bank"})),
                              erp_factory=IgnoresClientFilter)
    briefs = call("brief", "get_past_briefs", ctx, {"client": "gulf-bank"})
    assert [b["id"] for b in briefs["briefs"]] == ["alpha-b02"] and briefs["briefs_by_status"] == {"in_review": 1}
    audiences = call("brief", "get_audience_data", ctx, {"client": "gulf-bank"})
    assert {s["client"] for s in audiences["segments"]} == {"gulf-bank"} and audiences["count"] == 2
    mix = call("brief", "get_channel_mix", ctx, {"client": "gulf-bank", "objective": "awareness"})
    assert [s["id"] for s in mix["segments"]] == ["alpha-aud-04", "alpha-aud-05"]


# --- the release --------------------------------------------------------------------------------


def test_brief_2_4_0_declares_exactly_its_tool_changes_and_keeps_2_3_1():
    old, new = get_spec("brief", "2.3.1"), get_spec("brief", "2.4.0")
    assert get_spec("brief").version == "2.4.0"
    declared = {(c.kind, c.tool) for c in new.release.tool_changes}
    assert declared == _diff(old, new) == {("added", "get_past_briefs"), ("added", "get_audience_data"),
                                           ("added", "get_channel_mix"), ("added", "update_brief")}
    for name in ("get_client_info", "create_brief", "remember", "search_knowledge"):
        assert old.tool(name) is new.tool(name), f"{name} is shared, not copied"
    assert [t.name for t in old.tools] == ["get_client_info", "create_brief", "remember", "search_knowledge"]
    assert "get_channel_mix" not in old.base_prompt and old.release.release_date == "2026-09-15"
    assert new.release.release_date == "2026-12-01" and not new.release.breaking
    assert new.release.prompt_changes and new.release.behaviour_changes and new.release.notes.startswith("## ")
    assert new.tool("update_brief").side_effect and not new.tool("get_channel_mix").side_effect
    for name in ("get_past_briefs", "get_audience_data", "get_channel_mix", "update_brief"):
        assert name in new.base_prompt and f"`{name}`" in new.release.notes
