"""The shipped agent specs: registry lookups, tool definitions the Messages API accepts, limits,
knowledge, and releases whose declared changes are exactly what differs between versions."""

import dataclasses
import re

import pytest
from jsonschema import Draft202012Validator

from agents import registry
from agents.knowledge import KNOWLEDGE, LANGUAGES, REGIONS, VERTICALS, knowledge_for
from agents.registry import AgentSpec, agent_types, get_spec, register, versions

CORE_AGENTS = ("brief", "commercial", "content", "copy", "media_buying", "proposal", "publisher", "resource", "rfp")
ALL_SPECS = [(t, v) for t in CORE_AGENTS for v in versions(t)]
WRITING_TOOLS = {"draft_response", "save_draft", "create_brief", "update_brief", "save_plan", "schedule_for_review",
                 "save_estimate", "request_discount_approval", "schedule_post", "publish_post", "delete_post",
                 "save_allocation", "save_proposal"}


def all_tools():
    return [(t, v, tool) for t, v in ALL_SPECS for tool in get_spec(t, v).tools]


def test_the_core_agents_and_their_versions_are_registered():
    assert set(CORE_AGENTS) <= set(agent_types())
    assert versions("media_buying") == ["2.3.1", "2.4.0"]
    assert versions("rfp") == ["2.3.1", "2.4.0"]
    assert versions("brief") == ["2.3.1", "2.4.0"] and versions("copy") == ["2.3.1"]
    for agent_type in ("commercial", "content", "proposal", "publisher", "resource"):
        assert versions(agent_type) == ["1.0.0"]


def test_latest_is_by_semver_and_old_versions_stay_available():
    assert get_spec("media_buying").version == "2.4.0"
    assert get_spec("rfp").version == "2.4.0"
    assert get_spec("brief").version == "2.4.0" and len(get_spec("brief", "2.3.1").tools) == 4
    old = get_spec("media_buying", "2.3.1")
    assert old.version == "2.3.1" and old.tool("audience_expansion") is None
    assert get_spec("media_buying", "9.9.9") is None and get_spec("no_such_agent") is None


def test_semver_ordering_is_numeric_not_textual(monkeypatch):
    base = get_spec("brief", "2.3.1")
    monkeypatch.setitem(registry._REGISTRY, "zz_semver_probe", {})  # removed again after the test
    for version in ("2.10.0", "2.9.3"):
        register(dataclasses.replace(base, agent_type="zz_semver_probe", version=version))
    assert versions("zz_semver_probe") == ["2.9.3", "2.10.0"]
    assert get_spec("zz_semver_probe").version == "2.10.0"


def test_a_version_cannot_be_registered_twice_and_specs_are_immutable():
    spec = get_spec("copy", "2.3.1")
    with pytest.raises(ValueError, match="registered twice"):
        register(dataclasses.replace(spec, title="Another copy"))
    assert register(spec) is spec  # re-importing the same module is harmless
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.version = "9.0.0"


@pytest.mark.parametrize("agent_type, version, tool", all_tools(), ids=lambda x: getattr(x, "name", x))
def test_every_tool_is_a_valid_messages_api_tool(agent_type, version, tool):
    Draft202012Validator.check_schema(tool.input_schema)
    assert tool.input_schema["type"] == "object" and tool.input_schema.get("additionalProperties") is False
    assert re.fullmatch(r"[a-z][a-z0-9_]{2,63}", tool.name)
    words = tool.description.split()
    assert len(words) >= 25 and len(tool.description) <= 1024, "a description says when to use it and what it returns"
    assert tool.side_effect == (tool.name in WRITING_TOOLS)
    definition = tool.definition()
    assert set(definition) == {"name", "description", "input_schema"} and definition["name"] == tool.name
    assert set(tool.input_schema.get("required", [])) <= set(tool.input_schema.get("properties", {}))
    for name, prop in tool.input_schema.get("properties", {}).items():
        assert "type" in prop or "enum" in prop, f"{tool.name}.{name} has no type"


@pytest.mark.parametrize("agent_type, version", ALL_SPECS)
def test_limits_confirmation_patterns_and_prompt(agent_type, version):
    spec = get_spec(agent_type, version)
    assert isinstance(spec, AgentSpec) and re.fullmatch(r"\d+\.\d+\.\d+", spec.version)
    assert spec.max_iterations == 25 and spec.max_tool_calls_per_turn == 10
    assert 0 < spec.time_limit_s <= 900
    # An orchestrator's ceiling counts its delegated runs' cost too (agents/delegation.py).
    delegates = sum(tool.name.startswith("delegate_to_") for tool in spec.tools)
    assert 0 < spec.cost_ceiling_usd <= 5 + 2 * delegates
    levels = ("", "low", "medium", "high", "xhigh", "max")
    assert spec.max_effort in levels[1:] and levels.index(spec.effort) <= levels.index(spec.max_effort)
    assert spec.max_tokens <= spec.max_tokens_limit
    assert {"delete_*", "publish_*"} <= set(spec.confirmation_patterns)
    prompt = spec.base_prompt
    assert "Think → Act → Create" in prompt and "## Output" in prompt
    for tool in spec.tools:
        assert tool.name in prompt, f"the prompt says when to use {tool.name}"
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", prompt), "no dates: the prompt prefix must be byte-stable"
    assert spec.knowledge is KNOWLEDGE and spec.release.release_date and spec.release.notes.startswith("## ")


def test_knowledge_covers_every_vertical_region_and_language_with_concrete_text():
    assert set(KNOWLEDGE["vertical"]) == {*VERTICALS, "retail"}  # retail: knowledge, no ERP benchmarks yet
    assert set(KNOWLEDGE["region"]) == set(REGIONS)
    assert set(KNOWLEDGE["language"]) == set(LANGUAGES)
    for table in KNOWLEDGE.values():
        for key, text in table.items():
            assert 30 <= len(text.split()) <= 160, key
    assert "Ramadan" in KNOWLEDGE["region"]["GCC"] and "right-to-left" in KNOWLEDGE["region"]["GCC"]
    assert "GDPR" in KNOWLEDGE["region"]["EU"] and "ASA" in KNOWLEDGE["region"]["EU"]
    assert "risk" in KNOWLEDGE["vertical"]["finance"]
    found = knowledge_for({"vertical": "Finance", "region": "gcc", "language": "ar"})
    assert found == {"vertical": KNOWLEDGE["vertical"]["finance"], "region": KNOWLEDGE["region"]["GCC"],
                     "language": KNOWLEDGE["language"]["ar"]}
    assert knowledge_for({"vertical": "widgets", "region": ""}) == {}
    with pytest.raises(TypeError):
        KNOWLEDGE["region"]["GCC"] = "changed"


def _diff(old, new):
    old_tools, new_tools = {t.name: t for t in old.tools}, {t.name: t for t in new.tools}
    changes = {("added", n) for n in new_tools.keys() - old_tools.keys()}
    changes |= {("removed", n) for n in old_tools.keys() - new_tools.keys()}
    changes |= {("modified", n) for n in old_tools.keys() & new_tools.keys() if old_tools[n] != new_tools[n]}
    return changes


@pytest.mark.parametrize("agent_type", ["brief", "media_buying", "rfp"])
def test_a_release_declares_exactly_the_tool_changes_between_versions(agent_type):
    old, new = get_spec(agent_type, "2.3.1"), get_spec(agent_type, "2.4.0")
    declared = {(c.kind, c.tool) for c in new.release.tool_changes}
    assert declared == _diff(old, new)
    for name in {t.name for t in old.tools} - {tool for _, tool in declared}:
        assert old.tool(name) is new.tool(name), f"{name} is shared, not copied"
    assert all(c.summary for c in new.release.tool_changes) and not new.release.breaking


def test_media_buying_2_4_0_is_the_reach_release():
    old, new = get_spec("media_buying", "2.3.1"), get_spec("media_buying", "2.4.0")
    assert old.release.optimization_tags == ("performance", "roas", "conversions")
    assert new.release.optimization_tags == ("reach", "brand_awareness")
    assert {(c.kind, c.tool) for c in new.release.tool_changes} == {
        ("added", "audience_expansion"), ("modified", "recommend_bid_strategy")}
    assert "default bid strategy changes to maximize_reach" in new.release.behaviour_changes
    assert "maximize_reach" in new.release.notes and new.release.prompt_changes
    assert "reach" in new.base_prompt and old.base_prompt != new.base_prompt


def test_rfp_2_4_0_adds_estimate_timeline_and_fixes_analyze_rfp():
    new = get_spec("rfp", "2.4.0")
    assert {(c.kind, c.tool) for c in new.release.tool_changes} == {
        ("added", "estimate_timeline"), ("modified", "analyze_rfp")}
    assert "weight" in new.tool("analyze_rfp").description
    assert any("weight" in b for b in new.release.behaviour_changes)
