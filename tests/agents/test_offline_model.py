"""The offline model, through the real SDK (no ANTHROPIC_API_KEY in the test settings)."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import pytest
from django.test import override_settings

from agents import offline_model
from agents.model import (
    ModelCancelled,
    ModelRequest,
    StreamCallbacks,
    call_model,
    cost_usd,
    get_client,
    reset_client,
)
from agents.offline_model import SIMULATED_MARKER, avoided_terms, fill_schema, find_client_name

TOOLS = sorted([
    {"name": "query_past_projects",
     "description": "Search the agency's past projects by industry and keywords; returns projects with outcomes.",
     "input_schema": {"type": "object", "additionalProperties": False, "required": ["industry", "keywords"],
                      "properties": {
                          "industry": {"type": "string", "enum": ["beauty", "fashion", "food", "technology"]},
                          "keywords": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5},
                          "limit": {"type": "integer", "minimum": 1, "maximum": 20},
                          "min_budget": {"type": "number", "minimum": 500, "maximum": 2000}}}},
    {"name": "get_team_capabilities",
     "description": "List the team's capabilities and availability for a proposal.",
     "input_schema": {"type": "object", "required": ["skills"],
                      "properties": {"skills": {"type": "array", "items": {"type": "string"}},
                                     "available_from": {"type": "string", "format": "date"}}}},
    {"name": "get_client_info",
     "description": "Look up a client by name: industry, region, contacts.",
     "input_schema": {"type": "object", "required": ["client_name"],
                      "properties": {"client_name": {"type": "string", "minLength": 2, "maxLength": 80}}}},
    {"name": "convert_currency", "description": "Convert an amount between currencies.",
     "input_schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "number"}}}},
], key=lambda t: t["name"])

SYSTEM = [
    {"type": "text", "text": "You are the agency's RFP agent. Answer with evidence from the tools."},
    {"type": "text", "text": "Client: Lumina Skincare\nNever use the word \"cheap\".\nAvoid jargon like synergy.",
     "cache_control": {"type": "ephemeral"}},
]
TASK = "Draft an RFP response for a beauty launch: find past projects and team capabilities, keep it cheap"


@pytest.fixture(autouse=True)
def offline_client():
    with override_settings(ANTHROPIC_API_KEY=""):
        reset_client()
        yield
        reset_client()


def _request(messages, *, system=SYSTEM, tools=TOOLS, model="claude-sonnet-5-5") -> ModelRequest:
    return ModelRequest(model=model, fallback_model="claude-haiku-5-5", system=system, tools=tools,
                        messages=messages, max_tokens=2048)


class Recorder:
    def __init__(self, cancel_after_text: int | None = None) -> None:
        self.text: list[str] = []
        self.tool_input: list[tuple[str, str, str]] = []
        self.polls = 0
        self.cancel_after_text = cancel_after_text

    def callbacks(self) -> StreamCallbacks:
        return StreamCallbacks(on_text=self.text.append,
                               on_tool_input=lambda *args: self.tool_input.append(args),
                               should_cancel=self._should_cancel)

    def _should_cancel(self) -> bool:
        self.polls += 1
        return self.cancel_after_text is not None and len(self.text) >= self.cancel_after_text


def _tool_results(turn, results: dict[str, object]) -> list[dict]:
    return [{"type": "tool_result", "tool_use_id": block["id"], "content": json.dumps(results[block["name"]])}
            for block in turn.content if block["type"] == "tool_use"]


def test_the_offline_client_is_the_sdk_over_the_offline_transport():
    client = get_client()
    assert type(client) is anthropic.Anthropic
    assert get_client() is client


def test_first_turn_picks_matching_tools_streams_their_input_and_fills_schema_valid_arguments():
    recorder = Recorder()
    turn = call_model(_request([{"role": "user", "content": TASK}]), callbacks=recorder.callbacks())

    assert turn.simulated and not turn.used_fallback and turn.stop_reason == "tool_use"
    tool_uses = [b for b in turn.content if b["type"] == "tool_use"]
    assert {b["name"] for b in tool_uses} == {"query_past_projects", "get_team_capabilities"}
    assert "convert_currency" not in {b["name"] for b in tool_uses}
    schemas = {t["name"]: t["input_schema"] for t in TOOLS}
    for block in tool_uses:
        jsonschema.validate(block["input"], schemas[block["name"]])
        streamed = [p for (tool_id, name, p) in recorder.tool_input if tool_id == block["id"]]
        assert len(streamed) > 1, "tool input arrives in several input_json_delta chunks"
        assert {name for (tool_id, name, _) in recorder.tool_input if tool_id == block["id"]} == {block["name"]}
        assert json.loads("".join(streamed)) == block["input"]
    projects = next(b for b in tool_uses if b["name"] == "query_past_projects")["input"]
    assert projects["industry"] == "beauty"  # enum → first value
    # Only the required fields: optional ones keep the tool's own defaults (the run's client, its market).
    assert list(projects) == ["industry", "keywords"]
    assert "".join(recorder.text) == "".join(b["text"] for b in turn.content if b["type"] == "text")


def test_a_client_tool_gets_the_client_named_in_the_system_prompt():
    turn = call_model(_request([{"role": "user", "content": "Get client info before the meeting"}]))
    block = next(b for b in turn.content if b["type"] == "tool_use")
    assert block == {**block, "name": "get_client_info", "input": {"client_name": "Lumina Skincare"}}


def test_final_answer_quotes_tool_results_honours_never_rules_and_is_marked_simulated():
    messages = [{"role": "user", "content": TASK}]
    first = call_model(_request(messages))
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": _tool_results(first, {
                     "query_past_projects": {"projects": [{"name": "Glow Serum launch", "roi": 3.7,
                                                           "outcome": "won", "budget_usd": 185000}]},
                     "get_team_capabilities": {"team": ["Strategy", "Social"], "available_people": 14}})}]
    recorder = Recorder()
    final = call_model(_request(messages), callbacks=recorder.callbacks())

    assert final.stop_reason == "end_turn" and final.simulated
    text = final.content[0]["text"]
    assert text.splitlines()[0] == SIMULATED_MARKER
    for fact in ("3.7", "185000", "14", "Glow Serum launch", "Lumina Skincare"):
        assert fact in text
    assert "cheap" not in text.lower() and "synergy" not in text.lower()
    assert len(recorder.text) > 3 and "".join(recorder.text) == text


def test_tool_errors_are_reported_in_the_answer():
    messages = [{"role": "user", "content": "Get client info"}]
    first = call_model(_request(messages))
    block = next(b for b in first.content if b["type"] == "tool_use")
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "is_error": True,
                                               "content": "ERP timed out after 5 s"}]}]
    final = call_model(_request(messages))
    assert "get_client_info could not help: ERP timed out after 5 s" in final.content[0]["text"]


def test_a_loop_always_ends_within_the_tool_turn_bound():
    tools = [*TOOLS, {"name": "save_draft", "description": "Save the draft RFP response for review.",
                      "input_schema": {"type": "object", "required": ["title", "text"],
                                       "properties": {"title": {"type": "string"}, "text": {"type": "string"}}}}]
    messages = [{"role": "user", "content": TASK}]
    called = []
    for _ in range(offline_model.MAX_TOOL_TURNS + 1):
        turn = call_model(_request(messages, tools=tools))
        messages.append({"role": "assistant", "content": turn.content})
        if turn.stop_reason == "end_turn":
            break
        called.append([b["name"] for b in turn.content if b["type"] == "tool_use"])
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b["id"], "content": '{"ok": true, "id": 7}'}
            for b in turn.content if b["type"] == "tool_use"]})
    assert turn.stop_reason == "end_turn"
    assert called[-1] == ["save_draft"] and "save_draft" not in called[0]  # gather first, create last
    draft = next(b for b in messages[-3]["content"] if b["type"] == "tool_use")["input"]
    assert draft["text"].startswith(SIMULATED_MARKER) and "cheap" not in draft["text"]


def test_no_matching_tool_means_a_direct_answer():
    turn = call_model(_request([{"role": "user", "content": "Say hello"}]))
    assert turn.stop_reason == "end_turn" and turn.content[0]["text"].startswith(SIMULATED_MARKER)


def test_usage_reports_a_cache_write_then_a_cache_read_and_cost_follows_the_price_table():
    system = [{"type": "text", "text": f"A prefix seen once: {id(object())}"}]
    first = call_model(_request([{"role": "user", "content": "Find past projects"}], system=system))
    second = call_model(_request([{"role": "user", "content": "Find team capabilities"}], system=system))

    assert first.usage.cache_creation_input_tokens > 0 and first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.cache_creation_input_tokens == 0
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    u = second.usage
    expected = (u.input_tokens * 3 + u.output_tokens * 15 + u.cache_read_input_tokens * 0.3) / 1e6
    assert second.cost_usd == pytest.approx(expected) == pytest.approx(cost_usd("claude-sonnet-5-5", u))


def test_cancel_mid_stream_stops_within_one_delta():
    messages = [{"role": "user", "content": TASK}]
    first = call_model(_request(messages))
    messages += [{"role": "assistant", "content": first.content},
                 {"role": "user", "content": _tool_results(first, {"query_past_projects": {"n": 1},
                                                                   "get_team_capabilities": {"n": 2}})}]
    recorder = Recorder(cancel_after_text=1)
    with pytest.raises(ModelCancelled):
        call_model(_request(messages), callbacks=recorder.callbacks())
    assert len(recorder.text) == 1


def test_cancelled_before_the_call_sends_nothing():
    with pytest.raises(ModelCancelled):
        call_model(_request([{"role": "user", "content": TASK}]),
                   callbacks=StreamCallbacks(should_cancel=lambda: True))


def test_non_streaming_requests_get_a_message():
    message = get_client().messages.create(model="claude-haiku-5-5", max_tokens=100, tools=TOOLS, system=SYSTEM,
                                           messages=[{"role": "user", "content": "Get client info"}])
    assert message.stop_reason == "tool_use"
    assert message.content[-1].input == {"client_name": "Lumina Skincare"}


# --- the pieces ---------------------------------------------------------------------------


def test_avoided_terms_read_never_avoid_and_competitor_lines():
    system = ("Never use the word \"cheap\".\nAvoid superlatives like best\nNever mention RivalCo or Glossy Inc.\n"
              "Competitors: Fenty, Glossier\nDo not promise guaranteed results.\n- Never say cure\n"
              "Always be kind.")
    assert avoided_terms(system) == ["cheap", "best", "RivalCo", "Glossy Inc", "Fenty", "Glossier",
                                     "guaranteed results", "cure"]


def test_find_client_name():
    assert find_client_name("## Client: Acme Foods (GCC)", []) == "Acme Foods"
    assert find_client_name("", [{"role": "user", "content": "Write a brief for client \"Nova Bank\""}]) == "Nova Bank"
    assert find_client_name("", [{"role": "user", "content": "A launch plan for Desert Bloom Cafe"}]) == \
        "Desert Bloom Cafe"
    assert find_client_name("", [{"role": "user", "content": "no client here"}]) == ""


def test_fill_schema_respects_constraints():
    ctx = offline_model._Context(task="Plan a food campaign in Dubai", client="Acme")
    schema = {"type": "object", "required": ["budget", "weeks", "channel", "tags", "ratio", "nested"],
              "properties": {
                  "budget": {"type": "integer", "minimum": 100, "maximum": 5000},
                  "weeks": {"type": "integer", "exclusiveMinimum": 0, "maximum": 2},
                  "channel": {"anyOf": [{"type": "null"}, {"type": "string", "enum": ["meta", "google"]}]},
                  "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                  "ratio": {"type": "number", "minimum": 0, "maximum": 1},
                  "nested": {"type": "object", "required": ["flag", "client"],
                             "properties": {"flag": {"type": "boolean"}, "client": {"type": "string"}}},
                  "short": {"type": "string", "maxLength": 5}}}
    value = fill_schema(schema, ctx)
    jsonschema.validate(value, schema)
    assert value["budget"] == 5000 and value["channel"] == "meta" and value["nested"]["client"] == "Acme"


def test_a_small_max_tokens_cuts_the_answer_off():
    request = _request([{"role": "user", "content": "Say hello"}])
    turn = call_model(ModelRequest(**{**request.__dict__, "max_tokens": 10}))
    assert turn.stop_reason == "max_tokens" and len(turn.content[0]["text"]) == 40


def test_the_offline_model_serves_many_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    def one(index: int) -> str:
        turn = call_model(_request([{"role": "user", "content": f"Find past projects, case {index}"}]))
        return next(b["name"] for b in turn.content if b["type"] == "tool_use")

    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(one, range(64)))
    assert names == ["query_past_projects"] * 64


def test_the_offline_model_fills_every_core_tool_with_input_its_schema_accepts():
    """The demo runs on the offline model: a core tool must never be called with input it refuses."""
    from jsonschema import Draft202012Validator

    from agents.registry import agent_types, get_spec, versions

    ctx = offline_model._Context(task="Plan a $50,000 Q1 campaign for Hudson Cloud in the US", client="Hudson Cloud")
    for agent_type in agent_types():
        for version in versions(agent_type):
            for tool in get_spec(agent_type, version).tools:
                value = fill_schema(dict(tool.input_schema), ctx)
                errors = [e.message for e in Draft202012Validator(tool.input_schema).iter_errors(value)]
                assert not errors, (agent_type, version, tool.name, value, errors)
