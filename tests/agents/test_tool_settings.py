# ruff: noqa: F811 - fixtures shared with tests/skills are imported by name
"""Tool settings reach the tools (issue #14, found 1): a value saved in `tool_config_overrides`
changes what the tool does in the next run — seen in the tool result the model receives in its
next request (the real loop, the real anthropic SDK against the fake Messages API, the sample ERP
behind the tools) — is refused when saved if the tool does not honour it, and never changes the
tools the model is sent (prompt caching needs byte-stable tools)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from agents.loop import execute_run
from agents.models import RunStatus
from agents.registry import agent_types, get_spec, versions
from agents.services import run_create
from spokestack.sample_erp import DEMO_API_KEYS
from spokestack.tenancy.services import instance_set_erp
from tuning.models import InstanceTuning, TuningChange
from tuning.precedence import effective_tool_settings
from tuning.services import client_create, instance_tuning_update

from ..skills.conftest import scripted, text_turn, tool_turn  # noqa: F401


@pytest.fixture
def agency(in_a, sample_erp, egress_loopback, make_user, assigned):
    """The sample ERP's alpha agency behind the tools, a client of it, an instance admin, and an
    account manager of that client."""
    egress_loopback(sample_erp[0].server_port)
    instance_set_erp(instance=connection.tenant, base_url=sample_erp[1], api_key=DEMO_API_KEYS["alpha"])
    client = client_create(name="Desert Bloom Cosmetics", slug="desert-bloom-cosmetics", vertical="beauty",
                           region="GCC", language="en")
    return {"instance": in_a, "client": client, "admin": make_user("instance_admin"),
            "manager": assigned("account_manager", client)}


@dataclass
class Sent:
    requests: list[dict]  # the run's model requests, as the fake Messages API received them

    def result(self) -> tuple[bool, Any]:
        """(is_error, result) of the run's one tool call, as the model's next request carries it."""
        (block,) = [b for m in self.requests[1]["messages"] if m["role"] == "user" and isinstance(m["content"], list)
                    for b in m["content"] if b.get("type") == "tool_result"]
        try:
            return bool(block.get("is_error")), json.loads(block["content"])
        except json.JSONDecodeError:
            return bool(block.get("is_error")), block["content"]


def run_tool(model, agency, agent_type: str, tool: str, tool_input: dict) -> Sent:
    """One sandboxed run of `agent_type` whose scripted model calls `tool` once, then answers."""
    marker = f"[tool-settings-{uuid.uuid4().hex[:8]}]"
    model.script(marker, [tool_turn((f"toolu_{uuid.uuid4().hex[:12]}", tool, tool_input)), text_turn("Done.")])
    run = run_create(actor=agency["admin"], agent_type=agent_type, task=f"Use {tool} {marker}",
                     client_id=agency["client"].pk, sandbox=True).run
    assert execute_run(run_id=str(run.pk), worker="tool-settings") == RunStatus.SUCCEEDED
    sent = Sent(model.requests(marker))
    assert len(sent.requests) == 2
    return sent


def test_a_setting_saved_through_the_api_changes_the_next_run_s_tool_result(agency, scripted, api):
    admin = api(agency["instance"], agency["admin"])
    asking_for_five = {"limit": 5}
    is_error, before = run_tool(scripted, agency, "rfp", "query_past_projects", asking_for_five).result()
    assert not is_error and before["returned"] == len(before["projects"]) == 5

    response = admin.put("/api/v1/agents/rfp/tuning", {
        "tool_config_overrides": {"query_past_projects": {"limit": 2}}, "reason": "two case studies are enough"},
        format="json")
    assert response.status_code == 200, response.content
    assert response.json()["tool_config_overrides"] == {"query_past_projects": {"limit": 2}}

    is_error, after = run_tool(scripted, agency, "rfp", "query_past_projects", asking_for_five).result()
    assert not is_error and after["returned"] == len(after["projects"]) == 2
    assert after["note"] == "The agency returns at most 2 projects a call."
    assert [p["id"] for p in after["projects"]] == [p["id"] for p in before["projects"][:2]]

    # Rolled back through the audit log, the next run gets five again.
    entry = TuningChange.objects.filter(field="tool_config_overrides").order_by("-id").first()
    assert admin.post(f"/api/v1/tuning/rollback/{entry.pk}", {}, format="json").status_code == 201
    _, again = run_tool(scripted, agency, "rfp", "query_past_projects", asking_for_five).result()
    assert again["returned"] == 5


def test_the_tools_sent_to_the_model_are_byte_identical_with_and_without_settings(agency, scripted):
    before = run_tool(scripted, agency, "rfp", "query_past_projects", {}).requests[0]
    instance_tuning_update(actor=None, agent_type="rfp", changes={"tool_config_overrides": {
        "query_past_projects": {"limit": 3, "include_lost": False}, "estimate_timeline": {"buffer_weeks": 2}}})
    sent = run_tool(scripted, agency, "rfp", "query_past_projects", {})
    after = sent.requests[0]
    assert json.dumps(before["tools"]) == json.dumps(after["tools"])
    assert json.dumps(before["system"]) == json.dumps(after["system"])
    assert sent.result()[1]["returned"] == 3, "the settings did apply"
    described = {tool["name"]: tool["description"] for tool in after["tools"]}
    assert described["query_past_projects"].endswith(
        " Agency settings: include_lost (true or false, default true), limit (1–20, default 8).")
    assert described["estimate_timeline"].endswith(" Agency settings: buffer_weeks (0–8, default 0).")


def test_every_core_tool_description_lists_exactly_the_keys_it_honours():
    typed = set()
    for agent_type in agent_types():
        for version in versions(agent_type):
            spec = get_spec(agent_type, version)
            assert any(tool.settings for tool in spec.tools), f"{agent_type} {version} has no tool settings"
            for tool in spec.tools:
                description = tool.definition()["description"]
                assert len(description) <= 1024
                if not tool.settings:
                    assert "Agency settings" not in description
                    continue
                listed = description.rsplit(" Agency settings: ", 1)[1]
                for key, declared in tool.settings.items():
                    assert f"{key} (" in listed and declared["description"]
                    typed.add(declared["type"])
                assert set(tool.input_schema.get("properties", {})).isdisjoint(set(tool.settings) - {"limit"}), \
                    "a setting is the agency's, not a model input (limit caps the input of the same name)"
    assert {"integer", "number", "boolean"} <= typed


# --- every declared key changes what its tool does -------------------------------------------

RFP_TEXT = "# RFP\n" + "\n".join(f"The agency must deliver item {n} on time." for n in range(1, 9)) + \
    "\nDeliverables:\n" + "\n".join(f"- Deliverable {n}" for n in range(1, 9))


@dataclass
class Probe:
    agent_type: str
    tool_input: dict
    value: Any  # the setting's new value
    see: Callable[[tuple[bool, Any], tuple[bool, Any]], None]  # (before, after) -> assert the difference


def refused(words: str) -> Callable[[tuple[bool, Any], tuple[bool, Any]], None]:
    def see(before, after) -> None:
        assert not before[0], before
        assert after[0] and words in after[1], after
    return see


def changed(pick: Callable[[Any], Any], old: Any, new: Any) -> Callable[[tuple[bool, Any], tuple[bool, Any]], None]:
    def see(before, after) -> None:
        assert not before[0] and not after[0], (before, after)
        assert (pick(before[1]), pick(after[1])) == (old, new)
    return see


PROBES: dict[tuple[str, str], Probe] = {
    ("get_client_info", "max_briefs"): Probe("brief", {}, 0, lambda b, a: (
        not b[0] and b[1]["briefs"] and a[1]["briefs"] == [] and a[1]["briefs_not_shown"] == len(b[1]["briefs"])
        and a[1]["briefs_by_status"] == b[1]["briefs_by_status"]) or pytest.fail(f"{b} / {a}")),
    ("create_brief", "require_budget"): Probe(
        "brief", {"title": "Eid gifting", "objective": "Sell 5,000 sets by 2027-03-30", "deadline": "2027-01-15"},
        True, refused("no brief without a budget")),
    ("create_brief", "require_deadline"): Probe(
        "brief", {"title": "Eid gifting", "objective": "Sell 5,000 sets by 2027-03-30", "budget": 50000},
        True, refused("no brief without a deadline")),
    ("get_approved_examples", "limit"): Probe("copy", {}, 1, lambda b, a: (
        len(b[1]["examples"]) == 3 and len(a[1]["examples"]) == 1 and a[1]["count"] == 3
        and a[1]["examples_not_shown"] == 2) or pytest.fail(f"{b} / {a}")),
    ("analyze_rfp", "max_items"): Probe("rfp", {"rfp_text": RFP_TEXT}, 5, lambda b, a: (
        len(b[1]["requirements"]) == 8 and len(a[1]["requirements"]) == 5 and len(a[1]["deliverables"]) == 5
        and a[1]["counts"] == b[1]["counts"]) or pytest.fail(f"{b} / {a}")),
    ("query_past_projects", "limit"): Probe("rfp", {}, 2, changed(lambda r: r["returned"], 8, 2)),
    ("query_past_projects", "include_lost"): Probe("rfp", {"outcome": "lost"}, False,
                                                   refused("does not share lost pitches")),
    ("get_team_capabilities", "min_share_free"): Probe("rfp", {}, 0.5, lambda b, a: (
        b[1]["count"] == 6 and 0 < a[1]["count"] < 6
        and all(m["availability"]["share_free"] >= 0.5 for m in a[1]["members"])
        and a[1]["left_out_as_busy"] == {"people": 6 - a[1]["count"], "min_share_free": 0.5})
        or pytest.fail(f"{b} / {a}")),
    ("draft_response", "min_words"): Probe("rfp", {"title": "Response", "content": "Too short to be a response."},
                                           200, refused("at least 200 words")),
    ("estimate_timeline", "buffer_weeks"): Probe(
        "rfp", {"deliverables": ["Campaign strategy"], "start_date": "2027-01-04"}, 2, lambda b, a: (
            a[1]["phases"][-1] == {**a[1]["phases"][-1], "phase": "Contingency", "weeks": 2}
            and a[1]["total_weeks"] == b[1]["total_weeks"] + 2) or pytest.fail(f"{b} / {a}")),
    ("recommend_bid_strategy", "min_conversions_target_cpa"): Probe(
        "media_buying", {"objective": "leads", "monthly_budget": 500}, 1,
        changed(lambda r: r["strategy"], "maximize_conversions", "target_cpa")),
    ("recommend_bid_strategy", "min_conversions_target_roas"): Probe(
        "media_buying", {"objective": "sales", "monthly_budget": 500, "average_order_value": 120}, 1,
        changed(lambda r: r["strategy"], "maximize_conversions", "target_roas")),
    ("forecast_budget", "max_channel_share"): Probe(
        "media_buying", {"budget": 10000, "channel_split": {"search": 0.7, "social": 0.3}}, 0.5,
        refused("at most 50% of a budget on one channel; search is above it")),
    ("save_plan", "require_forecast"): Probe(
        "media_buying", {"name": "Eid plan", "budget": 10000, "channels": [{"channel": "search", "share": 1}]},
        True, refused("no media plan without its forecast")),
    ("audience_expansion", "target_frequency"): Probe(
        "media_buying", {"seed_audience_size": 10000, "budget": 5000, "expansion": "lookalike"}, 6, lambda b, a: (
            a[1]["options"][0]["estimated_reach"] * 2 in range(b[1]["options"][0]["estimated_reach"] - 2,
                                                               b[1]["options"][0]["estimated_reach"] + 3))
        or pytest.fail(f"{b} / {a}")),
    ("get_past_briefs", "include_budgets"): Probe("brief", {}, False, lambda b, a: (
        b[1]["briefs"][0]["budget"] == 600_000 and "budget" not in a[1]["briefs"][0] and "budgets" not in a[1])
        or pytest.fail(f"{b} / {a}")),
    ("get_audience_data", "min_segment_size"): Probe("brief", {}, 1_000_000, changed(
        lambda r: [s["id"] for s in r["segments"]], ["alpha-aud-01", "alpha-aud-02", "alpha-aud-03"], ["alpha-aud-01"])),
    ("get_channel_mix", "efficiency_weight"): Probe("brief", {"objective": "awareness"}, 0, changed(
        lambda r: [(line["channel"], line["share"]) for line in r["mix"]],
        [("social", 0.51), ("video", 0.206), ("display", 0.179), ("search", 0.105)],
        [("social", 0.437), ("video", 0.215), ("search", 0.18), ("display", 0.089), ("ctv", 0.079)])),
    ("get_channel_mix", "min_channel_share"): Probe("brief", {"objective": "awareness"}, 0.2, changed(
        lambda r: [(line["channel"], line["share"]) for line in r["mix"]],
        [("social", 0.51), ("video", 0.206), ("display", 0.179), ("search", 0.105)],
        [("social", 0.712), ("video", 0.288)])),
    ("update_brief", "allow_approval"): Probe("brief", {"brief_id": "alpha-b01", "status": "approved"}, False,
                                              refused("a person approves briefs")),
    ("save_proposal", "require_all_sections"): Probe(
        "proposal", {"title": "Najd Dates Ramadan 2027", "content": "## Executive summary\nA bilingual campaign.\n\n"
                                                                    "## Commercials\nFee AED 1.1m."},
        True, refused("needs every section")),
    ("get_rate_card", "show_cost_rates"): Probe("commercial", {}, False,
                                                changed(lambda r: "cost_rate" in r["roles"][0], True, False)),
    ("estimate_effort", "contingency_pct"): Probe(
        "commercial", {"deliverables": [{"type": "hero_video", "quantity": 3}]}, 0,
        changed(lambda r: r["total_days"], 32.5, 29.0)),
    ("calculate_margin", "min_margin_pct"): Probe(
        "commercial", {"lines": [{"role": "Strategy Director", "days": 10}, {"role": "Video Producer", "days": 10}],
                       "discount_pct": 20}, 30, changed(lambda r: r["below_floor"], True, False)),
    ("get_past_pricing", "max_rows"): Probe("commercial", {}, 1, changed(lambda r: len(r["quotes"]), 3, 1)),
    ("draft_estimate", "payment_terms"): Probe(
        "commercial", {"title": "Eid", "lines": [{"role": "Senior Arabic Copywriter", "days": 2}]}, "full_upfront",
        changed(lambda r: [p["amount"] for p in r["payment_schedule"]], [5040.0, 5040.0], [10080.0])),
    ("draft_estimate", "validity_days"): Probe(
        "commercial", {"title": "Eid", "lines": [{"role": "Senior Arabic Copywriter", "days": 2}]}, 14,
        changed(lambda r: r["valid_days"], 30, 14)),
    ("compare_to_budget", "max_share_of_remaining_pct"): Probe(
        "commercial", {"amount": 1_000_000}, 90, changed(lambda r: r["verdict"], "tight", "fits")),
    ("get_schedule", "max_posts"): Probe("publisher", {}, 1, lambda b, a: (
        b[1]["count"] == a[1]["count"] >= 2 and len(b[1]["posts"]) == b[1]["count"] and len(a[1]["posts"]) == 1
        and a[1]["posts_not_shown"] == b[1]["count"] - 1) or pytest.fail(f"{b} / {a}")),
    ("check_post_specs", "warnings_block"): Probe(
        "publisher", {"channel": "instagram", "text": "Glow this Eid. " * 10,
                      "media": [{"type": "image", "width": 1080, "height": 1080}]},
        True, changed(lambda r: r["passed"], True, False)),
    ("schedule_post", "min_lead_minutes"): Probe(
        "publisher", {"channel": "instagram", "text": "Radiance rooted in the desert.",
                      "media": [{"type": "image", "width": 1080, "height": 1080}],
                      "scheduled_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(timespec="seconds")},
        10080, refused("at least 10080 minutes ahead")),
    ("get_team_capacity", "weeks_shown"): Probe("resource", {}, 2, changed(lambda r: len(r["weeks"]), 4, 2)),
    ("get_team_capacity", "show_bookings"): Probe("resource", {}, False, changed(
        lambda r: "bookings" in r["people"][0]["weeks"][0], True, False)),
    ("find_available_people", "max_utilisation"): Probe(
        "resource", {"skill": "analytics", "hours_per_week": 35, "from": "2027-01-04", "to": "2027-01-29"}, 0.8,
        changed(lambda r: r["fully_free"], 1, 0)),
    ("propose_allocation", "max_utilisation"): Probe(
        "resource", {"requirements": [{"skill": "analytics", "hours_per_week": 34, "from": "2027-01-04",
                                       "to": "2027-01-29"}]}, 0.8,
        changed(lambda r: [(a["person_id"], a["hours_per_week"]) for a in r["assignments"]],
                [("alpha-t06", 34)], [("alpha-t06", 32), ("alpha-t03", 2)])),
    ("save_allocation", "allow_overbooking"): Probe(
        "resource", {"person_id": "alpha-t04", "project": "Probe", "hours_per_week": 20, "start": "2027-01-04",
                     "end": "2027-01-15"}, True,
        changed(lambda r: r["would_have"]["body"].get("overbook"), None, True)),
    ("save_allocation", "max_weeks"): Probe(
        "resource", {"person_id": "alpha-t06", "project": "Probe", "hours_per_week": 10, "start": "2027-01-04",
                     "end": "2027-01-29"}, 2, refused("at most 2 weeks")),
}

READABLE = ("Rain is just weather. Our waxed jackets have seen forty years of it, and the stitching was built to be "
            "replaced rather than thrown away. When a seam goes, we fix it. The jacket is returned within two weeks, "
            "and it is worn for another decade by most of our customers who send them in.")


def flagged(words: str) -> Callable[[tuple[bool, Any], tuple[bool, Any]], None]:
    def see(before, after) -> None:
        assert not before[0] and not after[0], (before, after)
        assert before[1]["passed"] is True and after[1]["passed"] is False, (before, after)
        assert any(words in issue for issue in after[1]["issues"]), after
    return see


PROBES.update({
    ("get_content_calendar", "limit"): Probe("content", {}, 2, lambda b, a: (
        len(b[1]["entries"]) == 8 and len(a[1]["entries"]) == 2 and a[1]["count"] == 8
        and a[1]["entries_not_shown"] == 6) or pytest.fail(f"{b} / {a}")),
    ("check_readability", "max_grade"): Probe("content", {"text": READABLE}, 4, flagged("above the agency's maximum of 4")),
    ("check_readability", "max_sentence_words"): Probe("content", {"text": READABLE}, 22, flagged("over 22 words")),
    ("check_readability", "max_paragraph_words"): Probe("content", {"text": READABLE}, 40, flagged("over 40 words")),
})


def declared_keys() -> set[tuple[str, str]]:
    return {(tool.name, key) for agent_type in agent_types() for version in versions(agent_type)
            for tool in get_spec(agent_type, version).tools for key in tool.settings}


def test_every_declared_setting_has_a_probe():
    assert set(PROBES) == declared_keys(), "a tool setting without a probe below (or a stale probe)"


@pytest.mark.parametrize("tool, key", sorted(PROBES))
def test_each_setting_changes_what_its_tool_does_in_the_next_run(agency, scripted, tool, key):
    probe = PROBES[(tool, key)]
    before = run_tool(scripted, agency, probe.agent_type, tool, probe.tool_input).result()
    instance_tuning_update(actor=None, agent_type=probe.agent_type,
                           changes={"tool_config_overrides": {tool: {key: probe.value}}}, reason="settings probe")
    after = run_tool(scripted, agency, probe.agent_type, tool, probe.tool_input).result()
    probe.see(before, after)


# --- refused when saved ----------------------------------------------------------------------


def test_unknown_keys_wrong_types_and_out_of_range_values_are_400_naming_the_tool_s_keys(agency, api):
    admin = api(agency["instance"], agency["admin"])
    keys = "query_past_projects honours include_lost (true or false, default true), limit (1–20, default 8)."
    cases = [
        ("/api/v1/agents/rfp/tuning", {"query_past_projects": {"limit": 50}},
         f"tool_config_overrides.query_past_projects.limit: 50 is out of range; {keys}"),
        ("/api/v1/agents/rfp/tuning", {"query_past_projects": {"limit": 2.5}},
         f"tool_config_overrides.query_past_projects.limit: must be a whole number, not 2.5; {keys}"),
        ("/api/v1/agents/rfp/tuning", {"query_past_projects": {"include_lost": "no"}},
         f"tool_config_overrides.query_past_projects.include_lost: must be true or false, not 'no'; {keys}"),
        ("/api/v1/agents/rfp/tuning", {"query_past_projects": {"max_results": 3, "colour": "red"}},
         f"tool_config_overrides.query_past_projects: unknown settings 'colour', 'max_results'; {keys}"),
        ("/api/v1/tuning", {"query_past_projects": {"default_limit": 10}},
         f"tool_config_overrides.query_past_projects: unknown setting 'default_limit'; {keys}"),
        ("/api/v1/tuning", {"save_draft": {"limit": 1}},
         "tool_config_overrides.save_draft: unknown setting 'limit'; save_draft has no settings."),
        ("/api/v1/agents/copy/tuning", {"query_past_projects": {"limit": 2}},
         "tool_config_overrides.query_past_projects: is not a core tool of copy."),
        ("/api/v1/agents/media_buying/tuning", {"forecast_budget": {"max_channel_share": 0.1}},
         "tool_config_overrides.forecast_budget.max_channel_share: 0.1 is out of range; forecast_budget honours "
         "max_channel_share (0.2–1, default 1)."),
    ]
    for path, overrides, message in cases:
        rows, entries = list(InstanceTuning.objects.values()), TuningChange.objects.count()
        response = admin.put(path, {"tool_config_overrides": overrides}, format="json")
        assert response.status_code == 400, (path, overrides, response.content)
        assert response.json()["error"]["message"] == message
        assert list(InstanceTuning.objects.values()) == rows and TuningChange.objects.count() == entries

    ok = admin.put("/api/v1/tuning", {"tool_config_overrides": {"query_past_projects": {"limit": 3}}}, format="json")
    assert ok.status_code == 200, ok.content
    manager = api(agency["instance"], agency["manager"])
    refused_put = manager.put("/api/v1/agents/rfp/tuning",
                              {"tool_config_overrides": {"query_past_projects": {"limit": 1}}}, format="json")
    assert refused_put.status_code == 403
    assert InstanceTuning.objects.get(agent_type="").tool_config_overrides == {"query_past_projects": {"limit": 3}}


def test_at_run_time_the_platform_s_declaration_wins_over_a_value_saved_before_it_changed():
    declared = {"limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8, "description": "d"},
                "include_lost": {"type": "boolean", "default": True, "description": "d"}}
    assert effective_tool_settings(declared, {}) == {"include_lost": True, "limit": 8}
    assert effective_tool_settings(declared, {"limit": 50, "dropped_key": 1}) == {"include_lost": True, "limit": 20}
    assert effective_tool_settings(declared, {"limit": "5", "include_lost": False}) == {"include_lost": False,
                                                                                         "limit": 8}
